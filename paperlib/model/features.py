"""Whisper input features: a teacher chunk re-cut from its track, and 30 s chunks → log-mel.

Chunks are float32 [480,000] (30 s at 16 kHz, zero-padded); log-mel is float32 [n, n_mels, 3000].
"""

from __future__ import annotations

import numpy as np
import torch

from paperlib import CHUNK_SAMPLES, SAMPLE_RATE


def cut_chunk(wave: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """The teacher's chunk: wave[round(start_s·16k) : round(end_s·16k)] zero-padded to 480,000 samples."""
    begin = int(round(start_s * SAMPLE_RATE))
    stop = min(int(round(end_s * SAMPLE_RATE)), len(wave), begin + CHUNK_SAMPLES)
    chunk = np.zeros(CHUNK_SAMPLES, np.float32)
    if stop > begin:
        chunk[: stop - begin] = wave[begin:stop]
    return chunk


def log_mel(feature_extractor, chunks) -> torch.Tensor:
    """30 s chunks (sequence of float32 [480000]) → Whisper log-mel float32 [n, n_mels, 3000]."""
    if len(chunks) == 0:
        return torch.zeros(0, feature_extractor.feature_size, feature_extractor.nb_max_frames)
    features = feature_extractor(list(chunks), sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
    return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))
