"""paperlib.lyrics.transcripts: the transcript baselines of Table 2 built from a teacher's output (t_global here;
t_local is the teacher's own track vector) and the demo's teacher rows taken from the training teacher."""

import json

import numpy as np
import pandas as pd

from paperlib.lyrics import transcripts
from paperlib.runtime import io
from paperlib.runtime.schema import CHUNK_COLUMNS, MANIFEST_COLUMNS


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
            ["a", 0, 0.0, 30.0, "hold the line", "hold the line", True, "en", 0.98],
            ["a", 1, 30.0, 45.0, "", "you", False, "en", 0.61],
            ["a", 2, 45.0, 60.0, "love isn't always on time", "love isn't always on time", True, "en", 0.97],
            ["c", 0, 0.0, 30.0, long_text, long_text, True, "en", 0.99],
        ],
        columns=CHUNK_COLUMNS,
    )
    io.write_csv(manifest, folder / "manifest.csv")
    io.write_csv(chunks, folder / "chunks.csv")
    return folder


def test_t_global_embeds_the_kept_transcripts_joined_in_time_order(tmp_path, minilm_embedder):
    long_text = " ".join(["words"] * 400)  # longer than MiniLM's 256 tokens
    out = teacher_folder(tmp_path, long_text)
    transcripts._embed_global(out, ["a", "b", "c", "d"], minilm_embedder)
    manifest = pd.read_csv(out / "t_global.manifest.csv", keep_default_na=False)
    assert manifest["status"].tolist() == ["ok", "instrumental", "ok", "error"]  # d: never transcribed
    with np.load(out / "t_global.npz") as vectors:
        assert vectors.files == ["a", "c"]
        expected = minilm_embedder.embed(["hold the line love isn't always on time"])[0]
        np.testing.assert_allclose(vectors["a"], expected, atol=1e-6)
    info = json.loads((out / "t_global.json").read_text())
    assert info == {"max_seq_length": 256, "tracks": 2, "truncated": 1}


def test_the_demo_set_takes_the_teachers_rows_of_its_tracks(tmp_path):
    """copy_teacher_rows keeps the rows of the given tracks, in the teacher's order, with their chunk vectors."""
    source = teacher_folder(tmp_path / "teacher", "one two three four")
    np.save(source / "chunk_text_embeddings.npy", np.arange(8, dtype=np.float32).reshape(4, 2))
    io.save_npz(source / "text_embeddings.npz", {"a": np.float32([1, 0]), "c": np.float32([0, 1])})
    io.save_npz(source / "vocalness.npz", {i: np.float32([0.5]) for i in "abc"})
    out = tmp_path / "demo"
    transcripts.copy_teacher_rows(source, out, ["c", "b"])
    assert pd.read_csv(out / "manifest.csv")["id"].tolist() == ["b", "c"]
    assert pd.read_csv(out / "chunks.csv")["id"].tolist() == ["c"]
    np.testing.assert_array_equal(np.load(out / "chunk_text_embeddings.npy"), [[6.0, 7.0]])
    with np.load(out / "text_embeddings.npz") as tracks, np.load(out / "vocalness.npz") as vocalness:
        assert tracks.files == ["c"] and vocalness.files == ["b", "c"]
