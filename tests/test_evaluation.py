"""Per-track audio-vs-text cosines: own text, and the mean over other works' texts (no N×N matrix)."""

import numpy as np
import pandas as pd
import pytest

from paperlib import evaluation, io


def test_audio_text_cosines_by_hand(tmp_path):
    folder = tmp_path / "demo"
    io.write_csv(pd.DataFrame({"id": ["a", "b", "c"], "clique": ["x", "x", "y"], "path": ["", "", ""]}),
                 folder / "cliques.csv")
    io.save_npz(folder / "livi.npz", {"a": np.array([1.0, 0.0]), "b": np.array([0.0, 1.0]),
                                      "c": np.array([0.6, 0.8])})
    io.save_npz(folder / "asr.npz", {"a": np.array([0.6, 0.8]), "b": np.array([1.0, 0.0]),
                                     "c": np.array([0.0, 1.0])})
    got = evaluation.audio_text_cosines(["demo"], tmp_path).set_index(["id", "target"])["cosine"]
    assert got[("a", "own ASR transcript")] == pytest.approx(0.6)
    assert got[("a", "other works' ASR transcript")] == pytest.approx(0.0)  # c only
    assert got[("b", "other works' ASR transcript")] == pytest.approx(1.0)  # c only
    assert got[("c", "other works' ASR transcript")] == pytest.approx((0.6 * 0.6 + 0.8 * 0.8 + 0.6) / 2)  # a, b
    assert len(got) == 6
