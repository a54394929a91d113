"""paperlib.analysis (per-track audio-vs-text cosines: own text, and the mean over other works' texts, no N×N matrix;
runtime per track) and paperlib.systems.set_tracks."""

import numpy as np
import pandas as pd
import pytest

from paperlib import analysis, config, io, systems


def test_audio_text_cosines_by_hand(tmp_path):
    folder = tmp_path / "demo"
    io.write_csv(
        pd.DataFrame({"id": ["a", "b", "c"], "clique": ["x", "x", "y"], "path": ["", "", ""]}), folder / "cliques.csv"
    )
    io.save_npz(folder / "livi.npz", {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([0.6, 0.8])})
    io.save_npz(folder / "asr.npz", {"a": np.array([0.6, 0.8]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0])})
    got = analysis.audio_text_cosines(["demo"], tmp_path).set_index(["id", "target"])["cosine"]
    assert got[("a", "own ASR transcript")] == pytest.approx(0.6)
    assert got[("a", "other works' ASR transcript")] == pytest.approx(0.0)  # c only
    assert got[("b", "other works' ASR transcript")] == pytest.approx(1.0)  # c only
    assert got[("c", "other works' ASR transcript")] == pytest.approx((0.6 * 0.6 + 0.8 * 0.8 + 0.6) / 2)  # a, b
    assert len(got) == 6


def test_runtime_table_by_hand(tmp_path):
    """Mean seconds per accepted track from <paths.runtime>/<set>/livi.csv and, for the demo, the teacher's own run."""
    cfg = config.load(None, [f"paths.runtime={tmp_path}", "evaluate.sets=[demo]"])
    io.write_csv(
        pd.DataFrame(
            {
                "id": ["a", "b", "c"],
                "status": ["ok", "ok", "instrumental"],
                "t_decode_s": [1.0, 3.0, 9.0],
                "t_detect_s": [0.5, 0.5, 9.0],
                "t_features_s": [0.5, 0.5, 9.0],
                "t_model_s": [2.0, 4.0, 9.0],
            }
        ),
        tmp_path / "demo" / "livi.csv",
    )
    io.write_csv(
        pd.DataFrame(
            {
                "id": ["a", "b"],
                "status": ["ok", "error"],
                "t_decode_s": [1.0, 9.0],
                "t_detect_s": [1.0, 9.0],
                "t_asr_s": [5.0, 9.0],
                "t_text_s": [1.0, 9.0],
            }
        ),
        tmp_path / "teacher.csv",
    )
    table = analysis.runtime_table(cfg).set_index("pipeline")
    assert table.loc["LIVI (audio)", ["tracks", "preprocessing_s", "model_s", "total_s"]].tolist() == [2, 3.0, 3.0, 6.0]
    assert table.loc["Transcription (teacher)", ["tracks", "preprocessing_s", "model_s", "total_s"]].tolist() == [
        1,
        2.0,
        6.0,
        8.0,
    ]


def test_demo_set_is_the_corpus_test_split(tmp_path):
    """set_tracks("demo"): the corpus' test tracks, clique = work, paths under paths.corpus."""
    io.write_csv(
        pd.DataFrame(
            {
                "id": ["1", "2", "3"],
                "work": ["w1", "w2", "w2"],
                "path": ["a.wav", "b.wav", "c.wav"],
                "split": ["train", "test", "test"],
                "lyrics": ["x", "y", ""],
                "kind": ["original", "original", "instrumental"],
            }
        ),
        tmp_path / "tracks.csv",
    )
    tracks = systems.set_tracks("demo", config.load(None, [f"paths.corpus={tmp_path}"]))
    assert list(tracks.columns) == ["id", "clique", "path", "lyrics", "kind"]
    assert tracks[["id", "clique", "path"]].values.tolist() == [
        ["2", "w2", str(tmp_path / "b.wav")],
        ["3", "w2", str(tmp_path / "c.wav")],
    ]
