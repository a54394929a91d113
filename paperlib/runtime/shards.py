"""A directory of Parquet shards: the output of a large embedding or transcription run, written as it goes.

Layout: DIR/part-<n:06d>.parquet, one shard per flushed batch of finished tracks, one row per track: its
manifest fields (schema.MANIFEST_COLUMNS and the run's timings) and its arrays as list<float32> columns
(`vector`: the track vector [d], null unless status "ok"; a run may add others, e.g. `chunk_vectors` [n, d]).
DIR/manifest.csv (MANIFEST_COLUMNS, input order) and DIR/timings.csv are written when a run ends.

A shard is written to a temporary file and moved into place (os.replace), so a killed run leaves whole shards
only; its leftover temporary files are removed by the next writer. A rerun skips the ids already in a shard, and
the writer refuses an id that is already written, so no id is ever stored twice. Needs pyarrow (the `ray` extra).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.runtime import io
from paperlib.runtime.errors import PaperlibError
from paperlib.runtime.schema import MANIFEST_COLUMNS

SHARD = re.compile(r"^part-(\d{6,})\.parquet$")
VECTOR = "vector"


class ShardError(PaperlibError, ValueError):
    """A shard directory that cannot be read as one run's output; str(exc) is one line."""


def is_shard_dir(path: str | os.PathLike) -> bool:
    """True for an existing directory or a path that does not end in .npz (the output of a large run)."""
    path = Path(path)
    return path.is_dir() or path.suffix.lower() != ".npz"


def shard_files(folder: str | os.PathLike) -> list[Path]:
    """The complete shards of `folder`, in the order they were written."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if SHARD.match(p.name)), key=lambda p: int(SHARD.match(p.name)[1]))


class ShardWriter:
    """Appends shards to `folder`; knows the ids already written (also those of earlier runs)."""

    def __init__(self, folder: str | os.PathLike):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise ShardError(
                f"a shard folder ({folder}) needs pyarrow: pip install -e '.[ray]' (or write an .npz)"
            ) from None
        self.folder = Path(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise ShardError(f"{self.folder} exists and is not a folder")
        self.folder.mkdir(parents=True, exist_ok=True)
        for stale in self.folder.glob(".part-*.tmp"):  # a killed run's unfinished shard
            stale.unlink(missing_ok=True)
        files = shard_files(self.folder)
        self.next = int(SHARD.match(files[-1].name)[1]) + 1 if files else 0
        self.ids = written_ids(self.folder)

    def write(self, rows: list[dict]) -> Path | None:
        """One shard of `rows` (dicts: scalars, and numpy arrays or None for the array columns); rows whose id is
        already written are dropped. Returns the shard, or None when nothing was left to write."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        fresh, seen = [], set()
        for row in rows:
            if row["id"] not in self.ids and row["id"] not in seen:
                fresh.append(row)
                seen.add(row["id"])
        if not fresh:
            return None
        columns = list(dict.fromkeys(k for row in fresh for k in row))  # every row's fields, first seen first
        table = pa.Table.from_pylist([{k: _plain(row.get(k)) for k in columns} for row in fresh])
        path = self.folder / f"part-{self.next:06d}.parquet"
        with io.atomic_path(path) as tmp:
            pq.write_table(table, tmp)
        self.next += 1
        self.ids |= seen
        return path


def _plain(value):
    """A numpy array as a float32 list (nested for 2-D), a numpy scalar as a Python one, others as they are."""
    if isinstance(value, np.ndarray):
        return value.astype(np.float32).tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def written_ids(folder: str | os.PathLike) -> set[str]:
    """Ids of the complete shards of `folder` (empty when there is none)."""
    return set(_column(folder, "id"))


def _column(folder, name: str) -> list:
    import pyarrow.parquet as pq

    values = []
    for path in shard_files(folder):
        values += pq.read_table(path, columns=[name]).column(name).to_pylist()
    return values


def read_rows(folder: str | os.PathLike, arrays: bool = False) -> pd.DataFrame:
    """The rows of every shard in writing order, ids as str: the scalar columns, and the list columns too when
    `arrays` (as Python lists; see as_array). Raises ShardError when there is no shard or an id appears twice."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    files = shard_files(folder)
    if not files:
        raise ShardError(f"no shards (part-*.parquet) in {folder}")
    tables = []
    for path in files:
        schema = pq.read_schema(path)
        wanted = [f.name for f in schema if arrays or not pa.types.is_list(f.type)]
        tables.append(pq.read_table(path, columns=wanted).to_pylist())
    rows = pd.DataFrame([row for table in tables for row in table])
    rows["id"] = rows["id"].astype(str)
    twice = rows["id"][rows["id"].duplicated()].tolist()
    if twice:
        raise ShardError(f"id(s) written twice in {folder}: {', '.join(twice[:5])}")
    return rows


def read_vectors(folder: str | os.PathLike, column: str = VECTOR) -> dict[str, np.ndarray]:
    """id → float32 vector [d] of `column` for the rows with status "ok", in writing order (read column-wise:
    no Python object per number). Raises ShardError when there is no shard, the column, or an id appears twice."""
    vectors: dict[str, np.ndarray] = {}
    for part in iter_vectors(folder, column):
        twice = [i for i in part if i in vectors]
        if twice:
            raise ShardError(f"id written twice in {folder}: {twice[0]}")
        vectors |= part
    return vectors


def iter_vectors(folder: str | os.PathLike, column: str = VECTOR) -> Iterator[dict[str, np.ndarray]]:
    """`read_vectors` one shard at a time (memory: one shard); a shard without such rows yields {}."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    files = shard_files(folder)
    if not files:
        raise ShardError(f"no shards (part-*.parquet) in {folder}")
    for path in files:
        if column not in pq.read_schema(path).names:
            raise ShardError(f"shard {path} has no column {column!r}")
        table = pq.read_table(path, columns=["id", "status", column])
        table = table.filter(pc.equal(table["status"], "ok"))
        if not table.num_rows:
            yield {}
            continue
        values = table[column].combine_chunks()
        flat = values.flatten().to_numpy(zero_copy_only=False).astype(np.float32)
        offsets = values.offsets.to_numpy()
        offsets = offsets - offsets[0]  # flatten() starts at the first offset of a sliced array
        ids = table["id"].to_pylist()
        if len(set(ids)) < len(ids):
            raise ShardError(f"id written twice in {folder}: {pd.Series(ids)[pd.Series(ids).duplicated()].iloc[0]}")
        yield {track_id: flat[offsets[i] : offsets[i + 1]] for i, track_id in enumerate(ids)}


def as_array(value) -> np.ndarray:
    """A Parquet list (of lists) as a float32 array [d] (or [n, d])."""
    if len(value) and isinstance(value[0], (list, np.ndarray)):
        return np.stack([np.asarray(v, dtype=np.float32) for v in value])
    return np.asarray(value, dtype=np.float32)


def finish(folder: str | os.PathLike, order: list[str], timing_columns: list[str]) -> pd.DataFrame:
    """Write DIR/manifest.csv (MANIFEST_COLUMNS, ids in `order` first, then any other written id) and
    DIR/timings.csv (id, status, duration_s, n_chunks, timings); return the manifest."""
    rows = read_rows(folder)
    rank = {track_id: i for i, track_id in enumerate(order)}
    rows = rows.assign(_rank=[rank.get(i, len(rank)) for i in rows["id"]]).sort_values("_rank", kind="stable")
    manifest = rows.reindex(columns=MANIFEST_COLUMNS).reset_index(drop=True)
    manifest["n_chunks"] = manifest["n_chunks"].astype("Int64")
    io.write_csv(manifest, Path(folder) / "manifest.csv")
    timings = rows.reindex(columns=["id", "status", "duration_s", "n_chunks", *timing_columns])
    io.write_csv(timings, Path(folder) / "timings.csv")
    return manifest


def unfinished(folder: str | os.PathLike) -> None:
    """Forget that a run finished (its manifest.csv) before it is resumed or extended."""
    with contextlib.suppress(FileNotFoundError):
        os.remove(Path(folder) / "manifest.csv")
