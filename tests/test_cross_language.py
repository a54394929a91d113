"""Cross-language retrieval (paperlib.evaluation.conditions): relevant = the work's versions sung in another language,
the work's other versions set aside; the corpus listings and the cosines by pair type, on hand-made tables."""

import numpy as np
import pandas as pd
import pytest

from paperlib.evaluation import conditions

# a1, a3: work a in English; a2: work a in French; b1: work b in French; b2: work b instrumental
IDS = ["a1", "a2", "a3", "b1", "b2"]
CONDITIONS = pd.DataFrame(
    {
        "id": IDS,
        "work": ["a", "a", "a", "b", "b"],
        "kind": ["original", "translated", "cover", "original", "instrumental"],
        "language": ["en", "fr", "en", "fr", ""],
        "related": [""] * 5,
    }
)
SCORES = np.array(
    [
        [1.0, 0.5, 0.9, 0.7, 0.1],  # a1: a3 (set aside) first; among a2, b1, b2 the translation a2 is second
        [0.5, 1.0, 0.8, 0.6, 0.9],  # a2: b2 0.9, a3 0.8, b1 0.6, a1 0.5 -> relevant a3 at 2, a1 at 4
        [0.9, 0.8, 1.0, 0.2, 0.3],  # a3: a1 set aside; a2 first of a2, b1, b2
        [0.7, 0.6, 0.2, 1.0, 0.4],  # b1: no version of b sung in another language
        [0.1, 0.9, 0.3, 0.4, 1.0],  # b2: instrumental
    ]
)


def test_language_ranks_set_the_same_language_aside():
    ranks, candidates = conditions.language_ranks([(range(5), SCORES)], CONDITIONS["work"], CONDITIONS["language"])
    assert [r.tolist() for r in ranks] == [[2], [2, 4], [1], [], []]
    assert candidates[:3].tolist() == [3, 4, 3]


def test_language_ranks_to_one_target_language():
    ranks, _ = conditions.language_ranks([(range(5), SCORES)], CONDITIONS["work"], CONDITIONS["language"], "fr")
    assert [r.tolist() for r in ranks] == [[2], [], [1], [], []]


def test_cross_language_summary_and_pairs():
    summary, per_query = conditions.cross_language([(range(5), SCORES)], IDS, CONDITIONS)
    assert per_query["id"].tolist() == ["a1", "a2", "a3"]
    assert per_query["AP"].tolist() == pytest.approx([0.5, (1 / 2 + 2 / 4) / 2, 1.0])
    assert summary["queries"] == 3 and summary["HR1"] == pytest.approx(1 / 3)
    pairs = conditions.pair_table("demo", "S", lambda: [(range(5), SCORES)], IDS, CONDITIONS)
    assert pairs[["query_language", "target_language", "queries"]].values.tolist() == [["fr", "en", 1], ["en", "fr", 2]]
    assert pairs["MAP"].tolist() == pytest.approx([0.5, 0.75])


def test_listings_count_languages_voices_kinds_and_cross_language_queries():
    tracks = CONDITIONS.assign(
        split=["test"] * 3 + ["train"] * 2,
        voice=["v1", "v2", "v1", "v2", ""],
        lyrics=["x", "x", "x", "y", ""],
    )
    tables = conditions.listings(tracks)
    composition = tables["composition"].set_index(["facet", "value"])
    assert composition.loc[("language", "en"), ["train", "test", "all"]].tolist() == [0, 2, 2]
    assert composition.loc[("language", "instrumental"), "train"] == 1
    assert composition.loc[("voice", "v2"), "all"] == 2 and composition.loc[("kind", "cover"), "test"] == 1
    queries = tables["queries"].set_index("split")
    assert queries.loc["test"].tolist() == [3, 3] and queries.loc["train"].tolist() == [2, 0]


def test_translation_cosines_by_pair_type():
    matrix = np.array([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [0.8, 0.6], [1.0, 0.0]])
    table = conditions.translation_cosines("S", matrix, IDS, CONDITIONS).set_index("pairs")
    # translation pairs: a1-a2 0.6, a2-a3 0.8; same language: a1-a3 0; other work (sung): a1-b1 .8, a2-b1 .96, a3-b1 .6
    assert table["count"].tolist() == [2, 1, 3]
    assert table.loc["translation", "mean"] == pytest.approx(0.7)
    assert table.loc["same language", "mean"] == pytest.approx(0.0)
    assert table.loc["other work", "mean"] == pytest.approx((0.8 + 0.96 + 0.6) / 3)
