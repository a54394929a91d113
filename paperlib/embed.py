"""LIVI inference (paper §3, Fig. 1): audio → vocal 30 s chunks → Whisper log-mel → frozen Whisper
encoder + trained head → chunk embeddings → track embedding (mean of chunks, re-normalised).

No speech recognition anywhere: this module never imports paperlib.asr (nor the teacher or the
text encoder). Vocal detection and chunking are the teacher's (paperlib.vocals, with the settings
stored in the checkpoint), so a track gets the same status as in the teacher's manifest.

Timings per track (seconds, time.perf_counter, CUDA synchronised by the copy back to the CPU):
t_decode_s (decode + resample), t_detect_s (vocal detection + chunking), t_features_s (log-mel),
t_model_s (encoder + head).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from paperlib.audio import run_per_track
from paperlib.config import Config, Vocals
from paperlib.features import log_mel
from paperlib.io import save_npz, write_csv
from paperlib.model import LiviModel, track_embedding
from paperlib.schema import MANIFEST_COLUMNS
from paperlib.vocals import vocal_chunks

TIMING_COLUMNS = ["t_decode_s", "t_detect_s", "t_features_s", "t_model_s"]


class Embedded(NamedTuple):
    """What embed_tracks returns; the dicts hold status "ok" tracks only, in input order."""

    manifest: pd.DataFrame  # MANIFEST_COLUMNS + TIMING_COLUMNS, one row per input, input order
    vectors: dict[str, np.ndarray]  # id → LIVI track vector [d]
    chunk_vectors: dict[str, np.ndarray]  # id → LIVI chunk vectors [n, d]
    pooled: dict[str, np.ndarray]  # id → mean-pooled frozen encoder states, track vector [width] (the ablation)


@torch.inference_mode()
def embed_chunks(model: LiviModel, features: torch.Tensor, device="cpu") -> tuple[np.ndarray, np.ndarray]:
    """Log-mel [n, n_mels, 3000] → (unit LIVI chunk embeddings [n, d], frozen encoder states averaged over
    their 1500 frames [n, width]), float32: the second is the paper's no-training Whisper baseline."""
    frames = model.frames(features.to(device))
    return model.head(frames).float().cpu().numpy(), frames.mean(dim=1).float().cpu().numpy()


def embed_tracks(
    tracks: Sequence[tuple[str, Path]],
    model: LiviModel,
    feature_extractor,
    detector,
    vocals: Vocals,
    batch_size: int = 8,
    device: str = "cpu",
) -> Embedded:
    """Embed (id, path) tracks; batch_size: chunks per encoder batch. Track vectors are the re-normalised
    means of the chunk vectors (model.track_embedding). A bad file is an "error" row (the AudioError reason,
    or "<Type>: <message>" for any other failure); never raises.
    """
    model = model.to(device).eval()

    def process(track_id: str, wave: np.ndarray) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
        return _embed_wave(wave, model, feature_extractor, detector, vocals, batch_size, device)

    results = run_per_track(list(tracks), process, desc="embed")
    ok = {row["id"]: value for row, value in results if row["status"] == "ok"}
    chunk_vectors = {track_id: livi for track_id, (livi, _) in ok.items()}
    manifest = pd.DataFrame([row for row, _ in results]).reindex(columns=MANIFEST_COLUMNS + TIMING_COLUMNS)
    manifest["n_chunks"] = manifest["n_chunks"].astype("Int64")
    return Embedded(
        manifest,
        {track_id: track_embedding(chunks) for track_id, chunks in chunk_vectors.items()},
        chunk_vectors,
        {track_id: track_embedding(pooled) for track_id, (_, pooled) in ok.items()},
    )


class Inference(NamedTuple):
    """A checkpoint ready to embed audio: model, feature extractor, vocal detector and settings."""

    model: LiviModel
    feature_extractor: object
    detector: object
    vocals: Vocals
    batch_size: int = 8
    device: str = "cpu"

    @property
    def dim(self) -> int:
        return int(self.model.head.config.target_dim)

    def embed(self, tracks: Sequence[tuple[str, Path]]):
        """`embed_tracks` of (id, path) tracks with this checkpoint."""
        return embed_tracks(
            tracks, self.model, self.feature_extractor, self.detector, self.vocals, self.batch_size, self.device
        )


def load_inference(checkpoint: str | Path, settings: Config, vocals: Vocals | None = None, detector=None) -> Inference:
    """The checkpoint's model, chunked with its teacher's vocal settings (or `vocals`) by their detector (or
    `detector`); device, evaluate.batch_size and paths.models from `settings`. Raises what loading raises
    (OSError, ValueError, paperlib.offline.ModelUnavailableError, the detector's errors)."""
    from paperlib import checkpoint as checkpoints
    from paperlib.vocals import detector_for

    vocals = vocals or checkpoints.vocal_settings(checkpoint)
    model = checkpoints.load_checkpoint(checkpoint, settings.paths.models)
    feature_extractor = checkpoints.load_feature_extractor(checkpoint)
    detector = detector or detector_for(vocals, device=settings.device)
    return Inference(model, feature_extractor, detector, vocals, settings.evaluate.batch_size, settings.device)


def _embed_wave(
    wave: np.ndarray, model: LiviModel, feature_extractor, detector, vocals: Vocals, batch_size: int, device
) -> tuple[dict, tuple[np.ndarray, np.ndarray] | None]:
    """(manifest fields with timings, (LIVI chunk vectors [n, d], pooled states [n, width]) or None when no
    vocals) of one 16 kHz wave."""
    row, features = prepare_wave(wave, feature_extractor, detector, vocals)
    if features is None:
        return row, None
    start = time.perf_counter()
    livi, pooled = embed_features(model, features, batch_size, device)
    return row | {"t_model_s": time.perf_counter() - start}, (livi, pooled)


def prepare_wave(wave: np.ndarray, feature_extractor, detector, vocals: Vocals) -> tuple[dict, torch.Tensor | None]:
    """The CPU half of one 16 kHz wave: (manifest fields with t_detect_s [and t_features_s], log-mel of its vocal
    chunks [n, n_mels, 3000] float32, or None when the track is not "ok")."""
    start = time.perf_counter()
    found = vocal_chunks(wave, detector, **vocals.chunking())
    row = {
        "t_detect_s": time.perf_counter() - start,
        "status": found.status,
        "reason": found.reason,
        "mean_vocalness": round(found.mean_vocalness, 4),
        "n_chunks": len(found.chunks),
    }
    if found.status != "ok":
        return row, None
    start = time.perf_counter()
    features = log_mel(feature_extractor, found.chunks)
    return row | {"t_features_s": time.perf_counter() - start}, features


def embed_features(
    model: LiviModel, features: torch.Tensor, batch_size: int, device="cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """`embed_chunks` of log-mel [n, n_mels, 3000], batch_size chunks at a time: (LIVI chunk vectors [n, d],
    pooled encoder states [n, width])."""
    parts = [
        embed_chunks(model, features[first : first + batch_size], device)
        for first in range(0, len(features), batch_size)
    ]
    livi, pooled = (np.concatenate(part) for part in zip(*parts))
    return livi, pooled


def write_outputs(
    manifest: pd.DataFrame,
    vectors: dict,
    out: str | Path,
    manifest_path: str | Path | None = None,
    timings_path: str | Path | None = None,
    chunks_path: str | Path | None = None,
    chunk_vectors: dict | None = None,
) -> dict[str, Path]:
    """OUT.npz (id → track vector, ok ids in manifest order), OUT.manifest.csv (deterministic),
    OUT.timings.csv (id, status, duration_s, n_chunks, t_*: wall-clock, varies run to run), optionally
    the chunk vectors npz."""
    out = Path(out)
    paths = {
        "embeddings": out,
        "manifest": Path(manifest_path or out.with_suffix(".manifest.csv")),
        "timings": Path(timings_path or out.with_suffix(".timings.csv")),
    }
    ok_ids = manifest.loc[manifest["status"] == "ok", "id"]
    save_npz(out, {i: vectors[i] for i in ok_ids})
    if chunks_path is not None:
        paths["chunks"] = Path(chunks_path)
        save_npz(chunks_path, {i: chunk_vectors[i] for i in ok_ids})
    write_csv(manifest[MANIFEST_COLUMNS], paths["manifest"])
    write_csv(manifest[["id", "status", "duration_s", "n_chunks", *TIMING_COLUMNS]], paths["timings"])
    return paths
