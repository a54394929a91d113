"""The audio systems of each evaluation set (paper §3.3, §5.4), embedded by the `embed` stage; the text systems
are the `transcribe` stage's (paperlib.lyrics.transcripts). No transcription here.

Layout of `<embeddings>/<set>/` (schema.set_dir): cliques.csv (id, clique, path — every expected track) and per
system `<system>.npz` (id → vector, accepted tracks) + `<system>.manifest.csv` (one status per track):
  livi      LIVI audio embeddings (and livi.chunks.npz: id → chunk vectors [n, d]),
  whisper   the frozen Whisper encoder's states mean-pooled (no training).
Wall-clock seconds per track go to `<runtime>/<set>/livi.csv`.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from paperlib.data import eval_sets
from paperlib.model import inference
from paperlib.runtime import io
from paperlib.runtime.config import Config, Vocals, to_dict
from paperlib.runtime.schema import AUDIO_SYSTEMS, MANIFEST_COLUMNS, set_dir, timings_path

log = logging.getLogger(__name__)


def embed_set(name: str, cfg: Config, job: inference.EmbedJob, steps=None) -> dict:
    """Write the audio systems of set `name` with the embedding job (its checkpoint and vocal settings) on cfg's
    engine; returns the audio found and the counts per system and status. steps: the job's steps already loaded
    here (local engine)."""
    out = set_dir(cfg.paths, name, "livi")
    tracks = eval_sets.set_tracks(name, cfg)
    audio = eval_sets.write_cliques(tracks, out, name, cfg)
    present = tracks[tracks["path"] != ""]
    embedded = inference.embed_on_engine(job, list(zip(present["id"], present["path"].map(Path))), cfg, steps)
    inference.write_outputs(
        embedded.manifest,
        embedded.vectors,
        out / "livi.npz",
        out / "livi.manifest.csv",
        timings_path(cfg.paths.runtime, name, "livi"),
        out / "livi.chunks.npz",
        embedded.chunk_vectors,
    )
    _save_system(out, "whisper", embedded.manifest, embedded.pooled)
    return {"audio": audio} | eval_sets.status_counts(out, AUDIO_SYSTEMS)


def vocal_differences(checkpoint: Vocals, params: Vocals) -> dict:
    """{setting: {"checkpoint": value, "params": value}} where the checkpoint's recorded vocal settings (those the
    `embed` stage chunks with, as its teacher did) differ from `vocals.*` (those the `transcribe` stage uses);
    logged as a warning."""
    ours, theirs = to_dict(checkpoint), to_dict(params)
    differ = {key: {"checkpoint": ours[key], "params": theirs[key]} for key in ours if ours[key] != theirs[key]}
    if differ:
        log.warning(
            "the checkpoint's vocal settings differ from vocals.* in %s: embed chunks with the checkpoint's",
            ", ".join(differ),
        )
    return differ


def _save_system(out: Path, system: str, manifest: pd.DataFrame, vectors: dict) -> None:
    """<system>.npz (status "ok" ids, manifest order) and <system>.manifest.csv."""
    io.save_npz(out / f"{system}.npz", {i: vectors[i] for i in manifest.loc[manifest["status"] == "ok", "id"]})
    io.write_csv(manifest[MANIFEST_COLUMNS], out / f"{system}.manifest.csv")
