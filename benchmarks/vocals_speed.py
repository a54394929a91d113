"""CPU time of vocal detection per 30 s chunk of audio.

Backends: Silero VAD (bundled weights; batched-ONNX "sequence" and TorchScript "jit" engines)
and Demucs with a TINY RANDOMLY INITIALISED HTDemucs (no pretrained demucs weights offline:
its time says nothing about the real htdemucs, which is far larger).

    python benchmarks/vocals_speed.py [--seconds 120] [--threads N] [--out results/benchmarks/vocals_speed.json]

Prints CPU and wall seconds per 30 s chunk for each backend and writes them as JSON to --out.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from paperlib import SAMPLE_RATE
from paperlib.lyrics.vocals import DemucsDetector, SileroDetector
from paperlib.runtime.io import write_json


def tiny_random_demucs_repo(folder: Path) -> Path:
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    model = HTDemucs(
        sources=["drums", "bass", "other", "vocals"], channels=4, t_layers=1, t_heads=1, dconv_comp=4, segment=4
    )
    save_with_checksum(serialize_model(model, OmegaConf.create({})), folder / "0000tiny.th")
    (folder / "tiny_htdemucs.yaml").write_text("models: ['0000tiny']\n")
    return folder


def seconds_per_chunk(detector, wave: np.ndarray) -> tuple[float, float]:
    """(CPU seconds, wall seconds) per 30 s of audio, after one warm-up call on 1 s."""
    detector.vocalness(wave[:SAMPLE_RATE])
    cpu, wall = time.process_time(), time.perf_counter()
    detector.vocalness(wave)
    chunks = len(wave) / SAMPLE_RATE / 30
    return (time.process_time() - cpu) / chunks, (time.perf_counter() - wall) / chunks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0, help="audio length to score")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--out", default="results/benchmarks/vocals_speed.json", help="JSON file of the timings")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    wave = (0.1 * rng.standard_normal(int(args.seconds * SAMPLE_RATE))).astype(np.float32)
    with tempfile.TemporaryDirectory() as folder:
        detectors = {
            "silero (sequence onnx)": SileroDetector(),
            "silero (jit)": SileroDetector(engine="jit"),
            "demucs (tiny, random weights)": DemucsDetector(
                "tiny_htdemucs", repo=tiny_random_demucs_repo(Path(folder))
            ),
        }
        print(f"{args.seconds:.0f} s of audio, torch threads {torch.get_num_threads()}")
        backends = {}
        for name, detector in detectors.items():
            cpu, wall = seconds_per_chunk(detector, wave)
            print(f"{name:32s} cpu {cpu:7.3f} s / 30 s chunk   wall {wall:7.3f} s / 30 s chunk")
            backends[name] = {"cpu_s_per_chunk": round(cpu, 4), "wall_s_per_chunk": round(wall, 4)}
    report = {"audio_s": args.seconds, "torch_threads": torch.get_num_threads(), "backends": backends}
    write_json(report, args.out)


if __name__ == "__main__":
    main()
