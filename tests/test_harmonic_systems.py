"""The harmonic systems as a user runs them: `paperlib embed-harmonic` on release-layout checkpoints, the chroma
baseline, the fusion with LIVI, the per-condition table, the settings and the pre-flight.

Every model here carries RANDOM weights at SMALL configurations (tests/test_harmonic.py): the tests check that the
files a user names go through the same loader and protocol as a direct forward pass, not what the weights find.
"""

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from paperlib import cli
from paperlib.cli import preflight
from paperlib.evaluation import conditions, fusion, metrics
from paperlib.harmonic import chroma, release
from paperlib.harmonic.architectures import build_model
from paperlib.harmonic.systems import HarmonicJob, jobs_of
from paperlib.runtime import config, engine
from paperlib.weights.packaged import ModelUnavailableError

pytest.importorskip("omegaconf")
from test_harmonic import SMALL, SR, randomise, save_release, tone_wave  # noqa: E402


def write_wav(path, wave):
    sf.write(path, wave, SR, subtype="FLOAT")
    return path


@pytest.fixture(scope="module")
def audio(tmp_path_factory):
    """Two tone tracks (7 s and 3 s: shorter than some shingles) and a file that is not audio."""
    folder = tmp_path_factory.mktemp("audio")
    write_wav(folder / "a.wav", tone_wave(7.0, seed=1))
    write_wav(folder / "b.wav", tone_wave(3.0, seed=2))
    (folder / "broken.wav").write_bytes(b"not a wav file")
    return folder


@pytest.mark.parametrize("name", sorted(SMALL))
def test_embed_harmonic_reproduces_a_direct_forward_pass(name, audio, tmp_path, capsys):
    """Random weights: the CLI's files equal embed_track / track_vector of the same modules; the bad file is an
    "error" row and the run goes on."""
    model = randomise(build_model(SMALL[name], sr=SR), seed=3)
    checkpoint = save_release(tmp_path / f"dvi-{name}", model, SMALL[name])
    out = tmp_path / "out"
    code = cli.main(["embed-harmonic", "--checkpoint", str(checkpoint), "--out", str(out), "--hop", "1", str(audio)])
    assert code == 0
    manifest = pd.read_csv(out / "manifest.csv", keep_default_na=False)
    assert manifest["id"].tolist() == ["a", "b", "broken"]
    assert manifest["status"].tolist() == ["ok", "ok", "error"]
    assert manifest.loc[2, "reason"]
    with np.load(out / "embeddings.npz") as vectors, np.load(out / "segments.npz") as segments:
        assert sorted(vectors.files) == sorted(segments.files) == ["a", "b"]
        for stem in ("a", "b"):
            wave = sf.read(audio / f"{stem}.wav", dtype="float32")[0]
            direct = release.embed_track(model, wave, hop_s=1.0, max_seconds=240.0, batch_size=8)
            np.testing.assert_array_equal(segments[stem], direct)
            np.testing.assert_array_equal(vectors[stem], release.track_vector(direct))
            assert vectors[stem].dtype == np.float32 and segments[stem].shape[1] == model.zdim
    assert int(manifest.loc[0, "n_chunks"]) == len(release.segment_starts(7 * SR, model.segment_samples, SR))
    assert "2 ok, 0 instrumental, 1 error" in capsys.readouterr().err


def test_embed_harmonic_max_seconds(audio, tmp_path):
    """Random weights: --max-seconds 2 embeds the first 2 s only (one 2 s CLEWS shingle, whatever the track)."""
    model = randomise(build_model(SMALL["clews"], sr=SR), seed=4)
    checkpoint = save_release(tmp_path / "ck", model, SMALL["clews"])
    out = tmp_path / "out"
    args = ["embed-harmonic", "--checkpoint", str(checkpoint), "--out", str(out), "--max-seconds", "2"]
    assert cli.main([*args, str(audio / "a.wav")]) == 0
    with np.load(out / "segments.npz") as segments:
        wave = sf.read(audio / "a.wav", dtype="float32")[0][: 2 * SR]
        np.testing.assert_array_equal(segments["a"], release.embed_track(model, wave, max_seconds=None))
        assert len(segments["a"]) == 1


def test_embed_harmonic_bad_checkpoint_is_one_line(audio, tmp_path, capsys):
    (tmp_path / "junk.ckpt").write_bytes(b"junk")
    for path in (tmp_path / "missing.ckpt", tmp_path / "junk.ckpt"):
        code = cli.main(["embed-harmonic", "--checkpoint", str(path), "--out", str(tmp_path / "o"), str(audio)])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1 and str(path) in err
    assert not (tmp_path / "o").exists()


def test_job_rows_do_not_depend_on_batching(audio, tmp_path):
    """Random weights: a track's vector is the same alone or after another track in the same model call."""
    model = randomise(build_model(SMALL["dvinetp"], sr=SR), seed=5)
    job = HarmonicJob(str(save_release(tmp_path / "ck", model, SMALL["dvinetp"])), hop_s=1.0)
    cfg = config.load(None, ["scale.track_batch=2"])
    together = {r["id"]: r for r in engine.run(job, [("a", audio / "a.wav"), ("b", audio / "b.wav")], cfg)}
    alone = engine.run(job, [("b", audio / "b.wav")], cfg)[0]
    np.testing.assert_array_equal(together["b"]["vector"], alone["vector"])


# --------------------------------------------------------------------------- settings and pre-flight
def test_one_checkpoint_per_architecture(tmp_path):
    """Random weights: two CLEWS checkpoints are refused by name; one of each is listed in Table 2's order."""
    paths = []
    for folder, name in (("x", "clews"), ("y", "dvinetp"), ("z", "clews")):
        model = build_model(SMALL[name], sr=SR)
        paths.append(str(save_release(tmp_path / folder, model, SMALL[name])))
    cfg = config.load(None, [f"harmonic.checkpoints={paths[1]},{paths[0]}"])
    assert list(jobs_of(cfg)) == ["clews", "dvinetp", "chroma"]
    with pytest.raises(release.HarmonicError, match="two clews checkpoints"):
        jobs_of(config.load(None, [f"harmonic.checkpoints={paths[0]},{paths[2]}"]))


def test_preflight_names_every_missing_checkpoint(tmp_path):
    """The paper's defaults name four release files; with none present all four are listed at once."""
    cfg = config.load(
        None,
        [
            f"paths.models={tmp_path}",
            "models.whisper=whisper-base",
            "models.text=all-MiniLM-L6-v2",
            "text.models=all-MiniLM-L6-v2",
            "vocals.detector=silero",
            "evaluate.sets=demo",
        ],
    )
    assert len(cfg.harmonic.checkpoints) == 4
    with pytest.raises(ModelUnavailableError) as caught:
        preflight.check(cfg)
    for path in config.RELEASE_CHECKPOINTS:
        assert f"{path}: no such checkpoint file" in str(caught.value)


def test_fusion_weight_is_checked():
    with pytest.raises(config.ConfigError, match="fusion_weight"):
        config.load(None, ["harmonic.fusion_weight=1.5"])


# --------------------------------------------------------------------------- chroma 2DFTM
def test_fingerprint_forgets_key_and_time_shift():
    """|2D FFT| ignores a circular shift along the 12 pitch classes (a transposition) and, with one patch, along
    the beats; the vector is L2-normalised."""
    rng = np.random.default_rng(0)
    beats = rng.random((12, 20))
    vector, patches = chroma.fingerprint(beats, patch_beats=20)
    assert patches == 1 and vector.shape == (240,)
    np.testing.assert_allclose(chroma.fingerprint(np.roll(beats, 5, axis=0), 20)[0], vector, atol=1e-6)
    np.testing.assert_allclose(chroma.fingerprint(np.roll(beats, 7, axis=1), 20)[0], vector, atol=1e-6)
    assert np.linalg.norm(vector) == pytest.approx(1.0, abs=1e-6)
    other, _ = chroma.fingerprint(rng.random((12, 20)), 20)
    assert float(vector @ other) < 0.99


def test_fingerprint_tiles_a_short_track():
    """A track of 5 beats with 20-beat patches is tiled to 20 beats: one patch, as if it looped."""
    beats = np.random.default_rng(1).random((12, 5))
    vector, patches = chroma.fingerprint(beats, patch_beats=20)
    np.testing.assert_allclose(vector, chroma.fingerprint(np.tile(beats, (1, 4)), 20)[0], atol=1e-6)
    assert patches == 1


def test_chroma_job_statuses(tmp_path):
    """A rhythmic chord track is "ok"; silence (no beat grid) is an "error" row with the reason."""
    t = np.arange(12 * SR) / SR
    pulse = (np.sin(2 * np.pi * 2.0 * t) > 0.9).astype(np.float32)  # 120 bpm clicks
    chords = sum(np.sin(2 * np.pi * f * t) for f in (261.63, 329.63, 392.0)).astype(np.float32)
    write_wav(tmp_path / "song.wav", 0.2 * chords * (0.3 + pulse))
    write_wav(tmp_path / "silence.wav", np.zeros(5 * SR, dtype=np.float32))
    cfg = config.load(None)
    rows = engine.run(
        chroma.ChromaJob(patch_beats=8), [("song", tmp_path / "song.wav"), ("silence", tmp_path / "silence.wav")], cfg
    )
    assert [r["status"] for r in rows] == ["ok", "error"]
    assert rows[0]["vector"].shape == (96,) and rows[0]["n_chunks"] >= 1
    assert "no beat grid" in rows[1]["reason"] and "vector" not in rows[1]


# --------------------------------------------------------------------------- fusion
def unit(rng, n, d):
    x = rng.standard_normal((n, d))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_score_ranks_match_relevant_ranks():
    rng = np.random.default_rng(0)
    x = unit(rng, 30, 8).astype(np.float32)
    cliques = [i // 3 for i in range(30)]
    full = x.astype(np.float64) @ x.T.astype(np.float64)
    by_tiles = metrics.relevant_ranks(x, cliques, block_size=7, progress=False)
    by_rows = metrics.score_ranks([(np.arange(30), full)], cliques)
    for a, b in zip(by_tiles, by_rows):
        np.testing.assert_array_equal(a, b)


def test_score_ranks_ties_go_to_corpus_order():
    """All scores equal: each query's candidates rank in corpus order (query 1: 0, 2, 3 -> its version 3 at rank
    3), as relevant_ranks ranks identical vectors."""
    cliques = ["a", "b", "a", "b"]
    ranks = metrics.score_ranks([(np.arange(4), np.zeros((4, 4)))], cliques)
    assert [r.tolist() for r in ranks] == [[2], [3], [1], [2]]
    same = np.ones((4, 2), dtype=np.float32) / np.sqrt(2)
    assert [r.tolist() for r in metrics.relevant_ranks(same, cliques, progress=False)] == [[2], [3], [1], [2]]


def test_fusion_extremes_and_missing_tracks():
    """Weight 1 ranks as LIVI, weight 0 as the harmonic system; a track LIVI lacks is ranked by harmony alone."""
    rng = np.random.default_rng(1)
    ids = [f"t{i}" for i in range(12)]
    cliques = [i // 3 for i in range(12)]
    a, h = unit(rng, 12, 6), unit(rng, 12, 6)
    livi, harm = dict(zip(ids, a)), dict(zip(ids, h))
    for weight, matrix in ((1.0, a), (0.0, h)):
        fused = metrics.score_ranks(fusion.fused_blocks(ids, livi, harm, weight, block_size=5), cliques)
        plain = metrics.score_ranks([(np.arange(12), matrix @ matrix.T)], cliques)
        for x, y in zip(fused, plain):
            np.testing.assert_array_equal(x, y)
    del livi["t4"]
    (queries, rows), *_ = list(fusion.fused_blocks(ids, livi, harm, 0.7, block_size=12))
    z = fusion.zscores((h @ h.T)[4:5], np.arange(12)[None, :] != 4)
    np.testing.assert_allclose(np.delete(rows[4], 4), np.delete(z[0], 4))
    assert rows[4, 4] == -np.inf


def test_zscores_of_a_known_row():
    scores = np.array([[0.0, 1.0, 2.0, 3.0]])
    valid = np.array([[False, True, True, True]])
    z = fusion.zscores(scores, valid)
    np.testing.assert_allclose(z, [[0.0, -np.sqrt(1.5), 0.0, np.sqrt(1.5)]])


# --------------------------------------------------------------------------- per-condition table
def test_kind_table_and_confusions():
    """Work A (tracks a0 a1), work B borrows A's accompaniment (b0 b1), C unrelated (c0 c1): scores that put b0
    nearest to a0 confuse query a0; a1 is instrumental and not embedded (a miss in HR1_all)."""
    kinds = pd.DataFrame(
        {
            "id": ["a0", "a1", "b0", "b1", "c0", "c1"],
            "work": ["A", "A", "B", "B", "C", "C"],
            "kind": ["original", "instrumental", "distractor", "distractor", "original", "cover"],
            "related": ["B", "B", "A", "A", "", ""],
        }
    )
    ids = ["a0", "b0", "b1", "c0", "c1"]  # a1 not embedded
    scores = np.array(
        [
            [0, 0.9, 0.1, 0.2, 0.3],  # a0: b0 (other work) first, no true version embedded -> not confusable
            [0.9, 0, 0.5, 0.1, 0.1],  # b0: a0 (0.9) above b1 (0.5) -> confused
            [0.2, 0.8, 0, 0.1, 0.1],  # b1: b0 (0.8) above a0 (0.2) -> not confused
            [0.1, 0.1, 0.1, 0, 0.9],
            [0.1, 0.1, 0.1, 0.9, 0],
        ]
    )
    confused = conditions.confusions(ids, [(np.arange(5), scores)], kinds)
    assert confused.to_dict() == {"b0": 1.0, "b1": 0.0}
    per_query = metrics.evaluate_scores([(np.arange(5), scores)], ["A", "B", "B", "C", "C"], ids)[1]
    table = conditions.kind_table("demo", "sys", per_query, confused, kinds).set_index("kind")
    assert table.loc["instrumental", ["tracks", "queries", "HR1_all"]].tolist() == [1, 0, 0.0]
    assert table.loc["distractor", "HR1"] == 0.5 and table.loc["distractor", "confused"] == 0.5
    assert table.loc["all", "tracks"] == 6 and table.loc["all", "queries"] == 4
    assert table.loc["all", "HR1_all"] == pytest.approx(round(3 / 6, 6))


def test_track_conditions_link_both_sides(tmp_path):
    pd.DataFrame(
        {
            "id": ["x-v0", "y-v0", "z-v0"],
            "work": ["x", "y", "z"],
            "kind": ["original", "distractor", "cover"],
            "lyrics": ["a", "b", "a"],
        }
    ).to_csv(tmp_path / "tracks.csv", index=False)
    pd.DataFrame({"work": ["x", "y", "z"], "accompaniment_of": ["", "x", ""]}).to_csv(
        tmp_path / "works.csv", index=False
    )
    table = conditions.track_conditions(tmp_path)
    assert table["related"].tolist() == ["y", "x", ""]
    assert table["language"].tolist() == ["en"] * 3  # the English corpus has no language column


def test_ray_engine_gives_the_local_rows(ray_local, audio, tmp_path):
    """Random weights: a release checkpoint and the chroma baseline on Ray Data (CPU tasks, one model actor) give
    the local engine's statuses and vectors, bit for bit."""
    model = randomise(build_model(SMALL["cqtnet"], sr=SR), seed=7)
    tracks = [(p.stem, p) for p in sorted(audio.iterdir())]
    jobs = [HarmonicJob(str(save_release(tmp_path / "ck", model, SMALL["cqtnet"])), hop_s=1.0), chroma.ChromaJob(8)]
    for job in jobs:
        local = engine.run(job, tracks, config.load(None))
        remote = engine.run(job, tracks, config.load(None, ["scale.engine=ray", "scale.track_batch=2"]))
        assert [r["status"] for r in remote] == [r["status"] for r in local]
        for a, b in zip(local, remote):
            if a["status"] == "ok":
                np.testing.assert_array_equal(a["vector"], b["vector"])
