"""Version-identification metrics (paper §4: MAP, MR1, HR@k), streamed over blocks of queries.
Computation on arrays only: embeddings files and clique tables are read by paperlib.runtime.vectors.

Conventions:
- relevant = same clique; every listed track queries all the others (cosine = inner product
  of L2-normalised rows);
- the query itself is removed from its own ranked list (N − 1 candidates);
- a query with no other member of its clique is not evaluated, but stays in the corpus as a
  distractor for the other queries;
- ties in similarity are broken by corpus order (the earlier row ranks first), as a stable
  sort would;
- ranks are 1-based. For a query with R relevant items at ranks r_1 < … < r_R among C = N − 1
  candidates: AP = (1/R) Σ_k k / r_k; AP@10 = Σ_{r_k ≤ 10} (k / r_k) / min(10, R);
  R1 = r_1 (MR1 = mean R1); HR@k = [r_1 ≤ k]; P@10 = |{r_k ≤ 10}| / 10;
  NAR = (1/R) Σ_k (r_k − k) / (C − R) (0 = best; 0 when C = R).
No N×N matrix is built: similarities are computed in tiles of block_size × block_size (each
once: the matrix is symmetric) and only the ranks of relevant items are kept.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

SPARSE_LIMIT = 1.0  # sparse counting while candidates × width ≤ this × tile size
SUMMARY_KEYS = ("MAP", "MAP10", "MR1", "HR1", "HR10", "HR100", "P10", "NAR", "queries")


def relevant_ranks(matrix: np.ndarray, cliques, block_size: int = 2048, progress: bool = True) -> list[np.ndarray]:
    """1-based ranks (ascending) of each query's relevant items; empty for singletons.

    matrix: [N, d] float32, L2-normalised rows. cliques: N labels.

    The similarity matrix is symmetric, so it is computed in tiles of about block_size²
    (each pair of blocks once; memory O(block_size² + N × largest clique)). Rows are grouped
    by clique and blocks end at clique boundaries, so every relevant pair lies in a diagonal
    tile: those give each query's relevant similarities (pass 1), then every tile adds, for
    both of its blocks, the candidates that outrank each relevant item (pass 2). Each
    similarity value is computed once, so a relevant item is compared with exactly the value
    it is ranked by.
    """
    x = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
    n = x.shape[0]
    out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n
    if n == 0:
        return out
    codes = pd.factorize(pd.Series(list(cliques)).astype(str))[0]
    order = np.argsort(codes, kind="stable")  # rows grouped by clique, corpus order inside
    x = x[torch.from_numpy(order)]
    sorted_codes = codes[order]
    run_starts = np.flatnonzero(np.r_[True, sorted_codes[1:] != sorted_codes[:-1]])
    run_ends = np.r_[run_starts[1:], n]
    blocks = _blocks(run_starts, run_ends, block_size)
    positions = torch.from_numpy(order)  # corpus index of each sorted row (for ties)

    tiles = [_RelevantBlock.from_diagonal(x, lo, hi, run_starts, run_ends, positions) for lo, hi in blocks]
    with tqdm(
        total=len(blocks) * (len(blocks) - 1) // 2, desc="ranking", unit="tile", disable=not progress, leave=False
    ) as bar:
        for i, (lo_i, hi_i) in enumerate(blocks):
            for j in range(i + 1, len(blocks)):
                lo_j, hi_j = blocks[j]
                sims = x[lo_i:hi_i] @ x[lo_j:hi_j].T
                tiles[i].count(sims, positions[lo_j:hi_j])
                tiles[j].count(sims, positions[lo_i:hi_i], transposed=True)
                bar.update()
    for tile in tiles:
        for row, ranks in tile.ranks():
            out[order[row]] = ranks
    return out


def _blocks(run_starts: np.ndarray, run_ends: np.ndarray, block_size: int) -> list[tuple[int, int]]:
    """Consecutive [lo, hi) row ranges of about block_size rows that end at clique boundaries
    (a clique larger than block_size gets a block of its own size)."""
    blocks, lo = [], 0
    for end in run_ends:
        if end - lo >= block_size:
            blocks.append((lo, int(end)))
            lo = int(end)
    if lo < run_ends[-1]:
        blocks.append((lo, int(run_ends[-1])))
    return blocks


class _RelevantBlock:
    """One block of rows: each row's relevant similarities and how many candidates outrank them.

    thresholds [b, w]: the row's relevant similarities, ascending, padded with +inf (never
    outranked); owners [b, w]: corpus index of the relevant item of each threshold;
    histogram [b, w + 1]: candidates by number of thresholds strictly below them;
    ties [b, w]: candidates equal to a threshold and earlier in the corpus (they rank first).
    """

    def __init__(self, lo, thresholds, owners, widths):
        self.lo, self.thresholds, self.owners, self.widths = lo, thresholds, owners, widths
        b, w = thresholds.shape
        self.histogram = torch.zeros(b, w + 1, dtype=torch.int64)
        self.ties = torch.zeros(b, w, dtype=torch.int64)

    @classmethod
    def from_diagonal(cls, x, lo, hi, run_starts, run_ends, positions) -> _RelevantBlock:
        sims = x[lo:hi] @ x[lo:hi].T
        sims.fill_diagonal_(-math.inf)  # the query leaves its own list
        first = np.searchsorted(run_starts, np.arange(lo, hi), side="right") - 1
        starts, ends = run_starts[first] - lo, run_ends[first] - lo  # clique run of each row, block-relative
        widths = ends - starts - 1
        w = int(widths.max())
        # column of each row's k-th relevant item: its clique run, skipping the row itself
        cols = starts[:, None] + np.arange(w)[None, :]
        cols += cols >= np.arange(hi - lo)[:, None]
        valid = torch.from_numpy(np.arange(w)[None, :] < widths[:, None])
        cols = torch.from_numpy(np.minimum(cols, hi - lo - 1))
        values = sims.gather(1, cols).masked_fill_(~valid, math.inf)
        thresholds, rank = values.sort(dim=1, stable=True)  # ascending, +inf padding last
        owners = positions[lo + cols.gather(1, rank)]
        block = cls(lo, thresholds, owners, widths)
        if w:
            block.count(sims, positions[lo:hi])
        return block

    def count(self, sims: torch.Tensor, columns: torch.Tensor, transposed: bool = False) -> None:
        """Add the candidates of a tile: sims [b, m] (or [m, b] when `transposed`: this block's rows
        are its columns), whose candidates have corpus indices `columns` [m]."""
        b, w = self.thresholds.shape
        if w == 0:
            return
        lowest = self.thresholds[:, 0]
        # only candidates at or above a row's lowest relevant similarity can outrank one
        if transposed:
            cols, rows = (sims >= lowest[None, :]).nonzero(as_tuple=True)
            values = sims[cols, rows]
        else:
            rows, cols = (sims >= lowest[:, None]).nonzero(as_tuple=True)
            values = sims[rows, cols]
        if len(rows) * w <= SPARSE_LIMIT * sims.numel():  # few candidates (useful embeddings)
            sequences = self.thresholds[rows]
            below = torch.searchsorted(sequences, values.unsqueeze(1)).squeeze(1)
            equal = torch.searchsorted(sequences, values.unsqueeze(1), right=True).squeeze(1) - below
            self.histogram.index_put_((rows, below), torch.ones_like(below), accumulate=True)
        else:
            if transposed:
                sims = sims.T.contiguous()
            below_all = torch.searchsorted(self.thresholds, sims)  # [b, m]: thresholds strictly below
            self.histogram.scatter_add_(1, below_all, torch.ones_like(below_all))
            equal_all = torch.searchsorted(self.thresholds, sims, right=True) - below_all
            rows, cols = equal_all.nonzero(as_tuple=True)
            below, equal = below_all[rows, cols], equal_all[rows, cols]
        tied = equal > 0
        self._add_ties(rows[tied], cols[tied], below[tied], equal[tied], columns)

    def _add_ties(self, rows, cols, below, equal, columns) -> None:
        """Candidates equal to thresholds below..below+equal−1 outrank those whose relevant item
        comes later in the corpus (ties broken by corpus order)."""
        if not len(rows):
            return
        rows, cols = rows.repeat_interleave(equal), cols.repeat_interleave(equal)
        starts = torch.cumsum(equal, 0) - equal
        k = below.repeat_interleave(equal) + torch.arange(len(rows)) - starts.repeat_interleave(equal)
        earlier = columns[cols] < self.owners[rows, k]
        self.ties.index_put_(
            (rows[earlier], k[earlier]), torch.ones(int(earlier.sum()), dtype=torch.int64), accumulate=True
        )

    def ranks(self):
        """(sorted row, ascending 1-based ranks of its relevant items) for rows with any."""
        # candidates strictly above threshold k = those with more than k thresholds below them
        above = (self.histogram.flip(1).cumsum(1).flip(1)[:, 1:] + self.ties).numpy()
        for r in np.flatnonzero(self.widths):
            yield self.lo + r, np.sort(above[r, : self.widths[r]] + 1)


def query_metrics(ranks: np.ndarray, candidates: int) -> dict[str, float]:
    """Metrics of one query from its relevant ranks (ascending, 1-based) among `candidates`."""
    r = np.asarray(ranks, dtype=np.float64)
    n_rel = len(r)
    k = np.arange(1, n_rel + 1)
    top10 = r <= 10
    spread = candidates - n_rel
    return {
        "AP": float(np.mean(k / r)),
        "AP10": float(np.sum(k[top10] / r[top10]) / min(10, n_rel)),
        "R1": float(r[0]),
        "HR1": float(r[0] <= 1),
        "HR10": float(r[0] <= 10),
        "HR100": float(r[0] <= 100),
        "P10": float(top10.sum() / 10),
        "NAR": float(np.mean((r - k) / spread)) if spread > 0 else 0.0,
        "relevant": n_rel,
    }


def evaluate(
    matrix: np.ndarray, cliques, ids=None, block_size: int = 2048, progress: bool = True
) -> tuple[dict, pd.DataFrame]:
    """Averaged metrics (keys SUMMARY_KEYS) and a per-query table (one row per evaluated query)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    ranks = relevant_ranks(matrix, cliques, block_size=block_size, progress=progress)
    return summarise(ranks, cliques, ids)


def score_ranks(blocks, cliques) -> list[np.ndarray]:
    """relevant_ranks from score rows instead of embeddings, with the same conventions (a query's own column is
    ignored, ties go to corpus order). blocks: iterable of (query indices [b], scores [b, N]: higher = closer; row
    q ranks the candidates of query q, so the scores need not be symmetric), each query once, e.g.
    [(range(N), full_matrix)] or paperlib.evaluation.fusion's blocks (memory O(b × N))."""
    codes = pd.factorize(pd.Series(list(cliques)).astype(str))[0]
    n = len(codes)
    out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n
    for queries, rows in blocks:
        for q, row in zip(queries, np.asarray(rows, dtype=np.float64)):
            others = np.arange(n) != q
            out[q] = ranks_among(row, (codes == codes[q]) & others, others)
    return out


def ranks_among(row: np.ndarray, relevant: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Ranks (1-based, ascending) of the `relevant` columns among the `candidates` columns of one score row (bool
    masks over its columns; higher score = closer, ties in column order)."""
    columns = np.flatnonzero(candidates)
    order = np.argsort(-np.asarray(row, dtype=np.float64)[columns], kind="stable")
    position = np.empty(len(columns), dtype=np.int64)
    position[order] = np.arange(1, len(columns) + 1)
    return np.sort(position[np.asarray(relevant)[columns]])


def evaluate_scores(blocks, cliques, ids=None) -> tuple[dict, pd.DataFrame]:
    """evaluate() from score rows (score_ranks' blocks), e.g. a fusion of two systems (paperlib.evaluation.fusion)."""
    return summarise(score_ranks(blocks, cliques), cliques, ids)


def summarise(ranks: list[np.ndarray], cliques, ids=None, candidates=None) -> tuple[dict, pd.DataFrame]:
    """Averaged metrics (keys SUMMARY_KEYS, at 6 decimals) and the per-query table of every query's relevant ranks
    among its candidates (`candidates`: a count per query, default N − 1; queries without relevant ranks are not
    evaluated)."""
    cliques = list(cliques)
    n = len(cliques)
    ids = list(range(n)) if ids is None else list(ids)
    counts = [n - 1] * n if candidates is None else list(candidates)
    rows = [
        {"id": ids[q], "clique": c, **query_metrics(r, counts[q])}
        for q, (r, c) in enumerate(zip(ranks, cliques))
        if len(r)
    ]
    per_query = pd.DataFrame(
        rows, columns=["id", "clique", "AP", "AP10", "R1", "HR1", "HR10", "HR100", "P10", "NAR", "relevant"]
    )
    means = per_query.mean(numeric_only=True) if len(per_query) else None
    summary = (
        {
            "MAP": means["AP"],
            "MAP10": means["AP10"],
            "MR1": means["R1"],
            "HR1": means["HR1"],
            "HR10": means["HR10"],
            "HR100": means["HR100"],
            "P10": means["P10"],
            "NAR": means["NAR"],
        }
        if means is not None
        else dict.fromkeys(SUMMARY_KEYS[:-1], float("nan"))
    )
    summary = {key: round(float(value), 6) for key, value in summary.items()}
    summary["queries"] = len(per_query)
    return summary, per_query
