"""Atomic file output (a stage's outputs appear complete or not at all) and the precision statistics are written at."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.runtime.errors import PaperlibError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; on success move it over `path` (os.replace) with the permissions
    a new file gets (the umask's, not mkstemp's owner-only 0600).

    On an exception the temporary file is removed and `path` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_csv(frame: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a DataFrame as CSV (no index, '\\n' line endings) atomically."""
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, lineterminator="\n")


def save_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Save arrays (key order preserved) to an uncompressed .npz, atomically and reproducibly.

    Unlike `np.savez`, member timestamps are fixed, so equal arrays give byte-identical files.
    Readable with `np.load`.
    """
    with atomic_path(path) as tmp:
        append_npz(tmp, arrays)


def append_npz(path: str | os.PathLike, arrays: dict[str, np.ndarray]) -> None:
    """Append an uncompressed zip of .npy members with fixed timestamps to `path` (a new file, an empty one or
    any other file: the archive then follows its bytes, as a self-extracting archive follows its program;
    `zipfile` reads it, `np.load` only when nothing precedes it)."""
    with zipfile.ZipFile(path, "a", zipfile.ZIP_STORED) as archive:
        for key, value in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def write_json(value, path: str | os.PathLike) -> None:
    """Write `value` as indented JSON with sorted keys (stable bytes), atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")


DECIMALS = 6
"""Decimals at which statistics of float32 arrays (cosines, losses, their means) are written and compared with a
threshold: float32 arithmetic and numpy's SIMD reductions differ in the last bits across CPU types, their 6th
decimal does not (unless a value lies within ~1e-8 of a rounding boundary)."""
VALUE_DECIMALS = 4
"""Decimals of single per-track values that a figure draws or a summary lists (min, quartiles, max): one value
moves across a 6-decimal boundary far more often than a mean of many (1e-4 of a cosine is far below a pixel)."""


def write_report(result, prefix: str | os.PathLike, markdown: str) -> None:
    """A benchmark's PREFIX.json (`result`, floats at io.DECIMALS: rounded_tree) and PREFIX.md (`markdown`), each
    written atomically, its folder made if needed."""
    Path(prefix).parent.mkdir(parents=True, exist_ok=True)
    write_json(rounded_tree(result), f"{prefix}.json")
    with atomic_path(f"{prefix}.md") as tmp:
        tmp.write_text(markdown)


def rounded(values, decimals: int = DECIMALS):
    """`values` (a number or an array) as float64 rounded to `decimals` (numpy's round half to even)."""
    out = np.round(np.asarray(values, dtype=np.float64), decimals)
    return float(out) if out.ndim == 0 else out


def rounded_tree(value, decimals: int = DECIMALS):
    """A JSON-like tree (dicts, lists, numbers) with every float rounded to `decimals` (ints, strings, bools kept):
    for records of measurements, whose last digits differ from run to run and across CPU types."""
    if isinstance(value, dict):
        return {key: rounded_tree(item, decimals) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [rounded_tree(item, decimals) for item in value]
    if isinstance(value, float):
        return rounded(value, decimals)
    return value


def significant(values, digits: int = DECIMALS):
    """`values` (a number or an array) rounded to `digits` significant digits: for p-values, which span many orders
    of magnitude (NaN stays NaN)."""
    out = np.vectorize(lambda v: float(f"{v:.{digits}g}"), otypes=[np.float64])(np.asarray(values, dtype=np.float64))
    return float(out) if out.ndim == 0 else out


class ChecksumError(PaperlibError, ValueError):
    """A packaged weight file whose sha256 is not the one written in the code; str(exc) is one line."""


def sha256_of(path: str | os.PathLike) -> str:
    """Hex sha256 of a file, read in 4 MiB blocks."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def verified(path: str | os.PathLike, sha256: str) -> Path:
    """`path` if its sha256 is `sha256`; ChecksumError naming the file and both digests otherwise."""
    found = sha256_of(path)
    if found != sha256:
        raise ChecksumError(f"{path}: sha256 {found} does not match the expected {sha256} (a corrupted or other file)")
    return Path(path)


def copy_worktree(
    root: str | os.PathLike, dest: str | os.PathLike, skip: Callable[[str], bool] = lambda name: False
) -> Path:
    """The files of git checkout `root` (tracked, and untracked ones git does not ignore, as they are in the
    working tree; `skip`(relative name) leaves some out) committed into `dest`, a new git repository (DVC needs
    one): a rerun of the pipeline there leaves `root` alone."""
    import shutil
    import subprocess

    root, dest = Path(root), Path(dest)

    def git(*args: str, cwd: Path) -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout

    for name in git("ls-files", "--cached", "--others", "--exclude-standard", cwd=root).splitlines():
        if (root / name).is_file() and not skip(name):
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(root / name, dest / name)
    git("init", "-q", cwd=dest)
    git("add", "-A", cwd=dest)
    git("-c", "user.email=copy@paperlib", "-c", "user.name=paperlib", "commit", "-qm", "copy", cwd=dest)
    return dest
