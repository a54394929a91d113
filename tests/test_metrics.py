"""Version-identification metrics on hand-computed examples (ties, singletons, self-exclusion)."""

import numpy as np
import pytest
import torch

from paperlib.evaluation import metrics

# 6 tracks; cliques A = {0, 2, 4}, B = {1, 3}, C = {5} (a singleton: a distractor, never a query).
# Tracks 0 and 1 are identical vectors, so lists contain exact ties.
VECTORS = np.array([[1, 0, 0], [1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0, 1], [0.6, 0.8, 0]], dtype=np.float32)
CLIQUES = ["A", "B", "A", "B", "A", "C"]
# Ranked lists worked out by hand (query removed, ties broken by corpus order):
#   q0: 1(1.0) 2(.8) 5(.6) 3(0) 4(0)      -> A at ranks 2, 5
#   q1: 0(1.0) 2(.8) 5(.6) 3(0) 4(0)      -> B at rank 4
#   q2: 5(.96) 0(.8) 1(.8) 3(.6) 4(0)     -> A at ranks 2, 5
#   q3: 5(.8) 2(.6) 0(0) 1(0) 4(0)        -> B at rank 4
#   q4: 0 1 2 3 5 (all 0)                 -> A at ranks 1, 3
EXPECTED_RANKS = [[2, 5], [4], [2, 5], [4], [1, 3], []]


@pytest.mark.parametrize("block_size", [1, 2, 4, 6])
def test_relevant_ranks_by_hand(block_size):
    ranks = metrics.relevant_ranks(VECTORS, CLIQUES, block_size=block_size, progress=False)
    assert [r.tolist() for r in ranks] == EXPECTED_RANKS


def test_blocks_end_at_clique_boundaries():
    # sorted rows: cliques of 3, 1, 5, 2 rows
    starts, ends = np.array([0, 3, 4, 9]), np.array([3, 4, 9, 11])
    assert metrics._blocks(starts, ends, 4) == [(0, 4), (4, 9), (9, 11)]
    assert metrics._blocks(starts, ends, 1) == [(0, 3), (3, 4), (4, 9), (9, 11)]
    assert metrics._blocks(starts, ends, 100) == [(0, 11)]


def test_summary_by_hand():
    summary, per_query = metrics.evaluate(VECTORS, CLIQUES, ids=list("abcdef"), progress=False)
    assert list(summary) == list(metrics.SUMMARY_KEYS)
    assert summary["queries"] == 5  # the singleton is not evaluated
    assert "f" not in set(per_query["id"])
    ap = [(1 / 2 + 2 / 5) / 2, 1 / 4, (1 / 2 + 2 / 5) / 2, 1 / 4, (1 + 2 / 3) / 2]
    nar = [((2 - 1) + (5 - 2)) / 2 / 3, 3 / 4, ((2 - 1) + (5 - 2)) / 2 / 3, 3 / 4, (0 + 1) / 2 / 3]
    assert per_query["AP"].tolist() == pytest.approx(ap)
    assert per_query["NAR"].tolist() == pytest.approx(nar)
    assert summary["MAP"] == pytest.approx(np.mean(ap), abs=1e-6)
    assert summary["MAP10"] == pytest.approx(np.mean(ap), abs=1e-6)
    assert summary["MR1"] == pytest.approx((2 + 4 + 2 + 4 + 1) / 5)
    assert summary["HR1"] == pytest.approx(0.2)
    assert summary["HR10"] == 1.0 and summary["HR100"] == 1.0
    assert summary["P10"] == pytest.approx((0.2 + 0.1 + 0.2 + 0.1 + 0.2) / 5)
    assert summary["NAR"] == pytest.approx(np.mean(nar), abs=1e-6)


def test_query_metrics_cutoffs_by_hand():
    m = metrics.query_metrics(np.array([3, 12, 15]), candidates=100)
    assert m["AP"] == pytest.approx((1 / 3 + 2 / 12 + 3 / 15) / 3)
    assert m["AP10"] == pytest.approx((1 / 3) / 3)  # only rank 3 is in the top 10; min(10, R) = 3
    assert m["P10"] == pytest.approx(0.1)
    assert (m["R1"], m["HR1"], m["HR10"], m["HR100"]) == (3, 0, 1, 1)
    assert m["NAR"] == pytest.approx(((3 - 1) + (12 - 2) + (15 - 3)) / 3 / 97)
    perfect = metrics.query_metrics(np.array([1, 2]), candidates=2)
    assert perfect["AP"] == 1.0 and perfect["NAR"] == 0.0


def test_no_queries_gives_nan_summary():
    summary, per_query = metrics.evaluate(VECTORS[:3], ["x", "y", "z"], progress=False)
    assert summary["queries"] == 0 and per_query.empty and np.isnan(summary["MAP"])


@pytest.mark.parametrize("dense", [False, True])
@pytest.mark.parametrize("ties", [False, True])
def test_streamed_ranks_equal_brute_force(ties, dense, monkeypatch):
    if dense:  # force the dense counting path (used when many candidates outrank relevant items)
        monkeypatch.setattr(metrics, "SPARSE_LIMIT", 0.0)
    rng = np.random.default_rng(7)
    for _ in range(15):
        n = int(rng.integers(4, 70))
        x = rng.normal(size=(n, 5)).astype(np.float32)
        if ties:  # small integers: inner products are exact in any summation order, so many exact ties
            x = np.round(x)
        else:
            x /= np.linalg.norm(x, axis=1, keepdims=True)
        cliques = rng.integers(0, max(2, n // 3), n)
        block_size = int(rng.integers(1, n + 1))  # one tile up to one per clique
        got = metrics.relevant_ranks(x, cliques, block_size=block_size, progress=False)
        sims = (torch.from_numpy(x) @ torch.from_numpy(x).T).numpy()
        for q in range(n):
            row = sims[q].copy()
            row[q] = -np.inf
            order = np.argsort(-row, kind="stable")  # stable: ties by corpus order
            relevant = np.flatnonzero((cliques == cliques[q]) & (np.arange(n) != q))
            expected = np.sort(np.flatnonzero(np.isin(order, relevant)) + 1)
            assert got[q].tolist() == expected.tolist()


def test_block_size_does_not_change_distinct_similarities():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cliques = rng.integers(0, 60, 300)
    a, _ = metrics.evaluate(x, cliques, block_size=300, progress=False)
    b, _ = metrics.evaluate(x, cliques, block_size=17, progress=False)
    assert a == b
