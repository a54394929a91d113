"""Audio input: decode any supported file to mono float32 at 16 kHz, list track files, and run a
per-track stage that records one status row per input (never crashes on one bad file).

Decoding uses libsndfile (via soundfile: wav, flac, mp3, ogg/vorbis, opus, aiff, ...), resampling
uses soxr (high quality, deterministic). There is no ffmpeg: AAC/M4A/WMA files are listed but
get a clear "unsupported format" error status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from tqdm.auto import tqdm

from paperlib import SAMPLE_RATE
from paperlib.runtime.errors import PaperlibError

log = logging.getLogger(__name__)

READABLE_EXTENSIONS = frozenset(
    {
        ".wav",
        ".wave",
        ".flac",
        ".mp3",
        ".ogg",
        ".oga",
        ".opus",
        ".aif",
        ".aiff",
        ".aifc",
        ".au",
        ".snd",
        ".caf",
        ".w64",
        ".rf64",
    }
)
"""Suffixes libsndfile (>= 1.1) decodes."""
UNSUPPORTED_EXTENSIONS = frozenset({".m4a", ".aac", ".mp4", ".wma", ".alac"})
"""Common audio suffixes this ffmpeg-less stack cannot decode: listed, then reported as errors."""
AUDIO_EXTENSIONS = READABLE_EXTENSIONS | UNSUPPORTED_EXTENSIONS
"""Suffixes (lower case, with dot) picked up when a directory is expanded."""

_BLOCK_FRAMES = 1 << 20  # frames read (and resampled) at a time: bounds memory on long files


class AudioError(PaperlibError, ValueError):
    """A file that cannot be used as audio; str(exc) is one human-readable reason."""


def load_audio(path: str | Path, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode `path` to a 1-D float32 array at `sample_rate` Hz (channels averaged).

    Streams the file in blocks through a soxr HQ resampler (identical to one-shot resampling),
    so hour-long files need only the output's memory. Silent audio is returned as is.
    Raises AudioError: missing, empty, non-audio, unsupported, corrupt, or zero-sample files.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError("file not found" if not path.exists() else "not a regular file")
    if path.stat().st_size == 0:
        raise AudioError("empty file")
    suffix = path.suffix.lower()
    try:
        with sf.SoundFile(path) as f:
            in_rate = f.samplerate
            stream = soxr.ResampleStream(in_rate, sample_rate, 1, dtype="float32", quality="HQ")
            pieces = []
            for block in f.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
                mono = block.mean(axis=1, dtype=np.float32)
                if not np.isfinite(mono).all():
                    raise AudioError("corrupt audio (non-finite sample values)")
                pieces.append(mono if in_rate == sample_rate else stream.resample_chunk(mono))
            if in_rate != sample_rate:
                pieces.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    except sf.LibsndfileError as exc:
        detail = exc.error_string.strip()
        if suffix in UNSUPPORTED_EXTENSIONS:
            raise AudioError(
                f"unsupported audio format '{suffix}' (readable: wav, flac, mp3, ogg, opus, aiff; convert it first)"
            ) from exc
        if suffix in READABLE_EXTENSIONS:
            raise AudioError(f"corrupt or unreadable audio file ({detail})") from exc
        raise AudioError(f"not an audio file ({detail})") from exc
    except OSError as exc:
        raise AudioError(f"cannot read file ({exc.strerror or exc})") from exc
    wave = np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)
    if wave.size == 0:
        raise AudioError("no samples")
    return wave


def list_audio(inputs: Sequence[str | Path]) -> list[tuple[str, Path]]:
    """Expand files and directories into (track id, path) pairs; id = file stem.

    Directories are searched recursively for AUDIO_EXTENSIONS (hidden files skipped), sorted
    by path; inputs keep their order. A file named explicitly is kept whatever its suffix (or
    even if missing), so it gets an error status later instead of vanishing.
    Raises ValueError if two paths give the same id.
    """
    tracks: list[tuple[str, Path]] = []
    seen: dict[str, Path] = {}
    for item in map(Path, inputs):
        if item.is_dir():
            found = sorted(
                p
                for p in item.rglob("*")
                if p.suffix.lower() in AUDIO_EXTENSIONS
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(item).parts)
            )
        else:
            found = [item]
        for path in found:
            if path.stem in seen:
                raise ValueError(f"duplicate track id '{path.stem}': {seen[path.stem]} and {path}")
            seen[path.stem] = path
            tracks.append((path.stem, path))
    return tracks


def run_per_track(
    tracks: list[tuple[str, Path]],
    process: Callable[[str, np.ndarray], tuple[dict, Any]],
    desc: str,
    sample_rate: int = SAMPLE_RATE,
    progress: bool = True,
) -> list[tuple[dict, Any]]:
    """Load each track and call `process(track_id, wave) -> (fields, value)`; one (row, value) per track, in order.

    Row: {id, path, status, reason, duration_s (seconds, None if unloadable), t_decode_s (wall-clock
    seconds of decoding + resampling), **fields}; value is what `process` returned with them (None when
    the track failed). A bad file gives status "error" with the AudioError reason; an exception inside
    `process` gives "error" with "<ExceptionType>: <message>" (logged); the loop always goes on.
    """
    results = []
    for track_id, path in tqdm(tracks, desc=desc, unit="track", disable=not progress):
        row, value = {"id": track_id, "path": str(path), "status": "ok", "reason": "", "duration_s": None}, None
        try:
            start = time.perf_counter()
            wave = load_audio(path, sample_rate)
            row["t_decode_s"] = time.perf_counter() - start
            row["duration_s"] = round(len(wave) / sample_rate, 3)
            fields, value = process(track_id, wave)
            row.update(fields)
        except AudioError as exc:
            row.update(status="error", reason=str(exc))
            log.warning("%s: %s: %s", desc, track_id, exc)
        except Exception as exc:  # one track must never stop the stage
            record_failure(row, exc, desc)
        results.append((row, value))
    return results


def record_failure(row: dict, exc: Exception, desc: str) -> None:
    """Mark a manifest row as failed: status "error", reason "<ExceptionType>: <message>" (logged)."""
    row.update(status="error", reason=f"{type(exc).__name__}: {exc}")
    log.warning("%s: %s failed: %s: %s", desc, row["id"], type(exc).__name__, exc)
