"""Score fusion of LIVI with a harmonic system (a Table 2 row beyond the paper, which names fusion as future work).

Per query q and candidate c ≠ q, each system s scores by cosine, z-normalised over q's candidates under s:
z_s(q, c) = (cos_s(q, c) − μ_s(q)) / σ_s(q) (μ, σ over the candidates s embedded; σ at least 1e-6). The fused score
is w · z_livi + (1 − w) · z_harmonic where both systems embedded q and c, and the one system's z-score where only one
did: a track LIVI cannot embed (an instrumental version, no vocals) is still found, by harmony alone. The fused
system's tracks are the union of the two systems' accepted tracks; w is `harmonic.fusion_weight` (fixed in advance,
not tuned on the test works).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np

EPS = 1e-6


def stack(ids: Sequence[str], vectors: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(matrix [N, d] float64 with zero rows for missing ids, present mask [N]) of the ids' vectors."""
    present = np.array([i in vectors for i in ids], dtype=bool)
    dim = len(next(iter(vectors.values()))) if vectors else 1
    matrix = np.zeros((len(ids), dim), dtype=np.float64)
    for row, i in enumerate(ids):
        if present[row]:
            matrix[row] = vectors[i]
    return matrix, present


def zscores(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Row-wise z-scores of scores [b, N] over the `valid` [b, N] entries (0 elsewhere)."""
    count = np.maximum(valid.sum(axis=1, keepdims=True), 1)
    mean = np.where(valid, scores, 0.0).sum(axis=1, keepdims=True) / count
    var = np.where(valid, (scores - mean) ** 2, 0.0).sum(axis=1, keepdims=True) / count
    return np.where(valid, (scores - mean) / np.maximum(np.sqrt(var), EPS), 0.0)


def fused_blocks(
    ids: Sequence[str],
    livi: dict[str, np.ndarray],
    harmonic: dict[str, np.ndarray],
    weight: float,
    block_size: int = 1024,
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(query indices [b], fused scores [b, N]) over the ids, block_size queries at a time (metrics.score_ranks'
    blocks). livi, harmonic: id → L2-normalised vector of the tracks each system accepted."""
    a, has_a = stack(ids, livi)
    h, has_h = stack(ids, harmonic)
    n = len(ids)
    for lo in range(0, n, block_size):
        queries = np.arange(lo, min(lo + block_size, n))
        not_self = np.ones((len(queries), n), dtype=bool)
        not_self[np.arange(len(queries)), queries] = False
        valid_a = has_a[queries, None] & has_a[None, :] & not_self
        valid_h = has_h[queries, None] & has_h[None, :] & not_self
        za = zscores(a[queries] @ a.T, valid_a)
        zh = zscores(h[queries] @ h.T, valid_h)
        fused = np.where(valid_a & valid_h, weight * za + (1.0 - weight) * zh, np.where(valid_a, za, zh))
        fused[~(valid_a | valid_h)] = -np.inf
        yield queries, fused
