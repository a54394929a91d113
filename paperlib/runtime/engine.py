"""Where per-track work runs (settings `scale.*`): this process ("local") or Ray Data ("ray"). The only reader of
`scale.engine`.

A job (Job) is one track's work in two steps, built where they run:
  prepare(track_id, wave) -> (fields, payload)   CPU step of one decoded 16 kHz wave (vocal detection, features);
                                                  payload None when the track goes no further
  process([(row, payload), ...]) -> [row, ...]    model step of a batch of prepared tracks, one track row each
Decoding and the prepare step run through paperlib.runtime.audio.run_per_track, so a bad file is an "error" row there,
never an exception. A track row is the manifest fields (schema.MANIFEST_COLUMNS, the job's timings) and the job's
arrays.

local: the steps are built once in this process; tracks go through `scale.track_batch` at a time.
ray:   CPU tasks, one track each, run prepare (its step built once per worker process, on the CPU) → a pool of
       `scale.actors` actors, each holding the process step once (one GPU each when `device` is CUDA), take
       `scale.track_batch` tracks per call → the driver. Between stages a track is a pickle of (row, payload).
       Paths are made absolute for the workers (rows keep the paths as given): on a cluster, audio and models
       must be at the same paths on every node. Ray is imported only here and only for this engine (the `ray` extra).
Both engines hand the driver rows `scale.shard_tracks` at a time; `run` returns them in input order and
`run_to_shards` writes them as resumable Parquet shards (paperlib.runtime.shards).
"""

from __future__ import annotations

import json
import logging
import pickle
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from tqdm.auto import tqdm

from paperlib.runtime import io, shards
from paperlib.runtime.audio import run_per_track
from paperlib.runtime.config import Config
from paperlib.runtime.errors import PaperlibError

log = logging.getLogger(__name__)

Prepare = Callable[[str, np.ndarray], tuple[dict, Any]]
Process = Callable[[list[tuple[dict, Any]]], list[dict]]


class Job(Protocol):
    """A per-track job; picklable (it travels to the Ray workers)."""

    name: str  # progress label and log prefix

    def prepare_step(self, device: str) -> Prepare: ...

    def process_step(self, device: str) -> Process: ...

    def signature(self) -> dict:
        """The settings its rows depend on (JSON-safe): a shard folder resumes only a run of the same."""
        ...


class EngineError(PaperlibError, RuntimeError):
    """The engine cannot run (Ray missing or unreachable); str(exc) is one line."""


def local_steps(job: Job, cfg: Config) -> tuple[Prepare, Process] | None:
    """The job's (prepare, process) built here when cfg's engine is local (so that loading errors surface before
    any track runs), else None (the Ray workers build them). Raises what building raises."""
    if cfg.scale.engine != "local":
        return None
    return job.prepare_step(cfg.device), job.process_step(cfg.device)


def run(job: Job, tracks: Sequence[tuple[str, Path]], cfg: Config, steps=None) -> list[dict]:
    """Track rows of (id, path) tracks, in input order (held in memory). steps: (prepare, process) already built
    (local engine only; default: built from the job)."""
    by_id = {row["id"]: row for batch in batches(job, tracks, cfg, steps) for row in batch}
    return [by_id[track_id] for track_id, _ in tracks]


def run_to_shards(job: Job, tracks: Sequence[tuple[str, Path]], cfg: Config, folder, keep=None, steps=None) -> list:
    """Write the rows of the tracks not yet in `folder` as Parquet shards (a killed run resumes there); returns
    the ids of `tracks` in input order. keep: what a shard keeps of a row (default: the whole row). The folder's
    SIGNATURE file holds the job's signature: shards of a job with other settings are a ShardError, not resumed."""
    writer = shards.ShardWriter(folder)
    _check_signature(Path(folder), job.signature(), bool(writer.ids))
    todo = [track for track in tracks if track[0] not in writer.ids]
    log.info("%s: %d of %d tracks already in %s", job.name, len(tracks) - len(todo), len(tracks), folder)
    for batch in batches(job, todo, cfg, steps):
        writer.write([keep(row) if keep else row for row in batch])
    return [track_id for track_id, _ in tracks]


SIGNATURE = "job.json"


def callable_name(value) -> str | None:
    """module.qualname of a function or class (of a functools.partial's function), for a job's signature."""
    if value is None:
        return None
    target = getattr(value, "func", value)
    return f"{getattr(target, '__module__', '?')}.{getattr(target, '__qualname__', type(target).__qualname__)}"


def _check_signature(folder: Path, signature: dict, written: bool) -> None:
    path = folder / SIGNATURE
    before = json.loads(path.read_text()) if path.is_file() else None
    if written and before != signature:
        differ = sorted(
            k for k in signature.keys() | (before or {}).keys() if signature.get(k) != (before or {}).get(k)
        )
        raise shards.ShardError(
            f"{folder} holds shards of a run with other settings ({', '.join(differ)}): remove it or write elsewhere"
        )
    io.write_json(signature, path)


def batches(job: Job, tracks: Sequence[tuple[str, Path]], cfg: Config, steps=None) -> Iterator[list[dict]]:
    """Track rows, `scale.shard_tracks` at a time, as they finish (any order across batches under Ray)."""
    if not tracks:
        return
    if cfg.scale.engine == "ray":
        if steps is not None:
            raise ValueError("steps built in this process run on the local engine only")
        rows = _ray_rows(job, tracks, cfg)
    else:
        prepare, process = steps or (job.prepare_step(cfg.device), job.process_step(cfg.device))
        rows = local_rows(tracks, prepare, process, cfg.scale.track_batch, job.name)
    batch = []
    with tqdm(total=len(tracks), desc=job.name, unit="track") as bar:
        for row in rows:
            batch.append(row)
            bar.update(1)
            if len(batch) == cfg.scale.shard_tracks:
                yield batch
                batch = []
    if batch:
        yield batch


def local_rows(tracks: Sequence[tuple[str, Path]], prepare: Prepare, process: Process, window: int, desc: str):
    """The local engine: track rows in input order, `window` tracks per process call."""
    for lo in range(0, len(tracks), window):
        yield from process(run_per_track(list(tracks[lo : lo + window]), prepare, desc=desc, progress=False))


# --------------------------------------------------------------------------- Ray Data
def connect(address: str = "", num_cpus: int | None = None):
    """The `ray` module, connected: to `address` ("auto": the running cluster), or a new local instance
    (`num_cpus`: its CPUs, None = all) when address is "". Does nothing when Ray is already initialised."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise EngineError("scale.engine ray needs Ray: pip install -e '.[ray]'") from None
    if not ray.is_initialized():
        try:
            ray.init(address=address or None, num_cpus=None if address else num_cpus, include_dashboard=False)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            raise EngineError(f"cannot connect to Ray at {address or 'a new local instance'}: {exc}") from None
    ray.data.DataContext.get_current().enable_progress_bars = False
    return ray


def _ray_rows(job: Job, tracks, cfg: Config) -> Iterator[dict]:
    ray = connect(cfg.scale.address)
    items = [{"id": track_id, "path": str(Path(path).absolute())} for track_id, path in tracks]
    dataset = ray.data.from_items(items, override_num_blocks=max(1, min(len(items), 64)))
    dataset = dataset.map_batches(
        prepare_batch,
        batch_size=1,
        ray_remote_args_fn=_one_cpu,  # (a function, not num_cpus=1: keeps Ray from fusing this stage into the actors)
        fn_kwargs={"job": job},
    )
    dataset = dataset.map_batches(
        ProcessActor,
        batch_size=cfg.scale.track_batch,
        compute=ray.data.ActorPoolStrategy(size=cfg.scale.actors),
        num_cpus=1,
        num_gpus=1 if cfg.device.startswith("cuda") else 0,
        fn_constructor_kwargs={"job": job, "device": cfg.device},
    )
    given = {track_id: str(path) for track_id, path in tracks}
    for batch in dataset.iter_batches(batch_size=cfg.scale.shard_tracks, batch_format="numpy"):
        for item in batch["item"]:
            row = pickle.loads(item)
            yield row | {"path": given[row["id"]]}  # the path as given, not the workers' absolute one


def _one_cpu() -> dict:
    """Ray remote arguments of a CPU-stage task."""
    return {"num_cpus": 1}


_PREPARE_STEPS: dict = {}
"""Per worker process: the prepare step of each job (built at the job's first track there)."""


def prepare_batch(batch: dict, job: Job) -> dict:
    """CPU stage: {id, path} → {id, item}: item = pickle of (row, payload) (audio.run_per_track)."""
    key = repr(job)
    if key not in _PREPARE_STEPS:
        _PREPARE_STEPS[key] = job.prepare_step("cpu")
    tracks = [(str(i), Path(p)) for i, p in zip(batch["id"], batch["path"])]
    results = run_per_track(tracks, _PREPARE_STEPS[key], desc=job.name, progress=False)
    return {"id": batch["id"], "item": _pickled(results)}


class ProcessActor:
    """Model stage: holds the job's process step; {id, item (row, payload)} → {id, item (track row)}."""

    def __init__(self, job: Job, device: str):
        self.process = job.process_step(device)

    def __call__(self, batch: dict) -> dict:
        rows = self.process([pickle.loads(item) for item in batch["item"]])
        return {"id": batch["id"], "item": _pickled(rows)}


def _pickled(values: list) -> np.ndarray:
    return np.array([pickle.dumps(value) for value in values], dtype=object)
