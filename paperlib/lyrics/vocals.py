"""Vocal detection and 30 s chunking (paper: teacher pipeline, "vocal detection and chunking").

A detector scores consecutive `segment_s`-second segments of a 16 kHz mono wave with a
vocalness in [0, 1]. Tracks whose mean vocalness is low are "instrumental" (no lyrics target);
otherwise vocal segments are merged into regions, padded toward 30 s, and cut into exact
30 s chunks (CHUNK_SAMPLES) for Whisper.

Backends: "repet" (the offline default for mixes: REPET-SIM vocal separation, Rafii & Pardo 2012, through
librosa's nearest-neighbour filter and soft masks, then Silero VAD on the separated voice), "silero" (Silero VAD on
the mix, weights shipped in the `silero-vad` wheel; a speech detector, which misses a voice under a band at equal
level) and "demucs" (vocal-stem energy from a Demucs source-separation model, e.g. htdemucs from the hub).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from paperlib import SAMPLE_RATE
from paperlib.runtime.io import verified

BACKENDS = ("repet", "silero", "demucs")


class VocalDetector(Protocol):
    """Scores vocal presence per consecutive segment of `segment_s` seconds."""

    segment_s: float

    def vocalness(self, wave: np.ndarray) -> np.ndarray:
        """Mono float32 16 kHz wave -> float array [ceil(len / segment samples)] in [0, 1]."""
        ...


def _segment_bounds(n_samples: int, segment_s: float) -> np.ndarray:
    """Sample boundaries [0, s, 2s, ..., n_samples] of consecutive segments (last one partial)."""
    segment = int(round(segment_s * SAMPLE_RATE))
    if segment <= 0:
        raise ValueError(f"segment_s must be at least one sample, got {segment_s}")
    return np.append(np.arange(0, n_samples, segment), n_samples)


def _segment_sums(values: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """Sum of `values` (per sample) inside each [bounds[i], bounds[i+1]), in float64."""
    cumulative = np.concatenate([[0.0], np.cumsum(values, dtype=np.float64)])
    return np.diff(cumulative[bounds])


SILERO_FILES = {
    "sequence": ("silero_vad_16k_sequence.onnx", "9ccdacc4719d8aa7e45a77536bfabec45a03ba1f2fad5e241ab4060b24238a85"),
    "jit": ("silero_vad.jit", "e1122837f4154c511485fe0b9c64455f7b929c96fbb8d79fbdb336383ebd3720"),
}
"""Silero engine -> its model file in silero-vad 6.2.3 (package silero_vad/data) and that file's sha256."""


def _load_silero(engine: str):
    import torch

    threads = torch.get_num_threads()
    import silero_vad  # importing it calls torch.set_num_threads(1) process-wide: undo that

    torch.set_num_threads(threads)
    if engine not in SILERO_FILES:
        raise ValueError(f"unknown Silero engine {engine!r}; choose 'sequence' or 'jit'")
    name, sha256 = SILERO_FILES[engine]
    verified(Path(silero_vad.__file__).parent / "data" / name, sha256)
    return silero_vad.load_silero_vad(sequence=engine == "sequence")


class SileroDetector:
    """Silero VAD speech probability (one per 512-sample frame) averaged over each segment.

    Frames are weighted by their overlap with the segment (exact average of the per-sample
    probability). engine "sequence": batched ONNX model (default, ~10x faster), "jit": the
    TorchScript streaming model; both are bundled in the `silero-vad` package and agree to ~1e-5.
    """

    FRAME = 512  # samples per Silero frame at 16 kHz

    def __init__(self, segment_s: float = 1.0, engine: str = "sequence"):
        self.segment_s = float(segment_s)
        self.engine = engine
        self.model = _load_silero(engine)

    def frame_probabilities(self, wave: np.ndarray) -> np.ndarray:
        """Speech probability per 512-sample frame (last frame zero-padded)."""
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        if wave.size == 0:
            return np.zeros(0, np.float32)
        if self.engine == "sequence":
            return np.asarray(self.model.audio_forward(wave, SAMPLE_RATE)).reshape(-1)
        import torch

        with torch.no_grad():
            return self.model.audio_forward(torch.from_numpy(wave), SAMPLE_RATE).numpy().reshape(-1)

    def vocalness(self, wave: np.ndarray) -> np.ndarray:
        bounds = _segment_bounds(len(wave), self.segment_s)
        probs = np.append(self.frame_probabilities(wave).astype(np.float64), 0.0)
        integral_at_frames = np.concatenate([[0.0], np.cumsum(probs)]) * self.FRAME
        frame, offset = np.divmod(bounds, self.FRAME)
        integral = integral_at_frames[frame] + probs[frame] * offset  # of per-sample probability
        return np.clip(np.diff(integral) / np.diff(bounds), 0.0, 1.0)


class RepetDetector:
    """Silero VAD speech probability of the voice that REPET-SIM separates from the mix (Rafii & Pardo 2012).

    Accompaniment repeats (a loop, a chord progression, a groove) and a voice does not: for each STFT frame
    (n_fft 1024, hop 512 at 16 kHz) librosa.decompose.nn_filter takes the median of its most similar frames (cosine,
    at least `width_s` apart) as the accompaniment estimate A (≤ the mix magnitude S); the voice's soft mask is
    librosa.util.softmask(S − A, margin · A, power 2), and the masked STFT is inverted (phase of the mix). Silero then
    scores the separated voice per segment (SileroDetector). The wave is separated `block_s` seconds at a time
    (whole segments): repetitions are looked for within a block, which keeps time and memory linear in the track's
    length. Deterministic (no random state).
    """

    N_FFT, HOP = 1024, 512

    def __init__(self, segment_s: float = 1.0, margin: float = 2.0, width_s: float = 2.0, block_s: float = 30.0):
        self.segment_s = float(segment_s)
        self.margin, self.width_s = float(margin), float(width_s)
        self.block = int(round(max(1, round(block_s / segment_s)) * segment_s * SAMPLE_RATE))
        self.silero = SileroDetector(segment_s)

    def separate(self, wave: np.ndarray) -> np.ndarray:
        """The REPET-SIM voice estimate of a 16 kHz mono wave (same length, float32)."""
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        blocks = [self._separate_block(wave[i : i + self.block]) for i in range(0, len(wave), self.block)]
        return np.concatenate(blocks) if blocks else wave

    def _separate_block(self, wave: np.ndarray) -> np.ndarray:
        import librosa

        spectrum = librosa.stft(wave, n_fft=self.N_FFT, hop_length=self.HOP)
        magnitude = np.abs(spectrum)
        width = int(librosa.time_to_frames(self.width_s, sr=SAMPLE_RATE, hop_length=self.HOP))
        if magnitude.shape[1] <= 2 * width + 1:  # too short to find repetitions: the mix itself
            return wave
        repeating = librosa.decompose.nn_filter(magnitude, aggregate=np.median, metric="cosine", width=width)
        repeating = np.minimum(magnitude, repeating)
        mask = librosa.util.softmask(magnitude - repeating, self.margin * repeating, power=2)
        return librosa.istft(mask * spectrum, hop_length=self.HOP, length=len(wave)).astype(np.float32)

    def vocalness(self, wave: np.ndarray) -> np.ndarray:
        return self.silero.vocalness(self.separate(wave))


class DemucsDetector:
    """Vocal-stem energy share from a Demucs separation model.

    vocalness = sqrt(E_vocals / (E_vocals + E_accompaniment)) per segment, where E is the
    stem energy (sum of squares over channels and samples) and accompaniment is the sum of the
    other stems. It equals the fraction of the mix RMS due to the vocals when vocals and
    accompaniment are uncorrelated, and lies in [0, 1] by construction; 0.5 means vocals about
    4.8 dB below the accompaniment. Segments whose mix level is below `silence_db` dBFS score 0.

    Input is upsampled (demucs.audio.convert_audio) to the model's rate and channel count,
    normalised like demucs' own Separator, and separated with `apply_model` without random
    shifts (deterministic), `block_s` seconds at a time (bounds memory on long tracks).
    `model`/`repo` are passed to demucs.pretrained.get_model ("htdemucs" needs the hub or
    the demucs download cache; `repo` is a local folder of <sig>.th files and bag .yaml files).
    """

    def __init__(
        self,
        model: str = "htdemucs",
        repo: Path | str | None = None,
        device: str = "cpu",
        segment_s: float = 1.0,
        silence_db: float = -60.0,
        overlap: float = 0.25,
        block_s: float = 120.0,
    ):
        from demucs.pretrained import get_model

        self.segment_s = float(segment_s)
        self.silence_db = float(silence_db)
        self.overlap = float(overlap)
        self.block_s = float(block_s)
        self.device = device
        if repo is not None and not Path(repo).is_dir():
            raise ValueError(f"demucs repo {repo} is not a directory")
        try:
            self.model = get_model(model, repo=Path(repo) if repo is not None else None)
        except Exception as exc:
            raise RuntimeError(
                f"cannot load demucs model {model!r} ({type(exc).__name__}: {exc}); pretrained "
                "models need the Hugging Face hub or dl.fbaipublicfiles.com (or repo=FOLDER)"
            ) from exc
        self.model.to(device)
        if "vocals" not in self.model.sources:
            raise ValueError(f"demucs model {model!r} has no 'vocals' source: {self.model.sources}")
        self.vocals_index = self.model.sources.index("vocals")

    def vocalness(self, wave: np.ndarray) -> np.ndarray:
        wave = np.ascontiguousarray(wave, dtype=np.float32)
        bounds = _segment_bounds(len(wave), self.segment_s)
        mix_power = _segment_sums(wave.astype(np.float64) ** 2, bounds) / np.maximum(np.diff(bounds), 1)
        audible = 10 * np.log10(np.maximum(mix_power, 1e-20)) >= self.silence_db
        scores = np.zeros(len(bounds) - 1)
        per_block = max(1, int(round(self.block_s / self.segment_s)))
        for first in range(0, len(scores), per_block):
            last = min(first + per_block, len(scores))
            if audible[first:last].any():
                block_bounds = bounds[first : last + 1]
                block = wave[block_bounds[0] : block_bounds[-1]]
                scores[first:last] = self._energy_share(block, block_bounds - block_bounds[0])
        return np.where(audible, scores, 0.0)

    def _energy_share(self, block: np.ndarray, bounds: np.ndarray) -> np.ndarray:
        import torch
        from demucs.apply import apply_model
        from demucs.audio import convert_audio

        rate, channels = self.model.samplerate, self.model.audio_channels
        mix = convert_audio(torch.from_numpy(block)[None], SAMPLE_RATE, rate, channels)
        reference = mix.mean(0)
        mix = (mix - reference.mean()) / (reference.std(correction=0) + 1e-8)
        with torch.no_grad():
            stems = apply_model(self.model, mix[None], shifts=0, split=True, overlap=self.overlap, device=self.device)[
                0
            ].cpu()  # (sources, channels, samples)
        vocals = stems[self.vocals_index]
        accompaniment = stems.sum(0) - vocals
        model_bounds = np.minimum(np.round(bounds * rate / SAMPLE_RATE).astype(np.int64), mix.shape[-1])
        e_vocals = _segment_sums(vocals.double().pow(2).sum(0).numpy(), model_bounds)
        e_total = e_vocals + _segment_sums(accompaniment.double().pow(2).sum(0).numpy(), model_bounds)
        share = np.divide(e_vocals, e_total, out=np.zeros_like(e_vocals), where=e_total > 0)
        return np.sqrt(np.clip(share, 0.0, 1.0))


class EnergyDetector:
    """No model: vocalness = RMS of each 1 s segment / 0.05, clipped to [0, 1], the last segment zero-padded (a sine
    of amplitude A scores about min(1, A / 0.0707)): every loud sound counts as vocal. A stand-in for tests and
    benchmarks that measure something other than vocal detection (importable, so Ray workers can unpickle it)."""

    segment_s = 1.0

    def vocalness(self, wave: np.ndarray) -> np.ndarray:
        n = int(np.ceil(len(wave) / SAMPLE_RATE))
        padded = np.zeros(n * SAMPLE_RATE, np.float32)
        padded[: len(wave)] = wave
        return np.clip(np.sqrt((padded.reshape(n, -1) ** 2).mean(axis=1)) / 0.05, 0, 1)


def make_detector(backend: str, model: str | None = None, device: str = "cpu", **kw) -> VocalDetector:
    """Build a detector: "repet" or "silero" (model and device ignored; CPU) or "demucs" (model
    name, default "htdemucs"; kw may hold repo, segment_s, silence_db, overlap, block_s)."""
    if backend == "repet":
        return RepetDetector(**kw)
    if backend == "silero":
        return SileroDetector(**kw)
    if backend == "demucs":
        return DemucsDetector(model or "htdemucs", device=device, **kw)
    raise ValueError(f"unknown vocal detector backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def detector_for(settings, device: str = "cpu") -> VocalDetector:
    """The detector of a paperlib.runtime.config.Vocals setting."""
    extra = {"repo": settings.detector_repo} if settings.detector_repo else {}
    return make_detector(settings.detector, settings.detector_model or None, device=device, **extra)


def plan_windows(
    scores: np.ndarray,
    segment_s: float,
    duration_s: float,
    threshold: float = 0.5,
    chunk_s: float = 30.0,
    max_pad_s: float = 10.0,
) -> list[tuple[float, float]]:
    """Vocal windows (start_s, end_s), sorted, non-overlapping.

    Segments scoring > threshold are vocal; runs of them form regions (ends clipped to
    duration_s). A region shorter than chunk_s is padded by min(chunk_s - length, max_pad_s)
    in total, half on each side; padding that would fall before 0 or after duration_s is moved
    to the other side (then clipped), so edge regions get the same window length where the
    audio allows. Overlapping or touching windows merge. Times are rounded to 1 µs.
    """
    vocal = np.asarray(scores) > threshold
    edges = np.diff(np.concatenate([[0], vocal.astype(np.int8), [0]]))
    windows = []
    for first, stop in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)):
        start, end = first * segment_s, min(stop * segment_s, duration_s)
        pad = min(max(chunk_s - (end - start), 0.0), max_pad_s)
        start, end = start - pad / 2, end + pad / 2
        if start < 0:
            start, end = 0.0, end - start
        if end > duration_s:
            start, end = max(0.0, start - (end - duration_s)), duration_s
        windows.append((start, end))
    merged: list[tuple[float, float]] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return [(round(float(start), 6), round(float(end), 6)) for start, end in merged]


def slice_windows(
    wave: np.ndarray,
    windows: list[tuple[float, float]],
    sample_rate: int = SAMPLE_RATE,
    chunk_s: float = 30.0,
) -> tuple[np.ndarray, list[float], list[float]]:
    """Cut each window into consecutive chunk_s chunks; a shorter remainder is zero-padded.

    Returns (chunks float32 [n, chunk_s * sample_rate], starts_s, ends_s), where ends_s is the
    end of the real audio in each chunk (before zero padding).
    """
    length = int(round(chunk_s * sample_rate))
    chunks, starts, ends = [], [], []
    for start_s, end_s in windows:
        begin, stop = int(round(start_s * sample_rate)), min(int(round(end_s * sample_rate)), len(wave))
        for offset in range(begin, stop, length):
            piece = wave[offset : min(offset + length, stop)]
            chunk = np.zeros(length, np.float32)
            chunk[: len(piece)] = piece
            chunks.append(chunk)
            starts.append(offset / sample_rate)
            ends.append((offset + len(piece)) / sample_rate)
    stacked = np.stack(chunks) if chunks else np.zeros((0, length), np.float32)
    return stacked, starts, ends


@dataclass
class VocalChunks:
    """Result of vocal_chunks. status "ok" or "instrumental" (reason says why; no chunks)."""

    status: str
    reason: str
    mean_vocalness: float
    windows: list[tuple[float, float]]
    chunks: np.ndarray  # float32 [n, chunk samples]
    starts_s: list[float]
    ends_s: list[float]
    scores: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per-segment vocalness


def vocal_chunks(
    wave: np.ndarray,
    detector: VocalDetector,
    threshold: float = 0.5,
    min_mean_vocalness: float = 0.5,
    chunk_s: float = 30.0,
    max_pad_s: float = 10.0,
) -> VocalChunks:
    """Detect vocals in a 16 kHz mono wave and cut the vocal windows into chunk_s chunks.

    Instrumental (no chunks) when the mean vocalness over all segments is below
    min_mean_vocalness, or when no segment scores above threshold.
    """
    scores = np.nan_to_num(np.asarray(detector.vocalness(wave), dtype=np.float64))
    mean = float(scores.mean()) if scores.size else 0.0
    empty = np.zeros((0, int(round(chunk_s * SAMPLE_RATE))), np.float32)

    def instrumental(reason: str) -> VocalChunks:
        return VocalChunks("instrumental", reason, mean, [], empty, [], [], scores)

    if mean < min_mean_vocalness:
        return instrumental(f"mean vocalness {mean:.3f} < {min_mean_vocalness}")
    if not (scores > threshold).any():
        return instrumental(f"no segment with vocalness > {threshold}")
    duration_s = len(wave) / SAMPLE_RATE
    windows = plan_windows(scores, detector.segment_s, duration_s, threshold, chunk_s, max_pad_s)
    chunks, starts, ends = slice_windows(wave, windows, SAMPLE_RATE, chunk_s)
    return VocalChunks("ok", "", mean, windows, chunks, starts, ends, scores)
