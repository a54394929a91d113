"""Cover retrieval by cosine similarity with faiss (paper §3.3: inference needs no ASR).

Vectors are L2-normalised float32 rows, so inner product = cosine. The default index is exact
(`IndexFlatIP`); any faiss `index_factory` string (e.g. "IVF1024,Flat", "HNSW32") trades
exactness for speed on large catalogues.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np
from tqdm.auto import tqdm

from paperlib.io import atomic_path


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as contiguous float32."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)


class CoverIndex:
    """A faiss inner-product index over track vectors, searchable by id.

    factory: "Flat" (exact, default) or any faiss index_factory string. Indexes that need
    training (IVF, PQ) are trained on the vectors given to `build`.
    """

    def __init__(self, dim: int, factory: str = "Flat", nprobe: int = 16):
        self.factory, self.nprobe = factory, nprobe
        self.index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
        self.ids: list[str] = []

    @classmethod
    def build(cls, ids, vectors: np.ndarray, factory: str = "Flat") -> CoverIndex:
        x = normalise(vectors)
        index = cls(x.shape[1], factory)
        if not index.index.is_trained:  # IVF/PQ: k-means with faiss' fixed default seed
            index.index.train(x)
        index.index.add(x)
        index.ids = [str(i) for i in ids]
        index._apply_search_params()
        return index

    def _apply_search_params(self) -> None:
        ivf = faiss.try_extract_index_ivf(self.index)
        if ivf is not None:
            ivf.nprobe = self.nprobe

    def __len__(self) -> int:
        return self.index.ntotal

    def search(
        self, queries: np.ndarray, k: int = 10, batch_size: int = 4096, progress: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores [Q, k] float32, row indices [Q, k] int64), best first; -1 where fewer than k."""
        x = normalise(queries)
        k = min(k, len(self))
        scores = np.empty((len(x), k), dtype=np.float32)
        rows = np.empty((len(x), k), dtype=np.int64)
        for lo in tqdm(range(0, len(x), batch_size), desc="search", disable=not progress):
            scores[lo : lo + batch_size], rows[lo : lo + batch_size] = self.index.search(x[lo : lo + batch_size], k)
        return scores, rows

    def search_ids(self, queries: np.ndarray, k: int = 10) -> list[list[tuple[str, float]]]:
        """Top-k as (id, cosine) pairs per query."""
        scores, rows = self.search(queries, k)
        return [[(self.ids[r], float(s)) for r, s in zip(rr, ss) if r >= 0] for rr, ss in zip(rows, scores)]

    def save(self, path: str | os.PathLike) -> None:
        """Write `path` (faiss index) and `path` + '.json' (ids, factory), each atomically."""
        path = Path(path)
        with atomic_path(path) as tmp:
            faiss.write_index(self.index, str(tmp))
        with atomic_path(str(path) + ".json") as tmp:
            tmp.write_text(json.dumps({"factory": self.factory, "nprobe": self.nprobe, "ids": self.ids}))

    @classmethod
    def load(cls, path: str | os.PathLike) -> CoverIndex:
        meta = json.loads(Path(str(path) + ".json").read_text())
        index = cls.__new__(cls)
        index.factory, index.nprobe, index.ids = meta["factory"], meta["nprobe"], meta["ids"]
        index.index = faiss.read_index(str(path))
        index._apply_search_params()
        return index
