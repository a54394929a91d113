"""Where lyrics win and where harmony wins: the demo's metrics per version kind and its distractor confusions.

The generated corpus (paperlib.corpus) labels every track with a kind: original, cover, instrumental (no vocals),
changed_lyrics (1-2 lines replaced), distractor (another work, other lyrics, reusing the accompaniment of the work
named in works.csv `accompaniment_of`). Per system and query kind:
  tracks     the set's tracks of that kind;
  queries    those the system evaluated (it embedded them and they have another version it embedded);
  MAP, HR1   over the evaluated queries;
  HR1_all    over all tracks of the kind, a track the system could not embed counting as a miss;
  confused   over the `confusable` queries (those of a work that shares its accompaniment with another work, either
             side of the borrowing), the share whose best-scored track of the other work outranks their best-scored
             true version (tracks the system embedded).
Kind "all" is every track. Every rate at io.DECIMALS (6) decimals.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib import io

KINDS = ("original", "cover", "instrumental", "changed_lyrics", "distractor", "all")
COLUMNS = ["set", "system", "kind", "tracks", "queries", "MAP", "HR1", "HR1_all", "confusable", "confused"]


def track_conditions(corpus_dir: str | Path) -> pd.DataFrame:
    """id, work, kind and `related` (the work that shares this track's accompaniment, "" if none) of every corpus
    track."""
    tracks = pd.read_csv(Path(corpus_dir) / "tracks.csv", dtype=str, keep_default_na=False)
    works = pd.read_csv(Path(corpus_dir) / "works.csv", dtype=str, keep_default_na=False)
    borrows = dict(zip(works["work"], works["accompaniment_of"]))
    lenders = {source: work for work, source in borrows.items() if source}
    related = [borrows.get(w) or lenders.get(w, "") for w in tracks["work"]]
    return tracks[["id", "work", "kind"]].assign(related=related)


def kind_table(
    set_name: str, system: str, per_query: pd.DataFrame, confused: pd.Series, conditions: pd.DataFrame
) -> pd.DataFrame:
    """Rows (COLUMNS) of one system: per kind of query (and "all"), over the set's tracks in `conditions`.
    per_query: metrics.evaluate's per-query table (id, AP, HR1); confused: confusions()."""
    merged = conditions.merge(per_query[["id", "AP", "HR1"]], on="id", how="left")
    merged["confused"] = merged["id"].map(confused)
    rows = []
    for kind in KINDS:
        group = merged if kind == "all" else merged[merged["kind"] == kind]
        if group.empty:
            continue
        evaluated, confusable = group.dropna(subset=["AP"]), group["confused"].dropna()
        rows.append(
            {
                "set": set_name,
                "system": system,
                "kind": kind,
                "tracks": len(group),
                "queries": len(evaluated),
                "MAP": _mean(evaluated["AP"]),
                "HR1": _mean(evaluated["HR1"]),
                "HR1_all": io.rounded(evaluated["HR1"].sum() / len(group)),
                "confusable": len(confusable),
                "confused": _mean(confusable),
            }
        )
    return pd.DataFrame(rows, columns=COLUMNS)


def _mean(values: pd.Series) -> float:
    return io.rounded(float(values.astype(float).mean())) if len(values) else np.nan


def confusions(ids: list[str], blocks, conditions: pd.DataFrame) -> pd.Series:
    """id → 1.0 (confused) or 0.0 for each query of a work that shares its accompaniment with another work, both
    having tracks among `ids`: confused when the query's best-scored track of the other work outranks its
    best-scored true version. blocks: (query indices into ids, scores [b, len(ids)]), as metrics.score_ranks takes
    them."""
    info = conditions.set_index("id").reindex(ids)
    work, related = info["work"].to_numpy(), info["related"].fillna("").to_numpy()
    out = {}
    for queries, rows in blocks:
        for q, row in zip(queries, np.asarray(rows, dtype=np.float64)):
            true = (work == work[q]) & (np.arange(len(ids)) != q)
            other = work == related[q]
            if related[q] and true.any() and other.any():
                out[ids[q]] = float(row[other].max() > row[true].max())
    return pd.Series(out, dtype=float)


def cosine_blocks(matrix: np.ndarray, block_size: int = 1024):
    """Score rows (query indices, cosines [b, N] in float64) of L2-normalised vectors [N, d]."""
    matrix = np.asarray(matrix, dtype=np.float64)
    for lo in range(0, len(matrix), block_size):
        queries = np.arange(lo, min(lo + block_size, len(matrix)))
        yield queries, matrix[queries] @ matrix.T
