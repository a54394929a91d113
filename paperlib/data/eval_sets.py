"""Evaluation sets: their tracks, editorial lyrics and joined transcripts.

A set is `demo` (the generated corpus' test split) or a benchmark of `paperlib.data.benchmarks` (covers80,
shs100k_test, discogs_vi_test). Its outputs live in schema.set_dir folders: the `transcribe` stage's (teacher files
and text systems) and the `embed` stage's (audio systems).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from paperlib.data import benchmarks
from paperlib.runtime import io
from paperlib.runtime.config import Config
from paperlib.runtime.schema import read_table, read_tracks, set_dir

log = logging.getLogger(__name__)


def set_tracks(name: str, cfg: Config) -> pd.DataFrame:
    """Expected tracks of a set: id, clique, path ("" when the audio is missing) [+ lyrics, kind]."""
    if name == "demo":
        tracks = read_tracks("corpus", cfg.paths.corpus)
        tracks = tracks[tracks["split"] == "test"]
        return tracks.assign(clique=tracks["work"])[["id", "clique", "path", "lyrics", "kind"]].reset_index(drop=True)

    table = benchmarks.load_benchmark(name, mirror=cfg.evaluate.benchmark_mirror or None)
    return benchmarks.match_audio(table, Path(cfg.evaluate.audio_root) / name)


def read_cliques(name: str, cfg: Config, system: str | None = None) -> pd.DataFrame:
    """The set's cliques.csv as its stage wrote it (id, clique, path): the transcribe stage's, or the embed stage's
    for an audio `system`."""
    return pd.read_csv(set_dir(cfg.paths, name, system) / "cliques.csv", dtype=str, keep_default_na=False)


def editorial_lyrics(name: str, cfg: Config) -> pd.Series | None:
    """id → editorial lyrics ("" for an instrumental track) of set `name`, or None when the set has no lyrics (the
    `transcribe` stage wrote no lyrics system for it)."""
    if not (set_dir(cfg.paths, name, "lyrics") / "lyrics.manifest.csv").exists():
        return None
    return set_tracks(name, cfg).set_index("id")["lyrics"].fillna("")


def subset_manifest(manifest_csv: Path, ids) -> pd.DataFrame:
    """The manifest rows of `ids`, in that order; an id the manifest never saw is an "error"."""
    manifest = read_table(manifest_csv).set_index("id").reindex(list(ids)).reset_index()
    manifest["status"] = manifest["status"].fillna("error")
    return manifest


def joined_transcripts(folder: Path, ids) -> tuple[pd.DataFrame, pd.Series]:
    """(the teacher's manifest rows of `ids`, id → its kept chunk transcripts joined in time order) for the tracks
    the teacher accepted ("ok": at least one kept chunk), in manifest order: the text t_global embeds (§5.4).
    folder: a folder of teacher files (manifest.csv, chunks.csv)."""
    manifest = subset_manifest(Path(folder) / "manifest.csv", ids)
    chunks = read_table(Path(folder) / "chunks.csv")
    joined = chunks[chunks["kept"].astype(str).str.lower() == "true"].groupby("id", sort=False)["text"].agg(" ".join)
    ok = manifest.loc[manifest["status"] == "ok", "id"].tolist()
    return manifest, joined.reindex(ok)


def write_cliques(tracks: pd.DataFrame, out: Path, name: str, cfg: Config) -> dict:
    """out/cliques.csv of the set's expected tracks; returns {expected, found, missing} audio counts. Tracks without
    audio stay in cliques.csv (path "") and lower every system's coverage; they are counted and logged."""
    io.write_csv(tracks[["id", "clique", "path"]], out / "cliques.csv")
    found = int((tracks["path"] != "").sum())
    audio = {"expected": len(tracks), "found": found, "missing": len(tracks) - found}
    if audio["missing"]:
        root = Path(cfg.evaluate.audio_root) / name
        log.warning("%s: no audio for %d of %d tracks (under %s)", name, audio["missing"], len(tracks), root)
    return audio


class SetInputs(NamedTuple):
    """What a stage runs on for one set: its tracks, the audio found and the (id, path) of the tracks with audio."""

    tracks: pd.DataFrame  # every expected track (id, clique, path, …), set_tracks order
    audio: dict  # {expected, found, missing} (write_cliques)
    inputs: list[tuple[str, Path]]  # the tracks with audio, in that order

    @property
    def ids(self) -> list[str]:
        return [track_id for track_id, _ in self.inputs]


def set_inputs(name: str, cfg: Config, out: Path) -> SetInputs:
    """Set `name`'s tracks with out/cliques.csv written (`write_cliques`): the start of every per-set stage."""
    tracks = set_tracks(name, cfg)
    audio = write_cliques(tracks, out, name, cfg)
    present = tracks[tracks["path"] != ""]
    return SetInputs(tracks, audio, list(zip(present["id"], present["path"].map(Path))))


def status_counts(out: Path, systems) -> dict:
    """{system: {status: tracks}} of the systems with a manifest in out."""
    return {
        system: read_table(out / f"{system}.manifest.csv")["status"].value_counts().to_dict()
        for system in systems
        if (out / f"{system}.manifest.csv").exists()
    }
