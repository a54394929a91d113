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

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib import embed, io, teacher, vocals
from paperlib.config import Config, Vocals
from paperlib.schema import SYSTEMS, read_table, read_tracks, timings_path


def set_tracks(name: str, cfg: Config) -> pd.DataFrame:
    """Expected tracks of a set: id, clique, path ("" when the audio is missing) [+ lyrics, kind]."""
    if name == "demo":
        tracks = read_tracks("corpus", cfg.paths.corpus)
        tracks = tracks[tracks["split"] == "test"]
        return tracks.assign(clique=tracks["work"])[["id", "clique", "path", "lyrics", "kind"]].reset_index(drop=True)
    from paperlib import benchmarks

    table = benchmarks.load_benchmark(name, mirror=cfg.evaluate.benchmark_mirror or None)
    return benchmarks.match_audio(table, Path(cfg.evaluate.audio_root) / name)


def embed_set(name: str, cfg: Config, model, feature_extractor, settings: Vocals) -> dict:
    """Write every system's embeddings of set `name`; returns counts per system and status.

    settings: the checkpoint's vocal detection and chunking, used by LIVI and by the teacher baseline.
    """
    out = Path(cfg.paths.embeddings) / name
    tracks = set_tracks(name, cfg)
    io.write_csv(tracks[["id", "clique", "path"]], out / "cliques.csv")
    present = tracks[tracks["path"] != ""]
    pairs = list(zip(present["id"], present["path"].map(Path)))
    detector = vocals.detector_for(settings, device=cfg.device)
    manifest, vectors, _ = embed.embed_tracks(
        pairs, model, feature_extractor, detector, settings, batch_size=cfg.evaluate.batch_size, device=cfg.device
    )
    embed.write_outputs(
        manifest, vectors, out / "livi.npz", out / "livi.manifest.csv", timings_path(cfg.paths.runtime, name, "livi")
    )
    teacher_out = _transcribe_set(name, pairs, cfg, settings, out)
    _subset_system(teacher_out / "manifest.csv", teacher_out / "text_embeddings.npz", present["id"], out, "asr")
    if "lyrics" in tracks:
        _embed_lyrics(tracks, out, cfg)
    return {
        system: read_table(out / f"{system}.manifest.csv")["status"].value_counts().to_dict()
        for system in SYSTEMS
        if (out / f"{system}.manifest.csv").exists()
    }


def _transcribe_set(name: str, pairs: list, cfg: Config, settings: Vocals, out: Path) -> Path:
    """The teacher's output folder for the set: the training teacher's for the demo (it transcribed the
    whole corpus), else a fresh run of the teacher with the `asr:` settings under out/teacher."""
    if name == "demo":
        return Path(cfg.paths.teacher)
    detector, transcriber, embedder = teacher.load_teacher(cfg, settings)
    teacher.run_teacher(
        pairs,
        out / "teacher",
        detector,
        transcriber,
        embedder,
        settings,
        cfg.asr,
        timings_path=timings_path(cfg.paths.runtime, name, "teacher"),
    )
    return out / "teacher"


def _subset_system(manifest_csv: Path, npz: Path, ids, out: Path, system: str) -> None:
    manifest = read_table(manifest_csv).set_index("id").reindex(list(ids)).reset_index()
    manifest["status"] = manifest["status"].fillna("error")
    with np.load(npz) as archive:
        ok = [i for i in manifest.loc[manifest["status"] == "ok", "id"] if i in archive.files]
        io.save_npz(out / f"{system}.npz", {i: archive[i] for i in ok})
    io.write_csv(manifest, out / f"{system}.manifest.csv")


def _embed_lyrics(tracks: pd.DataFrame, out: Path, cfg: Config) -> None:
    """Ground-truth lyrics (whole text per track) through the same sentence encoder as the teacher."""
    from paperlib import offline, text

    sung = tracks[tracks["lyrics"].fillna("").str.strip() != ""]
    embedder = text.TextEmbedder(offline.resolve_model(cfg.models.text, cfg.paths.models), device=cfg.device)
    io.save_npz(out / "lyrics.npz", dict(zip(sung["id"], embedder.embed(sung["lyrics"].tolist()))))
    status = np.where(tracks["id"].isin(sung["id"]), "ok", "instrumental")
    io.write_csv(
        pd.DataFrame({"id": tracks["id"], "status": status, "reason": np.where(status == "ok", "", "no lyrics")}),
        out / "lyrics.manifest.csv",
    )
