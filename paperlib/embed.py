"""LIVI inference (paper §3, Fig. 1): audio → vocal 30 s chunks → Whisper log-mel → frozen Whisper
encoder + trained head → chunk embeddings → track embedding (mean of chunks, re-normalised).

No speech recognition anywhere: this module never imports paperlib.asr (nor the teacher or the
text encoder). Vocal detection and chunking are the teacher's (paperlib.vocals, same detector
and parameters: stored in the checkpoint's config.json under "vocals"), so a track gets the
same status as in the teacher's manifest: ok | instrumental | error.

Timings per track (seconds, time.perf_counter, CUDA synchronised by the copy back to the CPU):
t_decode_s (decode + resample), t_detect_s (vocal detection + chunking), t_features_s (log-mel),
t_model_s (encoder + head).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from paperlib import SAMPLE_RATE
from paperlib.audio import AudioError, load_audio
from paperlib.model import LiviModel, track_embedding
from paperlib.training import log_mel
from paperlib.vocals import vocal_chunks

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["id", "path", "status", "reason", "mean_vocalness", "n_chunks", "duration_s"]
"""Same columns and meaning as the teacher's manifest.csv."""
TIMING_COLUMNS = ["t_decode_s", "t_detect_s", "t_features_s", "t_model_s"]
VOCAL_DEFAULTS = {"detector": "silero", "detector_model": None, "threshold": 0.5, "min_mean_vocalness": 0.5,
                  "max_pad_s": 10.0}
"""Vocal detection settings of `paperlib lyrics` (the teacher) by default."""


@torch.inference_mode()
def embed_chunks(model: LiviModel, features: torch.Tensor, device="cpu") -> np.ndarray:
    """Log-mel [n, n_mels, 3000] → unit chunk embeddings float32 [n, d]."""
    return model(features.to(device)).float().cpu().numpy()


def embed_tracks(
    tracks: Sequence[tuple[str, Path]],
    model: LiviModel,
    feature_extractor,
    detector,
    vocal_params: dict | None = None,
    batch_size: int = 8,
    device: str = "cpu",
) -> tuple[pd.DataFrame, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Embed (id, path) tracks. vocal_params go to paperlib.vocals.vocal_chunks (threshold,
    min_mean_vocalness, chunk_s, max_pad_s). batch_size: chunks per encoder batch.

    Returns (manifest: MANIFEST_COLUMNS + TIMING_COLUMNS, one row per input in input order;
    id → track vector [d] and id → chunk vectors [n, d], for status "ok" only). A bad file is an
    "error" row (the AudioError reason, or "<Type>: <message>" for any other failure); never raises.
    """
    model = model.to(device).eval()
    rows, vectors, chunk_vectors = [], {}, {}
    for track_id, path in tqdm(tracks, desc="embed", unit="track"):
        row = {"id": track_id, "path": str(path), "status": "ok", "reason": "", "duration_s": None}
        try:
            start = time.perf_counter()
            wave = load_audio(path)
            row["duration_s"] = round(len(wave) / SAMPLE_RATE, 3)
            row["t_decode_s"] = time.perf_counter() - start
            start = time.perf_counter()
            found = vocal_chunks(wave, detector, **(vocal_params or {}))
            row["t_detect_s"] = time.perf_counter() - start
            row |= {"status": found.status, "reason": found.reason, "mean_vocalness": round(found.mean_vocalness, 4),
                    "n_chunks": len(found.chunks)}
            if found.status == "ok":
                t_features = t_model = 0.0
                parts = []
                for first in range(0, len(found.chunks), batch_size):
                    start = time.perf_counter()
                    features = log_mel(feature_extractor, found.chunks[first : first + batch_size])
                    t_features += time.perf_counter() - start
                    start = time.perf_counter()
                    parts.append(embed_chunks(model, features, device))
                    t_model += time.perf_counter() - start
                row |= {"t_features_s": t_features, "t_model_s": t_model}
                chunk_vectors[track_id] = np.concatenate(parts)
                vectors[track_id] = track_embedding(chunk_vectors[track_id])
        except AudioError as exc:
            row.update(status="error", reason=str(exc))
            log.warning("embed: %s: %s", track_id, exc)
        except Exception as exc:  # one track must never stop the stage
            row.update(status="error", reason=f"{type(exc).__name__}: {exc}")
            log.warning("embed: %s failed: %s: %s", track_id, type(exc).__name__, exc)
            chunk_vectors.pop(track_id, None)
            vectors.pop(track_id, None)
        rows.append(row)
    manifest = pd.DataFrame(rows).reindex(columns=MANIFEST_COLUMNS + TIMING_COLUMNS)
    manifest["n_chunks"] = manifest["n_chunks"].astype("Int64")
    return manifest, vectors, chunk_vectors


def vocal_settings(checkpoint_config: dict, **overrides) -> dict:
    """The checkpoint's "vocals" settings (teacher defaults where absent), overridden by non-None values."""
    settings = VOCAL_DEFAULTS | checkpoint_config.get("vocals", {})
    return settings | {k: v for k, v in overrides.items() if v is not None}


def write_outputs(manifest: pd.DataFrame, vectors: dict, out: str | Path, manifest_path: str | Path | None = None,
                  timings_path: str | Path | None = None, chunks_path: str | Path | None = None,
                  chunk_vectors: dict | None = None) -> dict[str, Path]:
    """OUT.npz (id → track vector, ok ids in manifest order), OUT.manifest.csv (teacher columns; deterministic),
    OUT.timings.csv (id, status, duration_s, n_chunks, t_*: varies run to run), optionally chunks npz."""
    from paperlib.io import save_npz, write_csv

    out = Path(out)
    paths = {"embeddings": out,
             "manifest": Path(manifest_path or out.with_suffix(".manifest.csv")),
             "timings": Path(timings_path or out.with_suffix(".timings.csv"))}
    ok_ids = manifest.loc[manifest["status"] == "ok", "id"]
    save_npz(out, {i: vectors[i] for i in ok_ids})
    if chunks_path is not None:
        paths["chunks"] = Path(chunks_path)
        save_npz(chunks_path, {i: chunk_vectors[i] for i in ok_ids})
    write_csv(manifest[MANIFEST_COLUMNS], paths["manifest"])
    write_csv(manifest[["id", "status", "duration_s", "n_chunks", *TIMING_COLUMNS]], paths["timings"])
    return paths


__all__ = ["embed_tracks", "embed_chunks", "vocal_settings", "write_outputs", "MANIFEST_COLUMNS",
           "TIMING_COLUMNS", "VOCAL_DEFAULTS"]
