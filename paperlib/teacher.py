"""Teacher pipeline (paper Sec. 3.1): audio → vocal 30 s chunks → Whisper transcripts →
clean-up → sentence embeddings → one lyrics vector per track (the training/eval targets).

Outputs in `out_dir` (each written atomically):
  manifest.csv                 id, path, status (ok | instrumental | error), reason,
                               mean_vocalness, n_chunks, duration_s — one row per input, input order
  chunks.csv                   id, chunk (0-based), start_s, end_s, text (cleaned; "" if dropped),
                               raw_text, kept
  chunk_text_embeddings.npy    float32 [len(chunks.csv), dim]; row i ↔ chunks.csv row i; zero if not kept
  text_embeddings.npz          track id → [dim] track vector (status ok only)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib import asr, audio, io, text, vocals

MANIFEST_COLUMNS = ["id", "path", "status", "reason", "mean_vocalness", "n_chunks", "duration_s"]
CHUNK_COLUMNS = ["id", "chunk", "start_s", "end_s", "text", "raw_text", "kept"]


def run_teacher(
    tracks: Sequence[tuple[str, Path]],
    out_dir: Path,
    detector,
    transcriber: asr.Transcriber,
    embedder: text.TextEmbedder,
    hallucinations: Sequence[str] = asr.HALLUCINATIONS,
    min_words: int = 4,
    max_repeats: int = 3,
    **vocal_params,
) -> pd.DataFrame:
    """Run the teacher on (id, path) tracks with already-loaded models; write the outputs.

    vocal_params go to paperlib.vocals.vocal_chunks (threshold, min_mean_vocalness, chunk_s,
    max_pad_s). A vocal track whose chunks are all dropped by the clean-up becomes
    "instrumental" ("no lyrics transcribed"). Returns the manifest.
    """
    chunk_rows: list[dict] = []
    chunk_vectors: list[np.ndarray] = []
    track_vectors: dict[str, np.ndarray] = {}

    def process(track_id: str, wave: np.ndarray) -> dict:
        found = vocals.vocal_chunks(wave, detector, **vocal_params)
        row = {"status": found.status, "reason": found.reason, "mean_vocalness": round(found.mean_vocalness, 4)}
        if found.status != "ok":
            return row | {"n_chunks": 0}
        raw = transcriber.transcribe(found.chunks, progress=False)
        cleaned = [asr.clean_transcript(t, hallucinations, min_words, max_repeats) for t in raw]
        keep = np.array([t is not None for t in cleaned], dtype=bool)
        vectors = np.zeros((len(raw), embedder.dim), np.float32)
        vectors[keep] = embedder.embed([t for t in cleaned if t is not None])
        if keep.any():
            track_vectors[track_id] = text.track_vector(vectors[keep])
            row["n_chunks"] = len(raw)
        else:
            row |= {"status": "instrumental", "reason": "no lyrics transcribed", "n_chunks": len(raw)}
        # all steps done: only now record this track's chunks (an exception above records nothing)
        chunk_rows.extend(
            {"id": track_id, "chunk": i, "start_s": round(start, 3), "end_s": round(end, 3),
             "text": t or "", "raw_text": r, "kept": t is not None}
            for i, (start, end, t, r) in enumerate(zip(found.starts_s, found.ends_s, cleaned, raw))
        )
        chunk_vectors.append(vectors)
        return row

    rows = audio.run_per_track(list(tracks), process, desc="lyrics")
    manifest = pd.DataFrame(rows).reindex(columns=MANIFEST_COLUMNS)
    manifest["n_chunks"] = manifest["n_chunks"].astype("Int64")
    chunks = pd.DataFrame(chunk_rows, columns=CHUNK_COLUMNS)
    matrix = np.concatenate(chunk_vectors) if chunk_vectors else np.zeros((0, embedder.dim), np.float32)

    out_dir = Path(out_dir)
    io.write_csv(manifest, out_dir / "manifest.csv")
    io.write_csv(chunks, out_dir / "chunks.csv")
    with io.atomic_path(out_dir / "chunk_text_embeddings.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, matrix.astype(np.float32))
    ok_ids = manifest.loc[manifest.status == "ok", "id"]
    io.save_npz(out_dir / "text_embeddings.npz", {i: track_vectors[i] for i in ok_ids})
    return manifest
