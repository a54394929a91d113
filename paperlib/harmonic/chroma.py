"""The training-free harmonic baseline of Table 2: beat-synchronous chroma → 2D Fourier transform magnitude (2DFTM).

After Bertin-Mahieux & Ellis, "Large-scale cover song recognition using the 2D Fourier transform magnitude" (ISMIR
2012): chroma [12, frames] (librosa `chroma_cqt`, hop 512 samples at 16 kHz = 32 ms) averaged between the beats
librosa's tracker finds (median per beat) → power-law expansion (`power`, the paper's 1.96) → every window of
`patch_beats` consecutive beats (the paper: 75) → |2D FFT| of each [12, patch_beats] patch, which forgets the key
(a circular shift along chroma) and the patch's phase in time → the median patch over the track → one vector
[12 · patch_beats]. A track shorter than one patch is tiled (repeated) to the patch length.

Differences from the paper, which learned a 50-d PCA projection on training songs: no PCA (training-free); the DC
bin is set to 0 and the vector centred on its own mean before L2-normalising, so cosines compare the shape of the
spectrum rather than the track's loudness. Tempo invariance comes from the beat grid, key invariance from the
magnitude; the vocals count only through their pitch content, so another work that reuses a song's accompaniment
looks the same to it (paperlib.data.corpus's distractors).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from paperlib.runtime import engine
from paperlib.runtime.errors import PaperlibError

SR = 16000
HOP = 512  # samples between chroma frames (32 ms)


class ChromaError(PaperlibError, ValueError):
    """Audio the chroma baseline cannot describe (no beats found); str(exc) is one line."""


def beat_chroma(wave: np.ndarray, sr: int = SR) -> np.ndarray:
    """Beat-synchronous chroma [12, beats + 1] float64 of a mono wave [T]: the median chroma between consecutive
    beats (and before the first / after the last). ChromaError when fewer than two beats are found (silence, a
    signal without pulse)."""
    import librosa

    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    _, beats = librosa.beat.beat_track(y=wave, sr=sr, hop_length=HOP)
    if len(beats) < 2:
        raise ChromaError(f"no beat grid: {len(beats)} beat(s) found in {len(wave) / sr:.1f} s")
    chroma = librosa.feature.chroma_cqt(y=wave, sr=sr, hop_length=HOP)
    return librosa.util.sync(chroma, beats, aggregate=np.median).astype(np.float64)


def fingerprint(chroma: np.ndarray, patch_beats: int = 75, power: float = 1.96) -> tuple[np.ndarray, int]:
    """(2DFTM vector [12 · patch_beats] float32, L2-normalised; number of patches) of beat chroma [12, B]."""
    if patch_beats < 1:
        raise ChromaError(f"patch_beats must be at least 1, got {patch_beats}")
    chroma = np.asarray(chroma, dtype=np.float64) ** power
    if chroma.shape[1] < patch_beats:
        chroma = np.tile(chroma, (1, -(-patch_beats // chroma.shape[1])))
    starts = range(chroma.shape[1] - patch_beats + 1)
    magnitudes = np.stack([np.abs(np.fft.fft2(chroma[:, s : s + patch_beats])) for s in starts])
    vector = np.median(magnitudes, axis=0).ravel()
    vector[0] = 0.0  # the DC bin: the patch's total energy
    vector -= vector.mean()
    norm = np.linalg.norm(vector)
    if not np.isfinite(norm) or norm == 0.0:
        raise ChromaError("flat chroma: the 2DFTM is constant")
    return (vector / norm).astype(np.float32), len(starts)


def describe(wave: np.ndarray, patch_beats: int, power: float, max_seconds: float | None, sr: int = SR):
    """(manifest fields, 2DFTM vector) of one wave cut to its first max_seconds (None: whole). One BLAS thread: the
    same sums in this process and in a one-CPU Ray task."""
    start = time.perf_counter()
    if max_seconds is not None:
        wave = wave[: int(sr * max_seconds)]
    with threadpool_limits(limits=1, user_api="blas"):
        vector, patches = fingerprint(beat_chroma(wave, sr), patch_beats, power)
    return {"n_chunks": patches, "t_model_s": time.perf_counter() - start}, vector


@dataclass(frozen=True)
class ChromaJob:
    """The 2DFTM baseline as an engine job (paperlib.runtime.engine): all of its work is the CPU prepare step; rows
    carry `vector` and n_chunks = the number of patches. A track it cannot describe is an "error" row with the
    reason."""

    patch_beats: int = 75
    power: float = 1.96
    max_seconds: float | None = 240.0
    name: str = "chroma"

    def signature(self) -> dict:
        return {
            "system": "chroma",
            "patch_beats": self.patch_beats,
            "power": self.power,
            "max_seconds": self.max_seconds,
        }

    def prepare_step(self, device: str) -> engine.Prepare:
        _warm_up()
        return lambda _, wave: describe(wave, self.patch_beats, self.power, self.max_seconds)

    def process_step(self, device: str) -> engine.Process:
        return _rows


def _warm_up() -> None:
    """Compile librosa's numba kernels on 4 s of clicks, so that no track's timing includes the compilation."""
    clicks = np.zeros(4 * SR, dtype=np.float32)
    clicks[:: SR // 2] = 1.0
    try:
        beat_chroma(clicks)
    except ChromaError:
        pass


def _rows(items: list[tuple[dict, np.ndarray | None]]) -> list[dict]:
    return [row if vector is None else row | {"vector": vector} for row, vector in items]
