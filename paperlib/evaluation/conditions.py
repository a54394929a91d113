"""Where lyrics win and where harmony wins: the demo's metrics per version kind, per language pair, across
languages, and its distractor confusions.

The generated corpora (paperlib.data.multilingual_corpus, paperlib.data.corpus) label every track with a kind: original,
cover, translated (the lyrics in another language), reharmonised (other chords), instrumental (no vocals),
changed_lyrics (lines replaced), distractor (another work, other lyrics, reusing the accompaniment of the work named in
works.csv `accompaniment_of`), and with its sung language. Per system and query kind:
  tracks     the set's tracks of that kind;
  queries    those the system evaluated (it embedded them and they have another version it embedded);
  MAP, HR1   over the evaluated queries;
  HR1_all    over all tracks of the kind, a track the system could not embed counting as a miss;
  confused   over the `confusable` queries (those of a work that shares its accompaniment with another work, either
             side of the borrowing), the share whose best-scored track of the other work outranks their best-scored
             true version (tracks the system embedded).
Kind "all" is every track. Every rate at io.DECIMALS (6) decimals.

Cross-language retrieval (`language_ranks`): a sung query's relevant tracks are its work's versions sung in another
language; its work's other versions (same language, instrumental) are set aside, so the query ranks the relevant
ones among every other work's tracks. Per language pair (`pair_table`): the same with the relevant versions in one
target language.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.evaluation import metrics
from paperlib.runtime import io

KINDS = ("original", "translated", "cover", "reharmonised", "instrumental", "changed_lyrics", "distractor", "all")
PAIR_COLUMNS = ["set", "system", "query_language", "target_language", "queries", "MAP", "HR1"]
COLUMNS = ["set", "system", "kind", "tracks", "queries", "MAP", "HR1", "HR1_all", "confusable", "confused"]


def track_conditions(corpus_dir: str | Path) -> pd.DataFrame:
    """id, work, kind, language (sung, "" when instrumental) and `related` (the work that shares this track's
    accompaniment, "" if none) of every corpus track."""
    tracks = pd.read_csv(Path(corpus_dir) / "tracks.csv", dtype=str, keep_default_na=False)
    works = pd.read_csv(Path(corpus_dir) / "works.csv", dtype=str, keep_default_na=False)
    borrows = dict(zip(works["work"], works["accompaniment_of"]))
    lenders = {source: work for work, source in borrows.items() if source}
    related = [borrows.get(w) or lenders.get(w, "") for w in tracks["work"]]
    language = sung_languages(tracks)
    return tracks[["id", "work", "kind"]].assign(language=language, related=related)


def sung_languages(tracks: pd.DataFrame) -> pd.Series:
    """Each track's sung language ("" when instrumental); the English corpus, which has no language column, sings
    English."""
    if "language" in tracks:
        return tracks["language"].fillna("").astype(str)
    return tracks["lyrics"].fillna("").astype(str).str.strip().ne("").map({True: "en", False: ""})


def crosses_languages(works, languages) -> np.ndarray:
    """bool per track: sung, and another track of its work is sung in another language (a cross-language query)."""
    works, languages = np.asarray(works, dtype=object), np.asarray(languages, dtype=object)
    out = np.zeros(len(works), dtype=bool)
    for q in np.flatnonzero(languages != ""):
        out[q] = bool(((works == works[q]) & (languages != "") & (languages != languages[q])).any())
    return out


def listings(tracks: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """The corpus at a glance (results/corpus/): `composition`, tracks per split by sung language, voice and version
    kind ("instrumental" for no language or voice); `queries`, per split the queries (tracks with another version
    of their work) and the cross-language ones among them."""
    sung = sung_languages(tracks)
    facets = {
        "language": sung.replace("", "instrumental"),
        "voice": tracks["voice"].fillna("").astype(str).replace("", "instrumental") if "voice" in tracks else sung,
        "kind": tracks["kind"],
    }
    parts = []
    for facet, values in facets.items():
        counts = pd.crosstab(values.rename("value"), tracks["split"]).reindex(columns=["train", "val", "test"])
        parts.append(counts.fillna(0).astype(int).assign(all=lambda t: t.sum(axis=1)).reset_index())
        parts[-1].insert(0, "facet", facet)
    versions = tracks.groupby("work")["id"].transform("size")
    queries = pd.DataFrame(
        {
            "split": tracks["split"],
            "queries": versions > 1,
            "cross_language": crosses_languages(tracks["work"], sung),
        }
    )
    queries = queries.groupby("split", sort=False).sum().reindex(["train", "val", "test"]).fillna(0).astype(int)
    return {"composition": pd.concat(parts, ignore_index=True), "queries": queries.reset_index()}


def language_ranks(blocks, works, languages, target: str | None = None) -> tuple[list[np.ndarray], np.ndarray]:
    """(ranks per query, candidates per query) of cross-language retrieval (module docstring), only versions sung in
    `target` relevant when given. A query that is instrumental, or has no such version, gets no ranks. blocks: score
    rows as metrics.score_ranks takes them; works, languages: per column."""
    works, languages = np.asarray(works, dtype=object), np.asarray(languages, dtype=object)
    n = len(works)
    ranks, candidates = [np.empty(0, dtype=np.int64)] * n, np.full(n, n - 1)
    for queries, rows in blocks:
        for q, row in zip(queries, rows):
            same = works == works[q]
            relevant = same & (languages != "") & (languages != languages[q])
            if target is not None:
                relevant &= languages == target
            if not languages[q] or not relevant.any():
                continue
            kept = ~same | relevant
            ranks[q], candidates[q] = metrics.ranks_among(row, relevant, kept), int(kept.sum())
    return ranks, candidates


def cross_language(blocks, ids: list[str], conditions: pd.DataFrame) -> tuple[dict, pd.DataFrame]:
    """metrics.summarise of cross-language retrieval over `ids` (the scored tracks, conditions giving their work and
    language)."""
    info = conditions.set_index("id").reindex(ids)
    ranks, candidates = language_ranks(blocks, info["work"], info["language"].fillna(""))
    return metrics.summarise(ranks, info["work"].tolist(), ids, candidates)


def pair_table(set_name: str, system: str, blocks, ids: list[str], conditions: pd.DataFrame) -> pd.DataFrame:
    """Rows (PAIR_COLUMNS) of one system: per query language and target language, cross-language retrieval of the
    versions sung in the target language. blocks: a callable giving fresh score blocks."""
    info = conditions.set_index("id").reindex(ids)
    works, languages = info["work"].tolist(), info["language"].fillna("").to_numpy(dtype=object)
    rows = []
    for target in sorted(set(languages) - {""}):
        ranks, candidates = language_ranks(blocks(), works, languages, target)
        _, per_query = metrics.summarise(ranks, works, ids, candidates)
        per_query["query_language"] = info.loc[per_query["id"], "language"].to_numpy()
        for language, group in per_query.groupby("query_language", sort=True):
            rows.append(
                {
                    "set": set_name,
                    "system": system,
                    "query_language": language,
                    "target_language": target,
                    "queries": len(group),
                    "MAP": _mean(group["AP"]),
                    "HR1": _mean(group["HR1"]),
                }
            )
    return pd.DataFrame(rows, columns=PAIR_COLUMNS)


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


PAIR_TYPES = ("translation", "same language", "other work")


def translation_cosines(system: str, matrix: np.ndarray, ids: list[str], conditions: pd.DataFrame) -> pd.DataFrame:
    """Cosines between sung tracks by pair type: `translation` (one work, two languages), `same language` (one work,
    one language), `other work`; per type the pair count, mean and std (float64, io.DECIMALS) of one system's
    L2-normalised vectors [N, d] (rows in `ids` order)."""
    info = conditions.set_index("id").reindex(ids)
    sung = np.flatnonzero(info["language"].fillna("").to_numpy(dtype=object) != "")
    x = np.asarray(matrix, dtype=np.float64)[sung]
    works = info["work"].to_numpy(dtype=object)[sung]
    languages = info["language"].to_numpy(dtype=object)[sung]
    upper = np.triu(np.ones((len(sung), len(sung)), dtype=bool), k=1)
    same_work, same_language = works[:, None] == works[None, :], languages[:, None] == languages[None, :]
    masks = dict(zip(PAIR_TYPES, (same_work & ~same_language, same_work & same_language, ~same_work)))
    cosines = x @ x.T
    rows = []
    for kind, mask in masks.items():
        values = cosines[mask & upper]
        mean, std = (float(values.mean()), float(values.std())) if len(values) else (np.nan, np.nan)
        rows.append(
            {"system": system, "pairs": kind, "count": len(values), "mean": io.rounded(mean), "std": io.rounded(std)}
        )
    return pd.DataFrame(rows)


def embedding_map(matrix: np.ndarray, ids: list[str], conditions: pd.DataFrame, works: int = 8) -> pd.DataFrame:
    """The sung versions of the `works` works sung in the most languages (ties: work order) on the first two
    principal components of their vectors (sklearn PCA; coordinates at 4 decimals): id, work, language, kind, x, y."""
    from sklearn.decomposition import PCA

    info = conditions.set_index("id").reindex(ids).reset_index()
    info = info[info["language"].fillna("") != ""]
    spread = info.groupby("work")["language"].nunique()
    chosen = spread.sort_values(ascending=False, kind="stable").index[:works]
    shown = info[info["work"].isin(chosen)]
    rows = np.asarray(matrix, dtype=np.float64)[shown.index.to_numpy()]
    xy = np.round(PCA(n_components=2, svd_solver="full").fit_transform(rows), 4)
    return shown[["id", "work", "language", "kind"]].assign(x=xy[:, 0], y=xy[:, 1]).reset_index(drop=True)
