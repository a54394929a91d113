"""`paperlib index`, `search`, `calibrate` and `compare`: Flat search equals brute-force cosine top-k, added tracks
are found, a query is never its own hit, every bad input is one stderr line with exit status 2, and audio queries
take the LIVI path (a tiny random-weight checkpoint; Silero VAD decides what has vocals)."""

import json
import zipfile

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import save_tiny_checkpoint

from paperlib import SAMPLE_RATE
from paperlib.cli import main
from paperlib.model.calibration import (
    best_threshold,
    calibrate_threshold,
    pair_cosines,
    precision_recall,
    read_threshold,
    store_threshold,
    verdict,
)
from paperlib.retrieval.index import CoverIndex, RetrievalError, normalise
from paperlib.runtime.config import Vocals
from paperlib.runtime.io import save_npz

DIM = 16


def brute_force(base: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(cosines, rows) of the k most similar base rows per query, numpy only, ties by row order."""
    sims = normalise(queries) @ normalise(base).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory):
    """300 tracks (t000..t299, any norm) in an npz with a manifest naming their audio; 20 queries q00..q19."""
    folder = tmp_path_factory.mktemp("catalogue")
    rng = np.random.default_rng(0)
    base = (rng.normal(size=(300, DIM)) * rng.uniform(0.5, 2, size=(300, 1))).astype(np.float32)
    ids = [f"t{i:03d}" for i in range(300)]
    save_npz(folder / "cat.npz", dict(zip(ids, base)))
    pd.DataFrame({"id": ids, "path": [f"audio/{i}.wav" for i in ids], "status": "ok"}).to_csv(
        folder / "cat.manifest.csv", index=False
    )
    queries = rng.normal(size=(20, DIM)).astype(np.float32)
    save_npz(folder / "q.npz", {f"q{i:02d}": q for i, q in enumerate(queries)})
    return folder, ids, base, queries


def run(capsys, *args) -> tuple[int, list[str], list[str]]:
    """(exit status, stdout lines, stderr lines) of `paperlib ARGS`."""
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def search_lines(capsys, *args) -> list[dict]:
    code, out, err = run(capsys, "search", *args)
    assert code == 0, err
    return [json.loads(line) for line in out]


@pytest.fixture(scope="module")
def built(catalogue, tmp_path_factory):
    folder, *_ = catalogue
    path = tmp_path_factory.mktemp("index") / "cat.index"
    assert main(["index", "build", str(folder / "cat.npz"), "--out", str(path)]) == 0
    return path


# --------------------------------------------------------------------------- CoverIndex
def test_add_then_search_finds_the_new_tracks(catalogue):
    _, ids, base, _ = catalogue
    index = CoverIndex.build(ids[:200], base[:200])
    assert index.add(ids[200:], base[200:]) == 0 and len(index) == 300
    hits = index.search_ids(base[250:260], k=1)
    assert [h[0][0] for h in hits] == ids[250:260] and all(h[0][1] == pytest.approx(1.0, abs=1e-6) for h in hits)


def test_duplicate_ids_are_refused_unless_replaced(catalogue):
    _, ids, base, _ = catalogue
    index = CoverIndex.build(ids[:10], base[:10])
    with pytest.raises(RetrievalError, match=r"1 id\(s\) already in the index: t003 \(--replace"):
        index.add(["t003", "new"], base[20:22])
    assert len(index) == 10 and "new" not in index  # nothing added
    with pytest.raises(RetrievalError, match="given more than once: x"):
        index.add(["x", "x"], base[20:22])
    assert index.add(["t003"], base[20:21], replace=True) == 1
    assert len(index) == 10 and index.info()["retired_rows"] == 1
    (hit,) = index.search_ids(base[3:4], k=10)  # the old vector of t003 is never returned
    assert [i for i, _ in hit].count("t003") == 1 and hit[0][0] != "t003"
    assert index.search_ids(base[20:21], k=1)[0][0][0] == "t003"


def test_a_query_in_the_index_is_not_its_own_hit(catalogue):
    _, ids, base, _ = catalogue
    index = CoverIndex.build(ids, base)
    (hits,) = index.search_ids(base[7:8], k=5, query_ids=["t007"])
    expected = [ids[r] for r in brute_force(base, base[7:8], 6)[1][0] if r != 7][:5]
    assert [i for i, _ in hits] == expected
    small = CoverIndex.build(ids[:5], base[:5])  # k is capped at the tracks there are; the query's own row is -1
    scores, rows = small.search(base[:1], k=10**9, exclude=[0])
    assert rows.tolist() == [[*brute_force(base[:5], base[:1], 5)[1][0][1:].tolist(), -1]] and scores[0, -1] == -np.inf


def test_save_load_keeps_ids_paths_and_retired_rows(catalogue, tmp_path):
    _, ids, base, queries = catalogue
    index = CoverIndex.build(ids[:50], base[:50], "IVF4,Flat", paths=[f"a/{i}.wav" for i in ids[:50]])
    index.add(["t001"], base[60:61], paths=["b/t001.wav"], replace=True)
    index.save(tmp_path / "x.index")
    loaded = CoverIndex.load(tmp_path / "x.index")
    assert loaded.ids == index.ids and loaded.paths == index.paths and loaded.search_params == "nprobe=16"
    assert loaded.paths[loaded.row("t001")] == "b/t001.wav" and len(loaded) == 50
    for a, b in zip(index.search(queries, 5), loaded.search(queries, 5)):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.glob("*.tmp"))


def test_a_pca_index_keeps_cosines_of_vectors_with_a_shared_direction():
    """Unit vectors 3·g + c (g shared, c in 15 other axes) span 16 of 32 axes, so PCA16 loses nothing when it
    keeps inner products: search equals exact search. faiss' own PCA training centres the data first, which
    ranks these vectors differently (the failure `train_transform` avoids)."""
    rng = np.random.default_rng(0)
    x = np.zeros((400, 32), np.float32)
    x[:, 0] = 3.0
    x[:, 1:16] = rng.standard_normal((400, 15))
    x = normalise(x @ np.linalg.qr(rng.standard_normal((32, 32)))[0].astype(np.float32))
    ids = [f"t{i:03d}" for i in range(len(x))]
    pca = CoverIndex.build(ids[:300], x[:300], "PCA16,Flat")
    scores, rows = pca.search(x[300:], 10)
    exact_scores, exact_rows = brute_force(x[:300], x[300:], 10)
    np.testing.assert_array_equal(rows, exact_rows)
    np.testing.assert_allclose(scores, exact_scores, atol=1e-5)


# --------------------------------------------------------------------------- CLI: index and search
def test_flat_search_equals_brute_force(catalogue, built, capsys):
    folder, ids, base, queries = catalogue
    lines = search_lines(capsys, built, "--embeddings", folder / "q.npz", "-k", 7)
    scores, rows = brute_force(base, queries, 7)
    assert [line["query"] for line in lines] == [f"q{i:02d}" for i in range(20)]
    for line, expected_rows, expected_scores in zip(lines, rows, scores):
        assert [h["id"] for h in line["hits"]] == [ids[r] for r in expected_rows]
        np.testing.assert_allclose([h["score"] for h in line["hits"]], expected_scores, atol=2e-6)


def test_search_by_id_leaves_the_query_out_and_min_score_cuts(catalogue, built, capsys):
    folder, ids, base, _ = catalogue
    (line,) = search_lines(capsys, built, "--embeddings", folder / "cat.npz", "--ids", "t042", "-k", 5)
    scores, rows = brute_force(base, base[42:43], 6)
    assert line["query"] == "t042" and [h["id"] for h in line["hits"]] == [ids[r] for r in rows[0][1:]]
    cut = float(scores[0][3])  # the third hit after the query itself
    (line,) = search_lines(
        capsys, built, "--embeddings", folder / "cat.npz", "--ids", "t042", "-k", 5, "--min-score", cut
    )
    assert [h["id"] for h in line["hits"]] == [ids[r] for r in rows[0][1:4]]


def test_index_add_and_info(catalogue, tmp_path, capsys):
    folder, ids, base, queries = catalogue
    save_npz(tmp_path / "first.npz", dict(zip(ids[:250], base[:250])))
    save_npz(tmp_path / "more.npz", dict(zip(ids[250:], base[250:])))
    index = tmp_path / "cat.index"
    assert run(capsys, "index", "build", tmp_path / "first.npz", "--out", index)[0] == 0
    code, _, err = run(capsys, "index", "add", index, tmp_path / "more.npz")
    assert code == 0 and err == [f"{index}: 300 tracks (50 added, 0 replaced)"]
    lines = search_lines(capsys, index, "--embeddings", folder / "cat.npz", "--ids", "t260", "t299", "-k", 1)
    expected = brute_force(np.delete(base, [260, 299], axis=0), base[[260, 299]], 1)[1][:, 0]
    assert [line["hits"][0]["id"] for line in lines] == [np.delete(ids, [260, 299])[r] for r in expected]
    # adding the same tracks again is refused, --replace replaces
    code, _, err = run(capsys, "index", "add", index, tmp_path / "more.npz")
    assert code == 2 and len(err) == 1 and "50 id(s) already in the index: t250, t251" in err[0]
    assert run(capsys, "index", "add", index, tmp_path / "more.npz", "--replace")[0] == 0
    code, out, _ = run(capsys, "index", "info", index)
    info = json.loads(out[0])
    assert (info["tracks"], info["retired_rows"], info["dim"], info["factory"]) == (300, 50, DIM, "Flat")
    assert info["with_paths"] == 0 and info["mappable_bytes"] == 350 * 4 * DIM  # Flat: every row's vector
    assert info["faiss_bytes"] > info["mappable_bytes"] and info["memory_bytes_per_row"] < 1


def test_a_two_tier_index_maps_its_vectors_and_reranks_them_exactly(catalogue, tmp_path):
    """IVF lists of 4-bit codes in memory, the vectors memory-mapped from the file: with every list probed and
    every candidate re-ranked, the exact neighbours and cosines of brute force."""
    _, ids, base, queries = catalogue
    built = CoverIndex.build(ids, base, "IVF4,PQ8x4fs,RFlat", search_params="nprobe=4,k_factor_rf=100")
    built.save(tmp_path / "two.index")
    mapped = CoverIndex.load(tmp_path / "two.index", mapped=True)
    scores, rows = mapped.search(queries, 5)
    expected_scores, expected_rows = brute_force(base, queries, 5)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-5)
    info = mapped.info()
    assert info["mappable_bytes"] == len(ids) * 4 * DIM and info["memory_bytes_per_row"] < 4 * DIM
    assert CoverIndex(DIM, "IVF4,PQ8x4fs,RFlat").search_params == "nprobe=16,k_factor_rf=16"  # the default
    assert CoverIndex.load(tmp_path / "two.index").add(["new"], base[:1]) == 0  # unmapped: in memory


def test_build_records_the_manifest_paths_and_any_factory(catalogue, built, tmp_path, capsys):
    folder, ids, *_ = catalogue
    loaded = CoverIndex.load(built)
    assert loaded.paths[:2] == ["audio/t000.wav", "audio/t001.wav"] and loaded.factory == "Flat"
    out = tmp_path / "ivf.index"
    args = ["index", "build", folder / "cat.npz", "--out", out, "--factory", "IVF8,SQ8", "--search-params", "nprobe=8"]
    assert run(capsys, *args)[0] == 0
    info = CoverIndex.load(out).info()
    assert (info["factory"], info["search_params"], info["tracks"]) == ("IVF8,SQ8", "nprobe=8", 300)
    # nprobe = nlist: every list is scanned, so the SQ8 index finds the exact nearest neighbour
    line = search_lines(capsys, out, "--embeddings", folder / "cat.npz", "--ids", "t005", "-k", 1)[0]
    assert line["hits"][0]["id"] == ids[brute_force(catalogue[2], catalogue[2][5:6], 2)[1][0][1]]


def one_error_line(capsys, *args, expected: str) -> None:
    code, out, err = run(capsys, *args)
    assert code == 2 and out == [] and len(err) == 1, (code, out, err)
    assert expected in err[0], err[0]


def test_bad_inputs_are_one_line_and_exit_2(catalogue, built, tmp_path, capsys):
    folder, ids, base, _ = catalogue
    save_npz(tmp_path / "short.npz", {"s": np.ones(DIM - 1, np.float32)})
    save_npz(tmp_path / "nan.npz", {"ok": np.ones(DIM, np.float32), "bad": np.full(DIM, np.nan, np.float32)})
    (tmp_path / "empty.index").write_bytes(b"")
    (tmp_path / "corrupt.index").write_bytes(b"PK\x03\x04" + bytes(range(256)) * 4)
    truncated = tmp_path / "truncated.index"
    truncated.write_bytes(built.read_bytes()[: built.stat().st_size // 2])
    with zipfile.ZipFile(tmp_path / "foreign.index", "w") as z:
        z.writestr("ids.npy", b"")
    q = ["--embeddings", folder / "q.npz"]
    one_error_line(capsys, "search", built, *q, "--ids", "nope", expected="unknown id(s) 'nope'")
    one_error_line(capsys, "search", built, "--embeddings", tmp_path / "short.npz", expected="dimension 15 does not")
    one_error_line(capsys, "search", built, "--embeddings", tmp_path / "nan.npz", expected="'bad' contains NaN")
    one_error_line(capsys, "search", tmp_path / "empty.index", *q, expected="empty.index is empty")
    for name in ("corrupt", "truncated"):
        one_error_line(capsys, "search", tmp_path / f"{name}.index", *q, expected=f"{name}.index is corrupt")
    one_error_line(capsys, "index", "info", tmp_path / "foreign.index", expected="is not a LIVI index file")
    meta = json.dumps({"format": "livi-index/1", "factory": "Flat", "search_params": ""})
    save_npz(tmp_path / "old.index", {"meta": np.array(meta), "ids": ids[:1], "paths": [""], "live": [True]})
    one_error_line(capsys, "search", tmp_path / "old.index", *q, expected="'livi-index/1', expected 'livi-index/2'")
    one_error_line(capsys, "search", tmp_path / "missing.index", *q, expected="index file not found")
    one_error_line(capsys, "index", "add", built, tmp_path / "short.npz", expected="dimension 15 does not match")
    one_error_line(capsys, "index", "build", tmp_path / "nan.npz", "--out", tmp_path / "n", expected="contains NaN")
    one_error_line(
        capsys, "index", "build", folder / "q.npz", "--out", tmp_path / "f", "--factory", "Bogus", expected=""
    )
    one_error_line(capsys, "search", built, expected="give either --embeddings")
    one_error_line(capsys, "search", built, *q, "--min-score", "nan", expected="--min-score must be a number")
    assert not (tmp_path / "n").exists() and not (tmp_path / "f").exists()


def test_an_index_with_no_live_tracks_is_refused(catalogue, tmp_path, capsys):
    _, ids, base, _ = catalogue
    index = CoverIndex.build(ids[:1], base[:1])
    index.live[:] = False
    index._row.clear()
    index.save(tmp_path / "none.index")
    one_error_line(
        capsys, "search", tmp_path / "none.index", "--embeddings", catalogue[0] / "q.npz", expected="no tracks"
    )


# --------------------------------------------------------------------------- calibration and compare
def test_threshold_maximises_f1_ties_to_the_higher():
    """Pairs by hand: cutting at 0.9 gives P 1, R 1/2 (F1 2/3); at 0.5 P 1/2, R 1 (F1 2/3, a tie: the higher
    wins); with one more same pair at 0.4 the cut at 0.4 gives P 3/5, R 1 (F1 3/4) and wins."""
    cosines, same = [0.5, 0.9, 0.7, 0.6], [True, True, False, False]
    result = best_threshold(cosines, same)
    assert (result["value"], result["precision"], result["recall"]) == (0.9, 1.0, 0.5)
    assert result["f1"] == pytest.approx(2 / 3) and (result["same_pairs"], result["different_pairs"]) == (2, 2)
    result = best_threshold([*cosines, 0.4], [*same, True])
    assert (result["value"], result["precision"], result["recall"], result["f1"]) == (0.4, 0.6, 1.0, 0.75)
    with pytest.raises(ValueError, match="pairs of the same work and of different works, got 0 and 2"):
        best_threshold([0.1, 0.2], [False, False])


def test_calibration_pairs_are_every_pair_of_tracks():
    """Tracks a, a, b at angles 0°, 36.87°, -53.13°: pair cosines 0.8 (same), 0.6 and 0 (different)."""
    vectors = np.array([[1.0, 0.0], [0.8, 0.6], [0.6, -0.8]])
    cosines, same = pair_cosines(2 * vectors, ["a", "a", "b"])
    np.testing.assert_allclose(cosines, [0.8, 0.6, 0.0], atol=1e-12)
    assert same.tolist() == [True, False, False]
    result = calibrate_threshold(vectors, ["a", "a", "b"])
    assert (
        result["value"] == pytest.approx(0.8) and result["f1"] == 1.0 and (result["tracks"], result["works"]) == (3, 2)
    )


def test_precision_recall_at_a_threshold_by_hand():
    """Pairs .9 S, .8 D, .7000004 S (.7 at 4 decimals), .69996 D (.7), .69994 S (.6999), .5 D: at .7 the first four
    are called same: precision 2/4, recall 2/3; at .95 none is: precision 0 by convention."""
    cosines = [0.9, 0.8, 0.7000004, 0.69996, 0.69994, 0.5]
    same = [True, False, True, False, True, False]
    assert precision_recall(cosines, same, 0.7) == {"precision": 0.5, "recall": 0.666667}
    assert precision_recall(cosines, same, 0.85) == {"precision": 1.0, "recall": 0.333333}
    assert precision_recall(cosines, same, 0.95) == {"precision": 0.0, "recall": 0.0}
    assert precision_recall([0.9, 0.1], [False, False], 0.5) == {"precision": 0.0, "recall": 0.0}
    assert verdict(0.69996, 0.7) == "same work" and verdict(0.69994, 0.7) == "different work"


def test_threshold_files_are_identical_for_cosines_a_billionth_apart(tmp_path):
    """The stored threshold (value, precision, recall, f1) of cosines shifted by 1e-9: the same bytes."""
    from paperlib.runtime.io import write_json

    rng = np.random.default_rng(0)
    cosines = rng.uniform(0.2, 0.99, 400)
    same = cosines + rng.normal(0, 0.15, 400) > 0.8
    written = []
    for shift in (0.0, 1e-9):
        result = best_threshold(cosines + shift, same)
        result |= {"on_set": precision_recall(cosines + shift, same, result["value"])}
        write_json(result, tmp_path / f"{shift}.json")
        written.append((tmp_path / f"{shift}.json").read_bytes())
    assert written[0] == written[1]
    assert result["value"] == round(result["value"], 6) and result["on_set"]["precision"] == result["precision"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A randomly initialised tiny Whisper encoder + head (8-d output), teacher vocals = Silero."""
    return save_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"), Vocals(detector="silero", detector_model=""))


def test_calibrate_then_compare_ids(catalogue, checkpoint, tmp_path, capsys):
    """`calibrate` stores the F1-best threshold in config.json; `compare` reports cosine and verdict by it."""
    folder, ids, base, _ = catalogue
    model = tmp_path / "ckpt"
    model.mkdir()
    for f in checkpoint.iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    one_error_line(
        capsys,
        *("compare", "t000", "t001", "--model", model, "--embeddings", folder / "cat.npz"),
        expected="has no same-work threshold: run `paperlib calibrate",
    )
    pd.DataFrame({"id": ids[:40], "clique": [f"w{i // 4}" for i in range(40)]}).to_csv(tmp_path / "c.csv", index=False)
    code, out, err = run(capsys, "calibrate", folder / "cat.npz", tmp_path / "c.csv", "--model", model)
    assert code == 0, err
    expected = calibrate_threshold(normalise(base[:40]), [f"w{i // 4}" for i in range(40)])
    stored = read_threshold(model)
    assert json.loads(out[0]) == stored and stored["value"] == pytest.approx(expected["value"], abs=1e-6)
    assert (stored["same_pairs"], stored["different_pairs"], stored["works"]) == (60, 720, 10)
    pair = normalise(base[:2])
    cosine = float(pair[0] @ pair[1])
    code, out, _ = run(capsys, "compare", "t000", "t001", "--model", model, "--embeddings", folder / "cat.npz")
    result = json.loads(out[0])
    assert result["cosine"] == pytest.approx(cosine, abs=1e-6) and result["threshold"] == stored["value"]
    assert result["verdict"] == ("same work" if round(cosine, 6) >= stored["value"] else "different work")
    assert (result["precision"], result["recall"]) == (stored["precision"], stored["recall"])
    args = ["compare", "t000", "zzz", "--model", model, "--embeddings", folder / "cat.npz"]
    one_error_line(capsys, *args, expected="unknown id(s) 'zzz'")


# --------------------------------------------------------------------------- audio queries (the LIVI path)
@pytest.fixture(scope="module")
def audio(tmp_path_factory, speak):
    """Piper speech (Silero: vocal), 6 s of silence and 6 s of white noise at 16 kHz."""
    folder = tmp_path_factory.mktemp("audio")
    sf.write(folder / "speech.wav", speak("The quick brown fox jumps over the lazy dog by the shore."), SAMPLE_RATE)
    sf.write(folder / "silence.wav", np.zeros(6 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    noise = np.random.default_rng(0).normal(scale=0.1, size=6 * SAMPLE_RATE).astype(np.float32)
    sf.write(folder / "noise.wav", noise, SAMPLE_RATE)
    return folder


def test_audio_queries_take_the_livi_path(checkpoint, audio, tmp_path, capsys):
    """Speech is embedded and searched (itself left out: its id is in the index); silence and noise are
    instrumental with no hits; the catalogue holds the speech's own embedding plus 20 random 8-d tracks."""
    settings = ["--set", f"paths.models={tmp_path}"]
    code, _, err = run(
        capsys, "embed", audio / "speech.wav", "--model", checkpoint, "--out", tmp_path / "s.npz", *settings
    )
    assert code == 0, err
    with np.load(tmp_path / "s.npz") as npz:
        speech = npz["speech"]
    others = np.random.default_rng(1).normal(size=(20, 8)).astype(np.float32)
    index = CoverIndex.build(["speech", *[f"r{i}" for i in range(20)]], np.vstack([speech, others]))
    index.save(tmp_path / "a.index")
    files = [audio / "speech.wav", audio / "silence.wav", audio / "noise.wav"]
    lines = search_lines(capsys, tmp_path / "a.index", *files, "--model", checkpoint, "-k", 3, *settings)
    assert [(line["query"], line["status"]) for line in lines] == [
        ("speech", "ok"),
        ("silence", "instrumental"),
        ("noise", "instrumental"),
    ]
    expected = [f"r{r}" for r in brute_force(others, speech[None], 3)[1][0]]
    assert [h["id"] for h in lines[0]["hits"]] == expected and lines[1]["hits"] == lines[2]["hits"] == []
    # compare: the same recording is the same work at any threshold; a silent one cannot be compared
    store_threshold(checkpoint, {"value": 0.5, "precision": 0.9, "recall": 0.8})
    code, out, err = run(capsys, "compare", files[0], files[0], "--model", checkpoint, *settings)
    assert code == 0, err
    result = json.loads(out[0])
    assert result["cosine"] == pytest.approx(1.0, abs=1e-5) and result["verdict"] == "same work"
    code, out, err = run(capsys, "compare", files[0], files[1], "--model", checkpoint, *settings)
    assert code == 2 and out == [] and "Traceback" not in "\n".join(err)  # after the embedding's progress bar:
    assert "silence.wav: instrumental (mean vocalness" in err[-1] and err[-1].endswith("no vocal chunks to compare")
    # a checkpoint whose head does not match the index's dimension is refused before embedding
    CoverIndex.build(["x"], np.ones((1, 4), np.float32)).save(tmp_path / "d4.index")
    one_error_line(
        capsys, "search", tmp_path / "d4.index", files[0], "--model", checkpoint, *settings, expected="8-d vectors"
    )


def test_training_calibrates_on_the_validation_tracks(checkpoint, speak, tmp_path):
    """calibrate_checkpoint embeds the val split's audio with the checkpoint and stores the F1-best threshold:
    two works, each sung twice by the same voice (identical audio, cosine 1), train tracks ignored."""
    from paperlib.model.calibration import calibrate_checkpoint
    from paperlib.runtime.config import load

    lines = {"a": "The quick brown fox jumps over the lazy dog.", "b": "She sells sea shells by the sea shore today."}
    rows = []
    for work, text in lines.items():
        wave = speak(text)
        for version in range(2):
            path = tmp_path / f"{work}{version}.wav"
            sf.write(path, wave, SAMPLE_RATE)
            rows.append({"id": f"{work}{version}", "path": str(path), "split": "val", "work": work})
    rows.append({"id": "t", "path": str(tmp_path / "missing.wav"), "split": "train", "work": "c"})
    model = tmp_path / "ckpt"
    model.mkdir()
    for f in checkpoint.iterdir():
        (model / f.name).write_bytes(f.read_bytes())
    cfg = load(None, [f"paths.checkpoint={model}", f"paths.models={tmp_path}"])
    tracks = pd.DataFrame(rows)
    assert calibrate_checkpoint(cfg, tracks.drop(columns="work")) is None  # no labels: nothing stored
    result = calibrate_checkpoint(cfg, tracks)
    assert read_threshold(model) == result
    assert (result["tracks"], result["works"], result["same_pairs"], result["different_pairs"]) == (4, 2, 2, 4)
    assert result["precision"] == result["recall"] == 1.0 and result["value"] == pytest.approx(1.0, abs=1e-5)


def test_hits_table_names_verdict_truth_and_audio(catalogue):
    from paperlib.retrieval.search import hits_table, results

    _, ids, base, _ = catalogue
    index = CoverIndex.build(ids[:3], base[:3], paths=["a.wav", "", "c.wav"])
    (result,) = results(["t000"], [[("t002", 0.9), ("t001", 0.4)]])
    table = hits_table(result, index, threshold=0.5, cliques={"t000": "w", "t002": "w"})
    assert table.to_dict("records") == [
        {"rank": 1, "id": "t002", "cosine": 0.9, "verdict": "same work", "same_work": True, "path": "c.wav"},
        {"rank": 2, "id": "t001", "cosine": 0.4, "verdict": "different work", "same_work": None, "path": ""},
    ]
    assert list(hits_table(result, index).columns) == ["rank", "id", "cosine", "path"]


def test_select_queries_keeps_the_chosen_order_and_names_unknown_ids():
    from paperlib.retrieval.search import select_queries

    vectors = np.arange(8, dtype=np.float32).reshape(4, 2)
    ids = ["a", "b", "c", "d"]
    chosen, rows = select_queries(ids, vectors, ["c", "a"])
    assert chosen == ["c", "a"] and rows.tolist() == [[4.0, 5.0], [0.0, 1.0]]
    chosen, rows = select_queries(ids, vectors, None)
    assert chosen == ids and rows.tolist() == vectors.tolist()
    with pytest.raises(RetrievalError, match=r"^unknown id\(s\) 'x', 'y': not in q\.npz$"):
        select_queries(ids, vectors, ["a", "x", "y"], "q.npz")
