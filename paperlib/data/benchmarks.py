"""Clique tables of the three evaluation benchmarks (paper Sec. 4): Covers80, SHS100K-test, Discogs-VI-test.

A clique table has one row per version and these str columns (`COLUMNS`):
  id            unique track id (Covers80: file stem; SHS100K: "<set_id>_<ver_id>"; Discogs-VI: version_id)
  clique        clique (work) id; versions of one clique are covers of each other
  title, artist from the public metadata ("" where the source has none)
  source_id     YouTube id ("" for Covers80)
  expected_file where the audio is expected, relative to an audio dir ("*" = any audio extension)
  path          matched audio file ("" when missing); filled by `match_audio`

Metadata comes from public files at fixed commits (`REGISTRY`, keyed by their path in a mirror),
verified by sha256 or, where no sha256 is published, by git blob SHA-1. They are downloaded
(urllib) into a cache, or read from a local mirror with the layout of shared/benchmarks
(`--mirror DIR` / $PAPERLIB_BENCHMARK_MIRROR). Canonical origins: Covers80
http://labrosa.ee.columbia.edu/projects/coversongs/covers80/ (list1.txt, list2.txt; covers80.tgz holds
covers32k/list1.list and list2.list, no published checksum), SHS100K https://github.com/NovaFrost/SHS100K2
(meta/SHS100K-TEST joined with meta/list), Discogs-VI https://zenodo.org/records/13983028 (main.zip:
Discogs-VI-YT-20240701-light.json.test).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from paperlib.runtime.audio import AUDIO_EXTENSIONS, READABLE_EXTENSIONS
from paperlib.runtime.errors import PaperlibError
from paperlib.runtime.io import atomic_path, write_csv

COLUMNS = ["id", "clique", "title", "artist", "source_id", "expected_file", "path"]
BENCHMARKS = ("covers80", "shs100k_test", "discogs_vi_test")
EXPECTED_COUNTS = {  # (versions, cliques) of the published splits
    "covers80": (160, 80),
    "shs100k_test": (10_547, 1_692),
    "discogs_vi_test": (116_197, 9_878),
}
MIRROR_ENV = "PAPERLIB_BENCHMARK_MIRROR"

_GH = "https://raw.githubusercontent.com"
_SHS100K2 = f"{_GH}/NovaFrost/SHS100K2/a81043a6c90f378480b3c519e7f4def3c528ff33/meta"
_COVERS80_COLLECTION = (
    f"{_GH}/ctralie/GeometricCoverSongs/c07187cd416cd97fffba7d5d3eb5091de6dff143/covers80collection.txt"
)
_YOUTUBE_ID = re.compile(r"[A-Za-z0-9_-]{11}")
_YOUTUBE_URL = re.compile(r"(?:[?&]v=|youtu\.be/|/embed/)([A-Za-z0-9_-]{11})")


class BenchmarkError(PaperlibError, ValueError):
    """Missing, tampered or malformed benchmark metadata; the message is one line."""


@dataclass(frozen=True)
class Source:
    """A public metadata file at a fixed version; `sha256` or `git_blob` (SHA-1 of git's blob object)."""

    urls: tuple[str, ...]
    sha256: str | None = None
    git_blob: str | None = None
    aliases: tuple[str, ...] = ()  # other file names accepted in a mirror (same bytes)
    derived_from: str | None = None  # registry key this file is cut from (Covers80 lists)


REGISTRY: dict[str, Source] = {
    # covers80collection.txt = list1 (lines 1-80) + list2 (lines 81-160) as covers32k/<entry>.mp3;
    # the list files are those lines without prefix and suffix (the LabROSA list format).
    "covers80/covers80collection.txt": Source(
        (_COVERS80_COLLECTION,), sha256="7c6cb67e3cfa6da063e47a041dec13077db0ea36d90a6e0ee9e4262e2d72b8f9"
    ),
    "covers80/derived/list1.list": Source(
        (_COVERS80_COLLECTION,),
        sha256="a174e71b9a60993e89b53b58bb8399b9e1f6baf996465de7b7481285e62bc962",
        derived_from="covers80/covers80collection.txt",
    ),
    "covers80/derived/list2.list": Source(
        (_COVERS80_COLLECTION,),
        sha256="5152a468b8d46af98f5f0a1ad2f0e5df962716a3da491c75a2dc295a1acc3b7c",
        derived_from="covers80/covers80collection.txt",
    ),
    "shs100k/SHS100K-TEST": Source(
        (f"{_SHS100K2}/SHS100K-TEST",), sha256="655b2b65392a3d21ebba8b1c2317df29ceec351bd14f48a33d729f1d037ae409"
    ),
    "shs100k/list": Source(
        (f"{_SHS100K2}/list",), git_blob="e5b38289c680d050a96dd7fe74ea5c24377191d4", aliases=("list.tsv",)
    ),
    # The TEST split already joined with `list` (progsi/er_csi), used when `list` is not at hand.
    "shs100k/shs100k2_test.csv": Source(
        (f"{_GH}/progsi/er_csi/ebfcccffaa8de1e73854c84ea0065db43b1df7c2/data/dataset/shs100k2_test.csv",),
        sha256="e0538bceb9683b150bedf7d78db32c4e4e734de972ab7ab82fc034b318a9f3b9",
    ),
    "discogs-vi/Discogs-VI-YT-20240701-light.json.test": Source(
        (
            f"{_GH}/raraz15/unified-track-and-version-id/3081d416d696de567ad172ba1d7e69e4c440e1b3"
            "/data/ground-truth/version-id/discogs-vi-test-cliques.json",
            f"{_GH}/helemanc/audio-based-lyrics-matching/a874a0305f81f119a55d7ccf776520687be51aaa"
            "/datasets/discogs-vi/DiscogsVI-YT-20240701-light.json.test",
        ),
        git_blob="898c5d629fdfbda6ad503eebf24009307b048bbd",
        aliases=("DiscogsVI-YT-20240701-light.json.test", "discogs-vi-test-cliques.json"),
    ),
}
DISCOGS_VI_TEST = "discogs-vi/Discogs-VI-YT-20240701-light.json.test"


# --------------------------------------------------------------------------- fetching and checksums
def git_blob_sha1(data: bytes) -> str:
    """Git's object id of a file: sha1(b"blob <size>\\0" + data), as `git hash-object` prints it."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def verify_bytes(data: bytes, source: Source, name: str) -> None:
    """Raise BenchmarkError naming `name`, expected and actual digests when `data` is not `source`."""
    if source.sha256:
        kind, expected, actual = "sha256", source.sha256, hashlib.sha256(data).hexdigest()
    else:
        kind, expected, actual = "git blob sha1", source.git_blob, git_blob_sha1(data)
    if actual != expected:
        raise BenchmarkError(f"checksum mismatch for {name}: expected {kind} {expected}, got {actual}")


def _read_bytes(path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise BenchmarkError(f"cannot read {path} ({exc.strerror or exc})") from None


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "paperlib" / "benchmarks"


def _download(urls: tuple[str, ...]) -> tuple[bytes, str]:
    errors = []
    for url in urls:
        try:
            with urllib.request.urlopen(url, timeout=120) as response:
                return response.read(), url
        except OSError as exc:  # URLError, HTTPError, timeouts
            errors.append(f"{url}: {getattr(exc, 'reason', exc)}")
    raise BenchmarkError(f"cannot download ({'; '.join(errors)}); give a local copy with --mirror DIR")


def _derive_covers80_list(collection: bytes, key: str) -> bytes:
    lines = collection.decode("utf-8").splitlines()
    if len(lines) != 160:
        raise BenchmarkError(f"covers80collection.txt: expected 160 lines, got {len(lines)}")
    part = lines[:80] if key.endswith("list1.list") else lines[80:]
    return "".join(re.sub(r"\.mp3$", "", re.sub(r"^covers32k/", "", line)) + "\n" for line in part).encode()


def fetch(
    key: str, *, mirror: str | os.PathLike | None = None, cache: str | os.PathLike | None = None, verify: bool = True
) -> Path:
    """Local path of metadata file `key` (a REGISTRY key), verified.

    With a mirror (argument or $PAPERLIB_BENCHMARK_MIRROR) the file is read at mirror/key (or an
    alias name in the same folder); otherwise it is downloaded once into `cache` (atomically, only
    after its checksum matched).
    """
    source = REGISTRY[key]
    mirror = mirror or os.environ.get(MIRROR_ENV)
    if mirror:
        folder = Path(mirror) / Path(key).parent
        candidates = [Path(mirror) / key] + [folder / alias for alias in source.aliases]
        path = next((p for p in candidates if p.is_file()), None)
        if path is None:
            raise BenchmarkError(f"{candidates[0]} not found in mirror {mirror} (public source: {source.urls[0]})")
        if verify:
            verify_bytes(_read_bytes(path), source, str(path))
        return path
    path = Path(cache or default_cache_dir()) / key
    if path.is_file():
        try:
            verify_bytes(path.read_bytes(), source, str(path))
            return path
        except BenchmarkError:
            pass  # a stale or damaged cache entry: fetch again
    if source.derived_from:
        collection = fetch(source.derived_from, cache=cache, verify=True).read_bytes()
        data, name = _derive_covers80_list(collection, key), f"{key} (derived from {source.urls[0]})"
    else:
        data, name = _download(source.urls)
    verify_bytes(data, source, name)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return path


# --------------------------------------------------------------------------- parsers
def _frame(rows: dict[str, list[str]]) -> pd.DataFrame:
    table = pd.DataFrame({column: rows.get(column, [""] * len(rows["id"])) for column in COLUMNS}, dtype=object)
    return table.astype(str)


def _check_table(table: pd.DataFrame, name: str) -> pd.DataFrame:
    if table.empty:
        raise BenchmarkError(f"{name}: no versions")
    for column in ("id", "clique"):
        if (table[column] == "").any():
            raise BenchmarkError(f"{name}: {int((table[column] == '').sum())} rows with an empty {column}")
    duplicated = table["id"][table["id"].duplicated()]
    if len(duplicated):
        raise BenchmarkError(f"{name}: {len(duplicated)} duplicate ids (first: {duplicated.iloc[0]!r})")
    return table.reset_index(drop=True)


def parse_covers80(list1: str | os.PathLike, list2: str | os.PathLike) -> pd.DataFrame:
    """Covers80 lists (`Clique/artist+album+NN-Title` per line; pair i = line i of each list).

    Rows: list1 then list2; id = file stem; expected_file = covers32k/<entry>.mp3.
    """
    pattern = re.compile(r"^([^/]+)/(([^+/]+)\+[^+/]*\+\d+-(.+))$")
    lists = []
    for path in (list1, list2):
        try:
            lines = Path(path).read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise BenchmarkError(f"{path}: cannot read ({exc})") from None
        lists.append([line.strip() for line in lines if line.strip()])
    if len(lists[0]) != len(lists[1]):
        raise BenchmarkError(f"covers80: list1 has {len(lists[0])} entries, list2 {len(lists[1])}")
    rows = {column: [] for column in COLUMNS}
    for path, entries in zip((list1, list2), lists):
        for number, entry in enumerate(entries, 1):
            match = pattern.match(entry)
            if not match:
                raise BenchmarkError(f"{path}: entry {number} is not Clique/artist+album+NN-Title: {entry!r}")
            clique, stem, artist, title = match.groups()
            for column, value in (
                ("id", stem),
                ("clique", clique),
                ("title", title.replace("_", " ")),
                ("artist", artist.replace("_", " ")),
                ("source_id", ""),
                ("expected_file", f"covers32k/{entry}.mp3"),
                ("path", ""),
            ):
                rows[column].append(value)
    for number, (a, b) in enumerate(zip(*lists), 1):
        if a.split("/")[0] != b.split("/")[0]:
            raise BenchmarkError(f"covers80: pair {number} has different cliques: {a!r} / {b!r}")
    return _check_table(_frame(rows), "covers80")


def _read_delimited(path, name: str, **kwargs) -> pd.DataFrame:
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, **kwargs)
    except pd.errors.EmptyDataError:
        raise BenchmarkError(f"{name}: empty file {path}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, OSError) as exc:
        raise BenchmarkError(f"{name}: cannot parse {path} ({str(exc).strip().splitlines()[0]})") from None


def _youtube_ids(values: pd.Series, name: str, keys: pd.Series) -> pd.Series:
    bad = ~values.str.fullmatch(_YOUTUBE_ID.pattern)
    if bad.any():
        raise BenchmarkError(
            f"{name}: {int(bad.sum())} versions without a valid YouTube id "
            f"(first: {keys[bad].iloc[0]} {values[bad].iloc[0]!r})"
        )
    return values


def parse_shs100k(split: str | os.PathLike, metadata: str | os.PathLike) -> pd.DataFrame:
    """SHS100K split file (`set_id<TAB>ver_id` lines) joined with its metadata, in split order.

    `metadata` is either the SHS100K `list` (tab-separated, no header: set_id, ver_id, title,
    performer, YouTube URL, status) or a joined CSV with a header (`;`-separated, columns set_id,
    ver_id, yt_id, title, performer, ... as progsi/er_csi shs100k2_test.csv).
    id = "<set_id>_<ver_id>", clique = set_id, expected_file = "<youtube_id>.*".
    """
    pairs = _read_delimited(split, "shs100k split", sep="\t", header=None)
    if pairs.shape[1] != 2 or not pairs.apply(lambda c: c.str.fullmatch(r"\d+")).all().all():
        raise BenchmarkError(f"shs100k split: {split} must have two integer columns set_id<TAB>ver_id")
    pairs.columns = ["set_id", "ver_id"]
    if _read_bytes(metadata)[:7] == b"set_id;":
        meta = _read_delimited(metadata, "shs100k metadata", sep=";")
        missing = {"set_id", "ver_id", "yt_id", "title", "performer"} - set(meta.columns)
        if missing:
            raise BenchmarkError(f"shs100k metadata: {metadata} lacks columns {sorted(missing)}")
    else:
        meta = _read_delimited(metadata, "shs100k list", sep="\t", header=None, quoting=csv.QUOTE_NONE)
        if meta.shape[1] != 6:
            raise BenchmarkError(
                f"shs100k list: {metadata} has {meta.shape[1]} columns, expected 6 "
                "(set_id, ver_id, title, performer, url, status)"
            )
        meta.columns = ["set_id", "ver_id", "title", "performer", "url", "status"]
        meta = meta[meta["set_id"] != "set_id"]  # tolerate a header line
        meta["yt_id"] = meta["url"].str.extract(_YOUTUBE_URL, expand=False).fillna("")
    meta = meta[["set_id", "ver_id", "yt_id", "title", "performer"]]
    meta = meta[meta.set_index(["set_id", "ver_id"]).index.isin(pairs.set_index(["set_id", "ver_id"]).index)]
    if meta.duplicated(["set_id", "ver_id"]).any():
        first = meta[meta.duplicated(["set_id", "ver_id"])].iloc[0]
        raise BenchmarkError(f"shs100k metadata: {metadata} lists version {first.set_id}_{first.ver_id} twice")
    table = pairs.merge(meta, on=["set_id", "ver_id"], how="left", indicator=True)
    ids = table["set_id"] + "_" + table["ver_id"]
    absent = table["_merge"] == "left_only"
    if absent.any():
        raise BenchmarkError(
            f"shs100k metadata: {int(absent.sum())} split versions are not in {metadata} (first: {ids[absent].iloc[0]})"
        )
    youtube = _youtube_ids(table["yt_id"], "shs100k", ids)
    rows = {
        "id": ids,
        "clique": table["set_id"],
        "title": table["title"],
        "artist": table["performer"],
        "source_id": youtube,
        "expected_file": youtube + ".*",
    }
    return _check_table(_frame({k: list(v) for k, v in rows.items()}), "shs100k")


def parse_discogs_vi(path: str | os.PathLike) -> pd.DataFrame:
    """Discogs-VI-YT light JSON `{clique_id: [{version_id, track_title, youtube_id}, ...]}`, in file order.

    id = version_id, artist = "" (not in the light file), expected_file = "<id[:2]>/<youtube_id>.*".
    """
    try:
        data = json.loads(Path(path).read_bytes())
    except json.JSONDecodeError as exc:
        raise BenchmarkError(f"discogs_vi: {path} is not valid JSON ({exc.msg} at line {exc.lineno})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BenchmarkError(f"discogs_vi: cannot read {path} ({exc})") from None
    if not isinstance(data, dict):
        raise BenchmarkError(f"discogs_vi: {path} must hold an object {{clique_id: [versions]}}")
    rows = {column: [] for column in ("id", "clique", "title", "source_id", "expected_file")}
    for clique, versions in data.items():
        if not isinstance(versions, list) or not versions:
            raise BenchmarkError(f"discogs_vi: clique {clique} must be a non-empty list of versions")
        for version in versions:
            if not isinstance(version, dict) or not {"version_id", "youtube_id"} <= version.keys():
                raise BenchmarkError(f"discogs_vi: clique {clique} has a version without version_id/youtube_id")
            youtube = str(version["youtube_id"] or "")
            if not _YOUTUBE_ID.fullmatch(youtube):
                raise BenchmarkError(
                    f"discogs_vi: version {version['version_id']} has an invalid YouTube id {youtube!r}"
                )
            for column, value in (
                ("id", version["version_id"]),
                ("clique", clique),
                ("title", version.get("track_title") or ""),
                ("source_id", youtube),
                ("expected_file", f"{youtube[:2]}/{youtube}.*"),
            ):
                rows[column].append("" if value is None else str(value))
    return _check_table(_frame(rows), "discogs_vi")


def table_notes(table: pd.DataFrame) -> list[str]:
    """Remarks on a clique table that are not errors (kept rows that cannot act as queries)."""
    sizes = table.groupby("clique", sort=False).size()
    singles = sizes[sizes < 2]
    if len(singles):
        return [f"{len(singles)} cliques have a single version (kept as distractors; first: {singles.index[0]})"]
    return []


# --------------------------------------------------------------------------- loading
def load_benchmark(
    name: str,
    *,
    mirror: str | os.PathLike | None = None,
    cache: str | os.PathLike | None = None,
    metadata: str | os.PathLike | None = None,
    verify: bool = True,
) -> pd.DataFrame:
    """Clique table of benchmark `name` (one of BENCHMARKS), path column empty.

    mirror/cache: see `fetch`. metadata: a local copy of the main metadata file used instead
    (discogs_vi_test: the light JSON; shs100k_test: `list` or the joined CSV). verify=False skips
    checksums and the published counts (for other releases of the metadata); format checks stay.
    SHS100K uses `list` when the mirror has it (always when downloading), else shs100k2_test.csv.
    """
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark {name!r}; choose from {', '.join(BENCHMARKS)}")
    get = lambda key: fetch(key, mirror=mirror, cache=cache, verify=verify)  # noqa: E731
    if metadata is not None and name == "covers80":
        raise BenchmarkError("covers80 takes no --metadata file; use --mirror DIR")
    if metadata is not None and verify:
        data = _read_bytes(metadata)
        key = (
            DISCOGS_VI_TEST
            if name == "discogs_vi_test"
            else "shs100k/shs100k2_test.csv"
            if data.startswith(b"set_id;")
            else "shs100k/list"
        )
        verify_bytes(data, REGISTRY[key], str(metadata))
    if name == "covers80":
        table = parse_covers80(get("covers80/derived/list1.list"), get("covers80/derived/list2.list"))
    elif name == "shs100k_test":
        if metadata is None:
            mirror_dir = mirror or os.environ.get(MIRROR_ENV)
            has_list = not mirror_dir or any((Path(mirror_dir) / "shs100k" / f).is_file() for f in ("list", "list.tsv"))
            metadata = get("shs100k/list" if has_list else "shs100k/shs100k2_test.csv")
        table = parse_shs100k(get("shs100k/SHS100K-TEST"), metadata)
    else:
        table = parse_discogs_vi(metadata if metadata is not None else get(DISCOGS_VI_TEST))
    if verify:
        rows, cliques = EXPECTED_COUNTS[name]
        if (len(table), table["clique"].nunique()) != (rows, cliques):
            raise BenchmarkError(
                f"{name}: expected {rows} versions in {cliques} cliques, got {len(table)} "
                f"in {table['clique'].nunique()}"
            )
    return table


# --------------------------------------------------------------------------- audio matching
def _audio_files(audio_dir: Path) -> list[Path]:
    if not audio_dir.is_dir():
        raise BenchmarkError(f"audio dir {audio_dir} does not exist")
    found = []
    for root, dirs, files in os.walk(audio_dir, followlinks=True):
        dirs.sort()
        found += [Path(root) / f for f in sorted(files) if Path(f).suffix.lower() in AUDIO_EXTENSIONS]
    return found


def _preference(path: Path) -> tuple[bool, str, str]:
    """Sort key among candidate files: decodable suffixes first, then suffix, then path."""
    suffix = path.suffix.lower()
    return suffix not in READABLE_EXTENSIONS, suffix, str(path)


def match_audio(table: pd.DataFrame, audio_dir: str | os.PathLike) -> pd.DataFrame:
    """Copy of `table` with `path` set to the audio file of each row found under audio_dir ("" if none).

    YouTube-based rows match a file whose stem is the YouTube id, anywhere under audio_dir (flat,
    `xx/ID.ext`, ...). Other rows (Covers80) match `<clique>/<id>.<ext>` at any depth (so both
    audio_dir/covers32k/... and audio_dir/<clique>/... work). Suffixes (any case) are those of
    `paperlib.runtime.audio.AUDIO_EXTENSIONS`: the formats `load_audio` decodes, plus common ones it cannot
    (.m4a, .aac, ...), matched so that each such track gets an "unsupported format" error status
    downstream; others (.webm, ...) are ignored. When several files fit a row, a decodable one wins
    over an unsupported one, then the first lower-case suffix in sorted order, then the first path.
    """
    by_stem: dict[str, Path] = {}
    by_folder_stem: dict[str, Path] = {}
    for path in sorted(_audio_files(Path(audio_dir)), key=_preference):
        by_stem.setdefault(path.stem, path)
        by_folder_stem.setdefault(f"{path.parent.name}/{path.stem}", path)
    result = table.copy()
    paths = []
    for row in table.itertuples(index=False):
        if row.source_id:
            hit = by_stem.get(row.source_id)
        else:
            hit = by_folder_stem.get(f"{row.clique}/{row.id}")
        paths.append(str(hit) if hit else "")
    result["path"] = paths
    return result


# --------------------------------------------------------------------------- coverage
def coverage(table: pd.DataFrame) -> pd.DataFrame:
    """Counts per clique (index, in table order): expected, found (path set), missing, and
    queries_evaluable = found tracks of the clique when it has >= 2 of them (else 0).
    """
    found = (table["path"] != "").to_numpy()
    counts = pd.DataFrame(
        {
            "clique": table["clique"].to_numpy(),
            "expected": 1,
            "found": found.astype(int),
            "missing": (~found).astype(int),
        }
    )
    per_clique = counts.groupby("clique", sort=False).sum()
    per_clique["queries_evaluable"] = per_clique["found"].where(per_clique["found"] >= 2, 0)
    return per_clique


def coverage_summary(table: pd.DataFrame, name: str = "benchmark") -> str:
    """Human-readable coverage lines (for stderr), each prefixed with "<name>: "."""
    per_clique = coverage(table)
    expected, found, missing, evaluable = (int(per_clique[c].sum()) for c in per_clique.columns)
    lines = [
        f"{expected} versions in {len(per_clique)} cliques; audio found {found} "
        f"({100 * found / expected:.1f}%), missing {missing}",
        f"queries evaluable {evaluable} / {expected}",
    ]
    lines += [f"note: {note}" for note in table_notes(table)]
    return "\n".join(f"{name}: {line}" for line in lines)


def prepare(name: str, out: str | os.PathLike, *, audio_dir=None, **load_options) -> pd.DataFrame:
    """Load benchmark `name`, match audio under audio_dir (if given), write the table CSV atomically."""
    table = load_benchmark(name, **load_options)
    if audio_dir is not None:
        table = match_audio(table, audio_dir)
    write_csv(table, out)
    return table
