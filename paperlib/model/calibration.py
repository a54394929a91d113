"""The same-work threshold of `paperlib compare`: a cosine above which two tracks are called versions of
one work, calibrated on labelled tracks (the validation split, when training) and stored in the checkpoint.

Pairs: every unordered pair of distinct labelled tracks; positive = same work (same clique label).
Decision: cosine ≥ threshold → "same work", both at io.VALUE_DECIMALS (4) decimals, as they are stored: the
threshold is the pair cosine (so rounded: one value, which another CPU type computes to ~1e-7) that maximises F1 of
the positive class over all pairs (ties → the higher threshold); precision, recall and f1 are stored at
io.DECIMALS (6). Memory is O(n²) in the number of tracks:
meant for a validation split (10,000 tracks: 50 M pairs, ~250 MB).

Stored as config.json["threshold"] of the checkpoint: {value, precision, recall, f1, tracks, works,
same_pairs, different_pairs, source}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.model.checkpoint import read_checkpoint_config
from paperlib.model.inference import load_inference
from paperlib.runtime.config import Config
from paperlib.runtime.io import VALUE_DECIMALS, rounded, write_json
from paperlib.runtime.schema import read_tracks

SAME, DIFFERENT = "same work", "different work"


def pair_cosines(vectors: np.ndarray, cliques) -> tuple[np.ndarray, np.ndarray]:
    """(cosine, same work) of every unordered pair of rows i < j (float64, not rounded); vectors [n, d], any norm."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    labels = np.asarray([str(c) for c in cliques])
    upper = np.triu_indices(len(x), k=1)
    return (x @ x.T)[upper], (labels[:, None] == labels[None, :])[upper]


def calibrate_threshold(vectors: np.ndarray, cliques) -> dict:
    """The F1-maximising threshold over all pairs of the tracks (ties → higher threshold), with its
    precision, recall, f1 and the counts it was chosen on. ValueError without both kinds of pair."""
    cosines, same = pair_cosines(vectors, cliques)
    return best_threshold(cosines, same) | {"tracks": len(vectors), "works": len(set(map(str, cliques)))}


def best_threshold(cosines: np.ndarray, same: np.ndarray) -> dict:
    """{value, precision, recall, f1, same_pairs, different_pairs} of the pair cosine that maximises F1 of
    "same work" when cosine ≥ value is called same (ties → the higher value); cosines are rounded to VALUE_DECIMALS
    first; precision, recall and f1 are at DECIMALS decimals."""
    cosines, same = _cosines(cosines), np.asarray(same, dtype=bool)
    n_same = int(same.sum())
    if n_same == 0 or n_same == len(same):
        raise ValueError(
            f"calibration needs pairs of the same work and of different works, got {n_same} and {len(same) - n_same}"
        )
    order = np.argsort(-cosines, kind="stable")
    cosines, same = cosines[order], same[order]
    last = np.r_[cosines[1:] != cosines[:-1], True]  # cut after the last pair of each distinct cosine
    true_pos = np.cumsum(same)[last]
    called = np.flatnonzero(last) + 1
    f1 = 2 * true_pos / (called + n_same)
    best = int(np.argmax(f1))  # first maximum = highest threshold
    return {
        "value": float(cosines[last][best]),
        "precision": rounded(true_pos[best] / called[best]),
        "recall": rounded(true_pos[best] / n_same),
        "f1": rounded(f1[best]),
        "same_pairs": n_same,
        "different_pairs": len(same) - n_same,
    }


def precision_recall(cosines: np.ndarray, same: np.ndarray, threshold: float) -> dict:
    """{precision, recall} (at DECIMALS decimals) of calling "same work" the pairs whose cosine (rounded to
    VALUE_DECIMALS) is ≥ threshold; precision is 0.0 when no pair is called, recall 0.0 when no pair is the same
    work."""
    called = _cosines(cosines) >= threshold
    same = np.asarray(same, dtype=bool).reshape(-1)
    precision = same[called].sum() / called.sum() if called.any() else 0.0
    recall = called[same].sum() / same.sum() if same.any() else 0.0
    return {"precision": rounded(precision), "recall": rounded(recall)}


def verdict(cosine: float, threshold: float) -> str:
    """SAME when the cosine, rounded to VALUE_DECIMALS, is ≥ threshold, else DIFFERENT."""
    return SAME if rounded(cosine, VALUE_DECIMALS) >= threshold else DIFFERENT


def _cosines(cosines) -> np.ndarray:
    """Pair cosines as compared with a threshold: float64 [n], rounded to VALUE_DECIMALS."""
    return rounded(np.asarray(cosines, dtype=np.float64).reshape(-1), VALUE_DECIMALS)


def store_threshold(checkpoint: str | Path, result: dict) -> None:
    """Write `result` as the "threshold" entry of the checkpoint's config.json (atomically)."""

    config = read_checkpoint_config(checkpoint)
    write_json(config | {"threshold": result}, Path(checkpoint) / "config.json")


def read_threshold(checkpoint: str | Path) -> dict:
    """The checkpoint's stored threshold; ValueError (one line) when it has none."""

    threshold = read_checkpoint_config(checkpoint).get("threshold")
    if threshold is None:
        raise ValueError(
            f"checkpoint {checkpoint} has no same-work threshold: "
            "run `paperlib calibrate EMBEDDINGS.npz CLIQUES.csv --model CHECKPOINT` on its validation tracks"
        )
    return threshold


def calibrate_checkpoint(cfg: Config, tracks: pd.DataFrame | None = None) -> dict | None:
    """Training's last step: the validation split's audio embedded with the trained checkpoint (the
    inference path of paperlib.model.inference), the threshold calibrated on its tracks and stored in the checkpoint.

    tracks: the training table (default: read from cfg.train.data); work labels come from its `work`
    (else `clique`) column. Returns the stored result, or None (nothing stored) when the table has no
    labels or its validation tracks give no pair of the same work and of different works."""

    tracks = read_tracks(cfg.train.data, cfg.paths.corpus) if tracks is None else tracks
    label = next((c for c in ("work", "clique") if c in tracks.columns), None)
    if label is None:
        return None
    val = tracks[(tracks["split"] == "val") & (tracks["path"] != "")]
    if val[label].nunique() < 2:
        return None
    inference = load_inference(cfg.paths.checkpoint, cfg)
    vectors = inference.embed(list(zip(val["id"], val["path"].map(Path)))).vectors
    kept = val[val["id"].isin(list(vectors))]
    try:
        result = calibrate_threshold(np.stack([vectors[i] for i in kept["id"]]), kept[label])
    except ValueError:
        return None
    result["source"] = f"validation split of {cfg.train.data} ({label} labels), embedded from audio"
    store_threshold(cfg.paths.checkpoint, result)
    return result


def plot_pairs(cosines: np.ndarray, same: np.ndarray, threshold: float | None = None, title: str = ""):
    """Histograms (density) of same-work and different-work pair cosines (drawn at VALUE_DECIMALS), the threshold as
    a line."""
    import matplotlib.pyplot as plt

    cosines, same = rounded(cosines, VALUE_DECIMALS), np.asarray(same, dtype=bool)
    fig, ax = plt.subplots(figsize=(6.4, 3.2))
    bins = np.linspace(min(0.0, np.floor(cosines.min() * 10) / 10), 1.0, 41)
    ax.hist(cosines[~same], bins=bins, density=True, alpha=0.6, label=f"{DIFFERENT} ({int((~same).sum())} pairs)")
    ax.hist(cosines[same], bins=bins, density=True, alpha=0.6, label=f"{SAME} ({int(same.sum())} pairs)")
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.3f}")
    ax.set_xlabel("cosine")
    ax.set_ylabel("density")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize="small")
    fig.tight_layout()
    return fig
