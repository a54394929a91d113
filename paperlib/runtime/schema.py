"""The tables stages exchange: track tables, per-track manifests (one status per input) and chunk tables.

Statuses: "ok" (embedded), "instrumental" (no vocals / no lyrics transcribed), "error" (the reason says
why: unreadable audio, a failure in a step). Ids are strings; "" stays "" (never NaN).
Paths inside a track table are relative to the table's own folder (or absolute).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

STATUSES = ("ok", "instrumental", "error")
MANIFEST_COLUMNS = ["id", "path", "status", "reason", "mean_vocalness", "n_chunks", "duration_s"]
"""One row per input track, in input order (the teacher's manifest.csv and embed's OUT.manifest.csv)."""
CHUNK_COLUMNS = ["id", "chunk", "start_s", "end_s", "text", "raw_text", "kept", "language", "language_prob"]
"""The teacher's chunks.csv: chunk index from 0, exact sample times in seconds (samples / 16000), the language
Whisper decoded the chunk in (ISO 639-1 code) and its probability."""
SYSTEMS = ("livi", "t_global", "asr", "whisper", "lyrics", "bytecover2x", "clews", "cqtnet", "dvinetp", "chroma")
"""Systems of an evaluation set, in the paper's Table 2 order: LIVI (audio), t_global (the whole transcript
embedded once), asr = t_local (mean of the chunk transcripts' embeddings: the teacher's track targets), whisper
(mean-pooled frozen encoder states, no training), lyrics (editorial lyrics, corpus only), then HARMONIC_SYSTEMS."""
HARMONIC_SYSTEMS = ("bytecover2x", "clews", "cqtnet", "dvinetp", "chroma")
"""The harmonic audio systems (the `harmonic` stage, paperlib.harmonic.systems, under paths.harmonic), in Table 2's
order: the CLEWS release's ByteCover2x, CLEWS, CQTNet, DVINet+ (paperlib.harmonic.architectures), then the training-free
2DFTM chroma baseline (paperlib.harmonic.chroma)."""
FUSION_PREFIX = "livi+"
"""A fusion system's name: livi+<harmonic system> (paperlib.evaluation.fusion, computed by the `evaluate` stage)."""
AUDIO_SYSTEMS = ("livi", "whisper")
"""The systems the `embed` stage writes (paperlib.model.systems, under paths.embeddings); the others are text systems of
the `transcribe` stage (paperlib.lyrics.transcripts, under paths.transcripts)."""
TRACK_COLUMNS = ("id", "path", "split")
"""Least columns of a training track table (split: train | val | test)."""


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV written by a stage: ids as str, empty cells as "" (numeric columns inferred)."""
    return pd.read_csv(path, dtype={"id": str}, keep_default_na=False)


def read_tracks(data: str, corpus_dir: str | Path = "data/corpus") -> pd.DataFrame:
    """The track table of `train.data`: "corpus" (the generated corpus' tracks.csv, with its ground-truth
    columns) or a CSV with at least id, path, split. `path` is made usable from the working directory."""
    if data == "corpus":
        path = Path(corpus_dir) / "tracks.csv"
        table = pd.read_csv(
            path,
            dtype={"id": str, "work": str},
            keep_default_na=False,
            na_values={"snr_db": [""], "rate": [""], "offset_s": [""]},
        )
    else:
        path = Path(data)
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = sorted(set(TRACK_COLUMNS) - set(table.columns))
    if missing:
        raise ValueError(f"track table {path} lacks column(s) {', '.join(missing)}")
    return table.assign(path=[_relative_to(path.parent, p) for p in table["path"]])


def timings_path(runtime: str | Path, set_name: str | None, system: str) -> Path:
    """Wall-clock seconds per track (outside DVC): <runtime>/teacher.csv for the teacher's run on the training
    tracks (set_name None, or "demo", the corpus it transcribed whole), else <runtime>/<set>/<system>.csv."""
    if system == "teacher" and set_name in (None, "demo"):
        return Path(runtime) / "teacher.csv"
    return Path(runtime) / set_name / f"{system}.csv"


def set_dir(paths, set_name: str, system: str | None = None) -> Path:
    """The folder of an evaluation set's outputs (paths: config.Paths): <embeddings>/<set> for the audio systems
    (AUDIO_SYSTEMS), <harmonic>/<set> for HARMONIC_SYSTEMS, else <transcripts>/<set>, which also holds the set's
    teacher files (manifest.csv, chunks.csv, ...). Each holds the set's cliques.csv (id, clique, path: every expected
    track; path "" when the audio is missing)."""
    if system in HARMONIC_SYSTEMS:
        return Path(paths.harmonic) / set_name
    root = paths.embeddings if system in AUDIO_SYSTEMS else paths.transcripts
    return Path(root) / set_name


TEACHER_SETTINGS = "settings.json"
"""In a teacher output folder: {"seed", "models", "vocals", "asr"}, the settings it was made with (a checkpoint trained
on it records them)."""


def teacher_settings(folder: str | Path) -> dict:
    """The settings a teacher output folder records ({} for a folder written without them)."""
    import json

    path = Path(folder) / TEACHER_SETTINGS
    return json.loads(path.read_text()) if path.is_file() else {}


def _relative_to(base: Path, path: str) -> str:
    return str(path) if not path or Path(path).is_absolute() else str(base / path)
