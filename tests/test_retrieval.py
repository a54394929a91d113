"""faiss retrieval equals brute-force cosine search; approximate indexes find the neighbours."""

import numpy as np
import pytest

from paperlib.retrieval.index import CoverIndex, normalise


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    base = rng.normal(size=(2000, 32)).astype(np.float32) * rng.uniform(0.5, 3, size=(2000, 1))
    queries = rng.normal(size=(50, 32)).astype(np.float32)
    return base, queries


def brute_force(base, queries, k):
    sims = normalise(queries) @ normalise(base).T
    order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(sims, order, axis=1), order


def test_exact_index_equals_brute_force(data):
    base, queries = data
    index = CoverIndex.build([f"t{i}" for i in range(len(base))], base)
    scores, rows = index.search(queries, k=10, batch_size=7)
    expected_scores, expected_rows = brute_force(base, queries, 10)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(scores, expected_scores, atol=1e-5)
    top = index.search_ids(queries[:1], k=3)[0]
    assert [i for i, _ in top] == [f"t{r}" for r in expected_rows[0, :3]]


@pytest.mark.parametrize("factory", ["HNSW32", "IVF16,Flat"])
def test_approximate_indexes_recall(data, factory):
    base, queries = data
    index = CoverIndex.build(range(len(base)), base, factory=factory)
    _, rows = index.search(queries, k=10)
    _, expected = brute_force(base, queries, 10)
    recall = np.mean([len(set(r) & set(e)) / 10 for r, e in zip(rows, expected)])
    assert recall >= 0.9


def test_save_and_load_round_trip(data, tmp_path):
    base, queries = data
    index = CoverIndex.build([str(i) for i in range(len(base))], base, factory="IVF16,Flat")
    index.save(tmp_path / "covers.faiss")
    loaded = CoverIndex.load(tmp_path / "covers.faiss")
    assert loaded.ids == index.ids and loaded.factory == "IVF16,Flat" and len(loaded) == len(base)
    for a, b in zip(index.search(queries, 5), loaded.search(queries, 5)):
        np.testing.assert_array_equal(a, b)
