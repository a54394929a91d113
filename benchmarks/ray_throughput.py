"""Tracks per second of `paperlib embed`, local engine vs Ray Data, and Ray's overhead per track.

Random weights throughout (the numbers are speeds, not results). Tracks are generated tones of --seconds
seconds at 22.05 kHz (decoded and resampled like real files), all vocal for the stand-in energy detector, so
every track goes through decode → vocal chunks → log-mel → encoder + head.

CPU mode (default): the demo's model shape ("cpu": Whisper base encoder, d_model 512, 6 layers, 80 mels; head
[3072, 2048, 2048, 1536] → 384) and a "tiny" one (d_model 32, 1 layer: almost no model time, so what remains is
decoding and Ray's own cost), `--tracks` tracks, local engine then Ray (a local instance with --cpus CPUs, one
model actor). Ray's start-up is timed apart; overhead per track = (Ray wall − local wall) / tracks.
GPU mode (--gpu): the paper's shape (Whisper large-v3-turbo encoder: d_model 1280, 32 layers, 128 mels; head →
768) on CUDA, for each --batch-sizes (chunks per encoder batch), local and Ray (one actor per GPU).

Writes OUT.json and OUT.md (default results/benchmarks/ray_throughput) with os.getloadavg() before and after: the
machine may be shared, and a loaded CPU slows both engines.

    python benchmarks/ray_throughput.py [--tracks 16] [--seconds 60] [--cpus 2]
    python benchmarks/ray_throughput.py --gpu [--tracks 256] [--batch-sizes 8 16 32 64 128]
"""

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from paperlib.lyrics.vocals import EnergyDetector
from paperlib.model import inference
from paperlib.runtime.config import Config, Evaluate, HeadConfig, Scale, Vocals

os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")  # a loaded machine starts Ray's agents slowly

SHAPES = {
    "cpu": dict(d_model=512, encoder_layers=6, encoder_attention_heads=8, encoder_ffn_dim=2048, num_mel_bins=80),
    "gpu": dict(d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, num_mel_bins=128),
    "tiny": dict(d_model=32, encoder_layers=1, encoder_attention_heads=2, encoder_ffn_dim=64, num_mel_bins=80),
}
TARGET_DIM = {"cpu": 384, "gpu": 768, "tiny": 8}
HIDDEN = {"tiny": (16,)}  # else the paper's
VOCALS = Vocals(detector="silero", detector_model="")  # recorded in the checkpoint; the benchmark's detector:


def make_checkpoint(folder: Path, shape: str) -> Path:
    """A checkpoint folder of random weights of `shape` (seed 0)."""
    import torch
    from transformers import WhisperConfig, WhisperFeatureExtractor

    from paperlib.model.checkpoint import save_checkpoint
    from paperlib.model.livi import LiviHead, LiviModel, load_whisper_encoder
    from paperlib.runtime.config import to_dict

    torch.manual_seed(0)
    encoder = load_whisper_encoder(config=WhisperConfig(**SHAPES[shape]))
    widths = {"hidden": HIDDEN[shape]} if shape in HIDDEN else {}
    head = LiviHead(HeadConfig(width=SHAPES[shape]["d_model"], target_dim=TARGET_DIM[shape], **widths))
    extractor = WhisperFeatureExtractor(feature_size=SHAPES[shape]["num_mel_bins"])
    save_checkpoint(folder, LiviModel(encoder, head), extractor, extra={"config": {"vocals": to_dict(VOCALS)}})
    return folder


def make_tracks(folder: Path, n: int, seconds: float) -> list[tuple[str, Path]]:
    """n tones of `seconds` s at 22.05 kHz, 16-bit wav."""
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * 22_050)) / 22_050
    tracks = []
    for i in range(n):
        wave = 0.3 * np.sin(2 * np.pi * rng.uniform(150, 900) * t) + 0.02 * rng.standard_normal(len(t))
        sf.write(folder / f"t{i:05d}.wav", wave.astype(np.float32), 22_050, subtype="PCM_16")
        tracks.append((f"t{i:05d}", folder / f"t{i:05d}.wav"))
    return tracks


def timed_run(tracks, out: Path, checkpoint: Path, engine: str, batch_size: int, device: str, shape: str) -> dict:
    """Wall seconds of one inference.embed_to into an npz, the chunk count, and the summed per-track step timings
    (model: encoder + head; prep: decode, vocal chunks, log-mel): where the time went."""
    cfg = dataclasses.replace(
        Config(device=device),
        evaluate=Evaluate(batch_size=batch_size),
        scale=Scale(engine=engine, track_batch=max(1, batch_size // 2)),
    )
    start = time.perf_counter()
    job = inference.EmbedJob.of(checkpoint, VOCALS, cfg, detector=EnergyDetector)
    manifest = inference.embed_to(out, job, tracks, cfg)
    seconds = time.perf_counter() - start
    assert (manifest["status"] == "ok").all(), manifest["status"].value_counts()
    chunks = int(manifest["n_chunks"].sum())
    return {
        "shape": shape,
        "engine": engine,
        "batch_size": batch_size,
        "tracks": len(tracks),
        "chunks": chunks,
        "wall_s": round(seconds, 2),
        "tracks_per_s": round(len(tracks) / seconds, 3),
        "chunks_per_s": round(chunks / seconds, 3),
        "model_s": round(float(manifest["t_model_s"].sum()), 2),
        "prep_s": round(float(manifest[["t_decode_s", "t_detect_s", "t_features_s"]].sum().sum()), 2),
    }


def start_ray(cpus: int | None) -> float:
    """Seconds to start a local Ray instance."""
    import ray

    start = time.perf_counter()
    ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False)
    return time.perf_counter() - start


def hours_per_million(tracks_per_s: float) -> float:
    return round(1e6 / tracks_per_s / 3600, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpu", action="store_true", help="the paper's shapes on CUDA")
    parser.add_argument("--tracks", type=int, default=None, help="default 16 (CPU), 256 (GPU)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of each generated track")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=None, help="default 8 (CPU), 8..128 (GPU)")
    parser.add_argument("--cpus", type=int, default=None, help="CPUs of the local Ray instance (default: all)")
    parser.add_argument(
        "--more-tracks", type=int, default=64, help="CPU mode: the tiny shape again with this many tracks (0: not)"
    )
    parser.add_argument("--out", default="results/benchmarks/ray_throughput", help="writes OUT.json and OUT.md")
    args = parser.parse_args()
    shapes, device = (["gpu"], "cuda") if args.gpu else (["cpu", "tiny"], "cpu")
    n = args.tracks or (256 if args.gpu else 16)
    batch_sizes = args.batch_sizes or ([8, 16, 32, 64, 128] if args.gpu else [8])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "audio").mkdir()
        tracks = make_tracks(tmp / "audio", n, args.seconds)
        checkpoints = {shape: make_checkpoint(tmp / shape, shape) for shape in shapes}
        more = make_tracks(tmp / "audio", args.more_tracks, args.seconds) if "tiny" in shapes else []
        plan = [(tracks, shape, b) for shape in shapes for b in batch_sizes] + [(more, "tiny", 8)] * bool(more)
        runs = [timed_run(t, tmp / "l.npz", checkpoints[s], "local", b, device, s) for t, s, b in plan]
        ray_start_s = start_ray(args.cpus)
        runs += [timed_run(t, tmp / "r.npz", checkpoints[s], "ray", b, device, s) for t, s, b in plan]
    report = summary(runs, ray_start_s, shapes, device, args, load_before)
    write(report, Path(args.out))


def summary(runs: list[dict], ray_start_s: float, shapes: list[str], device: str, args, load_before) -> dict:
    import torch

    local = {(r["shape"], r["batch_size"], r["tracks"]): r for r in runs if r["engine"] == "local"}
    for run in runs:
        run["hours_per_million_tracks"] = hours_per_million(run["tracks_per_s"])
        if run["engine"] == "ray":
            base = local[run["shape"], run["batch_size"], run["tracks"]]
            run["overhead_s_per_track"] = round((run["wall_s"] - base["wall_s"]) / run["tracks"], 4)
    return {
        "ray_overhead_tiny": marginal_overhead([r for r in runs if r["shape"] == "tiny" and r["batch_size"] == 8]),
        "shapes": {shape: SHAPES[shape] for shape in shapes},
        "device": device if device == "cpu" else torch.cuda.get_device_name(0),
        "cpus": os.cpu_count(),
        "ray_cpus": args.cpus,
        "torch_threads": torch.get_num_threads(),
        "track_seconds": args.seconds,
        "ray_start_s": round(ray_start_s, 1),
        "loadavg_before": [round(x, 2) for x in load_before],
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "runs": runs,
    }


def marginal_overhead(runs: list[dict]) -> dict | None:
    """Ray's extra seconds per additional track and per run (actor start, first imports), from the tiny shape at
    two track counts: the difference of (Ray wall − local wall) between them, per track of difference."""
    extra = {r["tracks"]: r["wall_s"] for r in runs if r["engine"] == "ray"}
    base = {r["tracks"]: r["wall_s"] for r in runs if r["engine"] == "local"}
    if len(extra) < 2:
        return None
    small, large = sorted(extra)[:2]
    per_track = ((extra[large] - base[large]) - (extra[small] - base[small])) / (large - small)
    return {"s_per_track": round(per_track, 4), "s_per_run": round(extra[small] - base[small] - per_track * small, 2)}


def write(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    shapes = ", ".join(f"{k}: {v['d_model']}-d, {v['encoder_layers']} layers" for k, v in report["shapes"].items())
    lines = [
        f"Encoders ({shapes}), device {report['device']}, {report['cpus']} CPUs, tracks of "
        f"{report['track_seconds']:.0f} s; Ray start-up {report['ray_start_s']} s (not in the walls); load average "
        f"before {report['loadavg_before']}, after {report['loadavg_after']}. model s, prep s: per-track step "
        "timings summed (prep: decode, vocal chunks, log-mel).",
        "",
        "| shape | engine | batch | tracks | chunks | wall s | tracks/s | chunks/s | model s | prep s "
        "| Ray overhead s/track | h per 1M tracks |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['shape']} | {r['engine']} | {r['batch_size']} | {r['tracks']} | {r['chunks']} | {r['wall_s']} | "
            f"{r['tracks_per_s']} | {r['chunks_per_s']} | {r['model_s']} | {r['prep_s']} | "
            f"{r.get('overhead_s_per_track', '')} | {r['hours_per_million_tracks']} |"
        )
    if report["ray_overhead_tiny"]:
        lines += ["", f"Ray's overhead (tiny shape, two track counts): {report['ray_overhead_tiny']}"]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
