"""How LIVI's cross-language retrieval grows with its training data (issue 36, step 4: the learning curve).

Trains the head as the `train` stage does (params.yaml settings, the teacher's pairs, seed 0) on the chunks of the
first k training works (a seeded order of the works), for each share in --fractions, and scores each head on
- the demo's test split (MAP, and MAP on its cross-language queries: paperlib.evaluation.conditions), and
- the generalisation clips of benchmarks/generalisation.py (sentences outside the corpus, in voices no training
  track uses; HR@1 per condition, spoken and mixed, with the cross-language rule).
The encoder runs once per test track and clip (the vocal chunks of `vocals.*`); each share only trains a head.
Training lines: the distinct sung lines (text, language) of the chosen works' training tracks.

    python benchmarks/learning_curve.py [--fractions 0.25 0.5 0.75 1] [--out results/benchmarks/learning_curve]

Writes OUT.json, OUT.md and OUT.png (HR@1 and MAP against training lines). Run after `dvc repro`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from generalisation import LANGUAGES, clips, scores
from seed_spread import seed_row, test_frames
from transformers import WhisperFeatureExtractor

from paperlib.lyrics import vocals
from paperlib.model.features import log_mel
from paperlib.model.livi import HeadConfig, LiviHead, LiviModel, load_whisper_encoder
from paperlib.model.pairs import Pairs, build_pairs
from paperlib.runtime import config, io
from paperlib.runtime.schema import read_tracks
from paperlib.runtime.vectors import track_embedding
from paperlib.weights.packaged import resolve_model


def clip_frames(cfg: config.Config, table: pd.DataFrame, encoder, feature_extractor) -> dict[str, torch.Tensor]:
    """Frozen encoder states of each clip's vocal chunks, by id (clips without a vocal chunk left out)."""
    detector = vocals.detector_for(cfg.vocals)
    frozen = LiviModel(encoder, LiviHead(HeadConfig(width=encoder.config.d_model, target_dim=1, hidden=(1,))))
    frames = {}
    for row in table.itertuples():
        found = vocals.vocal_chunks(row.audio, detector, **cfg.vocals.chunking())
        if found.status == "ok":
            frames[row.id] = frozen.frames(log_mel(feature_extractor, found.chunks))
    return frames


def subset(pairs: Pairs, keep: set[str]) -> Pairs:
    """The pairs of the tracks whose ids are in `keep`."""
    rows = np.flatnonzero(pairs.keys["id"].isin(keep).to_numpy())
    index = torch.from_numpy(rows)
    return Pairs(pairs.features[index], pairs.text[index], pairs.keys.iloc[rows].reset_index(drop=True), pairs.encoded)


def head_scores(head: LiviHead, frames: dict[str, torch.Tensor], table: pd.DataFrame) -> list[dict]:
    """generalisation.scores of a trained head's clip vectors, per condition."""
    with torch.no_grad():
        vectors = {i: track_embedding(head(f).numpy()) for i, f in frames.items()}
    return [{"condition": c} | scores("LIVI (audio)", vectors, g)[0] for c, g in table.groupby("condition", sort=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fractions", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", default="results/benchmarks/learning_curve")
    args = parser.parse_args()
    cfg = config.load(args.params)
    whisper = resolve_model(cfg.models.whisper, cfg.paths.models)
    feature_extractor = WhisperFeatureExtractor.from_pretrained(whisper)
    encoder = load_whisper_encoder(whisper)
    tracks = read_tracks("corpus", cfg.paths.corpus)
    pairs = build_pairs(cfg.paths.teacher, tracks, feature_extractor, splits=["train", "val"], whisper=whisper)
    test = test_frames(cfg, encoder, feature_extractor)
    table = clips(args.workers)
    frames = clip_frames(cfg, table, encoder, feature_extractor)
    corpus = pd.read_csv(Path(cfg.paths.corpus) / "tracks.csv", keep_default_na=False)
    train = corpus[corpus["split"] == "train"]
    order = list(np.random.default_rng(cfg.seed).permutation(sorted(train["work"].unique())))
    rows = []
    for fraction in args.fractions:
        works = set(order[: max(1, round(fraction * len(order)))])
        chosen = train[train["work"].isin(works)]
        lines = {(line, t.language) for t in chosen.itertuples() for line in t.lyrics.split("\n") if line}
        part = {"train": subset(pairs["train"], set(chosen["id"])), "val": pairs["val"]}
        row = seed_row(cfg.seed, cfg, part, encoder, whisper, feature_extractor, test, keep_head=True)
        head = row.pop("head")
        summary = {"works": len(works), "chunks": len(part["train"].text), "lines": len(lines)} | row
        for clip_row in head_scores(head, frames, table):
            summary |= {f"{clip_row['condition']}_HR1": clip_row["HR1"], "chance_HR1": clip_row["chance_HR1"]}
        rows.append(summary)
        print(summary, flush=True)
    result = pd.DataFrame(rows)
    write(result, args.out, len(LANGUAGES))


def write(result: pd.DataFrame, out: str, languages: int) -> None:
    """OUT.json, OUT.md and OUT.png of the curve."""
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    formats = tuple(".0f" if pd.api.types.is_integer_dtype(t) else ".3f" for t in result.dtypes)
    markdown = result.to_markdown(index=False, floatfmt=formats) + "\n"
    io.write_report({"languages": languages, "rows": result.to_dict(orient="records")}, out, markdown)
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for column, label in (
        ("spoken_HR1", "HR@1, new sentences spoken"),
        ("mixed_HR1", "HR@1, new sentences over a band"),
        ("cross_language_MAP", "MAP, demo cross-language queries"),
        ("MAP", "MAP, demo test split"),
    ):
        ax.plot(result["lines"], result[column], marker="o", label=label)
    ax.axhline(float(result["chance_HR1"].iloc[0]), color="grey", ls=":", label="chance HR@1 (new sentences)")
    ax.set(xlabel="training lines (distinct sung lines of the training works)", ylabel="score", ylim=(0, 1))
    ax.set_title("LIVI across languages against its training data")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(f"{out}.png", dpi=120)


if __name__ == "__main__":
    main()
