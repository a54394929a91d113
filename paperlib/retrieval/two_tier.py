"""Two-tier index files larger than memory: the first tier in memory, the refine tier's codes streamed to disk.

A two-tier index is a faiss `IndexRefine` (factory "…,RFlat" or "…,Refine(SQfp16)") whose refine tier is flat
codes (`IndexFlat`: float32 vectors, 4·d bytes per track; `IndexScalarQuantizer`: e.g. fp16, 2·d bytes). In a
faiss file its stream ends with the refine tier's codes (a uint64 count, then n·code_size bytes) and the float32
k_factor. Here those codes never pass through memory: rows added to the first tier have their codes encoded and
appended to `Codes` (byte ranges of existing files, then a temporary spool), and `write` lets faiss write the index
with an empty refine tier whose header counts every row, then puts the count and the codes where faiss left them
empty. `load(..., mapped=True)` memory-maps them again (faiss IO_FLAG_MMAP_IFC), so searching keeps only the first
tier in memory; re-ranking reads each hit's candidates from the file through the OS page cache.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np

COUNT = np.dtype("<u8")  # faiss writes sizes as size_t, little-endian on x86-64
K_FACTOR = np.dtype("<f4")


def refine_tier(index: faiss.Index) -> faiss.Index | None:
    """The refine tier (IndexFlat or IndexScalarQuantizer) of a two-tier `index`, None for any other index."""
    index = faiss.downcast_index(index)
    if not isinstance(index, faiss.IndexRefine):
        return None
    refine = faiss.downcast_index(index.refine_index)
    return refine if isinstance(refine, faiss.IndexFlat | faiss.IndexScalarQuantizer) else None


def first_tier(index: faiss.Index) -> faiss.Index:
    return faiss.downcast_index(faiss.downcast_index(index).base_index)


def encode(index: faiss.Index, x: np.ndarray) -> np.ndarray:
    """[n, code_size] uint8 refine codes of rows x, as the refine tier would store them."""
    return refine_tier(index).sa_encode(x)


def empty_like(refine: faiss.Index) -> faiss.Index:
    """A refine tier with `refine`'s settings and trained parameters, and no codes."""
    if isinstance(refine, faiss.IndexFlat):
        return faiss.IndexFlat(refine.d, refine.metric_type)
    empty = faiss.IndexScalarQuantizer(refine.d, refine.sq.qtype, refine.metric_type)
    faiss.copy_array_to_vector(faiss.vector_to_array(refine.sq.trained), empty.sq.trained)
    empty.is_trained = refine.is_trained
    return empty


@dataclass
class Codes:
    """The refine tier's codes in row order, outside faiss: byte ranges of files (an index file's mapped codes),
    then the rows appended since, spooled to a temporary file (deleted when closed)."""

    code_size: int
    ranges: list[tuple[str, int, int]] = field(default_factory=list)  # (path, offset, bytes)
    spool_dir: str | None = None  # None: tempfile's default
    spool: BinaryIO | None = None

    @property
    def rows(self) -> int:
        return self.nbytes // self.code_size

    @property
    def nbytes(self) -> int:
        return sum(n for _, _, n in self.ranges) + (self.spool.tell() if self.spool else 0)

    @property
    def spooled(self) -> bool:
        return self.spool is not None and self.spool.tell() > 0

    def append(self, codes: np.ndarray) -> None:
        if self.spool is None:
            self.spool = tempfile.TemporaryFile(prefix="livi-codes-", dir=self.spool_dir)
        self.spool.write(np.ascontiguousarray(codes, np.uint8).tobytes())

    def close(self) -> None:
        """Delete the spool; the codes appended are gone."""
        if self.spool is not None:
            self.spool.close()
            self.spool = None

    def copy_to(self, out: BinaryIO) -> None:
        for path, offset, size in self.ranges:
            with open(path, "rb") as source:
                source.seek(offset)
                _copy(source, out, size)
        if self.spool is not None:
            end = self.spool.tell()
            self.spool.seek(0)
            _copy(self.spool, out, end)
            self.spool.seek(end)


def _copy(source: BinaryIO, out: BinaryIO, size: int, block: int = 1 << 24) -> None:
    while size > 0:
        data = source.read(min(block, size))
        if not data:
            raise OSError("a code file ended early")
        out.write(data)
        size -= len(data)


def count_per_row(refine: faiss.Index) -> int:
    """What faiss' count field grows by per row of `refine` (IndexFlat counts floats, other flat codes bytes),
    read from the serialisation of a one-row copy."""
    probe = empty_like(refine)
    probe.add(np.zeros((1, refine.d), np.float32))
    data = faiss.serialize_index(probe).tobytes()
    return int(np.frombuffer(data, COUNT, count=1, offset=len(data) - refine.code_size - COUNT.itemsize)[0])


class _HoldBack:
    """A writer that passes all but the last `keep` bytes it receives to `out`."""

    def __init__(self, out: BinaryIO, keep: int):
        self.out, self.keep, self.tail = out, keep, b""

    def write(self, data) -> int:
        self.tail += bytes(data)
        if len(self.tail) > self.keep:
            self.out.write(self.tail[: -self.keep])
            self.tail = self.tail[-self.keep :]
        return len(data)


def write(out: BinaryIO, index: faiss.Index, codes: Codes) -> None:
    """Write two-tier `index` (its first tier holding codes.rows rows) to `out` as faiss.write_index would with
    those codes in its refine tier; the codes stream from `codes`, never all in memory."""
    refine, base = refine_tier(index), first_tier(index)
    rows = codes.rows
    if base.ntotal != rows:
        raise ValueError(f"the first tier holds {base.ntotal} rows, the refine tier's codes {rows}")
    shell = empty_like(refine)
    shell.ntotal = rows
    whole = faiss.IndexRefine(base, shell)
    whole.ntotal, whole.k_factor = rows, faiss.downcast_index(index).k_factor
    held = _HoldBack(out, COUNT.itemsize + K_FACTOR.itemsize)
    faiss.write_index(whole, faiss.PyCallbackIOWriter(held.write))
    count, k_factor = np.frombuffer(held.tail[: COUNT.itemsize], COUNT)[0], held.tail[COUNT.itemsize :]
    if count != 0 or np.frombuffer(k_factor, K_FACTOR)[0] != whole.k_factor:
        raise ValueError("this faiss writes an index refine tier in an unknown layout")
    out.write(np.array([rows * count_per_row(refine)], COUNT).tobytes())
    codes.copy_to(out)
    out.write(k_factor)


def mapped_codes(path: str | os.PathLike, index: faiss.Index, faiss_bytes: int) -> Codes:
    """The byte range of the refine codes of two-tier `index`, read from `path` (whose faiss part is
    `faiss_bytes` long) with IO_FLAG_MMAP_IFC; checks the count faiss wrote before them."""
    refine = refine_tier(index)
    size = int(refine.ntotal) * int(refine.code_size)
    end = faiss_bytes - K_FACTOR.itemsize
    with open(path, "rb") as f:
        f.seek(end - size - COUNT.itemsize)
        count = np.frombuffer(f.read(COUNT.itemsize), COUNT)[0]
    if count != refine.ntotal * count_per_row(refine):
        raise ValueError(f"{path}: the refine tier's codes are not where faiss writes them")
    path = Path(path).resolve()
    return Codes(int(refine.code_size), [(str(path), end - size, size)], spool_dir=str(path.parent))
