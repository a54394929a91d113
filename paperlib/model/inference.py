"""LIVI inference (paper §3, Fig. 1): audio → vocal 30 s chunks → Whisper log-mel → frozen Whisper
encoder + trained head → chunk embeddings → track embedding (mean of chunks, re-normalised).

No speech recognition anywhere: this module never imports paperlib.lyrics.asr (nor the teacher or the
text encoder). Vocal detection and chunking are the teacher's (paperlib.lyrics.vocals, with the settings
stored in the checkpoint), so a track gets the same status as in the teacher's manifest.

Timings per track (seconds, time.perf_counter, CUDA synchronised by the copy back to the CPU):
t_decode_s (decode + resample), t_detect_s (vocal detection + chunking), t_features_s (log-mel),
t_model_s (encoder + head).

Where it runs is paperlib.runtime.engine's: EmbedJob is the job (prepare: decode → vocal chunks → log-mel on the CPU;
process: each track's chunks through encoder and head, `evaluate.batch_size` at a time). A track row:
the manifest fields and, for status "ok", `vector` [d] (track vector), `chunk_vectors` [n, d] and `pooled` [width]
(the frozen-encoder baseline).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch

from paperlib.lyrics.vocals import detector_for, vocal_chunks
from paperlib.model import checkpoint as checkpoints
from paperlib.model.checkpoint import load_checkpoint, load_feature_extractor
from paperlib.model.features import log_mel
from paperlib.model.livi import LiviModel
from paperlib.runtime import engine, shards
from paperlib.runtime.audio import record_failure
from paperlib.runtime.config import Config, Vocals, to_dict
from paperlib.runtime.schema import MANIFEST_COLUMNS
from paperlib.runtime.vectors import track_embedding, write_system

log = logging.getLogger(__name__)

TIMING_COLUMNS = ["t_decode_s", "t_detect_s", "t_features_s", "t_model_s"]


ARRAYS = ("vector", "chunk_vectors", "pooled")
"""The array fields of a track row."""
_LOADED = ("id", "path", "status", "reason", "duration_s", "t_decode_s")
"""The fields audio.run_per_track gives a track before its prepare step runs."""


class Embedded(NamedTuple):
    """Embeddings of tracks; the dicts hold status "ok" tracks only, in input order."""

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


def prepare_wave(wave: np.ndarray, feature_extractor, detector, vocals: Vocals) -> tuple[dict, np.ndarray | None]:
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
    features = log_mel(feature_extractor, found.chunks).numpy()
    return row | {"t_features_s": time.perf_counter() - start}, features


def embed_prepared(
    items: list[tuple[dict, np.ndarray | None]], model: LiviModel, batch_size: int, device: str
) -> list[dict]:
    """Track rows of prepared (fields, log-mel or None) tracks. Each track's chunks go through the model on their own,
    `batch_size` at a time, so that a track's vectors never depend on the tracks it was batched with (float32
    matmuls of other shapes round differently); a track whose model step fails gets status "error"."""
    return [
        row if features is None else _embed_track(row, features, model, batch_size, device) for row, features in items
    ]


def _embed_track(row: dict, features: np.ndarray, model: LiviModel, batch_size: int, device: str) -> dict:
    """The row of one track with its model fields: vector, chunk_vectors, pooled, t_model_s."""
    start = time.perf_counter()
    try:
        livi, pooled = embed_features(model, torch.from_numpy(features), batch_size, device)
    except Exception as exc:  # one track must never stop the run
        failed = {k: v for k, v in row.items() if k in _LOADED}  # as a failure before the model
        record_failure(failed, exc, "embed")
        return failed
    seconds = time.perf_counter() - start
    return row | {
        "t_model_s": seconds,
        "vector": track_embedding(livi),
        "chunk_vectors": livi,
        "pooled": track_embedding(pooled),
    }


@dataclass(frozen=True)
class EmbedJob:
    """LIVI embedding as an engine job (paperlib.runtime.engine): the checkpoint folder, the vocal settings it chunks
    with, the models folder (hub ids resolve there), chunks per encoder batch, and a picklable callable building
    the vocal detector (None: the settings' own, on the step's device)."""

    checkpoint: str
    vocals: Vocals
    models: str = "models"
    batch_size: int = 8
    detector: Callable[[], object] | None = None
    name: str = "embed"

    @classmethod
    def of(cls, checkpoint, vocals: Vocals, cfg: Config, detector=None) -> EmbedJob:
        """The job of a checkpoint under cfg (paths.models, evaluate.batch_size), its paths absolute."""
        models = str(Path(cfg.paths.models).absolute())
        return cls(str(Path(checkpoint).absolute()), vocals, models, cfg.evaluate.batch_size, detector)

    def signature(self) -> dict:
        return {
            "checkpoint": self.checkpoint,
            "vocals": to_dict(self.vocals),
            "detector": engine.callable_name(self.detector),
        }

    def prepare_step(self, device: str) -> engine.Prepare:

        detector = self.detector() if self.detector else detector_for(self.vocals, device=device)
        return _prepare_step(load_feature_extractor(self.checkpoint), detector, self.vocals)

    def process_step(self, device: str) -> engine.Process:

        model = load_checkpoint(self.checkpoint, self.models).to(device).eval()
        return functools.partial(embed_prepared, model=model, batch_size=self.batch_size, device=device)


def _prepare_step(feature_extractor, detector, vocals: Vocals) -> engine.Prepare:
    return lambda _, wave: prepare_wave(wave, feature_extractor, detector, vocals)


class Inference(NamedTuple):
    """A checkpoint loaded in this process, ready to embed audio: model, feature extractor, vocal detector and
    settings."""

    model: LiviModel
    feature_extractor: object
    detector: object
    vocals: Vocals
    batch_size: int = 8
    device: str = "cpu"

    @property
    def dim(self) -> int:
        return int(self.model.head.config.target_dim)

    def steps(self) -> tuple[engine.Prepare, engine.Process]:
        """The engine steps (prepare, process) of this loaded checkpoint."""
        model = self.model.to(self.device).eval()
        process = functools.partial(embed_prepared, model=model, batch_size=self.batch_size, device=self.device)
        return _prepare_step(self.feature_extractor, self.detector, self.vocals), process

    def embed(self, tracks: Sequence[tuple[str, Path]], window: int = 8) -> Embedded:
        """Embed (id, path) tracks here, `window` tracks per model call. A bad file is an "error" row (the
        AudioError reason, or "<Type>: <message>" for any other failure); never raises."""
        rows = list(engine.local_rows(list(tracks), *self.steps(), window, "embed"))
        return embedded_from_rows(rows, [track_id for track_id, _ in tracks])


def load_inference(checkpoint: str | Path, settings: Config, vocals: Vocals | None = None, detector=None) -> Inference:
    """The checkpoint's model, chunked with its teacher's vocal settings (or `vocals`) by their detector (or
    `detector`); device, evaluate.batch_size and paths.models from `settings`. Raises what loading raises
    (OSError, ValueError, paperlib.weights.packaged.ModelUnavailableError, the detector's errors)."""

    vocals = vocals or checkpoints.vocal_settings(checkpoint)
    model = checkpoints.load_checkpoint(checkpoint, settings.paths.models)
    feature_extractor = checkpoints.load_feature_extractor(checkpoint)
    detector = detector or detector_for(vocals, device=settings.device)
    return Inference(model, feature_extractor, detector, vocals, settings.evaluate.batch_size, settings.device)


def embedded_from_rows(rows: list[dict], order: list[str]) -> Embedded:
    """Embedded of track rows, in the order of the ids `order`."""
    by_id = {row["id"]: row for row in rows}
    ordered = [by_id[track_id] for track_id in order]
    manifest = pd.DataFrame([{k: v for k, v in row.items() if k not in ARRAYS} for row in ordered])
    manifest = manifest.reindex(columns=MANIFEST_COLUMNS + TIMING_COLUMNS)
    manifest["n_chunks"] = manifest["n_chunks"].astype("Int64")
    ok = [row for row in ordered if row["status"] == "ok"]
    return Embedded(manifest, *[{row["id"]: row[name] for row in ok} for name in ARRAYS])


def embed_on_engine(job: EmbedJob, tracks: Sequence[tuple[str, Path]], cfg: Config, steps=None) -> Embedded:
    """Embedded of (id, path) tracks computed on cfg's engine (held in memory); steps: Inference.steps() of a
    checkpoint already loaded here (local engine)."""
    return embedded_from_rows(engine.run(job, tracks, cfg, steps), [track_id for track_id, _ in tracks])


def embed_to(
    out: str | Path,
    job: EmbedJob,
    tracks: Sequence[tuple[str, Path]],
    cfg: Config,
    steps=None,
    manifest_path=None,
    timings_path=None,
    chunks_path=None,
) -> pd.DataFrame:
    """Embed (id, path) tracks on cfg's engine into `out`; returns the manifest (one row per input track).

    `out` ending in .npz: write_outputs (npz, OUT.manifest.csv, OUT.timings.csv, optionally `chunks_path`).
    Otherwise a shard directory (paperlib.runtime.shards): ids already written are skipped, then DIR/manifest.csv and
    DIR/timings.csv; a shard keeps a track's manifest fields and track vector.
    """
    if not shards.is_shard_dir(out):
        embedded = embed_on_engine(job, tracks, cfg, steps)
        write_outputs(
            embedded.manifest, embedded.vectors, out, manifest_path, timings_path, chunks_path, embedded.chunk_vectors
        )
        return embedded.manifest
    shards.ShardWriter(out)  # refuses a path that is not a folder before anything runs
    shards.unfinished(out)
    order = engine.run_to_shards(job, tracks, cfg, out, keep=_shard_row, steps=steps)
    return shards.finish(out, order, TIMING_COLUMNS)


def _shard_row(row: dict) -> dict:
    """What a shard keeps of a track row: its manifest fields and track vector."""
    return {k: v for k, v in row.items() if k not in ARRAYS} | {"vector": row.get("vector")}


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
    the chunk vectors npz (paperlib.runtime.vectors.write_system)."""
    out = Path(out)
    paths = {
        "embeddings": out,
        "manifest": Path(manifest_path or out.with_suffix(".manifest.csv")),
        "timings": Path(timings_path or out.with_suffix(".timings.csv")),
    } | ({"chunks": Path(chunks_path)} if chunks_path is not None else {})
    arrays = {paths["chunks"]: chunk_vectors} if chunks_path is not None else None
    write_system(manifest, vectors, out, paths["manifest"], paths["timings"], TIMING_COLUMNS, arrays)
    return paths
