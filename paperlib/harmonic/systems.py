"""The harmonic audio systems of each evaluation set (Table 2's other half), written by the `harmonic` stage.

Systems (schema.HARMONIC_SYSTEMS): `chroma`, the training-free 2DFTM baseline (paperlib.harmonic.chroma,
`harmonic.chroma`),
and one per CLEWS-release checkpoint of `harmonic.checkpoints`, named by its architecture (bytecover2x, clews, cqtnet,
dvinetp; one checkpoint per architecture), run by the paper's protocol (paperlib.harmonic.release: first `max_seconds`,
shingles every `hop_s`, track vector = mean of the segment vectors).

Layout of `<harmonic>/<set>/` (schema.set_dir): cliques.csv (id, clique, path — every expected track) and per system
`<system>.npz` (id → L2-normalised track vector, accepted tracks) + `<system>.manifest.csv` (one status per track;
n_chunks = segments or 2DFTM patches) and, for a checkpoint, `<system>.segments.npz` (id → [S, zdim] float32 segment
embeddings, for CLEWS's bpwr distance). Wall-clock seconds per track go to `<runtime>/<set>/<system>.csv`.
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.data import eval_sets
from paperlib.harmonic.chroma import ChromaJob
from paperlib.harmonic.release import (
    HarmonicError,
    embed_track,
    load_release_checkpoint,
    release_architecture,
    track_vector,
)
from paperlib.runtime import engine
from paperlib.runtime.audio import record_failure
from paperlib.runtime.config import Config, Harmonic
from paperlib.runtime.schema import HARMONIC_SYSTEMS, MANIFEST_COLUMNS, set_dir, timings_path
from paperlib.runtime.vectors import write_system

TIMING_COLUMNS = ["t_decode_s", "t_model_s"]


@dataclass(frozen=True)
class HarmonicJob:
    """A CLEWS-release checkpoint as an engine job (paperlib.runtime.engine): prepare cuts the wave to its first
    `max_seconds`, process embeds each track's shingles on their own, `batch_size` at a time (so that a track's
    vectors never depend on the tracks it was batched with). Rows carry `vector`, `segments` and n_chunks."""

    checkpoint: str
    hop_s: float = 5.0
    max_seconds: float | None = 240.0
    batch_size: int = 8
    name: str = "harmonic"

    @classmethod
    def of(cls, checkpoint, settings: Harmonic, name: str = "harmonic") -> HarmonicJob:
        return cls(str(Path(checkpoint).absolute()), settings.hop_s, settings.max_seconds, settings.batch_size, name)

    def signature(self) -> dict:
        return {"checkpoint": self.checkpoint, "hop_s": self.hop_s, "max_seconds": self.max_seconds}

    def prepare_step(self, device: str) -> engine.Prepare:
        return lambda _, wave: ({}, wave)

    def process_step(self, device: str) -> engine.Process:
        model, _ = load_release_checkpoint(self.checkpoint)
        model = model.to(device)
        return functools.partial(
            embed_rows, model=model, hop_s=self.hop_s, max_seconds=self.max_seconds, batch_size=self.batch_size
        )


def embed_rows(items: list, model, hop_s: float, max_seconds: float | None, batch_size: int) -> list[dict]:
    """Track rows of (row, wave or None) items; a track whose forward pass fails gets status "error"."""
    rows = []
    for row, wave in items:
        if wave is None:
            rows.append(row)
            continue
        start = time.perf_counter()
        try:
            segments = embed_track(model, wave, hop_s, max_seconds, batch_size)
        except Exception as exc:  # one track must never stop the run
            failed = dict(row)
            record_failure(failed, exc, model.name)
            rows.append(failed)
            continue
        vector = track_vector(segments)
        timing = {"t_model_s": time.perf_counter() - start}
        rows.append(row | {"n_chunks": len(segments), "segments": segments, "vector": vector} | timing)
    return rows


def jobs_of(cfg: Config) -> dict[str, engine.Job]:
    """{system: job} of cfg's harmonic systems, in schema.HARMONIC_SYSTEMS order. HarmonicError for a checkpoint that
    is missing or not a release checkpoint, or two checkpoints of one architecture."""
    settings = cfg.harmonic
    found: dict[str, engine.Job] = {}
    if settings.chroma:
        found["chroma"] = ChromaJob(settings.chroma_patch_beats, settings.chroma_power, settings.max_seconds)
    for path in settings.checkpoints:
        system = release_architecture(path)
        if system in found:
            raise HarmonicError(f"harmonic.checkpoints lists two {system} checkpoints: keep one per architecture")
        found[system] = HarmonicJob.of(path, settings, name=system)
    return {system: found[system] for system in HARMONIC_SYSTEMS if system in found}


def embed_set(name: str, cfg: Config, jobs: dict[str, engine.Job]) -> dict:
    """Write the harmonic systems `jobs` ({system: job}) of set `name` on cfg's engine; returns the audio found and
    the counts per system and status."""
    out = set_dir(cfg.paths, name, "chroma")
    found = eval_sets.set_inputs(name, cfg, out)
    for system, job in jobs.items():
        rows = engine.run(job, found.inputs, cfg)
        write_rows(
            rows,
            out / f"{system}.npz",
            out / f"{system}.manifest.csv",
            out / f"{system}.segments.npz" if isinstance(job, HarmonicJob) else None,
            timings_path(cfg.paths.runtime, name, system),
        )
    return {"audio": found.audio} | eval_sets.status_counts(out, list(jobs))


def write_rows(rows: list[dict], vectors_path, manifest_path, segments_path=None, timings=None) -> pd.DataFrame:
    """Write track rows (input order) with paperlib.runtime.vectors.write_system: vectors npz (id → track vector,
    "ok" rows), the manifest (MANIFEST_COLUMNS), optionally the segments npz and the wall-clock timings; returns
    the manifest."""
    manifest = pd.DataFrame([{k: v for k, v in row.items() if k not in ("vector", "segments")} for row in rows])
    manifest = manifest.reindex(columns=MANIFEST_COLUMNS + TIMING_COLUMNS)
    manifest["n_chunks"] = manifest["n_chunks"].astype("Int64")
    ok = [row for row in rows if row["status"] == "ok"]
    segments = {row["id"]: np.asarray(row["segments"], dtype=np.float32) for row in ok} if segments_path else {}
    arrays = {segments_path: segments} if segments_path is not None else None
    vectors = {row["id"]: row["vector"] for row in ok}
    write_system(manifest, vectors, vectors_path, manifest_path, timings, TIMING_COLUMNS, arrays)
    return manifest
