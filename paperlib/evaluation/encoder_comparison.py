"""Table 1 (§5.1): sentence encoders compared on lyrics alone, transcribed and editorial.

A track is one text: its transcript (the teacher's kept chunk transcripts joined in time order, the text that
t_global embeds) or its editorial lyrics (the demo corpus' ground truth; the benchmark sets have none offline).
Per model and lyrics source, every track with a text queries all the others by cosine (paperlib.evaluation.metrics);
tracks without one lower the coverage. Models come from `text.models` (offline names, hub ids or folders).
"""

from __future__ import annotations

import pandas as pd
from tqdm.auto import tqdm

from paperlib.data import eval_sets
from paperlib.evaluation import metrics
from paperlib.lyrics import text_embedding
from paperlib.reporting import report
from paperlib.runtime.config import Config
from paperlib.runtime.schema import set_dir

LYRICS = ("transcribed", "editorial")
COLUMNS = ["set", "lyrics", "model", "MR1", "HR1", "MAP10", "MAP", "HR10", "NAR", "queries", "coverage"]


def set_texts(name: str, cfg: Config) -> tuple[pd.DataFrame, dict[str, pd.Series]]:
    """(the set's cliques: id, clique, every expected track; {lyrics source: id → text} of the tracks that have
    one). Reads the `transcribe` stage's cliques.csv and transcripts of the set."""
    cliques = eval_sets.read_cliques(name, cfg)
    present = cliques.loc[cliques["path"] != "", "id"]
    texts = {"transcribed": eval_sets.joined_transcripts(set_dir(cfg.paths, name), present)[1]}
    lyrics = eval_sets.editorial_lyrics(name, cfg)
    if lyrics is not None:
        texts["editorial"] = lyrics[lyrics.str.strip() != ""]
    return cliques[["id", "clique"]], texts


def score(embedder: text_embedding.TextEmbedder, texts: pd.Series, cliques: pd.DataFrame, block_size: int = 2048):
    """(summary metrics, per-query table) of the texts (id → text) as a retrieval system; ids in cliques order."""
    subset = cliques[cliques["id"].isin(texts.index)]
    vectors = embedder.embed(texts.reindex(subset["id"]).tolist())
    return metrics.evaluate(vectors, subset["clique"].tolist(), subset["id"].tolist(), block_size, progress=False)


def table1(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Table 1 rows (COLUMNS: one per set × lyrics source × model, in `text.models` order) and per-query metrics."""
    inputs = {name: set_texts(name, cfg) for name in cfg.evaluate.sets}
    rows, per_query = [], []
    for model in tqdm(cfg.text.models, desc="text models", unit="model"):
        embedder = text_embedding.load_embedder(model, cfg.paths.models, cfg.device)
        for name, (cliques, texts) in inputs.items():
            for lyrics, series in texts.items():
                summary, queries = score(embedder, series, cliques, cfg.evaluate.block_size)
                row = report.results_row(name, model, summary, expected=len(cliques))
                rows.append(row | {"lyrics": lyrics, "model": model})
                per_query.append(queries.assign(set=name, lyrics=lyrics, model=model))
        del embedder
    sets = list(cfg.evaluate.sets)
    rows.sort(key=lambda row: (sets.index(row["set"]), LYRICS.index(row["lyrics"])))  # stable: models in order
    return pd.DataFrame(rows, columns=COLUMNS), pd.concat(per_query, ignore_index=True)
