"""How far the demo's LIVI result moves with the training seed alone.

Trains the head exactly as the `train` stage does (params.yaml `train:` and `models:`, pairs from
the teacher's output in data/teacher) once per seed, and scores every head on the demo's test split
as the `embed` + `evaluate` stages do (the LIVI vocal chunks of each test track → frozen Whisper
encoder → head → mean of chunk vectors; paperlib.metrics over the accepted tracks). The encoder
runs once per test chunk; each seed only re-runs the head. Run after `dvc repro`:

    python benchmarks/seed_spread.py [--seeds 0 1 2 3 4] [--out seed_spread.json]

Prints one line per seed and the mean ± standard deviation (ddof 1) of MAP, HR@1 and MR1.
"""

import argparse
import dataclasses
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ruamel.yaml import YAML
from safetensors.torch import load_file
from transformers import WhisperFeatureExtractor

from paperlib import audio, metrics, models, training, vocals
from paperlib.corpus import read_tracks
from paperlib.evaluation import set_tracks
from paperlib.model import HeadConfig, LiviHead, LiviModel, load_whisper_encoder, track_embedding

KEYS = ("MAP", "HR1", "MR1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--corpus", default="data/corpus")
    parser.add_argument("--teacher", default="data/teacher")
    parser.add_argument("--out", help="write the per-seed metrics and the summary as JSON")
    args = parser.parse_args()
    params = YAML(typ="safe").load(Path(args.params))
    train_params, vocal_params = params["train"], params["vocals"]
    if train_params["data"] != "corpus":
        raise SystemExit("seed_spread.py measures the demo: train.data must be 'corpus'")

    whisper = models.resolve_model(params["models"]["whisper"], params["models"]["dir"])
    feature_extractor = WhisperFeatureExtractor.from_pretrained(whisper)
    encoder = load_whisper_encoder(whisper)
    pairs = training.build_pairs(args.teacher, read_tracks("corpus", args.corpus), feature_extractor,
                                 splits=["train", "val"], whisper=whisper)

    # test split: vocal chunks and their encoder states, once
    detector = vocals.make_detector(params["models"]["detector"], params["models"]["detector_model"] or None)
    frozen = LiviModel(encoder, LiviHead(HeadConfig(width=encoder.config.d_model, target_dim=1, hidden=(1,))))
    test = set_tracks("demo", args.corpus, "", None)
    frames, ids, cliques = [], [], []
    for track_id, clique, path in zip(test["id"], test["clique"], test["path"]):
        found = vocals.vocal_chunks(audio.load_audio(path), detector, **vocal_params)
        if found.status != "ok":
            continue
        frames.append(frozen.frames(training.log_mel(feature_extractor, found.chunks)))
        ids.append(track_id)
        cliques.append(clique)
    print(f"test split: {len(ids)}/{len(test)} tracks accepted, {sum(len(f) for f in frames)} chunks")

    rows = []
    for seed in args.seeds:
        config = training.TrainConfig(**{f.name: train_params[f.name] for f in dataclasses.fields(training.TrainConfig)
                                         if f.name in train_params} | {"seed": seed})
        head_config = HeadConfig(width=encoder.config.d_model, target_dim=pairs["train"].text.shape[1],
                                 layer_scale_init=train_params["layer_scale_init"])
        with tempfile.TemporaryDirectory() as out:
            summary = training.train(config, pairs, encoder, out, head_config=head_config, encoder_name=whisper,
                                     feature_extractor=feature_extractor)
            head = LiviHead(head_config)
            head.load_state_dict(load_file(str(Path(out) / "head.safetensors")))
        head.eval()
        with torch.no_grad():
            matrix = np.stack([track_embedding(head(f).numpy()) for f in frames])
        result, _ = metrics.evaluate(matrix, cliques, ids, progress=False)
        rows.append({"seed": seed, "best_epoch": summary["best_epoch"], "val_cosine": summary["best_val_cosine"]}
                    | {k: result[k] for k in KEYS})
        print(" ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in rows[-1].items()),
              flush=True)

    table = pd.DataFrame(rows)
    spread = {k: {"mean": round(float(table[k].mean()), 4), "sd": round(float(table[k].std(ddof=1)), 4),
                  "min": round(float(table[k].min()), 4), "max": round(float(table[k].max()), 4)} for k in KEYS}
    for k, v in spread.items():
        print(f"{k}: {v['mean']:.3f} ± {v['sd']:.3f} (min {v['min']:.3f}, max {v['max']:.3f}) over {len(table)} seeds")
    if args.out:
        Path(args.out).write_text(json.dumps({"seeds": rows, "spread": spread}, indent=2) + "\n")


if __name__ == "__main__":
    main()
