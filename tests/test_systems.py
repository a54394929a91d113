"""paperlib.systems: the transcript baselines of Table 2 built from a teacher's output (t_global here;
t_local is the teacher's own track vector)."""

import json

import numpy as np
import pandas as pd

from paperlib import io, systems
from paperlib.schema import CHUNK_COLUMNS, MANIFEST_COLUMNS


def teacher_folder(folder, long_text: str):
    """A teacher output: track a sung in two kept chunks (and one dropped), b instrumental, c with one long chunk."""
    manifest = pd.DataFrame(
        [
            ["a", "a.wav", "ok", "", 0.9, 3, 60.0],
            ["b", "b.wav", "instrumental", "", 0.1, 0, 30.0],
            ["c", "c.wav", "ok", "", 0.8, 1, 30.0],
        ],
        columns=MANIFEST_COLUMNS,
    )
    chunks = pd.DataFrame(
        [
            ["a", 0, 0.0, 30.0, "hold the line", "hold the line", True],
            ["a", 1, 30.0, 45.0, "", "you", False],
            ["a", 2, 45.0, 60.0, "love isn't always on time", "love isn't always on time", True],
            ["c", 0, 0.0, 30.0, long_text, long_text, True],
        ],
        columns=CHUNK_COLUMNS,
    )
    io.write_csv(manifest, folder / "manifest.csv")
    io.write_csv(chunks, folder / "chunks.csv")
    return folder


def test_t_global_embeds_the_kept_transcripts_joined_in_time_order(tmp_path, minilm_embedder):
    long_text = " ".join(["words"] * 400)  # longer than MiniLM's 256 tokens
    teacher = teacher_folder(tmp_path, long_text)
    out = tmp_path / "set"
    systems._embed_global(teacher, ["a", "b", "c", "d"], out, minilm_embedder)
    manifest = pd.read_csv(out / "t_global.manifest.csv", keep_default_na=False)
    assert manifest["status"].tolist() == ["ok", "instrumental", "ok", "error"]  # d: never transcribed
    with np.load(out / "t_global.npz") as vectors:
        assert vectors.files == ["a", "c"]
        expected = minilm_embedder.embed(["hold the line love isn't always on time"])[0]
        np.testing.assert_allclose(vectors["a"], expected, atol=1e-6)
    info = json.loads((out / "t_global.json").read_text())
    assert info == {"max_seq_length": 256, "tracks": 2, "truncated": 1}
