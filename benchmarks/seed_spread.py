"""How far the demo's LIVI result moves with the training seed alone.

Trains the head exactly as the `train` stage does (the settings of params.yaml, pairs from the
teacher's output) once per seed, and scores every head on the demo's test split as the `embed` +
`evaluate` stages do (the checkpoint's vocal chunks of each test track → frozen Whisper encoder →
head → mean of chunk vectors; paperlib.evaluation.metrics over the accepted tracks), also on its cross-language
queries (paperlib.evaluation.conditions), next to the t_global transcript system (which does not depend on the seed).
The encoder runs once per test chunk; each seed only re-runs the head. Run after `dvc repro`:

    python benchmarks/seed_spread.py [--seeds 0 1 2 3 4] [--out results/benchmarks/seed_spread.json]

Writes seeds, map (per seed), map_mean, map_std (ddof 1), the same for cross_language_map, t_global_map, and per-seed
rows (MAP, HR1, MR1, cross-language MAP and queries, kept epoch, its validation cosine); prints one line per seed and
the spread.
"""

import argparse
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file
from transformers import WhisperFeatureExtractor

from paperlib.data.eval_sets import set_tracks
from paperlib.evaluation import conditions, metrics
from paperlib.lyrics import vocals
from paperlib.model import training
from paperlib.model.features import log_mel
from paperlib.model.livi import HeadConfig, LiviHead, LiviModel, load_whisper_encoder
from paperlib.model.pairs import build_pairs
from paperlib.runtime import audio, config, io, vectors
from paperlib.runtime.schema import read_tracks, set_dir
from paperlib.runtime.vectors import track_embedding
from paperlib.weights.packaged import resolve_model

KEYS = ("MAP", "HR1", "MR1")


def test_frames(cfg: config.Config, encoder, feature_extractor) -> tuple[list, list, list]:
    """(frozen encoder states per accepted test track, ids, cliques), computed once."""
    detector = vocals.detector_for(cfg.vocals)
    frozen = LiviModel(encoder, LiviHead(HeadConfig(width=encoder.config.d_model, target_dim=1, hidden=(1,))))
    test = set_tracks("demo", cfg)
    frames, ids, cliques = [], [], []
    for track_id, clique, path in zip(test["id"], test["clique"], test["path"]):
        found = vocals.vocal_chunks(audio.load_audio(path), detector, **cfg.vocals.chunking())
        if found.status == "ok":
            frames.append(frozen.frames(log_mel(feature_extractor, found.chunks)))
            ids.append(track_id)
            cliques.append(clique)
    print(f"test split: {len(ids)}/{len(test)} tracks accepted, {sum(len(f) for f in frames)} chunks")
    return frames, ids, cliques


def text_map(cfg: config.Config, system: str = "t_global") -> float:
    """MAP of a transcript system of the pipeline (default t_global) on its accepted test tracks."""
    folder = set_dir(cfg.paths, "demo", system)
    status = pd.read_csv(folder / f"{system}.manifest.csv", dtype={"id": str}, keep_default_na=False)
    cliques = pd.read_csv(folder / "cliques.csv", dtype=str, keep_default_na=False)
    subset = cliques[cliques["id"].isin(status.loc[status["status"] == "ok", "id"])]
    matrix = vectors.read_embeddings(folder / f"{system}.npz", subset["id"].tolist())
    return metrics.evaluate(matrix, subset["clique"].tolist(), subset["id"].tolist(), progress=False)[0]["MAP"]


def seed_row(
    seed: int, cfg: config.Config, pairs, encoder, whisper, feature_extractor, test, keep_head: bool = False
) -> dict:
    """Train with `seed`, score the kept head on the test frames (and return it under "head" with keep_head)."""
    head_config = HeadConfig(
        width=encoder.config.d_model,
        target_dim=pairs["train"].text.shape[1],
        hidden=cfg.train.hidden,
        num_heads=cfg.train.num_heads,
        layer_scale_init=cfg.train.layer_scale_init,
    )
    with tempfile.TemporaryDirectory() as out:
        summary = training.train(
            cfg.train,
            pairs,
            encoder,
            out,
            head_config=head_config,
            encoder_name=whisper,
            feature_extractor=feature_extractor,
            seed=seed,
        )
        head = LiviHead(head_config)
        head.load_state_dict(load_file(str(Path(out) / "head.safetensors")))
    head.eval()
    frames, ids, cliques = test
    with torch.no_grad():
        matrix = np.stack([track_embedding(head(f).numpy()) for f in frames])
    result, _ = metrics.evaluate(matrix, cliques, ids, progress=False)
    kinds = conditions.track_conditions(cfg.paths.corpus)
    across, _ = conditions.cross_language(conditions.cosine_blocks(matrix), ids, kinds)
    return (
        {"seed": seed, "best_epoch": summary["best_epoch"], "val_cosine": summary["best_val_cosine"]}
        | {k: result[k] for k in KEYS}
        | {"cross_language_MAP": across["MAP"], "cross_language_queries": across["queries"]}
        | ({"head": head} if keep_head else {})
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="results/benchmarks/seed_spread.json")
    args = parser.parse_args()
    cfg = config.load(args.params, args.overrides)
    if cfg.train.data != "corpus":
        raise SystemExit("seed_spread.py measures the demo: train.data must be 'corpus'")
    whisper = resolve_model(cfg.models.whisper, cfg.paths.models)
    feature_extractor = WhisperFeatureExtractor.from_pretrained(whisper)
    encoder = load_whisper_encoder(whisper)
    pairs = build_pairs(
        cfg.paths.teacher,
        read_tracks("corpus", cfg.paths.corpus),
        feature_extractor,
        splits=["train", "val"],
        whisper=whisper,
    )
    test = test_frames(cfg, encoder, feature_extractor)
    rows = []
    for seed in args.seeds:
        rows.append(seed_row(seed, cfg, pairs, encoder, whisper, feature_extractor, test))
        print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()), flush=True)
    table = pd.DataFrame(rows)
    maps = [round(float(m), 4) for m in table["MAP"]]
    result = {
        "seeds": list(args.seeds),
        "map": maps,
        "map_mean": round(float(np.mean(maps)), 4),
        "map_std": round(float(table["MAP"].std(ddof=1)), 4),
        "cross_language_map": [round(float(m), 4) for m in table["cross_language_MAP"]],
        "cross_language_map_mean": round(float(table["cross_language_MAP"].mean()), 4),
        "cross_language_map_std": round(float(table["cross_language_MAP"].std(ddof=1)), 4),
        "t_global_map": round(float(text_map(cfg)), 4),
        "train": config.to_dict(cfg.train),
        "rows": [{k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()} for row in rows],
    }
    print(
        f"MAP {result['map_mean']:.3f} ± {result['map_std']:.3f} over {len(rows)} seeds (cross-language "
        f"{result['cross_language_map_mean']:.3f} ± {result['cross_language_map_std']:.3f}); "
        f"t_global {result['t_global_map']:.3f}"
    )
    io.write_json(result, args.out)


if __name__ == "__main__":
    main()
