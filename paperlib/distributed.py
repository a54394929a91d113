"""LIVI embedding on an engine (settings `scale.*`): this process ("local", paperlib.embed as is) or Ray Data
("ray"), into an .npz (small outputs) or a Parquet shard directory (paperlib.shards: streaming, resumable).

Ray Data pipeline: the track table (id, path) → CPU tasks, one track each: decode, vocal chunks, log-mel
(paperlib.embed.prepare_wave) → an actor pool, `scale.actors` actors each holding the model once (one GPU each
when `device` is CUDA): the chunks of `scale.track_batch` tracks go through the model `evaluate.batch_size` at a
time (paperlib.embed.embed_features) → the driver, which writes `scale.shard_tracks` finished tracks per shard.
Between stages a track is (id, pickled (manifest fields, arrays)): the same per-track steps as the local engine,
so the statuses are identical and the vectors agree to float rounding (chunks are batched across tracks).

A track row: the manifest fields (schema.MANIFEST_COLUMNS, embed.TIMING_COLUMNS) and, for status "ok",
`vector` [d] (track vector), `chunk_vectors` [n, d] and `pooled` [width] (the frozen-encoder baseline).
Paths are made absolute on the driver: on a cluster, audio and checkpoint must be at the same paths on every
node. Ray is imported only when the engine is "ray" (the `ray` extra).
"""

from __future__ import annotations

import functools
import logging
import pickle
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib import embed, shards
from paperlib.config import Config, Vocals
from paperlib.schema import MANIFEST_COLUMNS

log = logging.getLogger(__name__)

ARRAYS = ("vector", "chunk_vectors", "pooled")
"""The array fields of a track row."""


class EngineError(RuntimeError):
    """The engine cannot run (Ray missing or unreachable); str(exc) is one line."""


def connect(address: str = "", num_cpus: int | None = None):
    """The `ray` module, connected: to `address` ("auto": the running cluster), or a new local instance
    (`num_cpus`: its CPUs, None = all) when address is "". Does nothing when Ray is already initialised."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise EngineError("--engine ray needs Ray: pip install -e '.[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address or None, num_cpus=None if address else num_cpus, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineError(f"cannot connect to Ray at {address or 'a new local instance'}: {exc}") from None
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


# --------------------------------------------------------------------------- runs
def run_embed(
    tracks: Sequence[tuple[str, Path]],
    out: str | Path,
    checkpoint: str | Path,
    vocals: Vocals,
    cfg: Config,
    inference: embed.Inference | None = None,
    make_detector: Callable[[], object] | None = None,
    manifest_path=None,
    timings_path=None,
    chunks_path=None,
) -> pd.DataFrame:
    """Embed (id, path) tracks on cfg.scale.engine into `out`; returns the manifest (one row per input track).

    `out` ending in .npz: embed.write_outputs (npz, OUT.manifest.csv, OUT.timings.csv, optionally `chunks_path`).
    Otherwise a shard directory: ids already written are skipped, then DIR/manifest.csv and DIR/timings.csv.
    inference: the loaded checkpoint for the local engine (default: loaded here); make_detector: a picklable
    callable building the vocal detector (default: the `vocals` one on the CPU).
    """
    order = [track_id for track_id, _ in tracks]
    if not shards.is_shard_dir(out):
        embedded = embed_in_memory(tracks, checkpoint, vocals, cfg, inference, make_detector)
        embed.write_outputs(
            embedded.manifest, embedded.vectors, out, manifest_path, timings_path, chunks_path, embedded.chunk_vectors
        )
        return embedded.manifest
    writer = shards.ShardWriter(out)
    shards.unfinished(out)
    todo = [track for track in tracks if track[0] not in writer.ids]
    log.info("embed: %d of %d tracks already in %s", len(tracks) - len(todo), len(tracks), out)
    for batch in embed_batches(todo, checkpoint, vocals, cfg, inference, make_detector):
        writer.write([_shard_row(row) for row in batch])
    return shards.finish(out, order, embed.TIMING_COLUMNS)


def embed_in_memory(
    tracks: Sequence[tuple[str, Path]],
    checkpoint: str | Path,
    vocals: Vocals,
    cfg: Config,
    inference: embed.Inference | None = None,
    make_detector: Callable[[], object] | None = None,
) -> embed.Embedded:
    """embed.Embedded of (id, path) tracks computed on cfg.scale.engine, in input order (held in memory)."""
    batches = embed_batches(tracks, checkpoint, vocals, cfg, inference, make_detector)
    return embedded_from_rows([row for batch in batches for row in batch], [track_id for track_id, _ in tracks])


def _default_detector(vocals: Vocals):
    from paperlib.vocals import detector_for

    return detector_for(vocals, device="cpu")


def _shard_row(row: dict) -> dict:
    """What a shard keeps of a track row: its manifest fields and track vector."""
    return {k: v for k, v in row.items() if k not in ARRAYS} | {"vector": row.get("vector")}


def embed_batches(
    tracks: Sequence[tuple[str, Path]],
    checkpoint: str | Path,
    vocals: Vocals,
    cfg: Config,
    inference: embed.Inference | None,
    make_detector: Callable[[], object] | None,
) -> Iterator[list[dict]]:
    """Track rows, `scale.shard_tracks` at a time (any order across batches under Ray). The default detector:
    `vocals`' own, on the CPU in Ray's CPU tasks, on cfg.device locally (as embed.load_inference)."""
    if not tracks:
        return
    if cfg.scale.engine == "ray":
        make_detector = make_detector or functools.partial(_default_detector, vocals)
        yield from _ray_embed(tracks, checkpoint, vocals, cfg, make_detector)
        return
    if inference is None:
        inference = embed.load_inference(checkpoint, cfg, vocals, make_detector() if make_detector else None)
    for lo in range(0, len(tracks), cfg.scale.shard_tracks):
        yield track_rows(inference.embed(tracks[lo : lo + cfg.scale.shard_tracks]))


def track_rows(embedded: embed.Embedded) -> list[dict]:
    """One row per track of an embed.Embedded: manifest fields, and its arrays when status is "ok"."""
    rows = []
    for row in embedded.manifest.to_dict("records"):
        track_id = row["id"]
        if track_id in embedded.vectors:
            row |= {
                "vector": embedded.vectors[track_id],
                "chunk_vectors": embedded.chunk_vectors[track_id],
                "pooled": embedded.pooled[track_id],
            }
        rows.append(row)
    return rows


def embedded_from_rows(rows: list[dict], order: list[str]) -> embed.Embedded:
    """embed.Embedded of track rows, in the order of the ids `order`."""
    by_id = {row["id"]: row for row in rows}
    ordered = [by_id[track_id] for track_id in order]
    manifest = pd.DataFrame([{k: v for k, v in row.items() if k not in ARRAYS} for row in ordered])
    manifest = manifest.reindex(columns=MANIFEST_COLUMNS + embed.TIMING_COLUMNS)
    manifest["n_chunks"] = manifest["n_chunks"].astype("Int64")
    ok = [row for row in ordered if row["status"] == "ok"]
    return embed.Embedded(*[manifest] + [{row["id"]: row[name] for row in ok} for name in ARRAYS])


# --------------------------------------------------------------------------- the Ray pipeline
def _ray_embed(tracks, checkpoint, vocals: Vocals, cfg: Config, make_detector) -> Iterator[list[dict]]:
    ray = connect(cfg.scale.address)
    cuda = cfg.device.startswith("cuda")
    items = [{"id": track_id, "path": str(Path(path).absolute())} for track_id, path in tracks]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 64)))
    dataset = dataset.map_batches(
        prepare_batch,
        batch_size=1,
        ray_remote_args_fn=_one_cpu,  # (a function, not num_cpus=1: keeps Ray from fusing this stage into the actors)
        fn_kwargs={"checkpoint": str(Path(checkpoint).absolute()), "vocals": vocals, "make_detector": make_detector},
    )
    dataset = dataset.map_batches(
        EmbedActor,
        batch_size=cfg.scale.track_batch,
        compute=ray.data.ActorPoolStrategy(size=cfg.scale.actors),
        num_cpus=1,
        num_gpus=1 if cuda else 0,
        fn_constructor_kwargs={
            "checkpoint": str(Path(checkpoint).absolute()),
            "models": str(Path(cfg.paths.models).absolute()),
            "batch_size": cfg.evaluate.batch_size,
            "device": cfg.device,
        },
    )
    for batch in dataset.iter_batches(batch_size=cfg.scale.shard_tracks, batch_format="numpy"):
        yield [pickle.loads(item) for item in batch["item"]]


def _one_cpu() -> dict:
    """Ray remote arguments of a CPU-stage task."""
    return {"num_cpus": 1}


_WORKER_CACHE: dict = {}
"""Per worker process: the feature extractor and vocal detector of each (checkpoint, vocals, detector maker)."""


def _cached(key, build):
    if key not in _WORKER_CACHE:
        _WORKER_CACHE[key] = build()
    return _WORKER_CACHE[key]


def prepare_batch(batch: dict, checkpoint: str, vocals: Vocals, make_detector) -> dict:
    """CPU stage: {id, path} → {id, item}: item = pickle of (manifest fields, log-mel [n, n_mels, 3000] float32 or
    None), run through audio.run_per_track (a bad file is an "error" row, never an exception)."""
    from paperlib.audio import run_per_track
    from paperlib.checkpoint import load_feature_extractor

    feature_extractor = _cached(("features", checkpoint), lambda: load_feature_extractor(checkpoint))
    detector = _cached(("detector", vocals, repr(make_detector)), make_detector)

    def process(_, wave):
        row, features = embed.prepare_wave(wave, feature_extractor, detector, vocals)
        return row, None if features is None else features.numpy()

    tracks = [(str(i), Path(p)) for i, p in zip(batch["id"], batch["path"])]
    results = run_per_track(tracks, process, desc="embed", progress=False)
    return {"id": batch["id"], "item": np.array([pickle.dumps(result) for result in results], dtype=object)}


_LOADED = ("id", "path", "status", "reason", "duration_s", "t_decode_s")
"""The fields audio.run_per_track gives a track before its step runs."""


class EmbedActor:
    """Model stage: holds the checkpoint's model; {id, item (fields, log-mel)} → {id, item (track row)}."""

    def __init__(self, checkpoint: str, models: str, batch_size: int, device: str):
        from paperlib.checkpoint import load_checkpoint

        self.model = load_checkpoint(checkpoint, models).to(device).eval()
        self.batch_size, self.device = batch_size, device

    def __call__(self, batch: dict) -> dict:
        items = [pickle.loads(item) for item in batch["item"]]
        rows = self.embed_items(items)
        return {"id": batch["id"], "item": np.array([pickle.dumps(row) for row in rows], dtype=object)}

    def embed_items(self, items: list[tuple[dict, np.ndarray | None]]) -> list[dict]:
        """Track rows of (fields, log-mel or None) items, their chunks in one pass; on a failure each track alone,
        so that only a track that fails by itself gets status "error"."""
        from paperlib.audio import record_failure

        ready = [features for _, features in items if features is not None]
        if not ready:
            return [row for row, _ in items]
        try:
            arrays = self._embed(ready)
        except Exception as exc:  # one track must never stop the run
            if len(items) == 1:
                row = {k: v for k, v in items[0][0].items() if k in _LOADED}  # as a failure in the local loop
                record_failure(row, exc, "embed")
                return [row]
            return [row for item in items for row in self.embed_items([item])]
        arrays = iter(arrays)
        return [row if features is None else row | next(arrays) for row, features in items]

    def _embed(self, ready: list[np.ndarray]) -> list[dict]:
        """Model fields of each track's log-mel: vector, chunk_vectors, pooled, t_model_s (shared by chunk count)."""
        import torch

        from paperlib.model import track_embedding

        start = time.perf_counter()
        livi, pooled = embed.embed_features(
            self.model, torch.from_numpy(np.concatenate(ready)), self.batch_size, self.device
        )
        seconds, counts = time.perf_counter() - start, [len(features) for features in ready]
        bounds = np.cumsum([0, *counts])
        return [
            {
                "t_model_s": seconds * n / bounds[-1],
                "vector": track_embedding(livi[lo:hi]),
                "chunk_vectors": livi[lo:hi],
                "pooled": track_embedding(pooled[lo:hi]),
            }
            for n, lo, hi in zip(counts, bounds[:-1], bounds[1:])
        ]


# --------------------------------------------------------------------------- lyrics (the teacher) on Ray
LYRICS_ARRAYS = ("vector", "chunk_vectors", "scores")
"""Array fields of a lyrics track row: track vector [dim], chunk text vectors [n, dim], vocalness [segments]."""


def run_lyrics(
    tracks: Sequence[tuple[str, Path]], out_dir: str | Path, cfg: Config, make_detector=None, timings_path=None
) -> pd.DataFrame:
    """The teacher (paperlib.teacher) on Ray: OUT/shards/ receives the finished tracks as they come (a rerun skips
    the ids there), then the teacher's files are written from all shards (teacher.write_outputs: manifest.csv,
    chunks.csv, chunk_text_embeddings.npy, text_embeddings.npz, vocalness.npz; timings.csv or timings_path).
    Returns the manifest.

    CPU tasks: decode, vocal detection, chunks (teacher.detect_step); actors: Whisper and the sentence encoder
    loaded once each, the chunks of `scale.track_batch` tracks transcribed together (teacher.transcribe_step,
    teacher.finish_step). A row carries json `chunks` (chunks.csv rows; null when no text was kept or made).
    """
    out_dir = Path(out_dir)
    folder = out_dir / "shards"
    writer = shards.ShardWriter(folder)
    todo = [track for track in tracks if track[0] not in writer.ids]
    log.info("lyrics: %d of %d tracks already in %s", len(tracks) - len(todo), len(tracks), folder)
    make_detector = make_detector or functools.partial(_default_detector, cfg.vocals)
    if todo:
        for batch in _ray_lyrics(todo, cfg, make_detector):
            writer.write(batch)
    results, scores, dim = _teacher_results(shards.read_rows(folder, arrays=True), [i for i, _ in tracks])
    from paperlib import teacher

    teacher.write_outputs(results, scores, out_dir, dim, Path(timings_path or out_dir / "timings.csv"))
    return teacher.manifest_of(results)


def _teacher_results(rows: pd.DataFrame, order: list[str]):
    """(teacher results [(row, TrackText | None)] in `order`, vocalness scores by id, text dimension) of shard rows."""
    import json

    from paperlib.teacher import TrackText

    rows = rows.set_index("id", drop=False).loc[[i for i in order if i in set(rows["id"])]]
    results, scores = [], {}
    for record in rows.to_dict("records"):
        arrays = {name: record.pop(name, None) for name in (*LYRICS_ARRAYS, "chunks", "text_dim")}
        row = {k: v for k, v in record.items() if not _missing(v)}
        if arrays["scores"] is not None:
            scores[row["id"]] = shards.as_array(arrays["scores"])
        text = None
        if isinstance(arrays["chunks"], str):
            vector = None if arrays["vector"] is None else shards.as_array(arrays["vector"])
            text = TrackText(json.loads(arrays["chunks"]), shards.as_array(arrays["chunk_vectors"]), None, vector)
        results.append((row, text))
    dims = [int(d) for d in rows.get("text_dim", []) if not _missing(d)]
    return results, scores, dims[0] if dims else 0


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def _ray_lyrics(tracks, cfg: Config, make_detector) -> Iterator[list[dict]]:
    ray = connect(cfg.scale.address)
    items = [{"id": track_id, "path": str(Path(path).absolute())} for track_id, path in tracks]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 64)))
    dataset = dataset.map_batches(
        detect_batch,
        batch_size=1,
        ray_remote_args_fn=_one_cpu,
        fn_kwargs={"vocals": cfg.vocals, "make_detector": make_detector},
    )
    dataset = dataset.map_batches(
        LyricsActor,
        batch_size=cfg.scale.track_batch,
        compute=ray.data.ActorPoolStrategy(size=cfg.scale.actors),
        num_cpus=1,
        num_gpus=1 if cfg.device.startswith("cuda") else 0,
        fn_constructor_kwargs={"cfg": _absolute_models(cfg)},
    )
    for batch in dataset.iter_batches(batch_size=cfg.scale.shard_tracks, batch_format="numpy"):
        yield [pickle.loads(item) for item in batch["item"]]


def _absolute_models(cfg: Config) -> Config:
    """cfg with paths.models absolute (actors may run elsewhere than the driver's working directory)."""
    import dataclasses

    paths = dataclasses.replace(cfg.paths, models=str(Path(cfg.paths.models).absolute()))
    return dataclasses.replace(cfg, paths=paths)


def detect_batch(batch: dict, vocals: Vocals, make_detector) -> dict:
    """CPU stage of lyrics: {id, path} → {id, item}: item = pickle of (manifest fields, vocals.VocalChunks or None)."""
    from paperlib.audio import run_per_track
    from paperlib.teacher import detect_step

    detector = _cached(("detector", vocals, repr(make_detector)), make_detector)
    tracks = [(str(i), Path(p)) for i, p in zip(batch["id"], batch["path"])]
    results = run_per_track(tracks, lambda _, wave: detect_step(wave, detector, vocals), desc="lyrics", progress=False)
    return {"id": batch["id"], "item": np.array([pickle.dumps(result) for result in results], dtype=object)}


class LyricsActor:
    """Transcription stage: Whisper and the sentence encoder of cfg; {id, item (fields, chunks)} → {id, item (row)}."""

    def __init__(self, cfg: Config):
        from paperlib.teacher import load_asr

        self.transcriber, self.embedder = load_asr(cfg)
        self.settings = cfg.asr

    def __call__(self, batch: dict) -> dict:
        from paperlib.asr import HALLUCINATIONS
        from paperlib.teacher import finish_step, transcribe_step

        items = [pickle.loads(item) for item in batch["item"]]
        ready = [(row, found) for row, found in items if found is not None and row["status"] == "ok"]
        finished = {
            row["id"]: finish_step(row, found, raw, states, self.embedder, self.settings, HALLUCINATIONS)
            for row, found, raw, states in transcribe_step(ready, self.transcriber, False)
        }
        rows = [self._row(*finished.get(row["id"], (row, None)), found) for row, found in items]
        return {"id": batch["id"], "item": np.array([pickle.dumps(row) for row in rows], dtype=object)}

    def _row(self, row: dict, text, found) -> dict:
        import json

        return row | {
            "text_dim": self.embedder.dim,
            "scores": None if found is None else np.asarray(found.scores, dtype=np.float32),
            "vector": None if text is None else text.track_vector,
            "chunk_vectors": None if text is None else text.vectors,
            "chunks": None if text is None else json.dumps(text.chunks),
        }
