"""Corpus generation time (issue 4), and optionally the corpus's quality for the teacher.

Speed: wall time and CPU time (this process + Piper worker processes) of `corpus.generate`
for each size, in fresh folders; on a shared machine the CPU time is the stable number.
Quality (--whisper MODEL_DIR, e.g. models/whisper-base from `paperlib models --out models/`):
word error rate of Whisper against the ground-truth lyrics on a sample of vocal tracks per
SNR band (each track's sung lines are grouped into <= 30 s windows, transcribed, joined), and
Silero VAD: share of vocal / instrumental tracks passing `vocals.vocal_chunks` (mean
vocalness >= 0.5). Quality runs on the corpus generated for the last size.

    python benchmarks/corpus_speed.py [--sizes tiny demo] [--workers 2] [--whisper models/whisper-base [--greedy]]
        [--corpora FOLDER] [--out results/benchmarks/corpus_speed.json]

Prints one JSON line per size, then the whole report, which it writes to --out.
"""

import argparse
import json
import os
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from paperlib import CHUNK_SECONDS, SAMPLE_RATE
from paperlib.data import corpus
from paperlib.runtime.io import write_json

BANDS = ((0, 5), (5, 10), (10, 15.01))


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (Piper workers)."""
    return sum(
        getattr(resource.getrusage(who), f)
        for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
        for f in ("ru_utime", "ru_stime")
    )


def speed(size: str, out: Path, workers: int | None) -> dict:
    start, cpu = time.perf_counter(), _cpu_seconds()
    table = corpus.generate(out, size=size, seed=0, workers=workers)
    seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
    vocal = table[table["kind"] != "instrumental"]
    coverage = [sum(e - s for s, e in json.loads(v)) / d for v, d in zip(vocal["vocal_segments"], vocal["duration_s"])]
    return {
        "size": size,
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "tracks": len(table),
        "works": table["work"].nunique(),
        "audio_minutes": round(table["duration_s"].sum() / 60, 1),
        "duration_s_range": [round(table["duration_s"].min(), 1), round(table["duration_s"].max(), 1)],
        "vocal_coverage_min": round(min(coverage), 2),
        "kinds": table["kind"].value_counts().to_dict(),
        "works_per_split": table.groupby("split")["work"].nunique().to_dict(),
    }


def windows(segments: list, lines: list[str]) -> list[tuple[float, float, str]]:
    """Consecutive sung lines grouped into windows of at most 30 s: (start_s, end_s, text)."""
    out = []
    for (s, e), line in zip(segments, lines):
        if out and e - out[-1][0] <= CHUNK_SECONDS:
            out[-1] = (out[-1][0], e, out[-1][2] + " " + line)
        else:
            out.append((s, e, line))
    return out


def quality(folder: Path, whisper: str, per_band: int, greedy: bool) -> dict:
    from paperlib.lyrics import asr, vocals

    table = pd.read_csv(folder / "tracks.csv", keep_default_na=False)
    vocal = table[table["kind"] != "instrumental"].copy()
    vocal["snr"] = vocal["snr_db"].astype(float)
    decoding = dict(temperatures=(0.0,), compression_ratio_threshold=None, logprob_threshold=None) if greedy else {}
    transcriber = asr.Transcriber(whisper, batch_size=8, language="en", **decoding)
    start = time.perf_counter()
    wer = {}
    for low, high in BANDS:
        band = vocal[(vocal["snr"] >= low) & (vocal["snr"] < high)]
        band = band.sample(min(per_band, len(band)), random_state=0)
        pieces, owners = [], []
        for row in band.itertuples():
            audio, _ = sf.read(folder / row.path, dtype="float32")
            for s, e, _ in windows(json.loads(row.vocal_segments), row.lyrics.split("\n")):
                pieces.append(audio[int(s * SAMPLE_RATE) : int(e * SAMPLE_RATE)])
                owners.append(row.id)
        chunks = np.zeros((len(pieces), int(CHUNK_SECONDS * SAMPLE_RATE)), np.float32)
        for i, piece in enumerate(pieces):
            chunks[i, : len(piece)] = piece
        texts = transcriber.transcribe(chunks)
        hypothesis = {i: " ".join(t for t, o in zip(texts, owners) if o == i) for i in band["id"]}
        rates = [asr.word_error_rate(row.lyrics.replace("\n", " "), hypothesis[row.id]) for row in band.itertuples()]
        wer[f"{low}-{int(high)} dB"] = {
            "tracks": len(rates),
            "mean_wer": round(float(np.mean(rates)), 3),
            "max_wer": round(float(np.max(rates)), 3),
        }
    transcribe_s = time.perf_counter() - start
    detector = vocals.SileroDetector()
    vad = {"vocal": [], "instrumental": []}
    for row in table.itertuples():
        audio, _ = sf.read(folder / row.path, dtype="float32")
        result = vocals.vocal_chunks(audio, detector)
        vad["instrumental" if row.kind == "instrumental" else "vocal"].append(
            (result.status == "ok", result.mean_vocalness)
        )
    vad_summary = {
        kind: {
            "tracks": len(v),
            "passed": sum(ok for ok, _ in v),
            "mean_vocalness_min": round(min(m for _, m in v), 3),
            "mean_vocalness_max": round(max(m for _, m in v), 3),
        }
        for kind, v in vad.items()
    }
    return {
        "whisper": whisper,
        "decoding": "greedy" if greedy else "asr.Transcriber defaults (temperature fallback)",
        "transcribe_seconds": round(transcribe_s, 1),
        "wer_per_snr_band": wer,
        "silero_vad": vad_summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", nargs="+", default=["tiny", "demo"])
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--corpora", default=None, help="folder for the corpora (default: a temporary one)")
    parser.add_argument("--out", default="results/benchmarks/corpus_speed.json", help="JSON file of the report")
    parser.add_argument("--whisper", default=None, help="Whisper model folder: also measure WER and VAD")
    parser.add_argument("--per-band", type=int, default=12, help="tracks per SNR band for the WER")
    parser.add_argument("--greedy", action="store_true", help="greedy decoding only (no temperature fallback)")
    args = parser.parse_args()
    base = Path(args.corpora or tempfile.mkdtemp(prefix="corpus_speed_"))
    report = {"cpus": os.cpu_count(), "workers": args.workers, "runs": []}
    for size in args.sizes:
        report["runs"].append(speed(size, base / size, args.workers))
        print(json.dumps(report["runs"][-1]), flush=True)
    if args.whisper:
        report["quality"] = quality(base / args.sizes[-1], args.whisper, args.per_band, args.greedy)
    print(json.dumps(report, indent=1))
    write_json(report, args.out)


if __name__ == "__main__":
    main()
