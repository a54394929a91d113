"""Analyses of the embeddings beyond retrieval: audio–lyrics agreement (paper §5.3) and inference
time per track (§5.5). Cosines and their statistics are at io.DECIMALS (6) decimals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.reporting import report
from paperlib.runtime import io, vectors
from paperlib.runtime.schema import HARMONIC_SYSTEMS, set_dir, timings_path


def audio_text_cosines(sets, paths) -> pd.DataFrame:
    """Per track: cosine of its LIVI vector with its own text vectors, and (baseline) the mean
    cosine with the text vectors of the other works' tracks (computed in float64, rounded to io.DECIMALS).
    paths: config.Paths (the set folders, schema.set_dir). Columns set, id, target, cosine."""
    rows = []
    for name in sets:
        folder = set_dir(paths, name, "livi")
        tracks, labels = vectors.read_cliques(folder / "cliques.csv")
        cliques = pd.Series(labels, index=tracks)
        audio = vectors.read_vector_map(folder / "livi.npz")
        for system, label in (("asr", "ASR transcript"), ("lyrics", "ground-truth lyrics")):
            texts_npz = set_dir(paths, name, system) / f"{system}.npz"
            if not texts_npz.exists():
                continue
            ids, a, t = vectors.paired_rows(audio, vectors.read_vector_map(texts_npz))
            if not ids:
                continue
            # mean cosine with the other works' texts without an N×N matrix: (a·Σall − a·Σown clique) / count
            codes, _ = pd.factorize(cliques.reindex(ids).to_numpy())
            clique_sum = np.zeros((codes.max() + 1, t.shape[1]))
            np.add.at(clique_sum, codes, t)
            others = len(ids) - np.bincount(codes)[codes]
            own = (a * t).sum(axis=1)
            other_mean = (a @ t.sum(axis=0) - (a * clique_sum[codes]).sum(axis=1)) / np.maximum(others, 1)
            own, other_mean = io.rounded(own), io.rounded(other_mean)
            for row, track in enumerate(ids):
                rows.append({"set": name, "id": track, "target": f"own {label}", "cosine": float(own[row])})
                if others[row]:
                    rows.append(
                        {"set": name, "id": track, "target": f"other works' {label}", "cosine": float(other_mean[row])}
                    )
    return pd.DataFrame(rows, columns=["set", "id", "target", "cosine"])


QUANTILES = ("min", "25%", "50%", "75%", "max")


def cosine_summary(cosines: pd.DataFrame) -> pd.DataFrame:
    """count, mean, std, min, quartiles and max of `audio_text_cosines` per set and target (columns set, target,
    count, mean, std, min, 25%, 50%, 75%, max): mean and std at io.DECIMALS, the single values at io.VALUE_DECIMALS."""
    summary = cosines.groupby(["set", "target"])["cosine"].describe().reset_index()
    decimals = {"mean": io.DECIMALS, "std": io.DECIMALS} | dict.fromkeys(QUANTILES, io.VALUE_DECIMALS)
    return summary.round(decimals)


def runtime_table(cfg) -> pd.DataFrame:
    """Seconds per accepted track of each set, mean and standard deviation: preprocessing (decode, resample,
    vocal detection, log-mel) and model, for LIVI, for the transcription pipeline (Whisper + text embedding) and for
    each harmonic system that ran (decoding; the model step: shingles and forward passes, or chroma and 2DFTM), as the
    pipeline ran them: LIVI one track's chunks per call, the teacher's Whisper on the chunks of
    scale.track_batch tracks (asr.batch_size per call; its time shared by chunk count). Batch 1 on both:
    benchmarks/speed_cpu.py."""
    rows = []
    for name in cfg.evaluate.sets:
        livi = _accepted(timings_path(cfg.paths.runtime, name, "livi"))
        pre, model = livi["t_decode_s"] + livi["t_detect_s"] + livi["t_features_s"], livi["t_model_s"]
        rows.append(_runtime_row(name, "LIVI (audio)", "one track per call", pre, model))
        if timings_path(cfg.paths.runtime, name, "teacher").exists():
            asr = _accepted(timings_path(cfg.paths.runtime, name, "teacher"))
            pre, model = asr["t_decode_s"] + asr["t_detect_s"], asr["t_asr_s"] + asr["t_text_s"]
            rows.append(_runtime_row(name, "Transcription (teacher)", "chunks of several tracks", pre, model))
        for system in HARMONIC_SYSTEMS:
            if timings_path(cfg.paths.runtime, name, system).exists():
                timings = _accepted(timings_path(cfg.paths.runtime, name, system))
                label, pre, model = report.SYSTEMS[system], timings["t_decode_s"], timings["t_model_s"]
                rows.append(_runtime_row(name, label, "one track per call", pre, model))
    return pd.DataFrame(rows).round(3)


def harmonic_speed(path: str | Path) -> pd.DataFrame:
    """benchmarks/harmonic_speed.py's rows (system, params_M, seconds_per_track, ...: the four release architectures
    at their real shapes with random weights, and LIVI, on one CPU track); empty when the file is absent."""
    path = Path(path)
    if not path.is_file():
        return pd.DataFrame(columns=["system", "params_M", "seconds_per_track"])
    return pd.DataFrame(json.loads(path.read_text())["rows"])


def trainable_parameters(speed: pd.DataFrame) -> dict[str, float]:
    """Trainable parameters of harmonic_speed's rows, by label "<system> (real shape)": a harmonic system trains all
    of its parameters, LIVI only its head (the Whisper encoder is frozen); the demo's own LIVI row is left out (the
    checkpoint gives it)."""
    return {
        f"{row.system} (real shape)": float(row.params_head_M if row.architecture.startswith("livi") else row.params_M)
        * 1e6
        for row in speed.itertuples()
        if row.architecture != "livi"
    }


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
