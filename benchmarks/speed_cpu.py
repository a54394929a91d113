"""CPU speed per track: LIVI embedding vs the teacher (transcription + text embedding).

Same tracks, same machine, CPU, one chunk per batch (batch 1), warm: each pipeline first embeds
the first track once untimed, then every track is timed. Both pipelines share decoding and
vocal detection (paperlib.runtime.audio / paperlib.lyrics.vocals, same detector and parameters); LIVI then
computes log-mel + frozen Whisper encoder + head, the teacher Whisper transcription (generate,
temperature fallback) + clean-up + sentence embedding. The issue's goals: ≥ 5× faster end to end,
LIVI preprocessing (decode + resample, vocal detection, log-mel) ≤ 0.5 s per track.

    python benchmarks/speed_cpu.py AUDIO... [--model CHECKPOINT] [--params params.yaml] [--set KEY=VALUE ...]
        [--greedy] [--threads N] [--out results/benchmarks/speed_cpu.json]

Models, vocal detection and the teacher's decoding come from the settings (models.*, vocals.*,
asr.compression_ratio_threshold, paths.models). Without --model, LIVI uses the models.whisper encoder
with a random head of the paper's shape (speed does not depend on the head's weights). Only tracks
"ok" for both pipelines enter the ratio. Prints the summary; writes it with the per-track table to --out.
"""

import argparse
import json
import sys
import time

import numpy as np
import pandas as pd
import torch

from paperlib.lyrics import asr, text_embedding, vocals
from paperlib.model import checkpoint, inference
from paperlib.model.livi import HeadConfig, LiviHead, LiviModel, load_whisper_encoder
from paperlib.runtime import audio, config
from paperlib.runtime.io import atomic_path, rounded_tree
from paperlib.weights.packaged import resolve_model


def teacher_track(path, detector, settings: config.Vocals, transcriber, embedder) -> dict:
    """The teacher's per-track work (paperlib.lyrics.teacher.run_teacher) with timings in seconds."""
    row = {}
    start = time.perf_counter()
    wave = audio.load_audio(path)
    row["t_decode_s"] = time.perf_counter() - start
    start = time.perf_counter()
    found = vocals.vocal_chunks(wave, detector, **settings.chunking())
    row["t_detect_s"] = time.perf_counter() - start
    row |= {"status": found.status, "n_chunks": len(found.chunks), "duration_s": len(wave) / 16_000}
    if found.status == "ok":
        start = time.perf_counter()
        raw = transcriber.transcribe(found.chunks, progress=False)
        row["t_asr_s"] = time.perf_counter() - start
        start = time.perf_counter()
        cleaned = [t for t in (asr.clean_transcript(r) for r in raw) if t is not None]
        if cleaned:
            text_embedding.track_vector(embedder.embed(cleaned))
        row["t_text_s"] = time.perf_counter() - start
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", nargs="+", help="audio files or folders")
    parser.add_argument("--model", help="LIVI checkpoint folder (default: random head on --whisper)")
    parser.add_argument("--params", default="params.yaml", help="settings file (paperlib.runtime.config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "--greedy",
        action="store_true",
        help="teacher decodes greedily only (no temperature fallback): a conservative lower bound",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--limit", type=int, default=None, help="first N tracks only")
    parser.add_argument(
        "--out", default="results/benchmarks/speed_cpu.json", help="JSON file of the summary and per-track table"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    tracks = audio.list_audio(args.audio)[: args.limit]
    cfg = config.load(args.params, args.overrides)
    detector = vocals.detector_for(cfg.vocals)
    whisper = resolve_model(cfg.models.whisper, cfg.paths.models)
    if args.model:
        model = checkpoint.load_checkpoint(args.model, cfg.paths.models)
        features = checkpoint.load_feature_extractor(args.model)
    else:
        from transformers import WhisperFeatureExtractor

        encoder = load_whisper_encoder(whisper)
        torch.manual_seed(0)
        model = LiviModel(encoder, LiviHead(HeadConfig(width=encoder.config.d_model, target_dim=384)))
        features = WhisperFeatureExtractor.from_pretrained(whisper)
    transcriber = asr.Transcriber(
        whisper,
        batch_size=1,
        compression_ratio_threshold=cfg.asr.compression_ratio_threshold,
        language=cfg.asr.language or None,
        **({"temperatures": (0.0,)} if args.greedy else {}),
    )
    embedder = text_embedding.TextEmbedder(resolve_model(cfg.models.text, cfg.paths.models))

    livi_batch_1 = inference.Inference(model, features, detector, cfg.vocals, batch_size=1)
    livi_batch_1.embed(tracks[:1], window=1)  # warm-up
    teacher_track(tracks[0][1], detector, cfg.vocals, transcriber, embedder)
    livi = livi_batch_1.embed(tracks, window=1).manifest
    teacher = pd.DataFrame(
        [{"id": i} | teacher_track(p, detector, cfg.vocals, transcriber, embedder) for i, p in tracks]
    )

    both = (livi["status"].to_numpy() == "ok") & (teacher["status"].to_numpy() == "ok")
    livi, teacher = livi[both].reset_index(drop=True), teacher[both].reset_index(drop=True)
    livi["preprocess_s"] = livi[["t_decode_s", "t_detect_s", "t_features_s"]].sum(axis=1)
    livi["total_s"] = livi["preprocess_s"] + livi["t_model_s"]
    teacher["total_s"] = teacher[["t_decode_s", "t_detect_s", "t_asr_s", "t_text_s"]].sum(axis=1)
    summary = {
        "tracks": int(both.sum()),
        "chunks": int(livi["n_chunks"].sum()),
        "mean_duration_s": float(livi["duration_s"].mean()),
        "threads": torch.get_num_threads(),
        "teacher_decoding": "greedy"
        if args.greedy
        else f"temperature fallback, compression ratio > {cfg.asr.compression_ratio_threshold}",
        "livi_per_track_s": {
            c: float(livi[c].mean())
            for c in ["t_decode_s", "t_detect_s", "t_features_s", "t_model_s", "preprocess_s", "total_s"]
        },
        "teacher_per_track_s": {
            c: float(teacher[c].mean()) for c in ["t_decode_s", "t_detect_s", "t_asr_s", "t_text_s", "total_s"]
        },
    }
    summary["speedup_end_to_end"] = summary["teacher_per_track_s"]["total_s"] / summary["livi_per_track_s"]["total_s"]
    summary["speedup_model_only"] = (
        summary["teacher_per_track_s"]["t_asr_s"] + summary["teacher_per_track_s"]["t_text_s"]
    ) / summary["livi_per_track_s"]["t_model_s"]
    table = livi[["id", "duration_s", "n_chunks", "preprocess_s", "t_model_s", "total_s"]].merge(
        teacher[["id", "t_asr_s", "t_text_s", "total_s"]], on="id", suffixes=("_livi", "_teacher")
    )
    print(table.round(3).to_string(index=False), file=sys.stderr)
    print(json.dumps(summary, indent=2))
    with atomic_path(args.out) as tmp, open(tmp, "w") as handle:
        record = {"summary": summary, "tracks": table.to_dict(orient="records")}
        json.dump(rounded_tree(record), handle, indent=2)  # seconds and ratios at 6 decimals


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
