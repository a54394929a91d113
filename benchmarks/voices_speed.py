"""Speech synthesis cost (paperlib.data.voices) and, optionally, how well Whisper understands it.

Speed: per language, one sentence per voice after a warm-up call (model loaded); real-time factor = CPU seconds
of synthesis per second of speech (Kokoro and Piper run on one onnxruntime thread), and wall seconds likewise.
Quality (--whisper MODEL_DIR, e.g. models/whisper-base from `paperlib models --out models/`): word error rate
and detected language of Whisper (language detection on) per clip.

    python benchmarks/voices_speed.py [--voices kokoro/jm_kumo piper/en_US-joe-medium] [--whisper models/whisper-base]
        [--out results/benchmarks/voices_speed.json]

Prints one JSON line per clip, then the summary per voice, which it writes to --out when given.
"""

import argparse
import json
import time

import numpy as np

from paperlib import CHUNK_SAMPLES, SAMPLE_RATE
from paperlib.data import voices
from paperlib.runtime.io import write_json

SENTENCES = {
    "en": "We walked along the river in the evening light, and the city was quiet.",
    "fr": "Nous avons marché dans la forêt pendant toute la journée.",
    "de": "Ich möchte heute Abend mit meinen Freunden ins Kino gehen.",
    "it": "La mattina andiamo al mercato a comprare frutta e verdura.",
    "pt": "Amanhã vamos viajar para a praia com os nossos amigos.",
    "es": "Mañana vamos a viajar a la playa con nuestros amigos.",
}


def _clip(voice: str, language: str) -> dict:
    voices.speak("Un deux trois.", language, voice)  # warm-up: model and espeak loaded
    wall, cpu = time.perf_counter(), time.process_time()
    audio = voices.speak(SENTENCES[language], language, voice)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    seconds = len(audio) / SAMPLE_RATE
    row = dict(voice=voice, language=language, speech_s=seconds, rtf_cpu=cpu / seconds, rtf_wall=wall / seconds)
    return row | {"audio": audio}


def _transcribe(rows: list[dict], model: str) -> None:
    from paperlib.lyrics.asr import Transcriber, word_error_rate

    chunks = np.zeros((len(rows), CHUNK_SAMPLES), np.float32)
    for chunk, row in zip(chunks, rows):
        chunk[: len(row["audio"])] = row["audio"][:CHUNK_SAMPLES]
    found = Transcriber(model, language=None).run(chunks, progress=False)
    for row, text, language in zip(rows, found.texts, found.languages):
        row.update(wer=word_error_rate(SENTENCES[row["language"]], text), detected=language, transcript=text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--voices", nargs="+", default=["kokoro/jm_kumo", "piper/en_US-joe-medium"])
    parser.add_argument("--whisper", help="Whisper model folder: also measure the word error rate")
    parser.add_argument("--out", help="write the report (JSON) here")
    args = parser.parse_args()

    rows = [
        _clip(voice, language)
        for voice in args.voices
        for language in SENTENCES
        if voice in voices.voices_for(language)
    ]
    if args.whisper:
        _transcribe(rows, args.whisper)
    for row in rows:
        row.pop("audio")
        print(json.dumps(row, ensure_ascii=False))
    summary = {}
    for voice in args.voices:
        mine = [row for row in rows if row["voice"] == voice]
        speech = sum(row["speech_s"] for row in mine)
        summary[voice] = {
            "speech_s": speech,
            "rtf_cpu": sum(row["rtf_cpu"] * row["speech_s"] for row in mine) / speech,
            "rtf_wall": sum(row["rtf_wall"] * row["speech_s"] for row in mine) / speech,
        } | ({"mean_wer": float(np.mean([row["wer"] for row in mine]))} if args.whisper else {})
    report = {"summary": summary, "clips": rows}
    print(json.dumps(summary, indent=1))
    if args.out:
        write_json(report, args.out)


if __name__ == "__main__":
    main()
