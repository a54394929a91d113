"""Finding the covers of recordings in a catalogue: audio → LIVI track vector (paperlib.model.inference, no
transcription) → cosine search in an index (paperlib.retrieval.index).

A result is one dict per query: {"query": id, "status": ok | instrumental | error, ["reason"], "hits":
[{"id", "score"}, ...]} with hits best first (score = cosine) and none unless the status is ok; a query whose
id is in the index is not its own hit.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.model.calibration import verdict
from paperlib.model.inference import Inference
from paperlib.retrieval.index import CoverIndex, RetrievalError
from paperlib.runtime.io import VALUE_DECIMALS, rounded


def results(ids: Sequence[str], hits: Sequence[list], statuses: dict | None = None) -> list[dict]:
    """Result dicts of queries `ids` with their (id, cosine) hits; statuses: id -> (status, reason)."""
    out = []
    for query, found in zip(ids, hits):
        line = {"query": query}
        if statuses is not None:
            status, reason = statuses[query]
            line |= {"status": status} | ({"reason": reason} if reason else {})
        out.append(line | {"hits": [{"id": i, "score": round(s, 6)} for i, s in found]})
    return out


def select_queries(
    ids: Sequence[str], vectors: np.ndarray, chosen: Sequence[str] | None = None, source: str = "the embeddings"
) -> tuple[list[str], np.ndarray]:
    """(ids, their rows of `vectors`) of the `chosen` ids in the order given (None or empty: all of `ids`);
    RetrievalError naming up to five chosen ids that are not in `ids` (of file `source`)."""
    chosen = list(chosen or ids)
    rows = {i: n for n, i in enumerate(ids)}
    unknown = [i for i in chosen if i not in rows]
    if unknown:
        raise RetrievalError(f"unknown id(s) {', '.join(map(repr, unknown[:5]))}: not in {source}")
    return chosen, vectors[[rows[i] for i in chosen]]


def search_audio(
    index: CoverIndex, inference: Inference, tracks: Sequence[tuple[str, Path]], k: int = 10, min_score=None
) -> list[dict]:
    """Results of (id, path) audio queries, in input order. RetrievalError when the checkpoint's vectors do
    not have the index's dimension (checked before embedding)."""
    if inference.dim != index.dim:
        raise RetrievalError(f"the checkpoint embeds {inference.dim}-d vectors, the index holds {index.dim}-d ones")
    manifest, vectors, _, _ = inference.embed(tracks)
    statuses = {
        r.id: (r.status, r.reason if isinstance(r.reason, str) else "") for r in manifest.itertuples(index=False)
    }
    ok = [i for i in manifest["id"] if i in vectors]
    found = dict(zip(ok, index.search_ids(np.stack([vectors[i] for i in ok]), k, ok, min_score) if ok else []))
    return results(list(manifest["id"]), [found.get(i, []) for i in manifest["id"]], statuses)


def hits_table(result: dict, index: CoverIndex, threshold: float | None = None, cliques=None) -> pd.DataFrame:
    """rank, id, cosine (at io.VALUE_DECIMALS: a results table), verdict (at `threshold`, if any), same_work (when
    `cliques`, id -> work, knows both the query and the hit), path (the audio path the index records) of one
    result."""
    columns = ["rank", "id", "cosine", *(["verdict"] if threshold is not None else [])]
    columns += [*(["same_work"] if cliques is not None else []), "path"]
    rows = []
    for rank, hit in enumerate(result["hits"], 1):
        cosine, path = rounded(hit["score"], VALUE_DECIMALS), index.paths[index.row(hit["id"])]
        row = {"rank": rank, "id": hit["id"], "cosine": cosine, "path": path}
        if threshold is not None:
            row["verdict"] = verdict(hit["score"], threshold)
        if cliques is not None:
            known = result["query"] in cliques and hit["id"] in cliques
            row["same_work"] = cliques[result["query"]] == cliques[hit["id"]] if known else None
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)
