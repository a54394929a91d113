"""Results tables and figures (paper §4), written byte-identically on a rerun.

Tables go out as CSV and Markdown; figures (seaborn) as PNG and SVG with fixed metadata (no
dates, fixed SVG ids), so `dvc repro -f` twice gives identical files under results/. Values computed from
float32 embeddings or model outputs (cosines, losses) are written and plotted rounded — statistics at io.DECIMALS
(6) decimals, single per-track or per-evaluation values at io.VALUE_DECIMALS (4) — so the files are also
byte-identical across x86-64 CPU types.
"""

from __future__ import annotations

import contextlib
import functools
import platform
from importlib import metadata
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from paperlib.runtime.io import (  # noqa: F401 (write_json: notebooks)
    DECIMALS,
    VALUE_DECIMALS,
    atomic_path,
    rounded,
    write_csv,
    write_json,
)

RESULT_COLUMNS = ["set", "system", "MAP", "MAP10", "HR1", "HR10", "MR1", "NAR", "queries", "coverage"]
SYSTEMS = {
    "livi": "LIVI (audio)",
    "t_global": "t_global (transcript)",
    "asr": "t_local (transcript chunks)",
    "whisper": "Whisper mean-pool",
    "lyrics": "Editorial lyrics",
    "bytecover2x": "ByteCover2",
    "clews": "CLEWS",
    "cqtnet": "CQTNet",
    "dvinetp": "DViNet",
    "chroma": "Chroma 2DFTM (training-free)",
    "livi+chroma": "LIVI + Chroma 2DFTM (fusion)",
    "livi+bytecover2x": "LIVI + ByteCover2 (fusion)",
    "livi+clews": "LIVI + CLEWS (fusion)",
    "livi+cqtnet": "LIVI + CQTNet (fusion)",
    "livi+dvinetp": "LIVI + DViNet (fusion)",
}
"""Table 2's labels of the systems (schema.SYSTEMS, schema.HARMONIC_SYSTEMS, the fusions livi+<harmonic>); the
harmonic names are the paper's."""
LIBRARIES = [
    "torch",
    "transformers",
    "sentence-transformers",
    "faiss-cpu",
    "numpy",
    "pandas",
    "seaborn",
    "matplotlib",
    "demucs",
    "librosa",
    "nnAudio",
    "silero-vad",
    "piper-tts",
    "papermill",
    "dvc",
    "paperlib",
]

PALETTE = dict(zip(SYSTEMS.values(), sns.color_palette("colorblind", 10) + sns.color_palette("dark", 10)))


@contextlib.contextmanager
def style():
    """The figures' look (seaborn "notebook" context, white grid, colour-blind palette), applied where a
    figure is made: importing paperlib changes no matplotlib state."""
    with sns.plotting_context("notebook"), sns.axes_style("whitegrid"), sns.color_palette("colorblind"):
        yield


def styled(plot):
    """Decorator: make the figure inside `style()`."""

    @functools.wraps(plot)
    def wrapper(*args, **kwargs):
        with style():
            return plot(*args, **kwargs)

    return wrapper


def write_table(table: pd.DataFrame, stem: str | Path, floatfmt: str = ".3f") -> None:
    """`stem`.csv and `stem`.md (a GitHub Markdown table), both atomically."""
    stem = Path(stem)
    write_csv(table, stem.with_suffix(".csv"))
    with atomic_path(stem.with_suffix(".md")) as tmp:
        tmp.write_text(table.to_markdown(index=False, floatfmt=floatfmt) + "\n")


def save_figure(fig: plt.Figure, stem: str | Path) -> None:
    """`stem`.png (150 dpi) and `stem`.svg with no timestamps or version strings."""
    stem = Path(stem)
    for suffix, meta in ((".png", {"Software": None}), (".svg", {"Date": None, "Creator": None})):
        with atomic_path(stem.with_suffix(suffix)) as tmp, plt.rc_context({"svg.hashsalt": "paperlib"}):
            fig.savefig(tmp, format=suffix[1:], dpi=150, bbox_inches="tight", metadata=meta)


def results_row(set_name: str, system: str, summary: dict, expected: int) -> dict:
    """One results-table row; coverage = evaluated queries / expected tracks of the set."""
    queries = int(summary["queries"])
    return {
        "set": set_name,
        "system": SYSTEMS.get(system, system),
        **{k: summary[k] for k in ("MAP", "MAP10", "HR1", "HR10", "MR1", "NAR")},
        "queries": queries,
        "coverage": f"{queries}/{expected}",
    }


def training_report(summary: dict, checkpoint_dir: str | Path, results_dir: str | Path) -> plt.Figure | None:
    """results/training: the epochs table, summary.json and the training curves (losses and cosines per evaluation:
    single values, at VALUE_DECIMALS decimals) of a head trained here; for a checkpoint adopted instead
    (train.checkpoint), summary.json says where it came from. Returns the figure."""
    results_dir = Path(results_dir)
    if not summary.get("trained_here", True):
        write_json({k: summary[k] for k in ("checkpoint", "imported_from")}, results_dir / "summary.json")
        return None
    epochs = pd.read_csv(Path(checkpoint_dir) / "epochs.csv").round(VALUE_DECIMALS)
    steps = pd.read_csv(Path(checkpoint_dir) / "train_log.csv").round(VALUE_DECIMALS)
    write_table(epochs, results_dir / "epochs", floatfmt=".4f")
    kept = {k: summary[k] for k in ("best_epoch", "best_val_cosine", "stopped_early")}
    write_json(
        kept | {"best_val_cosine": rounded(kept["best_val_cosine"], VALUE_DECIMALS)}, results_dir / "summary.json"
    )
    fig = plot_training_curves(epochs, steps)
    save_figure(fig, results_dir / "training_curves")
    return fig


# --------------------------------------------------------------------------- figures
@styled
def plot_training_curves(epochs: pd.DataFrame, steps: pd.DataFrame | None = None) -> plt.Figure:
    """Losses against optimizer steps (train per step, train mean and validation per evaluation)
    and validation cosine / HR@1 per epoch, with the kept checkpoint marked (the last evaluation
    that `improved` the monitored metric, as training.train keeps it)."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    if steps is not None and len(steps):
        sns.lineplot(steps, x="step", y="loss", ax=axes[0], label="train (step)", lw=1, color="#9ecae1")
    sns.lineplot(epochs, x="step", y="train_loss", ax=axes[0], marker="o", label="train (mean since last eval)")
    if "val_loss" in epochs:
        sns.lineplot(epochs, x="step", y="val_loss", ax=axes[0], marker="o", label="validation")
    axes[0].set(title="Loss (α·alignment + (1−α)·geometry)", xlabel="optimizer step", ylabel="loss")
    long = epochs.melt(
        id_vars="epoch",
        value_vars=[c for c in ("val_cosine", "val_hr1") if c in epochs],
        var_name="metric",
        value_name="value",
    )
    sns.lineplot(long, x="epoch", y="value", hue="metric", marker="o", ax=axes[1])
    if "improved" in epochs and epochs["improved"].astype(bool).any():
        best = epochs.loc[epochs["improved"].astype(bool), "epoch"].iloc[-1]
        axes[1].axvline(best, color="grey", ls="--", lw=1)
        axes[1].annotate(
            "kept", (best, 0.95), ha="right", va="top", color="grey", xytext=(-3, 0), textcoords="offset points"
        )
    axes[1].set(title="Validation (audio → text)", ylim=(0, 1))
    fig.tight_layout()
    return fig


@styled
def plot_tracks_per_split(counts: pd.DataFrame) -> plt.Figure:
    """Tracks per split and kind of the generated corpus (columns split, kind, tracks)."""
    return sns.catplot(counts, x="split", y="tracks", hue="kind", kind="bar", height=3.2, aspect=1.6).figure


@styled
def plot_wer_by_snr(wer_by_snr: pd.DataFrame) -> plt.Figure:
    """The teacher's word error rate per vocal-to-accompaniment band (columns snr_band, wer)."""
    fig = sns.catplot(wer_by_snr, x="snr_band", y="wer", kind="bar", height=3.2, aspect=1.6, color="#0173b2").figure
    fig.axes[0].set(
        xlabel="vocal-to-accompaniment ratio (dB)",
        ylabel="word error rate",
        title="Whisper WER on the generated corpus",
    )
    return fig


@styled
def plot_first_rank(per_query: pd.DataFrame) -> plt.Figure:
    """Distribution of the rank of the first correct cover per system (columns set, system, R1)."""
    grid = sns.displot(
        per_query,
        x="R1",
        hue="system",
        col="set",
        kind="ecdf",
        log_scale=(True, False),
        palette=PALETTE,
        height=3.4,
        aspect=1.3,
        facet_kws={"sharex": False},
    )
    grid.set_axis_labels("rank of the first correct version (log)", "fraction of queries")
    return grid.figure


@styled
def plot_conditions(by_kind: pd.DataFrame) -> plt.Figure:
    """Where lyrics win and where harmony wins (paperlib.evaluation.conditions' table of one set): HR@1 over all tracks
    of each version kind (a track a system cannot embed is a miss) and the rate at which a distractor work outranks the
    true versions, per system; plotted at VALUE_DECIMALS decimals."""
    shown = by_kind.assign(HR1_all=rounded(by_kind["HR1_all"], VALUE_DECIMALS))
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.2), width_ratios=(3, 1.2))
    kinds = shown[shown["kind"] != "all"]
    sns.barplot(kinds, x="kind", y="HR1_all", hue="system", palette=PALETTE, ax=left)
    left.set(xlabel="version kind of the query", ylabel="HR@1 over all tracks of the kind", ylim=(0, 1.05))
    left.legend(title=None, fontsize=7, ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.2))
    overall = shown[shown["kind"] == "all"].assign(confused=lambda t: rounded(t["confused"], VALUE_DECIMALS))
    sns.barplot(overall, y="system", x="confused", hue="system", palette=PALETTE, ax=right, legend=False)
    right.set(xlabel="another work ranks above every version", ylabel="", xlim=(0, 1), title="Distractor confusion")
    left.set_title("Versions found first, by kind")
    fig.tight_layout()
    return fig


@styled
def plot_language_pairs(by_language: pd.DataFrame) -> plt.Figure:
    """Cross-language MAP per query language (rows) and target language (columns), one heatmap per system
    (paperlib.evaluation.conditions.pair_table of one set), at 2 decimals."""
    systems = list(dict.fromkeys(by_language["system"]))
    columns = min(4, len(systems))
    rows = -(-len(systems) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.4 * columns, 3.0 * rows), squeeze=False)
    for ax, system in zip(axes.flat, systems):
        grid = by_language[by_language["system"] == system].pivot(
            index="query_language", columns="target_language", values="MAP"
        )
        sns.heatmap(grid.round(2), annot=True, fmt=".2f", vmin=0, vmax=1, cmap="viridis", cbar=False, ax=ax)
        ax.set(title=system, xlabel="versions sung in", ylabel="query sung in")
    for ax in list(axes.flat)[len(systems) :]:
        ax.axis("off")
    fig.suptitle("Cross-language retrieval: MAP by language pair")
    fig.tight_layout()
    return fig


@styled
def plot_translations(view: pd.DataFrame, cosines: pd.DataFrame) -> plt.Figure:
    """Left: LIVI's audio embeddings of a few works (conditions.embedding_map), a colour per work, a marker per
    language, the versions of a work joined; right: mean cosine (± std) of pairs by type, per system."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8), width_ratios=(1.2, 1))
    colours = dict(zip(sorted(view["work"].unique()), sns.color_palette("tab10", 10)))
    for work, group in view.groupby("work", sort=True):
        left.plot(group["x"], group["y"], color=colours[work], lw=0.6, alpha=0.5)
    sns.scatterplot(view, x="x", y="y", hue="work", style="language", palette=colours, s=70, ax=left)
    left.set(title="LIVI audio embeddings (PCA): versions of 8 works", xlabel="PC 1", ylabel="PC 2")
    left.legend(fontsize=7, ncol=2, loc="best")
    shown = cosines.assign(mean=rounded(cosines["mean"], VALUE_DECIMALS))
    sns.barplot(shown, y="system", x="mean", hue="pairs", ax=right)
    right.set(title="Mean cosine between versions", xlabel="cosine", ylabel="")
    right.legend(title=None, fontsize=8)
    fig.tight_layout()
    return fig


@styled
def plot_audio_text_cosine(cosines: pd.DataFrame) -> plt.Figure:
    """Per-track cosine between the LIVI audio embedding and text embeddings (columns set, target, cosine), plotted
    at VALUE_DECIMALS decimals."""
    fig, ax = plt.subplots(figsize=(6.5, 3.6))
    sns.boxplot(
        cosines.assign(cosine=rounded(cosines["cosine"], VALUE_DECIMALS)), x="cosine", y="target", hue="set", ax=ax
    )
    ax.set(title="Audio embedding vs lyrics embedding (per track)", xlabel="cosine similarity", ylabel="")
    fig.tight_layout()
    return fig


@styled
def plot_runtime(runtime: pd.DataFrame, parameters: dict[str, float], speed: pd.DataFrame | None = None) -> plt.Figure:
    """Fig. 3 (§5.5): seconds per track, preprocessing + model stacked with standard-deviation bars, per pipeline
    (runtime: analysis.runtime_table); seconds per 240 s track at the real shapes of the harmonic architectures
    and LIVI (speed: analysis.harmonic_speed, random weights; no panel when empty); parameters per system
    (`parameters`: name → count)."""
    panels = 3 if speed is not None and len(speed) else 2
    ratios = [3, 2, 2][:panels]
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.2), gridspec_kw={"width_ratios": ratios})
    left, right = axes[0], axes[-1]
    y = np.arange(len(runtime))
    labels = runtime["set"] + ": " + runtime["pipeline"]
    left.barh(
        y,
        runtime["preprocessing_s"],
        xerr=runtime["preprocessing_std_s"],
        label="preprocessing",
        color="#999999",
        capsize=3,
    )
    left.barh(
        y,
        runtime["model_s"],
        left=runtime["preprocessing_s"],
        xerr=runtime["model_std_s"],
        label="model inference",
        color="#0173b2",
        capsize=3,
    )
    left.set_yticks(y, labels)
    left.set(xlabel="seconds per track (mean ± std)", title="Inference time per track")
    left.legend(loc="lower right")
    if panels == 3:
        middle = axes[1]
        rows = np.arange(len(speed))
        middle.barh(rows, speed["seconds_per_track"], color="#029e73")
        middle.set_yticks(rows, speed["system"])
        middle.set(xlabel="seconds per track (CPU)", title="Real shapes, random weights")
    names = list(parameters)
    right.barh(np.arange(len(names)), [parameters[n] / 1e6 for n in names], color="#de8f05")
    right.set_yticks(np.arange(len(names)), names)
    right.set(xlabel="trainable parameters (millions)", title="Model size")
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------- provenance
def environment_record(seeds: dict) -> dict:
    """Python and key library versions plus the seeds used (stored next to the results)."""
    versions = {}
    for name in LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {"python": platform.python_version(), "libraries": versions, "seeds": seeds}


# --------------------------------------------------------------------------- determinism
NONDETERMINISTIC = ("runtime",)
"""Sub-folders of results/ holding wall-clock measurements (they differ from run to run)."""


def results_digest(results_dir: str | Path = "results") -> dict[str, str]:
    """sha256 of every file under results/ (relative path → digest), wall-clock folders excluded."""
    import hashlib

    root = Path(results_dir)
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).parts[0] not in NONDETERMINISTIC
    }
