"""The corpus' sung lines, synthesised once and stored compressed, so that a corpus costs its bands, not its voices.

A line is a job (text, language, voice) → 16 kHz mono float32 (paperlib.data.voices.speak). The store is a folder of
Ogg Vorbis files, one per line, named `key(job)`.ogg, with index.csv (key, voice, language, text, seconds).
Vorbis at libsndfile compression level QUALITY (about 5.5 kB per second of speech, 20-25 dB SNR against the
synthesis); Ogg serial numbers are set to 0 (libsndfile draws them from the clock), so a line always gives the same
bytes. The corpus sings the decoded Vorbis of every line, stored or synthesised on the spot (`sing`), so a store
changes the corpus' run time, never its audio. Decoding is libvorbis' floating-point C code, without CPU dispatch.
"""

from __future__ import annotations

import hashlib
import io
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
from tqdm.auto import tqdm

from paperlib import SAMPLE_RATE
from paperlib.data import voices
from paperlib.runtime.io import atomic_path, write_csv

QUALITY = 0.6  # libsndfile's Vorbis compression level (0 best quality ... 1 smallest)
INDEX = "index.csv"

Job = tuple[str, str, str]  # (text, language, voice)


def key(job: Job) -> str:
    """The line's file stem: 20 hex digits of the sha256 of voice, language and text."""
    text, language, voice = job
    return hashlib.sha256("\x1f".join((voice, language, text)).encode()).hexdigest()[:20]


def encode(audio: np.ndarray) -> bytes:
    """float32 audio at 16 kHz → Ogg Vorbis bytes, the same bytes for the same audio."""
    from mutagen.ogg import OggPage

    buffer = io.BytesIO()
    sf.write(
        buffer, np.asarray(audio, np.float32), SAMPLE_RATE, format="OGG", subtype="VORBIS", compression_level=QUALITY
    )
    source, pages = io.BytesIO(buffer.getvalue()), []
    while True:
        try:
            page = OggPage(source)
        except EOFError:
            break
        page.serial = 0
        pages.append(page.write())  # the page CRC recomputed
    return b"".join(pages)


def decode(data: bytes) -> np.ndarray:
    """Ogg Vorbis bytes → float32 audio at 16 kHz."""
    audio, rate = sf.read(io.BytesIO(data), dtype="float32")
    if rate != SAMPLE_RATE:
        raise ValueError(f"a stored line is at {rate} Hz, not {SAMPLE_RATE}")
    return audio


def _speak(job: Job) -> np.ndarray:
    return voices.speak(*job)


def speak_all(jobs: list[Job], workers: int = 1) -> dict[Job, np.ndarray]:
    """`voices.speak` of every job, in `workers` spawned processes (each its own single-threaded models: the audio
    does not depend on `workers`)."""
    progress = dict(desc="voices", unit="line", total=len(jobs))
    if workers <= 1 or len(jobs) < 8:
        return dict(zip(jobs, (voices.speak(*job) for job in tqdm(jobs, **progress))))
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return dict(zip(jobs, tqdm(pool.map(_speak, jobs, chunksize=2), **progress)))


def _synthesise(jobs: list[Job], workers: int) -> dict[Job, bytes]:
    return {job: encode(audio) for job, audio in speak_all(jobs, workers).items()}


def sing(jobs: list[Job], store: str | Path | None = None, workers: int = 1) -> dict[Job, np.ndarray]:
    """Every job's decoded Vorbis: from the store where it holds the line, else synthesised now (not stored)."""
    folder = Path(store) if store else None
    stored = {job: folder / f"{key(job)}.ogg" for job in jobs} if folder else {}
    missing = [job for job in jobs if not (job in stored and stored[job].is_file())]
    fresh = _synthesise(missing, workers) if missing else {}
    return {
        job: decode(fresh[job] if job in fresh else stored[job].read_bytes())
        for job in tqdm(jobs, desc="lines", unit="line", disable=len(jobs) < 50)
    }


def write_store(jobs: list[Job], folder: str | Path, workers: int = 1) -> pd.DataFrame:
    """Synthesise every job into `folder` (files first, index.csv last; files of other lines removed); return the
    index, sorted by key."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    encoded = _synthesise(list(dict.fromkeys(jobs)), workers)
    rows = []
    for job, data in encoded.items():
        with atomic_path(folder / f"{key(job)}.ogg") as tmp:
            tmp.write_bytes(data)
        text, language, voice = job
        rows.append(
            {
                "key": key(job),
                "voice": voice,
                "language": language,
                "text": text,
                "seconds": round(len(decode(data)) / SAMPLE_RATE, 4),
            }
        )
    index = pd.DataFrame(rows).sort_values("key", kind="stable").reset_index(drop=True)
    for stale in set(folder.glob("*.ogg")) - {folder / f"{k}.ogg" for k in index["key"]}:
        stale.unlink()
    write_csv(index, folder / INDEX)
    return index
