"""The `transcribe` stage: each evaluation set's transcripts and its text systems (paper §3.1 on the evaluation
sets, §5.4), in <transcripts>/<set>/ (schema.set_dir). Nothing here reads the LIVI checkpoint.

  cliques.csv                          every expected track (id, clique, path; "" when the audio is missing)
  manifest.csv, chunks.csv, chunk_text_embeddings.npy, text_embeddings.npz, vocalness.npz
                                       the teacher's files (paperlib.lyrics.teacher) of the set's tracks: for the demo
                                       the training teacher's rows of its test tracks (it transcribed the whole corpus
                                       with these settings), for a benchmark a run of the teacher (`vocals.*`,
                                       `asr.*`) on the engine (its shards in shards/)
  asr.npz, asr.manifest.csv            t_local: the mean of the kept chunk transcripts' embeddings
  t_global.npz, .manifest.csv, .json   t_global: the joined transcript embedded once (.json: truncation counts)
  lyrics.npz, lyrics.manifest.csv      the editorial lyrics (only sets that have them: the demo)
Wall-clock seconds per track of a benchmark's teacher run: <runtime>/<set>/teacher.csv.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.data import eval_sets
from paperlib.lyrics import teacher, text_embedding
from paperlib.runtime import io
from paperlib.runtime.config import Config
from paperlib.runtime.schema import read_table, set_dir, timings_path

TEXT_SYSTEMS = ("t_global", "asr", "lyrics")


def transcribe_set(name: str, cfg: Config) -> dict:
    """Write set `name`'s transcripts and text systems; returns the audio found and the counts per system and
    status."""
    out = set_dir(cfg.paths, name)
    found = eval_sets.set_inputs(name, cfg, out)
    if name == "demo":
        copy_teacher_rows(Path(cfg.paths.teacher), out, found.ids)
    else:
        timings = timings_path(cfg.paths.runtime, name, "teacher")
        teacher.run(teacher.LyricsJob.of(cfg), found.inputs, out, cfg, timings_path=timings)
    _subset_system(out, found.ids, "asr")
    embedder = text_embedding.load_embedder(cfg.models.text, cfg.paths.models, cfg.device)
    _embed_global(out, found.ids, embedder)
    if "lyrics" in found.tracks:
        _embed_lyrics(found.tracks, out, embedder)
    return {"audio": found.audio} | eval_sets.status_counts(out, TEXT_SYSTEMS)


def copy_teacher_rows(source: Path, out: Path, ids) -> None:
    """The teacher files of `source` restricted to the tracks `ids` (their order in `source` kept) into out."""
    wanted = set(ids)
    manifest, chunks = read_table(source / "manifest.csv"), read_table(source / "chunks.csv")
    rows = chunks["id"].isin(wanted).to_numpy()
    io.write_csv(manifest[manifest["id"].isin(wanted)], out / "manifest.csv")
    io.write_csv(chunks[rows], out / "chunks.csv")
    vectors = np.load(source / "chunk_text_embeddings.npy")[rows]
    with io.atomic_path(out / "chunk_text_embeddings.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, vectors)
    for name in ("text_embeddings.npz", "vocalness.npz"):
        with np.load(source / name) as archive:
            io.save_npz(out / name, {i: archive[i] for i in archive.files if i in wanted})


def _subset_system(out: Path, ids, system: str) -> None:
    """<system>.npz and .manifest.csv of the teacher's track vectors (text_embeddings.npz) of `ids`."""
    manifest = eval_sets.subset_manifest(out / "manifest.csv", ids)
    with np.load(out / "text_embeddings.npz") as archive:
        ok = [i for i in manifest.loc[manifest["status"] == "ok", "id"] if i in archive.files]
        io.save_npz(out / f"{system}.npz", {i: archive[i] for i in ok})
    io.write_csv(manifest, out / f"{system}.manifest.csv")


def _embed_global(out: Path, ids, embedder) -> None:
    """t_global (§5.4): a track's transcript embedded once; t_global.json records how many transcripts the text
    model cut at its max_seq_length."""
    manifest, texts = eval_sets.joined_transcripts(out, ids)
    io.save_npz(out / "t_global.npz", dict(zip(texts.index, embedder.embed(texts.tolist()))))
    io.write_csv(manifest, out / "t_global.manifest.csv")
    info = {
        "max_seq_length": embedder.max_seq_length,
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
