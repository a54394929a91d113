"""Evaluation sets and systems (paper §4): embed each set with every system, then score them.

A set is `demo` (the generated corpus' test split) or a benchmark of `paperlib.benchmarks`
(covers80, shs100k_test, discogs_vi_test). Systems:
  livi    LIVI audio embeddings (no speech recognition),
  asr     the teacher's transcript embeddings ("ASR lyrics"),
  lyrics  ground-truth lyrics embeddings (only the generated corpus has lyrics).
Layout of `<embeddings>/<set>/`: cliques.csv (id, clique, path — every expected track) and per
system `<system>.npz` (id → vector, accepted tracks) + `<system>.manifest.csv` (one status per
track); `livi.timings.csv` and `teacher/timings.csv` hold wall-clock seconds per track.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib import io, metrics, reporting

SYSTEMS = ("livi", "asr", "lyrics")


# --------------------------------------------------------------------------- embedding
def set_tracks(name: str, corpus_dir: str | Path, audio_root: str | Path, mirror: str | None) -> pd.DataFrame:
    """Expected tracks of a set: id, clique, path ("" when the audio is missing) [+ lyrics, kind]."""
    if name == "demo":
        from paperlib.corpus import read_tracks

        tracks = read_tracks("corpus", corpus_dir)
        tracks = tracks[tracks["split"] == "test"]
        return tracks.assign(clique=tracks["work"], path=tracks["path"].astype(str))[
            ["id", "clique", "path", "lyrics", "kind"]].reset_index(drop=True)
    from paperlib import benchmarks

    table = benchmarks.load_benchmark(name, mirror=mirror)
    return benchmarks.match_audio(table, Path(audio_root) / name)


def embed_set(name: str, out: str | Path, model, feature_extractor, settings: dict, *, corpus_dir, teacher_dir,
              models_dir, whisper: str, text_model: str, device: str = "cpu", batch_size: int = 8,
              audio_root="data/audio", mirror: str | None = None, language: str | None = None,
              seed: int = 0) -> dict:
    """Write every system's embeddings of set `name` under `out`; returns counts per system and status."""
    from paperlib import embed, models, vocals

    out = Path(out)
    tracks = set_tracks(name, corpus_dir, audio_root, mirror)
    io.write_csv(tracks[["id", "clique", "path"]], out / "cliques.csv")
    present = tracks[tracks["path"] != ""]
    pairs = list(zip(present["id"], present["path"].map(Path)))
    vocal_params = {k: settings[k] for k in ("threshold", "min_mean_vocalness", "chunk_s", "max_pad_s") if k in settings}
    detector = vocals.make_detector(settings["detector"], settings.get("detector_model") or None, device=device)

    manifest, vectors, _ = embed.embed_tracks(pairs, model, feature_extractor, detector, vocal_params,
                                              batch_size=batch_size, device=device)
    embed.write_outputs(manifest, vectors, out / "livi.npz", out / "livi.manifest.csv", out / "livi.timings.csv")

    if name == "demo":  # the teacher already transcribed the corpus: reuse its outputs
        teacher_out = Path(teacher_dir)
    else:
        from paperlib import asr, teacher, text

        teacher_out = out / "teacher"
        transcriber = asr.Transcriber(models.resolve_model(whisper, models_dir), device=device, language=language,
                                      seed=seed)
        embedder = text.TextEmbedder(models.resolve_model(text_model, models_dir), device=device)
        teacher.run_teacher(pairs, teacher_out, detector, transcriber, embedder, **vocal_params)
    _subset_system(teacher_out / "manifest.csv", teacher_out / "text_embeddings.npz", present["id"], out, "asr")

    if "lyrics" in tracks:
        _embed_lyrics(tracks, out, models.resolve_model(text_model, models_dir), device)
    return {system: pd.read_csv(out / f"{system}.manifest.csv")["status"].value_counts().to_dict()
            for system in SYSTEMS if (out / f"{system}.manifest.csv").exists()}


def _subset_system(manifest_csv: Path, npz: Path, ids, out: Path, system: str) -> None:
    manifest = pd.read_csv(manifest_csv, dtype={"id": str}, keep_default_na=False)
    manifest = manifest.set_index("id").reindex(list(ids)).reset_index()
    manifest["status"] = manifest["status"].fillna("error")
    with np.load(npz) as archive:
        ok = [i for i in manifest.loc[manifest["status"] == "ok", "id"] if i in archive.files]
        io.save_npz(out / f"{system}.npz", {i: archive[i] for i in ok})
    io.write_csv(manifest, out / f"{system}.manifest.csv")


def _embed_lyrics(tracks: pd.DataFrame, out: Path, text_model: str, device: str) -> None:
    """Ground-truth lyrics (whole text per track) through the same sentence encoder as the teacher."""
    from paperlib import text

    sung = tracks[tracks["lyrics"].fillna("").str.strip() != ""]
    vectors = text.TextEmbedder(text_model, device=device).embed(sung["lyrics"].tolist())
    io.save_npz(out / "lyrics.npz", dict(zip(sung["id"], vectors)))
    status = np.where(tracks["id"].isin(sung["id"]), "ok", "instrumental")
    io.write_csv(pd.DataFrame({"id": tracks["id"], "status": status,
                               "reason": np.where(status == "ok", "", "no lyrics")}), out / "lyrics.manifest.csv")


# --------------------------------------------------------------------------- scoring
def evaluate_sets(sets, embeddings_dir, block_size: int = 2048) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results table (reporting.RESULT_COLUMNS, one row per set × system) and per-query metrics."""
    rows, per_query = [], []
    for name in sets:
        folder = Path(embeddings_dir) / name
        cliques = pd.read_csv(folder / "cliques.csv", dtype=str, keep_default_na=False)
        for system in SYSTEMS:
            if not (folder / f"{system}.npz").exists():
                continue
            status = pd.read_csv(folder / f"{system}.manifest.csv", dtype={"id": str}, keep_default_na=False)
            accepted = set(status.loc[status["status"] == "ok", "id"])
            subset = cliques[cliques["id"].isin(accepted)]
            matrix = metrics.read_embeddings(folder / f"{system}.npz", subset["id"].tolist())
            summary, queries = metrics.evaluate(matrix, subset["clique"].tolist(), subset["id"].tolist(),
                                                block_size=block_size, progress=False)
            rows.append(reporting.results_row(name, system, summary, expected=len(cliques)))
            per_query.append(queries.assign(set=name, system=reporting.SYSTEMS[system]))
    table = pd.DataFrame(rows, columns=reporting.RESULT_COLUMNS)
    return table, pd.concat(per_query, ignore_index=True) if per_query else pd.DataFrame()


def metrics_json(table: pd.DataFrame) -> dict:
    """{set: {system: {metric: value}}} for `dvc metrics show`."""
    return {name: {row["system"]: {k: row[k] for k in ("MAP", "MAP10", "HR1", "HR10", "MR1", "NAR", "queries")}
                   for _, row in group.iterrows()} for name, group in table.groupby("set", sort=False)}


def retrieval_examples(name: str, embeddings_dir, factory: str = "Flat", queries: int = 3,
                       k: int = 5) -> pd.DataFrame:
    """Top-k neighbours (faiss) of the first `queries` LIVI-embedded tracks of a set."""
    from paperlib.retrieval import CoverIndex

    folder = Path(embeddings_dir) / name
    cliques = pd.read_csv(folder / "cliques.csv", dtype=str, keep_default_na=False).set_index("id")["clique"]
    with np.load(folder / "livi.npz") as archive:
        ids = list(archive.files)
        vectors = np.stack([archive[i] for i in ids])
    index = CoverIndex.build(ids, vectors, factory=factory)
    rows = []
    for q, hits in zip(ids[:queries], index.search_ids(vectors[:queries], k=k + 1)):
        hits = [(hit, score) for hit, score in hits if hit != q][:k]
        rows += [{"query": q, "rank": r, "hit": hit, "cosine": round(score, 4),
                  "same work": cliques[hit] == cliques[q]} for r, (hit, score) in enumerate(hits, 1)]
    return pd.DataFrame(rows)


def audio_text_cosines(sets, embeddings_dir) -> pd.DataFrame:
    """Per track: cosine of its LIVI vector with its own text vectors, and (baseline) the mean
    cosine with the text vectors of the other works' tracks. Columns set, id, target, cosine."""
    rows = []
    for name in sets:
        folder = Path(embeddings_dir) / name
        cliques = pd.read_csv(folder / "cliques.csv", dtype=str, keep_default_na=False).set_index("id")["clique"]
        with np.load(folder / "livi.npz") as archive:
            audio = {i: archive[i] for i in archive.files}
        for system, label in (("asr", "ASR transcript"), ("lyrics", "ground-truth lyrics")):
            if not (folder / f"{system}.npz").exists():
                continue
            with np.load(folder / f"{system}.npz") as archive:
                texts = {i: archive[i] for i in archive.files}
            ids = [i for i in audio if i in texts]
            if not ids:
                continue
            a = np.stack([audio[i] for i in ids]).astype(np.float64)
            t = np.stack([texts[i] for i in ids]).astype(np.float64)
            # mean cosine with the other works' texts without an N×N matrix: (a·Σall − a·Σown clique) / count
            codes, _ = pd.factorize(cliques.reindex(ids).to_numpy())
            clique_sum = np.zeros((codes.max() + 1, t.shape[1]))
            np.add.at(clique_sum, codes, t)
            others = len(ids) - np.bincount(codes)[codes]
            own = (a * t).sum(axis=1)
            other_mean = (a @ t.sum(axis=0) - (a * clique_sum[codes]).sum(axis=1)) / np.maximum(others, 1)
            for row, track in enumerate(ids):
                rows.append({"set": name, "id": track, "target": f"own {label}", "cosine": float(own[row])})
                if others[row]:
                    rows.append({"set": name, "id": track, "target": f"other works' {label}",
                                 "cosine": float(other_mean[row])})
    return pd.DataFrame(rows, columns=["set", "id", "target", "cosine"])


def runtime_table(sets, embeddings_dir, teacher_dir="data/teacher") -> pd.DataFrame:
    """Mean seconds per accepted track: preprocessing (decode, resample, vocal detection, features)
    and model, for LIVI and for the ASR pipeline (transcription + text embedding), as the pipeline
    ran them: LIVI one track per call, the teacher's Whisper on batches of chunks from several
    tracks (asr.batch_size; its time shared by chunk count). Batch 1 on both sides:
    benchmarks/speed_cpu.py."""
    rows = []
    for name in sets:
        folder = Path(embeddings_dir) / name
        livi = pd.read_csv(folder / "livi.timings.csv")
        livi = livi[livi["status"] == "ok"]
        rows.append({"set": name, "pipeline": "LIVI (audio)", "batching": "one track per call", "tracks": len(livi),
                     "preprocessing_s": (livi["t_decode_s"] + livi["t_detect_s"] + livi["t_features_s"]).mean(),
                     "model_s": livi["t_model_s"].mean()})
        timings = (Path(teacher_dir) if name == "demo" else folder / "teacher") / "timings.csv"
        if timings.exists():
            asr = pd.read_csv(timings)
            asr = asr[asr["status"] == "ok"]
            rows.append({"set": name, "pipeline": "ASR lyrics (teacher)", "batching": "chunks of several tracks",
                         "tracks": len(asr),
                         "preprocessing_s": (asr["t_decode_s"] + asr["t_detect_s"]).mean(),
                         "model_s": (asr["t_asr_s"] + asr["t_text_s"]).mean()})
    table = pd.DataFrame(rows)
    table["total_s"] = table["preprocessing_s"] + table["model_s"]
    return table.round(3)
