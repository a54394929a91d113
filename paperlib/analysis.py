"""Analyses of the embeddings beyond retrieval: audio–lyrics agreement (paper §5.3) and inference
time per track (§5.5)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.schema import timings_path


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
                    rows.append(
                        {"set": name, "id": track, "target": f"other works' {label}", "cosine": float(other_mean[row])}
                    )
    return pd.DataFrame(rows, columns=["set", "id", "target", "cosine"])


def runtime_table(cfg) -> pd.DataFrame:
    """Seconds per accepted track of each set, mean and standard deviation: preprocessing (decode, resample,
    vocal detection, log-mel) and model, for LIVI and for the transcription pipeline (Whisper + text
    embedding), as the pipeline ran them: LIVI one track per call, the teacher's Whisper on batches of chunks
    from several tracks (asr.batch_size; its time shared by chunk count). Batch 1 on both: benchmarks/speed_cpu.py."""
    rows = []
    for name in cfg.evaluate.sets:
        livi = _accepted(timings_path(cfg.paths.runtime, name, "livi"))
        pre, model = livi["t_decode_s"] + livi["t_detect_s"] + livi["t_features_s"], livi["t_model_s"]
        rows.append(_runtime_row(name, "LIVI (audio)", "one track per call", pre, model))
        if timings_path(cfg.paths.runtime, name, "teacher").exists():
            asr = _accepted(timings_path(cfg.paths.runtime, name, "teacher"))
            pre, model = asr["t_decode_s"] + asr["t_detect_s"], asr["t_asr_s"] + asr["t_text_s"]
            rows.append(_runtime_row(name, "Transcription (teacher)", "chunks of several tracks", pre, model))
    return pd.DataFrame(rows).round(3)


def _runtime_row(name: str, pipeline: str, batching: str, pre: pd.Series, model: pd.Series) -> dict:
    return {
        "set": name,
        "pipeline": pipeline,
        "batching": batching,
        "tracks": len(pre),
        "preprocessing_s": pre.mean(),
        "preprocessing_std_s": pre.std(ddof=1),
        "model_s": model.mean(),
        "model_std_s": model.std(ddof=1),
        "total_s": (pre + model).mean(),
    }


def _accepted(timings: Path) -> pd.DataFrame:
    table = pd.read_csv(timings)
    return table[table["status"] == "ok"]
