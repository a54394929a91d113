"""Scoring (paper §4): every accepted track of a set queries all the others, per system.

Input: the set folders of the `transcribe`, `embed` and `harmonic` stages (schema.set_dir). Output: one results row per
set × system (reporting.RESULT_COLUMNS, the fusion of LIVI with a harmonic system included: paperlib.fusion),
per-query metrics and, for the demo, the per-condition table (paperlib.conditions); `coverage` = evaluated queries /
expected tracks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from paperlib import conditions, fusion, metrics, reporting, vectors
from paperlib.schema import FUSION_PREFIX, SYSTEMS, read_table, set_dir


def evaluate_sets(
    sets, paths, block_size: int = 2048, fusion: str = "", fusion_weight: float = 0.5
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(results table: reporting.RESULT_COLUMNS, one row per set × system; per-query metrics; per-condition table:
    conditions.COLUMNS, for the demo only). paths: config.Paths (the set folders of every system, the corpus);
    fusion: the harmonic system fused with LIVI into system livi+<fusion> ("" = none), LIVI's weight fusion_weight."""
    rows, per_query, by_kind = [], [], []
    for name in sets:
        cliques = read_table(set_dir(paths, name, "livi") / "cliques.csv")[["id", "clique"]]
        kinds = _kinds(paths, name, cliques)
        found = {s: v for s in SYSTEMS if (v := accepted_vectors(paths, name, s, cliques)) is not None}
        scored = {s: _vector_scores(v, cliques, block_size) for s, v in found.items()}
        if fusion and "livi" in found and fusion in found:
            scored[FUSION_PREFIX + fusion] = _fusion_scores(found["livi"], found[fusion], cliques, fusion_weight)
        for system, (summary, queries, ids, blocks) in scored.items():
            label = reporting.SYSTEMS.get(system, system)
            rows.append(reporting.results_row(name, system, summary, expected=len(cliques)))
            per_query.append(queries.assign(set=name, system=label))
            if kinds is not None:
                by_kind.append(
                    conditions.kind_table(name, label, queries, conditions.confusions(ids, blocks(), kinds), kinds)
                )
    table = pd.DataFrame(rows, columns=reporting.RESULT_COLUMNS)
    per_query = pd.concat(per_query, ignore_index=True) if per_query else pd.DataFrame()
    by_kind = pd.concat(by_kind, ignore_index=True) if by_kind else pd.DataFrame(columns=conditions.COLUMNS)
    return table, per_query, by_kind


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
    """(summary, per-query table, ids, score blocks) of the fusion of two systems (paperlib.fusion)."""
    subset = cliques[cliques["id"].isin(livi.keys() | harmonic.keys())]
    ids = subset["id"].tolist()

    def blocks():
        return fusion.fused_blocks(ids, livi, harmonic, weight)

    summary, queries = metrics.evaluate_scores(blocks(), subset["clique"].tolist(), ids)
    return summary, queries, ids, blocks


def _kinds(paths, name: str, cliques: pd.DataFrame) -> pd.DataFrame | None:
    """The version kinds of the demo set's tracks (paperlib.conditions), None for other sets."""
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
    from paperlib.retrieval import CoverIndex

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
