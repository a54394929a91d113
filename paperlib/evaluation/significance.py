"""Paired significance tests of Table 2 (paper §5.4): each system against LIVI, per query.

MR1 and MAP@10: Wilcoxon signed-rank test on the per-query first ranks / AP@10 (two-sided, zero differences
dropped, exact distribution for small samples: scipy's defaults). HR@1: McNemar's exact test, a two-sided
binomial test on the discordant queries (hit by one system only). The p-values of one table are corrected
together with Holm–Bonferroni; a difference is marked † when its corrected p < 0.05.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

ALPHA = 0.05


def wilcoxon_p(a, b) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired samples; 1.0 when every pair is tied."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if len(a) != len(b):
        raise ValueError(f"paired samples of different lengths: {len(a)} and {len(b)}")
    if not np.any(a != b):
        return 1.0
    return float(stats.wilcoxon(a, b).pvalue)


def mcnemar_p(hits_a, hits_b) -> float:
    """McNemar's exact test: two-sided binomial p-value of the discordant pairs (b01 of b01 + b10, p = 1/2)."""
    a, b = np.asarray(hits_a, dtype=bool), np.asarray(hits_b, dtype=bool)
    if len(a) != len(b):
        raise ValueError(f"paired samples of different lengths: {len(a)} and {len(b)}")
    only_a, only_b = int(np.sum(a & ~b)), int(np.sum(~a & b))
    if only_a + only_b == 0:
        return 1.0
    return float(stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)


def holm(pvalues) -> np.ndarray:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in the input order."""
    p = np.asarray(pvalues, dtype=np.float64)
    order = np.argsort(p, kind="stable")
    scaled = (len(p) - np.arange(len(p))) * p[order]
    adjusted = np.empty_like(p)
    adjusted[order] = np.minimum(np.maximum.accumulate(scaled), 1.0)
    return adjusted
