"""The paper profile's own code paths at toy size, offline: `paperlib profile paper`, then `dvc repro` on
stand-ins for what only a hub or GPU user has.

Stand-ins: Whisper base (multilingual: the language is detected per chunk, asr.language "") for
openai/whisper-large-v3-turbo, all-MiniLM-L6-v2 for gte-multilingual-base, a RANDOMLY INITIALISED tiny
htdemucs loaded through demucs' get_model(name, repo=...) for htdemucs (so the vocal thresholds are set to 0:
its stem split means nothing), `device: cuda` left as the profile sets it (the stages fall back to the CPU
with a warning). Training audio: a CSV with id,path,split, as train.data asks. Benchmark audio laid out as
the README tells users, generated (tiny-corpus versions) under real list entries: Covers80 as
covers32k/<Work>/<file>.mp3, SHS100k-TEST as <youtube id>.<ext>; everything else in the lists is missing.
Harmonic systems: the four CLEWS-release architectures at SMALL shapes with RANDOM weights, saved in the release's
checkpoint layout (tests/test_harmonic.py) at paths of the user's choosing, in place of the four Discogs-VI files.
Minutes, not seconds.
"""

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
import yaml
from conftest import copy_repo, run_in
from test_harmonic import SMALL, randomise, save_release

from paperlib.data import benchmarks
from paperlib.harmonic.architectures import build_model
from paperlib.runtime.audio import load_audio

ROOT = Path(__file__).parents[1]
MIRROR = ROOT.parent / "shared" / "benchmarks"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not MIRROR.is_dir(), reason="benchmark metadata mirror absent")]


def pairs_of_versions(table: pd.DataFrame, cliques: int) -> pd.DataFrame:
    """The first two versions of the first `cliques` cliques of a benchmark list."""
    firsts = table.groupby("clique", sort=False).head(2)
    chosen = firsts["clique"].drop_duplicates().head(cliques)
    return firsts[firsts["clique"].isin(chosen)]


def write_benchmark_audio(audio_root: Path, corpus: pd.DataFrame) -> dict[str, int]:
    """Covers80 and SHS100k-TEST audio in the README's layouts: the versions of one tiny-corpus work play the
    versions of one listed clique (works 0-2 for Covers80, 3-4 for SHS100k-TEST)."""
    works = [group for _, group in corpus[corpus["kind"] != "instrumental"].groupby("work", sort=True)]
    layout = {}
    for name, first, cliques, path_of in (
        ("covers80", 0, 3, lambda row: Path("covers32k") / row.clique / f"{row.id}.mp3"),
        ("shs100k_test", 3, 2, lambda row: Path("some/sub/folder") / f"{row.source_id}.flac"),
    ):
        chosen = pairs_of_versions(benchmarks.load_benchmark(name, mirror=MIRROR), cliques)
        for k, (_, versions) in enumerate(chosen.groupby("clique", sort=False)):
            for row, source in zip(versions.itertuples(), works[first + k].itertuples()):
                target = audio_root / name / path_of(row)
                target.parent.mkdir(parents=True, exist_ok=True)
                sf.write(target, load_audio(source.path), 16_000, format=target.suffix[1:].upper())
        layout[name] = len(chosen)  # tracks written
    return layout


@pytest.fixture(scope="module")
def rehearsal(tmp_path_factory, whisper_base, minilm, tiny_demucs_repo):
    work = tmp_path_factory.mktemp("rehearsal")
    corpus_args = "corpus --kind english --size tiny".split()
    run_in([sys.executable, "-m", "paperlib.cli", *corpus_args, "--out", str(work / "corpus")], work)
    corpus = pd.read_csv(work / "corpus/tracks.csv", dtype=str, keep_default_na=False)
    corpus["path"] = [str(work / "corpus" / p) for p in corpus["path"]]
    train = corpus[corpus["split"].isin(["train", "val"]) & (corpus["kind"] != "instrumental")]
    train[["id", "path", "split"]].to_csv(work / "train.csv", index=False)
    layout = write_benchmark_audio(work / "audio", corpus)
    checkpoints = [
        str(save_release(work / "clews" / f"dvi-{name}", randomise(build_model(SMALL[name]), seed=k), SMALL[name]))
        for k, name in enumerate(sorted(SMALL))
    ]
    repo = copy_repo(work / "repo")
    run_in([sys.executable, "-m", "paperlib.cli", "profile", "paper"], repo)
    toy = {
        "corpus": {"kind": "english", "size": "tiny"},
        "models": {"whisper": str(whisper_base), "text": str(minilm)},
        "text": {"models": [str(minilm)]},
        "vocals": {
            "detector_model": "tiny_htdemucs",
            "detector_repo": str(tiny_demucs_repo),
            "threshold": 0.0,
            "min_mean_vocalness": 0.0,
        },
        "asr": {"batch_size": 4},
        "train": {"data": str(work / "train.csv"), "epochs": 1, "batch_size": 2, "warmup_steps": 1, "hidden": [64]},
        "harmonic": {"checkpoints": checkpoints},
        "evaluate": {
            "sets": ["covers80", "shs100k_test"],
            "audio_root": str(work / "audio"),
            "benchmark_mirror": str(MIRROR),
            "batch_size": 2,
        },
    }
    (repo / "toy.yaml").write_text(yaml.safe_dump(toy))
    run_in([sys.executable, "-m", "paperlib.cli", "profile", "toy.yaml"], repo)
    proc = run_in(["dvc", "repro"], repo)
    return repo, layout, proc


def test_the_profile_is_the_papers_but_for_the_stand_ins(rehearsal):
    repo, _, _ = rehearsal
    params = yaml.safe_load((repo / "params.yaml").read_text())
    assert params["profile"] == "paper" and params["device"] == "cuda" and params["asr"]["language"] is None
    assert params["vocals"]["detector"] == "demucs" and params["train"]["cache_frames"] is False
    executed = (repo / "notebooks/executed/05_train.ipynb").read_text()
    assert "CUDA is not available: running on the CPU" in executed  # the stage's warning, in its notebook


def test_benchmark_rows_with_coverage(rehearsal):
    repo, layout, _ = rehearsal
    table = pd.read_csv(repo / "results/evaluation/results.csv")
    systems = ["LIVI (audio)", "t_global (transcript)", "t_local (transcript chunks)", "Whisper mean-pool"]
    systems += ["ByteCover2", "CLEWS", "CQTNet", "DViNet", "Chroma 2DFTM (training-free)"]
    systems += ["LIVI + Chroma 2DFTM (fusion)"]
    assert table[["set", "system"]].values.tolist() == [
        [name, s] for name in ("covers80", "shs100k_test") for s in systems
    ]
    expected = {"covers80": 160, "shs100k_test": len(benchmarks.load_benchmark("shs100k_test", mirror=MIRROR))}
    for row in table.itertuples():
        evaluated, total = map(int, row.coverage.split("/"))
        assert total == expected[row.set] and 0 < evaluated <= layout[row.set]
        assert 0 <= row.MAP <= 1 and row.MR1 >= 1


def test_paper_tables_of_the_benchmark_sets(rehearsal):
    """Table 2 (each system of each set, with its paired tests) and §5.3 are written for the benchmark sets."""
    repo, _, _ = rehearsal
    table2 = pd.read_csv(repo / "results/paper/table2.csv")
    assert set(table2["set"]) == {"covers80", "shs100k_test"} and "p_MAP10" in table2
    expected = {"t_global (transcript)", "Whisper mean-pool", "CLEWS", "LIVI + Chroma 2DFTM (fusion)"}
    assert expected <= set(table2["system"])
    agreement = pd.read_csv(repo / "results/paper/section5_3.csv")
    assert agreement[["set", "level"]].values.tolist() == [
        ["covers80", "segment"],
        ["covers80", "track"],
        ["shs100k_test", "segment"],
        ["shs100k_test", "track"],
    ]
    assert (agreement["n"] > 0).all()


def test_table1_and_front_ends_of_the_benchmark_sets(rehearsal):
    """Table 1 (transcribed lyrics only: the benchmark sets have no editorial lyrics offline) and §5.2 (no WER
    without lyrics; chunks and hallucinations counted on every track with audio) for the benchmark sets."""
    repo, layout, _ = rehearsal
    table1 = pd.read_csv(repo / "results/paper/table1.csv")
    assert table1[["set", "lyrics"]].values.tolist() == [["covers80", "transcribed"], ["shs100k_test", "transcribed"]]
    assert (table1["queries"] > 0).all() and (repo / "results/paper/table1_published.tex").exists()
    front_ends = pd.read_csv(repo / "results/paper/section5_2.csv")
    assert front_ends[["set", "front_end"]].values.tolist() == [
        [name, front_end]
        for name in ("covers80", "shs100k_test")
        for front_end in ("vocal detection", "fixed 30 s windows")
    ]
    assert front_ends["WER"].isna().all() and (front_ends["tracks"] == front_ends["set"].map(layout)).all()
    windows = front_ends[front_ends["front_end"] == "fixed 30 s windows"]
    assert (windows["chunks"] >= windows["tracks"]).all()  # every track has at least one window


def test_missing_audio_is_reported_not_fatal(rehearsal):
    repo, layout, _ = rehearsal
    for name, written in layout.items():
        listed = pd.read_csv(repo / f"data/embeddings/{name}/cliques.csv", dtype=str, keep_default_na=False)
        assert (listed["path"] != "").sum() == written and (listed["path"] == "").sum() > 100
    executed = json.dumps(json.loads((repo / "notebooks/executed/06_embed.ipynb").read_text()))
    assert "'missing': 154" in executed  # Covers80: 6 of its 160 tracks have audio


def test_language_detected_per_chunk(rehearsal):
    """asr.language "" with a multilingual Whisper: generation detects the language (the tiny corpus is English)."""
    repo, _, _ = rehearsal
    chunks = pd.read_csv(repo / "data/teacher/chunks.csv", keep_default_na=False)
    kept = chunks[chunks["kept"].astype(str) == "True"]
    assert len(kept) > 0 and kept["text"].str.contains(r"[a-z]{3}", regex=True).all()


def test_training_ran_with_encoder_per_batch(rehearsal):
    """cache_frames false: no encoder states kept by the teacher; the head trained from log-mel batches."""
    repo, _, _ = rehearsal
    assert not (repo / "data/teacher/encoder_states.npy").exists()
    summary = json.loads((repo / "data/livi/summary.json").read_text())
    assert summary["train_pairs"] > 0 and summary["val_pairs"] > 0
    config = json.loads((repo / "data/livi/config.json").read_text())
    assert config["head"]["num_heads"] == 1 and config["config"]["vocals"]["detector"] == "demucs"


@pytest.fixture(scope="module")
def evaluation_only(rehearsal, whisper_base, tmp_path_factory):
    """The README's three commands on the rehearsal's repository: import a head in the authors' format (random
    values, whisper-base width, MiniLM's 384-d target), set train.checkpoint, dvc repro."""
    import torch
    from test_released import their_state_dict

    repo, _, _ = rehearsal
    pth = tmp_path_factory.mktemp("released") / "livi.pth"
    torch.save(their_state_dict(width=512, hidden_sizes=(64,), target=384), pth)
    run_in(
        [
            sys.executable,
            "-m",
            "paperlib.cli",
            "import-checkpoint",
            str(pth),
            "--whisper",
            str(whisper_base),
            "--out",
            "checkpoints/authors",
        ],
        repo,
    )
    run_in([sys.executable, "-m", "paperlib.cli", "profile", "--set", "train.checkpoint=checkpoints/authors"], repo)
    return repo, run_in(["dvc", "repro"], repo)


def test_evaluation_only_route_skips_training(evaluation_only):
    repo, proc = evaluation_only
    assert "Running stage 'embed'" in proc.stdout and "Running stage 'evaluate'" in proc.stdout
    assert len(pd.read_csv(repo / "data/teacher/manifest.csv")) == 0  # no training tracks transcribed
    assert json.loads((repo / "results/training/summary.json").read_text()) == {
        "checkpoint": "checkpoints/authors",
        "imported_from": "livi.pth",
    }
    config = json.loads((repo / "data/livi/config.json").read_text())
    assert config["imported_from"] == "livi.pth" and config["head"]["hidden"] == [64]
    table = pd.read_csv(repo / "results/evaluation/results.csv")
    assert set(table["set"]) == {"covers80", "shs100k_test"} and len(table) == 2 * 10  # 4 lyrics, 5 harmonic, fusion
