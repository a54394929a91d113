"""CPU runtime per track: the four harmonic cover-song systems of the CLEWS release beside LIVI, at their real shapes.

What is measured: seconds of wall-clock time (time.perf_counter, torch.inference_mode) to turn one synthetic mono
16 kHz track of --seconds (default 240 s: the paper's cut) into its track vector, per system, on this machine's CPU.

  Harmonic systems (ByteCover2x, CLEWS, CQTNet, DVINet+; paperlib.harmonic.architectures): the paper's protocol,
    paperlib.harmonic.release.embed_track (first 240 s, shingles of the model's training length every 5 s,
    `harmonic.batch_size` shingles per forward pass; the CQT front end is inside each model) + track_vector. The
    shapes are the `model:` sections of the release's Discogs-VI configurations (github sony/clews,
    config/dvi-*.yaml; copied below, file by file).
  LIVI: log-mel of the track's 30 s chunks (the Whisper feature extractor; a fully vocal track, so vocal detection and
    chunking are left out: the chunks are the consecutive 30 s windows) + the model step
    paperlib.model.inference.embed_features (frozen Whisper encoder + head, `evaluate.batch_size` chunks at a time) +
    the track vector (paperlib.runtime.vectors.track_embedding). Two encoders: `livi` runs the configured one
    (`models.whisper`, offline under `paths.models`: the demo's whisper-base), `livi-turbo` the paper's
    whisper-large-v3-turbo encoder shape (TURBO_ENCODER, 128 mel bins). The head has the paper's shape
    (paperlib.runtime.config.HeadConfig defaults) on the encoder's width.

ALL WEIGHTS ARE RANDOM (seeded; `livi` keeps the packaged Whisper encoder): the cost of a forward pass does not depend
on the weights' values, so no checkpoint is needed. Each system is warmed with one untimed call on a short input (one
segment / one chunk), then the whole per-track protocol is timed --repeats times.

    python benchmarks/harmonic_speed.py [--threads N] [--repeats 1] [--seconds 240] [--only NAME ...]
        [--params params.yaml] [--set KEY=VALUE ...] [--out results/benchmarks/harmonic_speed.json]

NAME: livi, livi-turbo, bytecover2x, clews, cqtnet, dvinetp (or the system names LIVI, ByteCover2, CLEWS, CQTNet,
DVINet).
Writes the JSON {"settings": {...}, "rows": [{"system", "architecture", "params_M", "seconds_per_track",
"segments", ...}]} to --out and a Markdown table beside it (same name, .md), both atomically.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from paperlib.harmonic.architectures import build_model
from paperlib.harmonic.release import embed_track, track_vector
from paperlib.model.features import log_mel
from paperlib.runtime import config, kernels
from paperlib.runtime.io import atomic_path, rounded_tree

SR = 16000
CHUNK_S = 30.0  # LIVI's Whisper chunk
SOURCE_REPO = "github sony/clews (indexed as the fork progsi/clews)"

# The `model:` sections of the release's Discogs-VI configurations, value for value (facts, not code).
RELEASE_MODELS = {
    "bytecover2x": {
        "source": "config/dvi-bytecover2x.yaml (commit 259878be2a04bdcbc66d6c6fd6ee2eb7cb827c00)",
        "model": {
            "name": "bytecover2x",
            "shingling": {"len": 150, "hop": 150},
            "cqt": {"hoplen": 0.023, "noctaves": 7, "nbinsoct": 12, "pool": {"len": 5, "hop": 5}},
            "ncha": 2048,
            "zdim": 1536,
            "maxcliques": 100000,
            "smooth": 0.1,
            "margin": 0.3,
            "lamb": 0,
        },
    },
    "clews": {
        "source": "config/dvi-clews.yaml (commits eb44d74b3db5726d1daae84719c0f3a13cd8d4cc, "
        "13c122f14e5f87cceeb1e11406baca054fe859dd; same model: section)",
        "model": {
            "name": "clews",
            "shingling": {"len": 20, "hop": 20},
            "cqt": {"hoplen": 0.02, "noctaves": 7, "nbinsoct": 12, "fscale": 1, "pool": 5},
            "frontend": {"cqtpow": 0.5, "channels": [128, 256]},
            "backbone": {"blocks": [3, 4, 6, 3], "channels": [256, 512, 1024, 2048], "down": [1, 2, 2, 1]},
            "zdim": 1024,
            "loss": {"redux": {"pos": "bpwr-5", "neg": "min"}, "gamma": 5, "epsilon": 1e-6},
        },
    },
    "cqtnet": {
        "source": "config/dvi-cqtnet.yaml (commits eb44d74b3db5726d1daae84719c0f3a13cd8d4cc, "
        "259878be2a04bdcbc66d6c6fd6ee2eb7cb827c00; same model: section)",
        "model": {
            "name": "cqtnet",
            "shingling": {"len": 150, "hop": 150},
            "cqt": {"hoplen": 0.02, "noctaves": 7, "nbinsoct": 12, "pool": {"len": 17, "hop": 15}},
            "zdim": 300,
            "maxcliques": 100000,
        },
    },
    "dvinetp": {
        "source": "config/dvi-dvinetp.yaml (commits eb44d74b3db5726d1daae84719c0f3a13cd8d4cc, "
        "259878be2a04bdcbc66d6c6fd6ee2eb7cb827c00; same model: section)",
        "model": {
            "name": "dvinetp",
            "shingling": {"len": 150, "hop": 150},
            "cqt": {"hoplen": 0.02, "noctaves": 7, "nbinsoct": 12, "pool": {"len": 17, "hop": 15}},
            "ncha_in": 48,
            "zdim": 512,
            "margin": 0.3,
            "lamb": 0.02,
        },
    },
}

SYSTEMS = {
    "livi": "LIVI",
    "livi-turbo": "LIVI (large-v3-turbo encoder)",
    "bytecover2x": "ByteCover2",
    "clews": "CLEWS",
    "cqtnet": "CQTNet",
    "dvinetp": "DVINet",
}
# The encoder of openai/whisper-large-v3-turbo (its config.json: the paper's LIVI encoder), value for value (facts).
TURBO_ENCODER = {
    "num_mel_bins": 128,
    "d_model": 1280,
    "encoder_layers": 32,
    "encoder_attention_heads": 20,
    "encoder_ffn_dim": 5120,
    "max_source_positions": 1500,
}
PUBLISHED_PARAMS_M = {"bytecover2x": 202, "clews": 199, "cqtnet": 35, "dvinetp": 11}  # the papers' model sizes
# Training-only classifiers over `maxcliques` classes, unused at inference (paperlib.harmonic.architectures docstrings);
# DVINet+'s `fc` is its embedding projection and CLEWS has no classifier.
TRAINING_CLASSIFIERS = {"cqtnet": "fc1", "bytecover2x": "fc"}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def synthetic_track(seconds: float, seed: int = 0) -> np.ndarray:
    """Seeded mono 16 kHz test signal [T] float32: a few harmonic tones that change every 2 s, plus noise."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * SR))
    t = np.arange(n) / SR
    wave = 0.05 * rng.standard_normal(n)
    step = 2 * SR
    for start in range(0, n, step):
        span = slice(start, min(start + step, n))
        for f0 in 110.0 * 2.0 ** (rng.integers(0, 36, size=3) / 12.0):
            for k, gain in enumerate((0.3, 0.15, 0.08), start=1):
                wave[span] += gain * np.sin(2 * np.pi * k * f0 * t[span])
    return (wave / np.abs(wave).max() * 0.9).astype(np.float32)


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def timed(fn, repeats: int, label: str) -> tuple[list[float], object]:
    runs, out = [], None
    for _ in tqdm(range(repeats), desc=label, leave=False, file=sys.stderr):
        start = time.perf_counter()
        out = fn()
        runs.append(time.perf_counter() - start)
    return runs, out


def bench_harmonic(name: str, wave: np.ndarray, cfg: config.Config, repeats: int) -> dict:
    spec = RELEASE_MODELS[name]
    torch.manual_seed(0)
    model = build_model(spec["model"], sr=SR).eval()
    params = count(model)
    unused = [TRAINING_CLASSIFIERS[name]] if name in TRAINING_CLASSIFIERS else []
    assert all(isinstance(getattr(model, a), torch.nn.Linear) for a in unused)
    unused_params = sum(count(getattr(model, a)) for a in unused)
    cqt_kernels = sum(b.numel() for n, b in model.named_buffers() if n.startswith("cqt"))
    hop_s, max_s, batch = cfg.harmonic.hop_s, cfg.harmonic.max_seconds, cfg.harmonic.batch_size
    with torch.inference_mode():
        embed_track(model, wave[: model.segment_samples], hop_s=hop_s, max_seconds=max_s, batch_size=batch)  # warm
        runs, segments = timed(
            lambda: embed_track(model, wave, hop_s=hop_s, max_seconds=max_s, batch_size=batch), repeats, name
        )
        vector = track_vector(segments)
    assert vector.shape == (model.zdim,) and np.isfinite(vector).all()
    return {
        "system": SYSTEMS[name],
        "architecture": name,
        "config_source": f"{SOURCE_REPO}: {spec['source']}, model: section",
        "params_M": params / 1e6,
        "params_inference_M": (params - unused_params) / 1e6,
        "unused_classifier": unused[0] if unused else None,
        "cqt_kernel_buffers_M": cqt_kernels / 1e6,
        "published_params_M": PUBLISHED_PARAMS_M[name],
        "zdim": model.zdim,
        "segment_seconds": model.segment_seconds,
        "hop_seconds": hop_s,
        "segments": int(len(segments)),
        "batch_size": batch,
        "seconds_per_track": float(np.mean(runs)),
        "seconds_min": float(np.min(runs)),
        "seconds_runs": [float(r) for r in runs],
        "weights": "random (seeded)",
    }


def livi_encoder(shape: str, cfg: config.Config):
    """(encoder, feature extractor, name, weights note) of LIVI's measured encoder: "packaged" = `models.whisper` as
    packaged offline; "large-v3-turbo" = the paper's encoder shape (TURBO_ENCODER) with random (seeded) weights."""
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    from paperlib.model.livi import load_whisper_encoder
    from paperlib.weights.packaged import resolve_model

    if shape == "packaged":
        whisper = resolve_model(cfg.models.whisper, cfg.paths.models)
        note = f"{Path(whisper).name} encoder as packaged, random (seeded) head"
        return load_whisper_encoder(whisper), WhisperFeatureExtractor.from_pretrained(whisper), Path(whisper).name, note
    torch.manual_seed(0)
    encoder = WhisperEncoder(WhisperConfig(**TURBO_ENCODER)).eval()
    features = WhisperFeatureExtractor(feature_size=TURBO_ENCODER["num_mel_bins"])
    return encoder, features, "whisper-large-v3-turbo", "large-v3-turbo encoder shape, random (seeded) weights and head"


def bench_livi(wave: np.ndarray, cfg: config.Config, repeats: int, shape: str = "packaged") -> dict:
    from paperlib.model.inference import embed_features
    from paperlib.model.livi import LiviHead, LiviModel
    from paperlib.runtime.config import HeadConfig
    from paperlib.runtime.vectors import track_embedding

    encoder, features, encoder_name, weights = livi_encoder(shape, cfg)
    torch.manual_seed(0)
    head_config = HeadConfig(width=encoder.config.d_model)  # the paper's head shape on this encoder's width
    model = LiviModel(encoder, LiviHead(head_config)).eval()
    batch = cfg.evaluate.batch_size
    signal = wave[: int(SR * cfg.harmonic.max_seconds)] if cfg.harmonic.max_seconds else wave
    step = int(SR * CHUNK_S)
    chunks = [signal[i : i + step] for i in range(0, len(signal), step)]  # fully vocal: consecutive 30 s windows

    parts: dict[str, list[float]] = {"features": [], "model": []}

    def protocol():
        start = time.perf_counter()
        mel = log_mel(features, chunks)
        parts["features"].append(time.perf_counter() - start)
        start = time.perf_counter()
        vectors, _ = embed_features(model, mel, batch, "cpu")
        parts["model"].append(time.perf_counter() - start)
        return track_embedding(vectors)

    name = "livi" if shape == "packaged" else "livi-turbo"
    with torch.inference_mode():
        embed_features(model, log_mel(features, chunks[:1]), batch, "cpu")  # warm
        runs, vector = timed(protocol, repeats, name)
    assert vector.shape == (head_config.target_dim,) and np.isfinite(vector).all()
    head = count(model.head)
    return {
        "system": SYSTEMS[name],
        "architecture": name,
        "config_source": f"encoder {encoder_name} ({weights}); head paperlib.runtime.config.HeadConfig defaults "
        f"(the paper's): hidden {list(head_config.hidden)}, {head_config.num_heads} pooling head(s), "
        f"target {head_config.target_dim}",
        "encoder": encoder_name,
        "params_M": (count(model.encoder) + head) / 1e6,
        "params_inference_M": (count(model.encoder) + head) / 1e6,
        "params_encoder_M": count(model.encoder) / 1e6,
        "params_head_M": head / 1e6,
        "zdim": head_config.target_dim,
        "segment_seconds": CHUNK_S,
        "hop_seconds": CHUNK_S,
        "segments": len(chunks),
        "batch_size": batch,
        "seconds_per_track": float(np.mean(runs)),
        "seconds_min": float(np.min(runs)),
        "seconds_runs": [float(r) for r in runs],
        "features_seconds_per_track": float(np.mean(parts["features"])),
        "model_seconds_per_track": float(np.mean(parts["model"])),
        "weights": weights,
    }


def markdown(settings: dict, rows: list[dict]) -> str:
    lines = [
        f"# CPU seconds per {settings['audio_seconds']:g} s track (random weights)",
        "",
        f"{settings['cpu_model']}, {settings['threads']} torch thread(s), {settings['kernels']} kernels, "
        f"torch {settings['torch']}, "
        f"{settings['repeats']} timed run(s) after one warm-up; {settings['weights']}",
        "",
        "| System | Architecture | Params (M) | Params at inference (M) | zdim | Segment (s) | Segments "
        "| Batch | s / track |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['system']} | {r['architecture']} | {r['params_M']:.1f} | {r['params_inference_M']:.1f} "
            f"| {r['zdim']} | {r['segment_seconds']:g} | {r['segments']} | {r['batch_size']} "
            f"| {r['seconds_per_track']:.2f} |"
        )
    lines += ["", *(f"- {note}" for note in settings["notes"]), ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all CPU cores)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per system")
    parser.add_argument("--seconds", type=float, default=240.0, help="length of the synthetic track (s)")
    parser.add_argument("--only", nargs="+", metavar="NAME", help="these systems only (default: all five)")
    parser.add_argument("--params", default="params.yaml", help="settings file (paperlib.runtime.config)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--out", default="results/benchmarks/harmonic_speed.json", help="JSON output (.md beside)")
    args = parser.parse_args()

    aliases = {k: k for k in SYSTEMS} | {v.lower(): k for k, v in SYSTEMS.items()} | {"dvinet+": "dvinetp"}
    wanted = list(SYSTEMS) if not args.only else []
    for name in args.only or []:
        if name.lower() not in aliases:
            parser.error(f"unknown system {name!r} (known: {', '.join(SYSTEMS)})")
        wanted.append(aliases[name.lower()])
    wanted = list(dict.fromkeys(wanted))
    if args.repeats < 1 or args.seconds <= 0:
        parser.error("--repeats must be ≥ 1 and --seconds > 0")

    torch.set_num_threads(args.threads or len(os.sched_getaffinity(0)) or 1)
    cfg = config.load(args.params, args.overrides)
    wave = synthetic_track(args.seconds)

    rows = []
    progress = tqdm(wanted, desc="systems", file=sys.stderr)
    for name in progress:
        progress.set_postfix_str(SYSTEMS[name])
        rows.append(
            bench_livi(wave, cfg, args.repeats, "packaged" if name == "livi" else "large-v3-turbo")
            if name.startswith("livi")
            else bench_harmonic(name, wave, cfg, args.repeats)
        )
        tqdm.write(f"{rows[-1]['system']}: {rows[-1]['seconds_per_track']:.2f} s / track", file=sys.stderr)

    livi = next((r for r in rows if r["architecture"] == "livi"), None)
    settings = {
        "measured": "CPU wall-clock seconds to turn one synthetic track into its track vector (see each row)",
        "audio_seconds": args.seconds,
        "signal": "synthetic mono 16 kHz: seeded Gaussian noise + harmonic tones changing every 2 s (seed 0)",
        "sample_rate": SR,
        "harmonic_protocol": f"paperlib.harmonic.release.embed_track (first {cfg.harmonic.max_seconds:g} s, "
        f"shingles of the model's length every {cfg.harmonic.hop_s:g} s, {cfg.harmonic.batch_size} per forward "
        "pass) + track_vector",
        "livi_protocol": "Whisper log-mel of consecutive 30 s chunks (fully vocal track: no vocal detection) + "
        "paperlib.model.inference.embed_features + paperlib.runtime.vectors.track_embedding",
        "weights": "RANDOM weights (seeded; LIVI: the packaged Whisper encoder or the large-v3-turbo shape, random "
        "head): weights do not change cost",
        "livi_encoder": livi["encoder"] if livi else cfg.models.whisper,
        "paper_livi_encoder": "whisper-large-v3-turbo (the livi-turbo row: its encoder shape, random weights)",
        "threads": torch.get_num_threads(),
        "kernels": "native (PAPERLIB_NATIVE_KERNELS=1)"
        if os.environ.get(kernels.NATIVE) == "1"
        else f"pinned: {torch.backends.cpu.get_cpu_capability()} (paperlib.runtime.kernels, as the pipeline)",
        "repeats": args.repeats,
        "warmup": "one untimed call per system on a short input (one segment / one 30 s chunk)",
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python", *sys.argv]),
        "notes": [
            "Weights are random: a forward pass costs the same whatever the weights' values.",
            f"LIVI runs the {livi['encoder'] if livi else cfg.models.whisper} encoder (the demo's) with the paper's "
            "head shape; LIVI (large-v3-turbo encoder) runs the paper's encoder shape (32 layers, width 1280, 128 mel "
            "bins; random weights) with the same head: LIVI at the paper's scale.",
            "LIVI's seconds include the log-mel (features_seconds_per_track) and the model step "
            "(model_seconds_per_track); the harmonic systems' include their CQT front end.",
            "params_M counts all parameters (buffers such as the CQT kernels excluded); params_inference_M leaves out "
            "the training-only classifier (CQTNet fc1, ByteCover2x fc: Linear to 100000 cliques).",
        ],
    }
    if args.seconds != 240.0:
        settings["notes"].append(
            f"Measured on a {args.seconds:g} s track, not the paper's 240 s cut: no extrapolation."
        )
    order = list(SYSTEMS)
    rows.sort(key=lambda r: order.index(r["architecture"]))
    out = Path(args.out)
    with atomic_path(out) as tmp, open(tmp, "w") as handle:
        json.dump(rounded_tree({"settings": settings, "rows": rows}), handle, indent=2)  # seconds at 6 decimals
        handle.write("\n")
    with atomic_path(out.with_suffix(".md")) as tmp, open(tmp, "w") as handle:
        handle.write(markdown(settings, rows))
    print(markdown(settings, rows))


if __name__ == "__main__":
    main()
