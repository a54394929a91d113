"""Cover retrieval by cosine similarity with faiss (paper §3.3: inference needs no ASR).

Vectors are L2-normalised float32 rows, so inner product = cosine. The default index is exact
(`IndexFlatIP`); any faiss `index_factory` string (e.g. "IVF1024,Flat", "HNSW32") trades
exactness for speed on large catalogues (`benchmarks/index_scale.py` measures the trade).

An index file is the faiss index (faiss.write_index) followed by an uncompressed zip of .npy members: the
track id of each faiss row (rows are labels 0..n-1 in the order tracks were added), the audio path of each
track when known ("" otherwise), which rows are live (`add(..., replace=True)` retires the old row of a
re-added id instead of rebuilding; retired rows are never returned) and the settings. With the faiss index
first, `load(..., mapped=True)` memory-maps its flat vectors (faiss IO_FLAG_MMAP_IFC): a two-tier index such
as "IVF1024,PQ384x4fs,RFlat" then keeps only its compact codes in memory and reads the vectors it re-ranks
from the file. `build_file` streams a catalogue larger than memory into such a file, and `add` to a mapped two-tier
index spools the new codes until `save` (paperlib.retrieval.two_tier); a mapped one-tier index is read into memory
to grow. Every problem with an index or a query is a `RetrievalError` whose message is one line.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import faiss
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from paperlib.retrieval import two_tier
from paperlib.runtime import vectors as vector_files
from paperlib.runtime.io import append_npz, atomic_path
from paperlib.runtime.vectors import VectorError, normalise

FORMAT = "livi-index/2"
DEFAULT_SEARCH_PARAMS = {"IVF": "nprobe=16", "HNSW": "efSearch=64", "Refine": "k_factor_rf=16"}
"""faiss search parameters an index gets unless it is built with others (IVF lists probed, HNSW beam, and for a
two-tier `…,RFlat` index the first tier's candidates re-ranked per hit)."""
TRAIN_ROWS = 262_144
"""Tracks a streamed build trains on (`training_sample`): 64 per list of an IVF4096 coarse quantizer."""
Chunk = tuple[Sequence[str], np.ndarray, Sequence[str] | None]
"""(track ids, their vectors [n, d], their audio paths or None): one piece of a streamed catalogue."""


class RetrievalError(VectorError):
    """A bad index file, index setting, query or catalogue vector; str(exc) is one line."""


@contextlib.contextmanager
def _as_retrieval_error():
    """paperlib.runtime.vectors' errors raised as RetrievalError (same message)."""
    try:
        yield
    except RetrievalError:
        raise
    except VectorError as exc:
        raise RetrievalError(str(exc)) from None


def check_vectors(vectors, ids: Sequence[str], dim: int | None = None, what: str = "vectors") -> np.ndarray:
    """[n, d] float32 rows of `ids`, unit-normalised, after paperlib.runtime.vectors.check_vectors against the index's
    dimension `dim`; RetrievalError."""
    with _as_retrieval_error():
        return normalise(vector_files.check_vectors(vectors, ids, dim, what, expected="index's"))


def train_transform(transform: faiss.VectorTransform, x: np.ndarray) -> None:
    """Train one pre-transform of an inner-product index on rows x. A PCA is fitted to x and −x: faiss' PCA
    subtracts the training mean, which changes inner products (LIVI vectors share a mean direction); on the
    symmetric sample the mean is zero and the axes are those of the uncentred second moment, so the projected
    inner products are the cosines less the dropped axes' share."""
    transform = faiss.downcast_VectorTransform(transform)
    transform.train(np.vstack([x, -x]) if isinstance(transform, faiss.PCAMatrix) else x)


def train(index: faiss.Index, x: np.ndarray) -> None:
    """Train `index` (any index_factory result) on rows x, its pre-transforms by `train_transform`."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):
        sample = x
        for i in range(index.chain.size()):
            transform = index.chain.at(i)
            if not transform.is_trained:
                train_transform(transform, sample)
            sample = transform.apply(sample)
    index.train(x)  # trained pre-transforms are kept; the rest is trained on x mapped through them


def faiss_message(exc: Exception) -> str:
    """The first line of a faiss error without its C++ location."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^Error in .*? at \S+:\d+: ", "", text)


class CoverIndex:
    """A faiss inner-product index over track vectors, searchable by id.

    factory: "Flat" (exact, default) or any faiss index_factory string. Indexes that need training
    (IVF, PQ, SQ) are trained on the vectors given to `build`. search_params: faiss ParameterSpace
    settings such as "nprobe=32" ("" = DEFAULT_SEARCH_PARAMS for the index's kind).
    """

    def __init__(self, dim: int, factory: str = "Flat", search_params: str = ""):
        try:
            self.index = faiss.index_factory(int(dim), factory, faiss.METRIC_INNER_PRODUCT)
        except RuntimeError as exc:
            raise RetrievalError(f"faiss index factory {factory!r}: {faiss_message(exc)}") from None
        self.factory, self.search_params = factory, search_params or _default_params(self.index)
        self.ids: list[str] = []
        self.paths: list[str] = []
        self.live = np.zeros(0, dtype=bool)
        self.mapped = False
        self._row: dict[str, int] = {}
        self._codes: two_tier.Codes | None = None  # a two-tier index's refine codes when kept outside faiss
        self._path: str | None = None
        self._apply_search_params()

    @classmethod
    def build(
        cls, ids: Iterable, vectors, factory: str = "Flat", paths: Sequence[str] | None = None, search_params: str = ""
    ) -> CoverIndex:
        """A new index over `vectors` [n, d] (any norm) with track ids `ids` (unique), in memory; trained, when its
        factory needs it, on the `training_sample` of the tracks, as `build_file` is."""
        ids = [str(i) for i in ids]
        if not ids:
            raise RetrievalError("no tracks to index")
        x = check_vectors(vectors, ids)
        index = cls._trained(training_sample([(ids, x, None)]), factory, search_params)
        index.add(ids, x, paths)
        return index

    @classmethod
    def build_file(
        cls,
        out: str | os.PathLike,
        chunks: Callable[[], Iterable[Chunk]],
        factory: str = "Flat",
        search_params: str = "",
        train_rows: int = TRAIN_ROWS,
        progress: bool | None = None,
    ) -> CoverIndex:
        """An index over a catalogue streamed in chunks, written to `out` and loaded back mapped. `chunks()` is
        iterated twice: for the training sample (`training_sample`), then to add every track. A two-tier index
        (…,RFlat or …,Refine(SQfp16)) keeps only its first tier in memory: its refine codes are spooled beside
        `out` and streamed into the file (paperlib.retrieval.two_tier); any other index is built in memory.
        Memory: the first tier, the sample and one chunk. progress: tqdm bars (None: when stderr is a terminal)."""
        index = cls._trained(training_sample(chunks(), train_rows, progress), factory, search_params)
        refine = two_tier.refine_tier(index.index)
        if refine is not None:
            index._codes = two_tier.Codes(int(refine.code_size), spool_dir=str(Path(out).resolve().parent))
        try:
            with tqdm(desc="index", unit=" tracks", disable=None if progress is None else not progress) as bar:
                for ids, vectors, paths in chunks():
                    bar.update(len(ids))
                    index.add(ids, vectors, paths)
            index.save(out)
        finally:
            if index._codes is not None:
                index._codes.close()
        del index  # the builder's first tier and ids go before the file's are read back
        return cls.load(out, mapped=True)

    @classmethod
    def _trained(cls, x: np.ndarray, factory: str, search_params: str) -> CoverIndex:
        """An empty index of `factory` trained on unit rows x (PCA/IVF/PQ/SQ: k-means with faiss' fixed seed)."""
        index = cls(x.shape[1], factory, search_params)
        if not index.index.is_trained:
            try:
                train(index.index, x)
            except RuntimeError as exc:
                raise RetrievalError(f"cannot train {factory!r} on {len(x)} tracks: {faiss_message(exc)}") from None
        return index

    def _apply_search_params(self) -> None:
        if not self.search_params:
            return
        try:
            faiss.ParameterSpace().set_index_parameters(self.index, self.search_params)
        except RuntimeError as exc:
            raise RetrievalError(f"search parameters {self.search_params!r}: {faiss_message(exc)}") from None

    @property
    def dim(self) -> int:
        return int(self.index.d)

    def __len__(self) -> int:
        """Live tracks (retired rows not counted)."""
        return len(self._row)

    def __contains__(self, track_id: str) -> bool:
        return track_id in self._row

    def add(self, ids: Iterable, vectors, paths: Sequence[str] | None = None, replace: bool = False) -> int:
        """Add tracks; an id already present is a RetrievalError unless `replace` (its old row is retired).
        Returns the number of ids that replaced an existing track."""
        ids = [str(i) for i in ids]
        x = check_vectors(vectors, ids, self.dim)
        paths = [str(p) for p in paths] if paths is not None else [""] * len(ids)
        repeated = sorted(i for i, n in Counter(ids).items() if n > 1)
        if repeated:
            raise RetrievalError(f"id(s) given more than once: {', '.join(repeated[:5])}")
        present = [i for i in ids if i in self._row]
        if present and not replace:
            more = " …" if len(present) > 5 else ""
            raise RetrievalError(
                f"{len(present)} id(s) already in the index: {', '.join(present[:5])}{more} (--replace to overwrite)"
            )
        if not ids:
            return 0
        self.live[[self._row.pop(i) for i in present]] = False
        first = len(self.ids)
        if self._codes is not None:  # two tiers kept on disk: the refine codes are spooled until `save`
            two_tier.first_tier(self.index).add(x)
            self._codes.append(two_tier.encode(self.index, x))
        else:
            if self.mapped:  # a one-tier index is read into memory to grow
                self.index, self.mapped = faiss.read_index(self._path), False
                self._apply_search_params()
            self.index.add(x)
        self.ids += ids
        self.paths += paths
        self.live = np.concatenate([self.live, np.ones(len(ids), dtype=bool)])
        self._row |= {track_id: first + n for n, track_id in enumerate(ids)}
        return len(present)

    def row(self, track_id: str) -> int:
        """The live faiss row of an id; RetrievalError when the index has no such track."""
        if track_id not in self._row:
            raise RetrievalError(f"unknown id {track_id!r}: not in the index")
        return self._row[track_id]

    def search(
        self,
        queries,
        k: int = 10,
        batch_size: int = 4096,
        progress: bool = False,
        exclude: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (scores [Q, k] float32, row indices [Q, k] int64), best first; -1 / -inf where fewer than k
        (k is capped at the number of live tracks).

        Retired rows are skipped; exclude: one row per query never to return (its own row, or -1).
        """
        if len(self) == 0:
            raise RetrievalError("the index has no tracks")
        if self._codes is not None and self._codes.spooled:
            raise RetrievalError("tracks added to a two-tier index on disk are searchable once it is saved and loaded")
        x = check_vectors(queries, [f"query {n}" for n in range(len(queries))], self.dim, "query")
        exclude = np.full(len(x), -1, np.int64) if exclude is None else np.asarray(exclude, np.int64)
        k = max(1, min(int(k), len(self)))
        fetch = min(k + int((~self.live).sum()) + int((exclude >= 0).any()), self.index.ntotal)
        scores = np.full((len(x), k), -np.inf, dtype=np.float32)
        rows = np.full((len(x), k), -1, dtype=np.int64)
        for lo in tqdm(range(0, len(x), batch_size), desc="search", disable=not progress):
            s, r = self.index.search(x[lo : lo + batch_size], fetch)
            keep = (r >= 0) & self.live[r] & (r != exclude[lo : lo + batch_size, None])
            order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept hits first, rank order kept
            kept = np.take_along_axis(keep, order, axis=1)
            width = order.shape[1]
            rows[lo : lo + batch_size, :width] = np.where(kept, np.take_along_axis(r, order, axis=1), -1)
            scores[lo : lo + batch_size, :width] = np.where(kept, np.take_along_axis(s, order, axis=1), -np.inf)
        return scores, rows

    def search_ids(
        self, queries, k: int = 10, query_ids: Sequence[str] | None = None, min_score: float | None = None
    ) -> list[list[tuple[str, float]]]:
        """Top-k as (id, cosine) pairs per query, best first. A query whose id (query_ids) is in the index
        is not its own hit; min_score drops hits below that cosine."""
        exclude = None if query_ids is None else [self._row.get(str(q), -1) for q in query_ids]
        scores, rows = self.search(queries, k, exclude=exclude)
        floor = -np.inf if min_score is None else min_score
        return [
            [(self.ids[r], float(s)) for r, s in zip(rr, ss) if r >= 0 and s >= floor] for rr, ss in zip(rows, scores)
        ]

    def info(self) -> dict:
        """What the index holds and costs: tracks, retired rows, dimension, factory, search parameters, faiss
        bytes (serialised) and the bytes of flat vectors among them that `load(mapped=True)` reads from the file
        instead of memory; per faiss row, the bytes kept in memory when mapped."""
        # a mapped index is the file's, unchanged: its size there, not a serialised copy of every mapped vector
        if self._codes is not None and (self._codes.spooled or not self.mapped):
            vectors = self._codes.nbytes
            size = int(faiss.serialize_index(two_tier.first_tier(self.index)).size) + vectors
        else:
            size = self._faiss_bytes if self.mapped else int(faiss.serialize_index(self.index).size)
            vectors = flat_vector_bytes(self.index)
        return {
            "format": FORMAT,
            "factory": self.factory,
            "search_params": self.search_params,
            "dim": self.dim,
            "tracks": len(self),
            "retired_rows": int((~self.live).sum()),
            "with_paths": sum(bool(self.paths[r]) for r in self._row.values()),
            "faiss_bytes": size,
            "mappable_bytes": vectors,
            "memory_bytes_per_row": round((size - vectors) / max(len(self.ids), 1), 1),
        }

    def save(self, path: str | os.PathLike) -> None:
        """One file, written atomically: the faiss index, then a zip of ids, paths, live rows and settings."""
        meta = {"format": FORMAT, "factory": self.factory, "search_params": self.search_params}
        members = {"meta": np.array(json.dumps(meta)), "ids": np.array(self.ids, dtype=str)}
        members |= {"paths": np.array(self.paths, dtype=str), "live": self.live}
        with atomic_path(path) as tmp:
            if self._codes is None:
                faiss.write_index(self.index, str(tmp))
            else:
                with open(tmp, "wb") as out:
                    two_tier.write(out, self.index, self._codes)
            append_npz(tmp, members)

    @classmethod
    def load(cls, path: str | os.PathLike, mapped: bool = False) -> CoverIndex:
        """An index saved by `save`; mapped: its flat vectors stay in the file, memory-mapped, and the index is
        read-only. RetrievalError for a missing, empty, foreign or corrupt file."""
        members, faiss_bytes = _read_members(path)
        try:
            meta = json.loads(str(members["meta"]))
        except ValueError as exc:
            raise RetrievalError(f"index file {path} is corrupt ({faiss_message(exc)})") from None
        if meta.get("format") != FORMAT:
            raise RetrievalError(
                f"index file {path}: format {meta.get('format')!r}, expected {FORMAT!r} (build it again)"
            )
        try:
            faiss_index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mapped else 0)
        except RuntimeError as exc:
            raise RetrievalError(f"index file {path} is corrupt ({faiss_message(exc)})") from None
        ids, paths, live = members.pop("ids").tolist(), members.pop("paths").tolist(), members.pop("live")
        if not len(ids) == len(paths) == len(live) == faiss_index.ntotal:
            raise RetrievalError(f"index file {path} is corrupt: {faiss_index.ntotal} vectors but {len(ids)} ids")
        index = cls.__new__(cls)
        index.index, index.factory, index.search_params = faiss_index, meta["factory"], meta["search_params"]
        index.ids, index.paths, index.live, index.mapped = ids, paths, live.astype(bool), mapped
        index._faiss_bytes, index._path = faiss_bytes, str(path)
        index._codes = None
        if mapped and two_tier.refine_tier(faiss_index) is not None:
            try:
                index._codes = two_tier.mapped_codes(path, faiss_index, faiss_bytes)
            except ValueError as exc:
                raise RetrievalError(f"index file {path} is corrupt ({exc})") from None
        index._row = {ids[r]: int(r) for r in np.flatnonzero(index.live)}
        index._apply_search_params()
        return index


MEMBERS = ("meta", "ids", "paths", "live")


def training_sample(chunks: Iterable[Chunk], rows: int = TRAIN_ROWS, progress: bool | None = False) -> np.ndarray:
    """The unit vectors [≤ rows, d] of the `rows` tracks whose ids hash lowest (pandas' hash_array, a fixed key),
    in hash order: the same sample whatever the catalogue's order or chunking. RetrievalError when it is empty."""
    keys, sample = np.empty(0, np.uint64), None
    bars = None if progress is None else not progress
    for ids, vectors, _ in tqdm(chunks, desc="training sample", unit=" chunks", disable=bars):
        ids = [str(i) for i in ids]
        x = check_vectors(vectors, ids, None if sample is None else sample.shape[1])
        k = pd.util.hash_array(np.asarray(ids, dtype=object))
        room = rows - len(keys)  # fill the sample first, then swap rows in
        keys = np.concatenate([keys, k[:room]])
        sample = x[:room] if sample is None else np.vstack([sample, x[:room]])
        keys, sample = _swap_lower(keys, sample, k[room:], x[room:])
    if sample is None or not len(sample):
        raise RetrievalError("no tracks to index")
    return sample[np.argsort(keys, kind="stable")]


def _swap_lower(keys: np.ndarray, sample: np.ndarray, k: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(keys, sample) with the rows of x whose keys k are among the len(keys) lowest of both put in place of the
    rows they displace (in place: no copy of the sample)."""
    if not len(k):
        return keys, sample
    keep = np.argsort(np.concatenate([keys, k]), kind="stable")[: len(keys)]
    entering = keep[keep >= len(keys)] - len(keys)
    slots = np.setdiff1d(np.arange(len(keys)), keep[keep < len(keys)])
    keys[slots], sample[slots] = k[entering], x[entering]
    return keys, sample


def _read_members(path) -> tuple[dict[str, np.ndarray], int]:
    """(the zip's members, the bytes of the faiss index before it)."""
    path = Path(path)
    if not path.is_file():
        raise RetrievalError(f"index file not found: {path}")
    if path.stat().st_size == 0:
        raise RetrievalError(f"index file {path} is empty")
    try:
        with zipfile.ZipFile(path) as archive:
            names = {Path(n).stem: n for n in archive.namelist()}
            missing = [m for m in MEMBERS if m not in names]
            members = {} if missing else {m: _read_array(archive, names[m]) for m in MEMBERS}
            faiss_bytes = min(info.header_offset for info in archive.infolist()) if members else 0
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise RetrievalError(f"index file {path} is corrupt or not an index ({type(exc).__name__})") from None
    if missing:
        raise RetrievalError(f"{path} is not a LIVI index file (no {', '.join(missing)})")
    return members, faiss_bytes


def _read_array(archive: zipfile.ZipFile, name: str) -> np.ndarray:
    with archive.open(name) as member:
        return np.lib.format.read_array(member, allow_pickle=False)


def flat_vector_bytes(index: faiss.Index) -> int:
    """Bytes of the flat codes in `index` (IndexFlat, SQ and PQ codes, the re-ranking vectors of a `…,RFlat`
    or the storage of an HNSW graph): what faiss IO_FLAG_MMAP_IFC leaves in the file."""
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexRefine):
        return flat_vector_bytes(index.base_index) + flat_vector_bytes(index.refine_index)
    if isinstance(index, faiss.IndexPreTransform):
        return flat_vector_bytes(index.index)
    if isinstance(index, faiss.IndexHNSW):
        return flat_vector_bytes(index.storage)
    if isinstance(index, faiss.IndexFlatCodes):
        return int(index.ntotal) * int(index.code_size)
    return 0


def _default_params(index) -> str:
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexRefine):
        return ",".join(p for p in (_default_params(index.base_index), DEFAULT_SEARCH_PARAMS["Refine"]) if p)
    if faiss.try_extract_index_ivf(index) is not None:
        return DEFAULT_SEARCH_PARAMS["IVF"]
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    if isinstance(index, faiss.IndexHNSW):
        return DEFAULT_SEARCH_PARAMS["HNSW"]
    return ""


def read_catalogue(
    embeddings: str | os.PathLike, manifest: str | os.PathLike | None = None
) -> tuple[list[str], np.ndarray, list[str] | None]:
    """(ids, unit vectors [n, d], audio paths or None) of an embeddings file: paperlib.runtime.vectors.read_catalogue,
    as a RetrievalError."""
    with _as_retrieval_error():
        return vector_files.read_catalogue(embeddings, manifest)
