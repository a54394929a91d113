"""Scoring (paper §4): every accepted track of a set queries all the others, per system.

Input: the set folders of the `transcribe` and `embed` stages (schema.set_dir). Output: one results row per set × system
(reporting.RESULT_COLUMNS) and per-query metrics; `coverage` = evaluated queries / expected tracks.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from paperlib import metrics, reporting, vectors
from paperlib.schema import SYSTEMS, read_table, set_dir


def evaluate_sets(sets, paths, block_size: int = 2048) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Results table (reporting.RESULT_COLUMNS, one row per set × system) and per-query metrics. paths:
    config.Paths (the set folders of the embed stage's cliques.csv and of every system)."""
    rows, per_query = [], []
    for name in sets:
        ids, labels = vectors.read_cliques(set_dir(paths, name, "livi") / "cliques.csv")
        cliques = pd.DataFrame({"id": ids, "clique": labels})
        for system in SYSTEMS:
            folder = set_dir(paths, name, system)
            if not (folder / f"{system}.npz").exists():
                continue
            status = read_table(folder / f"{system}.manifest.csv")
            accepted = set(status.loc[status["status"] == "ok", "id"])
            subset = cliques[cliques["id"].isin(accepted)]
            matrix = vectors.read_embeddings(folder / f"{system}.npz", subset["id"].tolist())
            summary, queries = metrics.evaluate(
                matrix, subset["clique"].tolist(), subset["id"].tolist(), block_size=block_size, progress=False
            )
            rows.append(reporting.results_row(name, system, summary, expected=len(cliques)))
            per_query.append(queries.assign(set=name, system=reporting.SYSTEMS[system]))
    table = pd.DataFrame(rows, columns=reporting.RESULT_COLUMNS)
    return table, pd.concat(per_query, ignore_index=True) if per_query else pd.DataFrame()


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
