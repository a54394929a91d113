"""Embedding files: reading, validating and writing track vectors (numpy and pandas only: no torch).

An embeddings file is an npz mapping track id → vector [d] or → chunk vectors [n, d], or a shard directory
(paperlib.runtime.shards: the `vector` of its rows with status "ok"). A track's vector is `track_embedding` of its
array: the mean of its L2-normalised chunk vectors, re-normalised (a vector [d] is one chunk). Every vector read
here is float32, finite, non-zero and of the file's one dimension d (`check_vectors`); every problem is a
`VectorError` whose message is one line naming the file (or what was checked) and the first bad id.

Cosines and their statistics are stored at io.DECIMALS decimals (io.rounded).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.runtime import shards
from paperlib.runtime.errors import PaperlibError
from paperlib.runtime.io import save_npz, write_csv
from paperlib.runtime.schema import MANIFEST_COLUMNS


class VectorError(PaperlibError, ValueError):
    """A bad embeddings file, clique table or vector; str(exc) is one line."""


# --------------------------------------------------------------------------- vectors
def track_embedding(chunk_embeddings: np.ndarray) -> np.ndarray:
    """Track vector = mean of the L2-normalised chunk vectors [n, d] (or one vector [d]), re-normalised → [d]."""
    chunks = np.asarray(chunk_embeddings, dtype=np.float32)
    if chunks.ndim == 1:
        chunks = chunks[None]
    chunks = chunks / np.linalg.norm(chunks, axis=1, keepdims=True)
    mean = chunks.mean(axis=0)
    return (mean / np.linalg.norm(mean)).astype(np.float32)


def normalise(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm, as contiguous float32."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True).clip(min=1e-12)


def check_vectors(
    vectors, ids: Sequence[str], dim: int | None = None, what: str = "vectors", expected: str = "expected"
) -> np.ndarray:
    """The [n, d] float32 rows of `ids` (row i ↔ ids[i]), unchanged. VectorError, naming `what` and the first bad
    id, for a shape other than [len(ids), d], a dimension other than `dim` ("does not match the `expected` dim"),
    a NaN/inf or an all-zero row."""
    x = np.asarray(vectors, dtype=np.float32)
    if x.ndim != 2 or len(x) != len(ids):
        raise VectorError(f"{what}: expected {len(ids)} rows of one dimension, got shape {x.shape}")
    if dim is not None and x.shape[1] != dim:
        raise VectorError(f"{what}: dimension {x.shape[1]} does not match the {expected} {dim}")
    bad = ~np.isfinite(x).all(axis=1)
    if bad.any():
        raise VectorError(f"{what}: vector of {ids[int(np.argmax(bad))]!r} contains NaN or infinite values")
    zero = ~(np.abs(x) > 0).any(axis=1)
    if zero.any():
        raise VectorError(f"{what}: vector of {ids[int(np.argmax(zero))]!r} is a zero vector")
    return x


def check_arrays(arrays: Iterable, ids: Sequence[str], what: str = "vectors") -> list[np.ndarray]:
    """The per-id arrays (each a vector [d] or chunk vectors [n, d]) as float32, each checked by `check_vectors`
    (every chunk too); VectorError for another shape or a dimension other than the first array's."""
    return list(_checked(arrays, ids, what))


def track_vectors(arrays: Iterable, ids: Sequence[str], what: str = "vectors") -> np.ndarray:
    """[len(ids), d] float32 unit track vectors (`track_embedding`) of per-id arrays checked as by `check_arrays`
    (and pooled vectors by `check_vectors`: chunks whose mean is zero give no direction)."""
    pooled = [track_embedding(value) for value in _checked(arrays, ids, what)]
    return check_vectors(np.stack(pooled), ids, what=what) if pooled else np.zeros((0, 0), np.float32)


def _checked(arrays: Iterable, ids: Sequence[str], what: str) -> Iterator[np.ndarray]:
    dim = None
    for track, value in zip(ids, arrays, strict=True):
        value = np.asarray(value, dtype=np.float32)
        if value.ndim not in (1, 2) or value.size == 0:
            raise VectorError(f"{what}: vector of {track!r} has shape {value.shape}; expected (d,) or (chunks, d)")
        dim = value.shape[-1] if dim is None else dim
        if value.shape[-1] != dim:
            raise VectorError(f"{what}: vector of {track!r} has dimension {value.shape[-1]}, the others {dim}")
        rows = value.reshape(-1, dim)
        check_vectors(rows, [track] * len(rows), what=what)
        yield value


# --------------------------------------------------------------------------- embeddings files
class _Vectors(dict):
    """id → vector of a shard directory, with the npz file interface (`.files`, a context manager)."""

    @property
    def files(self) -> list[str]:
        return list(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def open_embeddings(path: str | os.PathLike):
    """An npz (np.load) or a shard directory as a mapping id → array with `.files`; a context manager.
    VectorError when it cannot be read."""
    if Path(path).is_dir():
        try:
            return _Vectors(shards.read_vectors(path))
        except (shards.ShardError, OSError) as exc:
            raise VectorError(str(exc).splitlines()[0]) from None
        except Exception as exc:  # pyarrow errors: a shard that is not Parquet
            raise VectorError(f"shard directory {path} is not readable ({type(exc).__name__}: {exc})") from None
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise VectorError(f"embeddings file not found: {path}") from None
    except Exception as exc:  # zipfile/pickle/format errors all mean "not an npz we can read"
        raise VectorError(f"embeddings file {path} is not a readable .npz ({type(exc).__name__})") from None


def read_embeddings(path: str | os.PathLike, ids: Sequence[str]) -> np.ndarray:
    """[len(ids), d] float32 unit track vectors (`track_vectors`) of `ids`, in that order, from an embeddings file.
    VectorError when the file is empty or lacks an id, or a vector is bad."""
    with open_embeddings(path) as archive:
        keys = set(archive.files)
        if not keys:
            raise VectorError(f"embeddings file {path} is empty")
        absent = [i for i in ids if i not in keys]
        if absent:
            raise VectorError(
                f"{len(absent)} id(s) of the clique table are missing from {path}: "
                f"{', '.join(absent[:5])}{' …' if len(absent) > 5 else ''}"
            )
        return track_vectors((archive[i] for i in ids), ids, str(path))


def read_vectors(path: str | os.PathLike) -> tuple[list[str], np.ndarray]:
    """(ids in file order, their [n, d] unit track vectors) of an embeddings file; VectorError."""
    with open_embeddings(path) as archive:
        ids = list(archive.files)
    return ids, read_embeddings(path, ids)


def read_vector_map(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """id → unit track vector [d] of an embeddings file, in file order; {} for an empty file. VectorError."""
    with open_embeddings(path) as archive:
        ids = list(archive.files)
    return dict(zip(ids, read_embeddings(path, ids))) if ids else {}


def write_embeddings(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    """An embeddings npz (id → float32 vector [d] or chunk vectors [n, d], in mapping order), written atomically
    and reproducibly (paperlib.runtime.io.save_npz) after `check_arrays`."""
    ids = [str(i) for i in arrays]
    checked = check_arrays(list(arrays.values()), ids, str(path))
    save_npz(path, dict(zip(ids, checked)))


def write_system(
    manifest: pd.DataFrame,
    vectors: Mapping[str, np.ndarray],
    out: str | os.PathLike,
    manifest_path: str | os.PathLike,
    timings_path: str | os.PathLike | None = None,
    timing_columns: Sequence[str] = (),
    arrays: Mapping[str | os.PathLike, Mapping[str, np.ndarray]] | None = None,
) -> None:
    """One system's outputs for the tracks of `manifest` (schema.MANIFEST_COLUMNS, input order): OUT (npz: id →
    vector of the "ok" ids, manifest order), the manifest, optionally the wall-clock timings (id, status,
    duration_s, n_chunks, timing_columns: they vary run to run) and `arrays` ({npz path: id → array} of the ok ids,
    e.g. chunk vectors or segments). Every file written atomically and reproducibly."""
    ok = manifest.loc[manifest["status"] == "ok", "id"]
    save_npz(out, {i: vectors[i] for i in ok})
    for path, values in (arrays or {}).items():
        save_npz(path, {i: values[i] for i in ok})
    write_csv(manifest[MANIFEST_COLUMNS], manifest_path)
    if timings_path is not None:
        Path(timings_path).parent.mkdir(parents=True, exist_ok=True)
        write_csv(manifest[["id", "status", "duration_s", "n_chunks", *timing_columns]], timings_path)


def paired_rows(first: Mapping[str, np.ndarray], second: Mapping[str, np.ndarray]):
    """(the ids in both mappings, in `first`'s order; their vectors in each, [n, d] float64)."""
    ids = [i for i in first if i in second]
    if not ids:
        return ids, np.zeros((0, 0)), np.zeros((0, 0))
    return (
        ids,
        np.stack([first[i] for i in ids]).astype(np.float64),
        np.stack([second[i] for i in ids]).astype(np.float64),
    )


def paired_cosines(first: Mapping[str, np.ndarray], second: Mapping[str, np.ndarray]) -> np.ndarray:
    """Per id in both (in `first`'s order): the inner product of its two vectors in float64 (cosine of unit
    vectors, as stored)."""
    _, a, b = paired_rows(first, second)
    return (a * b).sum(axis=1)


# --------------------------------------------------------------------------- tables with the vectors
def read_cliques(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """(ids, cliques) from a CSV with columns id,clique (others ignored); VectorError with one clear line."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError:
        raise VectorError(f"clique table not found: {path}") from None
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise VectorError(f"clique table {path} is not a readable CSV ({exc})") from None
    missing = [c for c in ("id", "clique") if c not in table.columns]
    if missing:
        raise VectorError(
            f"clique table {path} lacks column(s) {', '.join(missing)} (has: {', '.join(table.columns) or 'none'})"
        )
    if table.empty:
        raise VectorError(f"clique table {path} has no rows")
    dupes = table["id"][table["id"].duplicated()].unique()
    if len(dupes):
        raise VectorError(f"clique table {path} lists id(s) more than once: {', '.join(dupes[:5])}")
    if (table["id"] == "").any() or (table["clique"] == "").any():
        raise VectorError(f"clique table {path} has empty id or clique values")
    return table["id"].tolist(), table["clique"].tolist()


def read_labelled(
    embeddings: str | os.PathLike, cliques_csv: str | os.PathLike
) -> tuple[list[str], np.ndarray, list[str]]:
    """(ids, [n, d] unit track vectors, clique labels) of the clique table's tracks that the embeddings file holds
    (tracks without an embedding, e.g. instrumental ones, are left out), in table order; VectorError."""
    ids, cliques = read_cliques(cliques_csv)
    with open_embeddings(embeddings) as archive:
        present = set(archive.files)
    kept = [(i, c) for i, c in zip(ids, cliques) if i in present]
    if not kept:
        raise VectorError(f"no track of {cliques_csv} has an embedding in {embeddings}")
    ids, cliques = [i for i, _ in kept], [c for _, c in kept]
    return ids, read_embeddings(embeddings, ids), cliques


def read_catalogue(
    embeddings: str | os.PathLike, manifest: str | os.PathLike | None = None
) -> tuple[list[str], np.ndarray, list[str] | None]:
    """`read_vectors` and the audio path of each id: from `manifest` (a CSV with id,path; default: the npz with
    suffix .manifest.csv as `paperlib embed` writes it, DIR/manifest.csv of a shard directory, when present;
    None without one), "" for ids it lacks. VectorError."""
    ids, vectors = read_vectors(embeddings)
    return ids, vectors, _paths(_read_manifest(manifest, embeddings), ids)


def iter_catalogue(
    embeddings: Sequence[str | os.PathLike], manifest: str | os.PathLike | None = None
) -> Iterator[tuple[list[str], np.ndarray, list[str] | None]]:
    """`read_catalogue` of each embeddings file in turn, a shard directory one shard at a time: a catalogue
    larger than memory, streamed (memory: one file or shard). `manifest` (CSV id,path) serves every file;
    without it each file's default manifest does. VectorError."""
    for path in embeddings:
        known = _read_manifest(manifest, path)
        for ids, vectors in _pieces(path):
            yield ids, vectors, _paths(known, ids)


def _pieces(path) -> Iterator[tuple[list[str], np.ndarray]]:
    if not Path(path).is_dir():
        yield read_vectors(path)
        return
    from paperlib.runtime import shards

    try:
        for part in shards.iter_vectors(path):
            if part:
                yield list(part), track_vectors(part.values(), list(part), str(path))
    except (shards.ShardError, OSError) as exc:
        raise VectorError(str(exc).splitlines()[0]) from None


def _default_manifest(embeddings) -> Path:
    embeddings = Path(embeddings)
    return embeddings / "manifest.csv" if embeddings.is_dir() else embeddings.with_suffix(".manifest.csv")


def _read_manifest(manifest, embeddings) -> dict[str, str] | None:
    """id → audio path of `manifest` (or the embeddings' default manifest, None when there is none)."""
    path = Path(manifest or _default_manifest(embeddings))
    if not path.is_file():
        if manifest:
            raise VectorError(f"manifest not found: {manifest}")
        return None
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise VectorError(f"manifest {path} is not a readable CSV ({type(exc).__name__})") from None
    if not {"id", "path"} <= set(table.columns):
        raise VectorError(f"manifest {path} lacks column(s) id, path")
    return dict(zip(table["id"], table["path"]))


def _paths(known: dict[str, str] | None, ids: list[str]) -> list[str] | None:
    return None if known is None else [known.get(i, "") for i in ids]
