"""Scoring (paper §4): every accepted track of a set queries all the others, per system.

Input: the set folders of the `transcribe`, `embed` and `harmonic` stages (schema.set_dir). Output: one results row per
set × system (report.RESULT_COLUMNS, the fusion of LIVI with a harmonic system included: paperlib.evaluation.fusion),
per-query metrics and, for the demo, its cross-language queries as a set of their own (Table 2 and its † tests), the
per-condition tables (paperlib.evaluation.conditions); `coverage` = evaluated queries / expected tracks
(cross-language: the
tracks with a version of their work sung in another language).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd

from paperlib.evaluation import conditions, fusion, metrics
from paperlib.reporting import report
from paperlib.retrieval.index import CoverIndex
from paperlib.runtime import vectors
from paperlib.runtime.schema import FUSION_PREFIX, SYSTEMS, read_table, set_dir

CROSS_LANGUAGE = " (cross-language)"  # suffix of a set's cross-language queries (paperlib.evaluation.conditions)


class Evaluation(NamedTuple):
    """evaluate_sets' tables."""

    results: pd.DataFrame  # report.RESULT_COLUMNS: one row per set × system (and per cross-language set)
    per_query: pd.DataFrame  # metrics per query, with set and system
    by_kind: pd.DataFrame  # conditions.COLUMNS (the demo only)
    by_language: pd.DataFrame  # conditions.PAIR_COLUMNS (the demo only)


def evaluate_sets(sets, paths, block_size: int = 2048, fusion: str = "", fusion_weight: float = 0.5) -> Evaluation:
    """Every set × system; for the demo also its cross-language queries as set "<name> (cross-language)"
    (CROSS_LANGUAGE), per version kind and per language pair (paperlib.evaluation.conditions). paths: config.Paths (the
    set folders of every system, the corpus); fusion: the harmonic system fused with LIVI into system livi+<fusion>
    ("" = none), LIVI's weight fusion_weight."""
    rows, per_query, by_kind, by_language = [], [], [], []
    for name in sets:
        cliques = read_table(set_dir(paths, name, "livi") / "cliques.csv")[["id", "clique"]]
        kinds = _kinds(paths, name, cliques)
        found = {s: v for s in SYSTEMS if (v := accepted_vectors(paths, name, s, cliques)) is not None}
        scored = {s: _vector_scores(v, cliques, block_size) for s, v in found.items()}
        if fusion and "livi" in found and fusion in found:
            scored[FUSION_PREFIX + fusion] = _fusion_scores(found["livi"], found[fusion], cliques, fusion_weight)
        crossing = f"{name}{CROSS_LANGUAGE}"
        for system, (summary, queries, ids, blocks) in scored.items():
            label = report.SYSTEMS.get(system, system)
            rows.append(report.results_row(name, system, summary, expected=len(cliques)))
            per_query.append(queries.assign(set=name, system=label))
            if kinds is None:
                continue
            by_kind.append(
                conditions.kind_table(name, label, queries, conditions.confusions(ids, blocks(), kinds), kinds)
            )
            if kinds.loc[kinds["language"] != "", "language"].nunique() > 1:  # sung in several languages
                across, across_queries = conditions.cross_language(blocks(), ids, kinds)
                expected = int(conditions.crosses_languages(kinds["work"], kinds["language"]).sum())
                rows.append(report.results_row(crossing, system, across, expected=expected))
                per_query.append(across_queries.assign(set=crossing, system=label))
                by_language.append(conditions.pair_table(name, label, blocks, ids, kinds))
    return Evaluation(
        pd.DataFrame(rows, columns=report.RESULT_COLUMNS),
        pd.concat(per_query, ignore_index=True) if per_query else pd.DataFrame(),
        pd.concat(by_kind, ignore_index=True) if by_kind else pd.DataFrame(columns=conditions.COLUMNS),
        pd.concat(by_language, ignore_index=True) if by_language else pd.DataFrame(columns=conditions.PAIR_COLUMNS),
    )


def translations(paths, name: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(cosines by pair type of every system's vectors: conditions.translation_cosines, system labels as in the
    results; LIVI's embedding map: conditions.embedding_map) of a set's sung tracks; empty tables for a set without
    languages (not the demo)."""
    cliques = read_table(set_dir(paths, name, "livi") / "cliques.csv")[["id", "clique"]]
    kinds = _kinds(paths, name, cliques)
    tables, view = [], pd.DataFrame()
    if kinds is None:
        return pd.DataFrame(), view
    for system in SYSTEMS:
        found = accepted_vectors(paths, name, system, cliques)
        if not found:
            continue
        ids, matrix = list(found), np.stack(list(found.values()))
        tables.append(conditions.translation_cosines(report.SYSTEMS.get(system, system), matrix, ids, kinds))
        if system == "livi":
            view = conditions.embedding_map(matrix, ids, kinds)
    return pd.concat(tables, ignore_index=True).assign(set=name) if tables else pd.DataFrame(), view


def accepted_vectors(paths, name: str, system: str, cliques: pd.DataFrame) -> dict[str, np.ndarray] | None:
    """id → vector of the set's tracks the system accepted ("ok"), in cliques order; None when the system was not
    run on the set."""
    folder = set_dir(paths, name, system)
    if not (folder / f"{system}.npz").exists():
        return None
    status = read_table(folder / f"{system}.manifest.csv")
    accepted = set(status.loc[status["status"] == "ok", "id"])
    ids = [i for i in cliques["id"] if i in accepted]
    return dict(zip(ids, vectors.read_embeddings(folder / f"{system}.npz", ids)))


def _vector_scores(found: dict, cliques: pd.DataFrame, block_size: int):
    """(summary, per-query table, ids, score blocks) of a system's vectors, ranked by cosine."""
    subset = cliques[cliques["id"].isin(found.keys())]
    ids = subset["id"].tolist()
    matrix = np.stack([found[i] for i in ids]) if ids else np.zeros((0, 1), dtype=np.float32)
    summary, queries = metrics.evaluate(matrix, subset["clique"].tolist(), ids, block_size=block_size, progress=False)
    return summary, queries, ids, lambda: conditions.cosine_blocks(matrix)


def _fusion_scores(livi: dict, harmonic: dict, cliques: pd.DataFrame, weight: float):
    """(summary, per-query table, ids, score blocks) of the fusion of two systems (paperlib.evaluation.fusion)."""
    subset = cliques[cliques["id"].isin(livi.keys() | harmonic.keys())]
    ids = subset["id"].tolist()

    def blocks():
        return fusion.fused_blocks(ids, livi, harmonic, weight)

    summary, queries = metrics.evaluate_scores(blocks(), subset["clique"].tolist(), ids)
    return summary, queries, ids, blocks


def _kinds(paths, name: str, cliques: pd.DataFrame) -> pd.DataFrame | None:
    """The version kinds of the demo set's tracks (paperlib.evaluation.conditions), None for other sets."""
    if name != "demo":
        return None
    kinds = conditions.track_conditions(paths.corpus)
    return kinds[kinds["id"].isin(cliques["id"])].reset_index(drop=True)


def metrics_json(table: pd.DataFrame) -> dict:
    """{set: {system: {metric: value}}} for `dvc metrics show`."""
    return {
        name: {
            row["system"]: {k: row[k] for k in ("MAP", "MAP10", "HR1", "HR10", "MR1", "NAR", "queries")}
            for _, row in group.iterrows()
        }
        for name, group in table.groupby("set", sort=False)
    }


def retrieval_examples(name: str, embeddings_dir, factory: str = "Flat", queries: int = 3, k: int = 5) -> pd.DataFrame:
    """Top-k neighbours (faiss) of the first `queries` LIVI-embedded tracks of a set."""

    folder = Path(embeddings_dir) / name
    cliques = dict(zip(*vectors.read_cliques(folder / "cliques.csv")))
    ids, matrix = vectors.read_vectors(folder / "livi.npz")
    index = CoverIndex.build(ids, matrix, factory=factory)
    rows = []
    for q, hits in zip(ids[:queries], index.search_ids(matrix[:queries], k=k + 1)):
        hits = [(hit, score) for hit, score in hits if hit != q][:k]
        rows += [
            {"query": q, "rank": r, "hit": hit, "cosine": round(score, 4), "same work": cliques[hit] == cliques[q]}
            for r, (hit, score) in enumerate(hits, 1)
        ]
    return pd.DataFrame(rows)
