"""The paper's tables regenerated (§5) next to its published values, as CSV, Markdown and LaTeX.

Table 2 (§5.4): each system of a set (ORACLE_SYSTEMS left out) against LIVI on the paper's metrics MR1, HR1 and MAP@10
(the paper's "MAP"), plus this project's MAP, HR@10, NAR, queries and coverage. A † follows a value whose difference
to LIVI is significant (paperlib.evaluation.significance: Wilcoxon for MR1 and MAP@10, McNemar for HR1, on the queries
both
systems evaluated, Holm-corrected over all tests of the set, p < 0.05); `p_<metric>` holds the corrected p.
§5.3: cosine between the LIVI embedding and the transcript embedding of the same 30 s segment, and of the same
track (mean, standard deviation, count; computed in float64, mean and std at io.DECIMALS (6) decimals).
Published values: Affolter et al., "Scalable Music Cover Retrieval Using Lyrics-Aligned Audio Embeddings",
ECIR 2026 (arXiv 2601.11262), Tables 1 and 2, copied into paperlib/published/ (Table 2's "MAP" column is
MAP@10, named MAP10 there).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

from paperlib.evaluation import significance
from paperlib.reporting import report
from paperlib.runtime import io, vectors
from paperlib.runtime.schema import read_table, set_dir

PAPER_METRICS = {"MR1": "R1", "HR1": "HR1", "MAP10": "AP10"}
"""Table 2's metrics and the per-query column each averages."""
LOWER_IS_BETTER = frozenset({"MR1", "NAR"})
REFERENCE = "LIVI (audio)"
ORACLE_SYSTEMS = ("lyrics",)
"""Ceilings rather than systems (schema.SYSTEMS): the editorial lyrics need no audio and are Table 1's "editorial"
row. results/evaluation keeps them beside the systems; Table 2 and its † tests leave them out."""
ORACLES = frozenset(report.SYSTEMS[name] for name in ORACLE_SYSTEMS)


# --------------------------------------------------------------------------- Table 2
def table2(results: pd.DataFrame, per_query: pd.DataFrame) -> pd.DataFrame:
    """Table 2 from the evaluation's results (report.RESULT_COLUMNS) and per-query metrics."""
    results = results[~results["system"].isin(ORACLES)]
    parts = []
    for name, rows in results.groupby("set", sort=False):
        tests = _paired_tests(per_query[per_query["set"] == name], rows["system"].tolist())
        parts.append(rows.merge(tests, on="system", how="left"))
    table = pd.concat(parts, ignore_index=True)
    columns = ["set", "system", *PAPER_METRICS, "MAP", "HR10", "NAR", "queries", "coverage"]
    p_values = [f"p_{m}" for m in PAPER_METRICS]
    return table[columns + p_values].assign(**{p: io.significant(table[p]) for p in p_values})


def _paired_tests(per_query: pd.DataFrame, systems: list[str]) -> pd.DataFrame:
    """Holm-corrected p-value of each system's difference to LIVI on each paper metric (NaN for LIVI)."""
    reference = per_query[per_query["system"] == REFERENCE].set_index("id")
    rows, pvalues = [], []
    for system in systems:
        if system == REFERENCE:
            continue
        other = per_query[per_query["system"] == system].set_index("id")
        shared = reference.index.intersection(other.index)
        a, b = reference.loc[shared], other.loc[shared]
        rows.append(system)
        pvalues.append(
            [
                significance.wilcoxon_p(a["R1"], b["R1"]),
                significance.mcnemar_p(a["HR1"] == 1, b["HR1"] == 1),
                significance.wilcoxon_p(a["AP10"], b["AP10"]),
            ]
        )
    adjusted = significance.holm(np.ravel(pvalues)).reshape(-1, len(PAPER_METRICS)) if pvalues else []
    return pd.DataFrame(adjusted, columns=[f"p_{m}" for m in PAPER_METRICS]).assign(system=rows)


def published_table(name: str) -> pd.DataFrame:
    """The paper's Table 1 or Table 2 ("table1" | "table2") as published."""
    with resources.files("paperlib").joinpath(f"published/{name}_published.csv").open() as handle:
        return pd.read_csv(handle)


def published_table2() -> pd.DataFrame:
    """Table 2 as published (Covers80, SHS100k-TEST, Discogs-VI-test: the paper's vocal subsets), labelled so."""
    table = published_table("table2")
    table.insert(1, "source", "published (paper, vocal subset)")
    return table


# --------------------------------------------------------------------------- Table 1
TABLE1_METRICS = ["MR1", "HR1", "MAP10"]


def table1(results: pd.DataFrame) -> pd.DataFrame:
    """Table 1 from the text_models stage's rows: set, lyrics, model and the paper's metrics, plus MAP, queries and
    coverage (best per set and lyrics source in bold when written with group=TABLE1_GROUP)."""
    return results[["set", "lyrics", "model", *TABLE1_METRICS, "MAP", "queries", "coverage"]]


TABLE1_GROUP = ("set", "lyrics")


PUBLISHED_PARAMETERS = {"LIVI (published)": 31.9e6, "ByteCover2 (published)": 202.3e6, "CLEWS (published)": 196.8e6}
"""Trainable parameters as the paper reports them (§5.5)."""


# --------------------------------------------------------------------------- §5.3
def audio_lyrics_agreement(sets, paths) -> pd.DataFrame:
    """Segment- and track-level cosine of LIVI vs transcript embeddings (columns set, level, mean, std, n).

    paths: config.Paths (the set folders, schema.set_dir). Segments: the chunks the teacher kept, paired with LIVI's
    chunk vectors of the same track (same vocal chunking); tracks: LIVI vs t_local.
    """
    rows = []
    for name in sets:
        audio, transcripts = set_dir(paths, name, "livi"), set_dir(paths, name)
        segment = _segment_cosines(audio / "livi.chunks.npz", transcripts)
        track = _track_cosines(audio / "livi.npz", transcripts / "asr.npz")
        for level, values in (("segment", segment), ("track", track)):
            rows.append(
                {
                    "set": name,
                    "level": level,
                    "mean": io.rounded(np.mean(values)) if len(values) else np.nan,
                    "std": io.rounded(np.std(values, ddof=1)) if len(values) > 1 else np.nan,
                    "n": len(values),
                }
            )
    return pd.DataFrame(rows, columns=["set", "level", "mean", "std", "n"])


def _segment_cosines(livi_chunks: Path, teacher_dir: Path) -> np.ndarray:
    """Per kept chunk (float64): its LIVI chunk vector · its transcript's vector (both unit vectors as stored)."""
    chunks = read_table(teacher_dir / "chunks.csv")
    text = np.load(teacher_dir / "chunk_text_embeddings.npy").astype(np.float64)
    kept = chunks["kept"].astype(str).str.lower() == "true"
    values = []
    with vectors.open_embeddings(livi_chunks) as audio:
        for track_id, rows in chunks.groupby("id", sort=False).indices.items():
            if track_id not in audio.files:
                continue
            (livi,) = vectors.check_arrays([audio[track_id]], [track_id], str(livi_chunks))
            if len(livi) == len(rows):
                keep = rows[kept.to_numpy()[rows]]
                values.append(np.sum(livi[kept.to_numpy()[rows]] * text[keep], axis=1))
    return np.concatenate(values) if values else np.zeros(0)


def _track_cosines(livi: Path, transcripts: Path) -> np.ndarray:
    """Per track in both files (float64): its LIVI track vector · its transcript track vector."""
    return vectors.paired_cosines(vectors.read_vector_map(livi), vectors.read_vector_map(transcripts))


# --------------------------------------------------------------------------- output
def write(table: pd.DataFrame, stem: str | Path, ranked: bool = True, group: tuple[str, ...] = ("set",)) -> None:
    """`stem`.csv (plain numbers), `stem`.md and `stem`.tex (booktabs); a `ranked` table (systems compared) has
    the best value per `group` (columns) in bold and † after values whose p_<metric> < 0.05."""
    stem = Path(stem)
    io.write_csv(table, stem.with_suffix(".csv"))
    with io.atomic_path(stem.with_suffix(".md")) as tmp:
        markdown = _formatted(table, ranked, ("**", "**"), group).to_markdown(index=False, disable_numparse=True)
        tmp.write_text(markdown + "\n")
    with io.atomic_path(stem.with_suffix(".tex")) as tmp:
        shown = _formatted(table, ranked, ("\\textbf{", "}"), group)
        tmp.write_text(shown.to_latex(index=False, escape=False, column_format="l" * 2 + "r" * (shown.shape[1] - 2)))


def _formatted(table: pd.DataFrame, ranked: bool, bold: tuple[str, str], group=("set",)) -> pd.DataFrame:
    """Numbers as text (3 decimals); if `ranked`, the best per set between the `bold` markers and † marks.
    The p-value columns are dropped."""
    shown = table.drop(columns=[c for c in table if c.startswith("p_")]).astype(object)
    keys = [table[c] for c in group if c in table] or [pd.Series(0, index=table.index)]
    for column in shown:
        if not pd.api.types.is_float_dtype(table[column]):
            continue
        best = table.groupby(keys)[column].transform("min" if column in LOWER_IS_BETTER else "max")
        for i in table.index:
            value = table.at[i, column]
            text = "" if pd.isna(value) else f"{value:.3f}"
            text = f"{bold[0]}{text}{bold[1]}" if ranked and text and value == best[i] else text
            dagger = ranked and f"p_{column}" in table and table.at[i, f"p_{column}"] < significance.ALPHA
            shown.at[i, column] = text + ("†" if dagger else "")
    return shown
