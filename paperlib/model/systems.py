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

from paperlib.data import eval_sets
from paperlib.model import inference
from paperlib.runtime.config import Config, Vocals, to_dict
from paperlib.runtime.schema import AUDIO_SYSTEMS, set_dir, timings_path
from paperlib.runtime.vectors import write_system

log = logging.getLogger(__name__)


def embed_set(name: str, cfg: Config, job: inference.EmbedJob, steps=None) -> dict:
    """Write the audio systems of set `name` with the embedding job (its checkpoint and vocal settings) on cfg's
    engine; returns the audio found and the counts per system and status. steps: the job's steps already loaded
    here (local engine)."""
    out = set_dir(cfg.paths, name, "livi")
    found = eval_sets.set_inputs(name, cfg, out)
    embedded = inference.embed_on_engine(job, found.inputs, cfg, steps)
    inference.write_outputs(
        embedded.manifest,
        embedded.vectors,
        out / "livi.npz",
        out / "livi.manifest.csv",
        timings_path(cfg.paths.runtime, name, "livi"),
        out / "livi.chunks.npz",
        embedded.chunk_vectors,
    )
    write_system(embedded.manifest, embedded.pooled, out / "whisper.npz", out / "whisper.manifest.csv")
    return {"audio": found.audio} | eval_sets.status_counts(out, AUDIO_SYSTEMS)


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
