"""Version-identification metrics (paper §4: MAP, MR1, HR@k), streamed over blocks of queries.

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
No N×N matrix is built: similarities are computed `block_size` queries at a time and only the
ranks of relevant items are kept, so memory is O(block_size × N).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

SPARSE_LIMIT = 1.0  # sparse path while candidates × width ≤ this × block size
SUMMARY_KEYS = ("MAP", "MAP10", "MR1", "HR1", "HR10", "HR100", "P10", "NAR", "queries")


def relevant_ranks(matrix: np.ndarray, cliques, block_size: int = 512,
                   progress: bool = True) -> list[np.ndarray]:
    """1-based ranks (ascending) of each query's relevant items; empty for singletons.

    matrix: [N, d] float32, L2-normalised rows. cliques: N labels.
    """
    x = torch.from_numpy(np.ascontiguousarray(matrix, dtype=np.float32))
    n = x.shape[0]
    codes = pd.factorize(pd.Series(list(cliques)).astype(str))[0]
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(codes.max() + 1 if n else 0))
    members = np.split(order, starts[1:]) if n else []
    out: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * n
    blocks = range(0, n, block_size)
    for lo in tqdm(blocks, desc="ranking", unit="block", disable=not progress, leave=False):
        hi = min(lo + block_size, n)
        sims = x[lo:hi] @ x.T  # [b, N]
        rows = torch.arange(hi - lo)
        sims[rows, torch.arange(lo, hi)] = -math.inf  # the query leaves its own list
        rel_idx = [members[codes[q]][members[codes[q]] != q] for q in range(lo, hi)]
        width = max((len(r) for r in rel_idx), default=0)
        if width == 0:
            continue
        # relevant similarities of each query, padded with +inf (they never rank)
        rel = torch.full((hi - lo, width), math.inf)
        for i, r in enumerate(rel_idx):
            rel[i, : len(r)] = sims[i, torch.from_numpy(r)]
        rel_sorted, _ = rel.sort(dim=1)  # ascending
        above, ties = _count_above(sims, rel_sorted)
        tied_rows = set((ties > (rel_sorted < math.inf).sum(1)).nonzero().flatten().tolist())
        for i, r in enumerate(rel_idx):
            if not len(r):
                continue
            if i in tied_rows:
                out[lo + i] = _ranks_with_ties(sims[i].numpy(), r)
            else:
                # k-th smallest relevant value has rank (#strictly above) + 1; flip to ascending ranks
                out[lo + i] = (above[i, : len(r)].numpy() + 1)[::-1].copy()
    return out


def _count_above(sims: torch.Tensor, rel_sorted: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each row and k: candidates strictly above the k-th smallest relevant value [b, width],
    and per row the number of (candidate, relevant value) equalities [b] (≥ #relevant: each
    relevant item equals itself; more means a tie).

    Only candidates at or above the row's lowest relevant similarity can count, and with useful
    embeddings they are few: they alone are searched (sparse path); dense fallback otherwise.
    """
    b, width = rel_sorted.shape
    candidates = sims >= rel_sorted[:, :1]
    n_candidates = int(candidates.sum())
    counts = torch.zeros(b, width + 1, dtype=torch.int64)
    if n_candidates * width <= SPARSE_LIMIT * sims.numel():  # memory bounded by the block's
        rows, cols = candidates.nonzero(as_tuple=True)
        values = sims[rows, cols].unsqueeze(1)
        sequences = rel_sorted[rows]
        below = torch.searchsorted(sequences, values).squeeze(1)
        equal = torch.searchsorted(sequences, values, right=True).squeeze(1) - below
        counts.index_put_((rows, below), torch.ones_like(below), accumulate=True)
        ties = torch.zeros(b, dtype=torch.int64).index_add_(0, rows, equal)
    else:
        below = torch.searchsorted(rel_sorted, sims)  # [b, N]: relevant values strictly below
        counts.scatter_add_(1, below, torch.ones_like(below))
        ties = (torch.searchsorted(rel_sorted, sims, right=True) - below).sum(1)
    # candidates strictly above the k-th smallest relevant value = those with more than k below
    above = counts.flip(1).cumsum(1).flip(1)[:, 1:]
    return above, ties


def _ranks_with_ties(row: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """Exact ranks with ties broken by corpus order (stable sort of −similarity)."""
    order = np.argsort(-row, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(1, len(order) + 1)
    return np.sort(position[relevant])


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


def evaluate(matrix: np.ndarray, cliques, ids=None, block_size: int = 512,
             progress: bool = True) -> tuple[dict, pd.DataFrame]:
    """Averaged metrics (keys SUMMARY_KEYS) and a per-query table (one row per evaluated query)."""
    matrix = np.asarray(matrix, dtype=np.float32)
    n = matrix.shape[0]
    ids = list(range(n)) if ids is None else list(ids)
    ranks = relevant_ranks(matrix, cliques, block_size=block_size, progress=progress)
    rows = [{"id": ids[q], "clique": c, **query_metrics(r, n - 1)}
            for q, (r, c) in enumerate(zip(ranks, cliques)) if len(r)]
    per_query = pd.DataFrame(rows, columns=["id", "clique", "AP", "AP10", "R1", "HR1", "HR10",
                                            "HR100", "P10", "NAR", "relevant"])
    means = per_query.mean(numeric_only=True) if len(per_query) else None
    summary = {
        "MAP": means["AP"], "MAP10": means["AP10"], "MR1": means["R1"], "HR1": means["HR1"],
        "HR10": means["HR10"], "HR100": means["HR100"], "P10": means["P10"], "NAR": means["NAR"],
    } if means is not None else dict.fromkeys(SUMMARY_KEYS[:-1], float("nan"))
    summary = {key: round(float(value), 6) for key, value in summary.items()}
    summary["queries"] = len(per_query)
    return summary, per_query


# --------------------------------------------------------------------------- file inputs
def read_cliques(path: str | Path) -> tuple[list[str], list[str]]:
    """(ids, cliques) from a CSV with columns id,clique; raises ValueError with one clear line."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise ValueError(f"clique table not found: {path}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise ValueError(f"clique table {path} is not a readable CSV ({exc})") from None
    missing = [c for c in ("id", "clique") if c not in table.columns]
    if missing:
        raise ValueError(f"clique table {path} lacks column(s) {', '.join(missing)} "
                         f"(has: {', '.join(table.columns) or 'none'})")
    if table.empty:
        raise ValueError(f"clique table {path} has no rows")
    dupes = table["id"][table["id"].duplicated()].unique()
    if len(dupes):
        raise ValueError(f"clique table {path} lists id(s) more than once: {', '.join(dupes[:5])}")
    if (table["id"] == "").any() or (table["clique"] == "").any():
        raise ValueError(f"clique table {path} has empty id or clique values")
    return table["id"].tolist(), table["clique"].tolist()


def read_embeddings(path: str | Path, ids: list[str]) -> np.ndarray:
    """[len(ids), d] float32 matrix of L2-normalised track vectors, in the order of `ids`.

    The npz maps id → vector [d], or id → chunk vectors [n, d] (pooled as in
    `paperlib.model.track_embedding`). Raises ValueError with one clear line.
    """
    from paperlib.model import track_embedding

    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise ValueError(f"embeddings file not found: {path}") from None
    except Exception as exc:  # zipfile/pickle/format errors all mean "not an npz we can read"
        raise ValueError(f"embeddings file {path} is not a readable .npz ({type(exc).__name__})") from None
    with archive:
        keys = set(archive.files)
        if not keys:
            raise ValueError(f"embeddings file {path} is empty")
        absent = [i for i in ids if i not in keys]
        if absent:
            raise ValueError(f"{len(absent)} id(s) of the clique table are missing from {path}: "
                             f"{', '.join(absent[:5])}{' …' if len(absent) > 5 else ''}")
        vectors, dim = [], None
        for track in ids:
            value = np.asarray(archive[track], dtype=np.float32)
            if value.ndim not in (1, 2) or value.size == 0:
                raise ValueError(f"embedding of {track!r} has shape {value.shape}; expected (d,) or (chunks, d)")
            if not np.isfinite(value).all():
                raise ValueError(f"embedding of {track!r} contains NaN or infinite values")
            if dim is not None and value.shape[-1] != dim:
                raise ValueError(f"embedding of {track!r} has dimension {value.shape[-1]}, others {dim}")
            dim = value.shape[-1]
            norms = np.linalg.norm(value, axis=-1)
            if (norms == 0).any():
                raise ValueError(f"embedding of {track!r} is a zero vector")
            vectors.append(track_embedding(value))
    return np.stack(vectors)
