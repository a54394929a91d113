"""paperlib.evaluation.analysis (per-track audio-vs-text cosines: own text, and the mean over other works' texts, no N×N
matrix; runtime per track) and paperlib.data.eval_sets.set_tracks."""

import numpy as np
import pandas as pd
import pytest

from paperlib.data import eval_sets
from paperlib.evaluation import analysis
from paperlib.runtime import config, io


def test_audio_text_cosines_by_hand(tmp_path):
    """LIVI vectors in the embed stage's set folder, the transcripts' in the transcribe stage's."""
    paths = config.Paths(embeddings=str(tmp_path / "embeddings"), transcripts=str(tmp_path / "transcripts"))
    folder = tmp_path / "embeddings" / "demo"
    io.write_csv(
        pd.DataFrame({"id": ["a", "b", "c"], "clique": ["x", "x", "y"], "path": ["", "", ""]}), folder / "cliques.csv"
    )
    io.save_npz(folder / "livi.npz", {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]), "c": np.array([0.6, 0.8])})
    texts = {"a": np.array([0.6, 0.8]), "b": np.array([1.0, 0.0]), "c": np.array([0.0, 1.0])}
    io.save_npz(tmp_path / "transcripts" / "demo" / "asr.npz", texts)
    got = analysis.audio_text_cosines(["demo"], paths).set_index(["id", "target"])["cosine"]
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
    tracks = eval_sets.set_tracks("demo", config.load(None, [f"paths.corpus={tmp_path}"]))
    assert list(tracks.columns) == ["id", "clique", "path", "lyrics", "kind"]
    assert tracks[["id", "clique", "path"]].values.tolist() == [
        ["2", "w2", str(tmp_path / "b.wav")],
        ["3", "w2", str(tmp_path / "c.wav")],
    ]


def test_cosine_summary_and_figure_are_identical_for_cosines_a_billionth_apart(tmp_path):
    """Cosines .6, .8, 1 (mean .8, std .2, quartiles .7, .8, .9) and the same plus 1e-9: one table, one figure."""
    from paperlib.reporting import report

    cosines = pd.DataFrame({"set": "demo", "id": ["a", "b", "c"], "target": "own ASR transcript"})
    written = []
    for shift in (0.0, 1e-9):
        shifted = cosines.assign(cosine=np.array([0.6, 0.8, 1.0]) + shift)
        summary = analysis.cosine_summary(shifted)
        stem = tmp_path / str(shift) / "audio_text_cosine"
        report.write_table(summary, stem)
        report.save_figure(report.plot_audio_text_cosine(shifted), stem)
        written.append({s: stem.with_suffix(s).read_bytes() for s in (".csv", ".md", ".svg", ".png")})
    assert summary.drop(columns=["set", "target"]).iloc[0].tolist() == [3.0, 0.8, 0.2, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert written[0] == written[1]


def test_training_report_writes_losses_and_cosines_at_six_decimals(tmp_path):
    """epochs.csv and summary.json of two runs whose float32 values differ by 1e-9 are byte-identical."""
    from paperlib.reporting import report

    written = []
    for shift in (0.0, 1e-9):
        checkpoint, results = tmp_path / str(shift) / "ckpt", tmp_path / str(shift) / "results"
        epochs = pd.DataFrame(
            {
                "epoch": [0, 1],
                "step": [0, 12],
                "train_loss": [np.nan, 0.4780653764804204 + shift],
                "val_loss": [0.5953126086129082, 0.31699589225980973 + shift],
                "val_cosine": [-0.0028522945940494537, 0.6001216769218445 + shift],
                "val_hr1": [0.0555555559694767, 0.1111111119389534],
                "improved": [True, True],
            }
        )
        io.write_csv(epochs, checkpoint / "epochs.csv")
        io.write_csv(
            pd.DataFrame({"epoch": [1], "step": [12], "loss": [0.47806537 + shift]}), checkpoint / "train_log.csv"
        )
        summary = {"best_epoch": 1, "best_val_cosine": 0.6001216769218445 + shift, "stopped_early": False}
        report.training_report(summary, checkpoint, results)
        written.append({name: (results / name).read_bytes() for name in ("epochs.csv", "summary.json")})
    assert written[0] == written[1]
    assert written[0]["epochs.csv"].decode().splitlines()[1:] == [
        "0,0,,0.5953,-0.0029,0.0556,True",
        "1,12,0.4781,0.317,0.6001,0.1111,True",
    ]
    assert b'"best_val_cosine": 0.6001' in written[0]["summary.json"]
