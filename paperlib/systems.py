"""The systems of each evaluation set (paper §4, §5.4), embedded by the `embed` stage.

A set is `demo` (the generated corpus' test split) or a benchmark of `paperlib.benchmarks`
(covers80, shs100k_test, discogs_vi_test). Systems:
  livi    LIVI audio embeddings (no speech recognition),
  asr     the teacher's transcript embeddings ("ASR lyrics"),
  lyrics  ground-truth lyrics embeddings (only the generated corpus has lyrics).
Layout of `<embeddings>/<set>/`: cliques.csv (id, clique, path — every expected track) and per
system `<system>.npz` (id → vector, accepted tracks) + `<system>.manifest.csv` (one status per
track). Wall-clock seconds per track go to `<runtime>/<set>/livi.csv` and `<runtime>/<set>/teacher.csv`
(for the demo set the teacher's own run, `<runtime>/teacher.csv`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib import embed, io, teacher, text, vocals
from paperlib.config import Config, Vocals
from paperlib.schema import MANIFEST_COLUMNS, SYSTEMS, read_table, read_tracks, teacher_dir, timings_path

log = logging.getLogger(__name__)


def set_tracks(name: str, cfg: Config) -> pd.DataFrame:
    """Expected tracks of a set: id, clique, path ("" when the audio is missing) [+ lyrics, kind]."""
    if name == "demo":
        tracks = read_tracks("corpus", cfg.paths.corpus)
        tracks = tracks[tracks["split"] == "test"]
        return tracks.assign(clique=tracks["work"])[["id", "clique", "path", "lyrics", "kind"]].reset_index(drop=True)
    from paperlib import benchmarks

    table = benchmarks.load_benchmark(name, mirror=cfg.evaluate.benchmark_mirror or None)
    return benchmarks.match_audio(table, Path(cfg.evaluate.audio_root) / name)


def editorial_lyrics(name: str, cfg: Config) -> pd.Series | None:
    """id → editorial lyrics ("" for an instrumental track) of set `name`, or None when the set has no lyrics (the
    `embed` stage wrote no lyrics system for it)."""
    if not (Path(cfg.paths.embeddings) / name / "lyrics.manifest.csv").exists():
        return None
    return set_tracks(name, cfg).set_index("id")["lyrics"].fillna("")


def embed_set(name: str, cfg: Config, model, feature_extractor, settings: Vocals) -> dict:
    """Write every system's embeddings of set `name`; returns the audio found and the counts per system and status.

    Tracks without audio stay in cliques.csv (path "") and lower every system's coverage; they are counted,
    logged, and never stop the stage.

    settings: the checkpoint's vocal detection and chunking, used by LIVI and by the teacher baseline.
    """
    out = Path(cfg.paths.embeddings) / name
    tracks = set_tracks(name, cfg)
    io.write_csv(tracks[["id", "clique", "path"]], out / "cliques.csv")
    present = tracks[tracks["path"] != ""]
    audio = {"expected": len(tracks), "found": len(present), "missing": len(tracks) - len(present)}
    if audio["missing"]:
        log.warning(
            "%s: no audio for %d of %d tracks (under %s)",
            name,
            audio["missing"],
            len(tracks),
            Path(cfg.evaluate.audio_root) / name,
        )
    pairs = list(zip(present["id"], present["path"].map(Path)))
    embedded = _embed_livi(pairs, cfg, model, feature_extractor, settings)
    livi_timings = timings_path(cfg.paths.runtime, name, "livi")
    embed.write_outputs(
        embedded.manifest,
        embedded.vectors,
        out / "livi.npz",
        out / "livi.manifest.csv",
        livi_timings,
        out / "livi.chunks.npz",
        embedded.chunk_vectors,
    )
    _save_system(out, "whisper", embedded.manifest, embedded.pooled)
    teacher_out = _transcribe_set(name, pairs, cfg, settings)
    _subset_system(teacher_out / "manifest.csv", teacher_out / "text_embeddings.npz", present["id"], out, "asr")
    embedder = text.load_embedder(cfg.models.text, cfg.paths.models, cfg.device)
    _embed_global(teacher_out, present["id"], out, embedder)
    if "lyrics" in tracks:
        _embed_lyrics(tracks, out, embedder)
    counts = {
        system: read_table(out / f"{system}.manifest.csv")["status"].value_counts().to_dict()
        for system in SYSTEMS
        if (out / f"{system}.manifest.csv").exists()
    }
    return {"audio": audio} | counts


def _embed_livi(pairs: list, cfg: Config, model, feature_extractor, settings: Vocals) -> embed.Embedded:
    """LIVI (and frozen-encoder) embeddings of (id, path) pairs: here with the loaded model, or on Ray
    (scale.engine ray: paperlib.distributed loads the checkpoint paths.checkpoint in its actors)."""
    if cfg.scale.engine == "ray":
        from paperlib import distributed

        return distributed.embed_in_memory(pairs, cfg.paths.checkpoint, settings, cfg)
    detector = vocals.detector_for(settings, device=cfg.device)
    return embed.embed_tracks(
        pairs, model, feature_extractor, detector, settings, batch_size=cfg.evaluate.batch_size, device=cfg.device
    )


def _transcribe_set(name: str, pairs: list, cfg: Config, settings: Vocals) -> Path:
    """The teacher's output folder for the set (schema.teacher_dir): the training teacher's for the demo, else a
    fresh run of the teacher with the `asr:` settings."""
    out = teacher_dir(cfg.paths.teacher, cfg.paths.embeddings, name)
    if name == "demo":
        return out
    timings = timings_path(cfg.paths.runtime, name, "teacher")
    if cfg.scale.engine == "ray":
        from dataclasses import replace

        from paperlib import distributed

        distributed.run_lyrics(pairs, out, replace(cfg, vocals=settings), timings_path=timings)
        return out
    detector, transcriber, embedder = teacher.load_teacher(cfg, settings)
    teacher.run_teacher(pairs, out, detector, transcriber, embedder, settings, cfg.asr, timings_path=timings)
    return out


def _subset_manifest(manifest_csv: Path, ids) -> pd.DataFrame:
    """The teacher's manifest rows of `ids`, in that order; an id it never saw is an "error"."""
    manifest = read_table(manifest_csv).set_index("id").reindex(list(ids)).reset_index()
    manifest["status"] = manifest["status"].fillna("error")
    return manifest


def _subset_system(manifest_csv: Path, npz: Path, ids, out: Path, system: str) -> None:
    manifest = _subset_manifest(manifest_csv, ids)
    with np.load(npz) as archive:
        ok = [i for i in manifest.loc[manifest["status"] == "ok", "id"] if i in archive.files]
        io.save_npz(out / f"{system}.npz", {i: archive[i] for i in ok})
    io.write_csv(manifest, out / f"{system}.manifest.csv")


def _save_system(out: Path, system: str, manifest: pd.DataFrame, vectors: dict) -> None:
    """<system>.npz (status "ok" ids, manifest order) and <system>.manifest.csv."""
    io.save_npz(out / f"{system}.npz", {i: vectors[i] for i in manifest.loc[manifest["status"] == "ok", "id"]})
    io.write_csv(manifest[MANIFEST_COLUMNS], out / f"{system}.manifest.csv")


def joined_transcripts(teacher_out: Path, ids) -> tuple[pd.DataFrame, pd.Series]:
    """(the teacher's manifest rows of `ids`, id → its kept chunk transcripts joined in time order) for the tracks
    the teacher accepted ("ok": at least one kept chunk), in manifest order: the text t_global embeds (§5.4)."""
    manifest = _subset_manifest(teacher_out / "manifest.csv", ids)
    chunks = read_table(teacher_out / "chunks.csv")
    joined = chunks[chunks["kept"].astype(str).str.lower() == "true"].groupby("id", sort=False)["text"].agg(" ".join)
    ok = manifest.loc[manifest["status"] == "ok", "id"].tolist()
    return manifest, joined.reindex(ok)


def _embed_global(teacher_out: Path, ids, out: Path, embedder) -> None:
    """t_global (§5.4): a track's transcript embedded once; t_global.json records how many transcripts the text
    model cut at its max_seq_length."""
    manifest, texts = joined_transcripts(teacher_out, ids)
    io.save_npz(out / "t_global.npz", dict(zip(texts.index, embedder.embed(texts.tolist()))))
    io.write_csv(manifest, out / "t_global.manifest.csv")
    info = {
        "max_seq_length": int(embedder.model.max_seq_length),
        "tracks": len(texts),
        "truncated": embedder.truncated(texts.tolist()),
    }
    io.write_json(info, out / "t_global.json")


def _embed_lyrics(tracks: pd.DataFrame, out: Path, embedder) -> None:
    """Ground-truth lyrics (whole text per track) through the same sentence encoder as the teacher."""
    sung = tracks[tracks["lyrics"].fillna("").str.strip() != ""]
    io.save_npz(out / "lyrics.npz", dict(zip(sung["id"], embedder.embed(sung["lyrics"].tolist()))))
    status = np.where(tracks["id"].isin(sung["id"]), "ok", "instrumental")
    io.write_csv(
        pd.DataFrame({"id": tracks["id"], "status": status, "reason": np.where(status == "ok", "", "no lyrics")}),
        out / "lyrics.manifest.csv",
    )
