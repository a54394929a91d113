"""paperlib.evaluation.encoder_comparison (Table 1, §5.1) on a hand-made demo set: transcripts and editorial lyrics
embedded by the packaged all-MiniLM-L6-v2, scored as lyrics-only version identification."""

import dataclasses

import numpy as np
import pandas as pd
import pytest

from paperlib.evaluation import encoder_comparison
from paperlib.runtime import config

LYRICS = {
    "w1": "the harbor light is calling me home across the restless sea tonight",
    "w2": "flour and butter in a golden oven bake the bread until the morning comes",
    "w3": "neon signs and taxi horns keep the sleepless city awake",
}


@pytest.fixture
def demo_set(tmp_path, minilm):
    """Test split of 7 tracks: w1 ×3, w2 ×2, w3 ×1 (no partner), one instrumental w1 version (no text anywhere).
    The teacher transcribed all but the instrumental one; its transcript of w2-v1 is cut in two chunks."""
    ids = ["w1-v0", "w1-v1", "w1-v2", "w1-v3", "w2-v0", "w2-v1", "w3-v0"]
    works = [i[:2] for i in ids]
    lyrics = ["" if i == "w1-v3" else LYRICS[w] for i, w in zip(ids, works)]
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    pd.DataFrame(
        {"id": ids, "path": [f"audio/{i}.wav" for i in ids], "work": works, "split": "test", "kind": "cover"}
    ).assign(lyrics=lyrics).to_csv(corpus / "tracks.csv", index=False)
    teacher = tmp_path / "transcripts" / "demo"  # the transcribe stage's set folder: cliques, lyrics, teacher files
    teacher.mkdir(parents=True)
    pd.DataFrame({"id": ids, "clique": works, "path": [f"audio/{i}.wav" for i in ids]}).to_csv(
        teacher / "cliques.csv", index=False
    )
    pd.DataFrame({"id": ["x"], "status": ["ok"]}).to_csv(teacher / "lyrics.manifest.csv", index=False)
    sung = [i for i in ids if i != "w1-v3"]
    status = ["ok" if i in sung else "instrumental" for i in ids]
    pd.DataFrame({"id": ids, "status": status, "reason": ""}).to_csv(teacher / "manifest.csv", index=False)
    half = LYRICS["w2"].split()
    chunks = [
        {"id": i, "chunk": 0, "text": LYRICS[i[:2]], "raw_text": LYRICS[i[:2]], "kept": True}
        for i in sung
        if i != "w2-v1"
    ]
    chunks += [
        {"id": "w2-v1", "chunk": 0, "text": " ".join(half[:7]), "raw_text": "", "kept": True},
        {"id": "w2-v1", "chunk": 1, "text": " ".join(half[7:]), "raw_text": "", "kept": True},
        {"id": "w2-v1", "chunk": 2, "text": "", "raw_text": "Thank you for watching", "kept": False},
    ]
    pd.DataFrame(chunks).assign(start_s=0.0, end_s=30.0).to_csv(teacher / "chunks.csv", index=False)
    cfg = config.load(None)
    paths = dataclasses.replace(
        cfg.paths,
        models=str(minilm.parent),
        corpus=str(corpus),
        transcripts=str(tmp_path / "transcripts"),
        embeddings=str(tmp_path / "embeddings"),
    )
    evaluate = dataclasses.replace(cfg.evaluate, sets=("demo",))
    text = dataclasses.replace(cfg.text, models=("all-MiniLM-L6-v2",))
    return dataclasses.replace(cfg, paths=paths, evaluate=evaluate, text=text)


def test_set_texts_joins_kept_transcripts_in_order_and_reads_lyrics(demo_set):
    cliques, texts = encoder_comparison.set_texts("demo", demo_set)
    assert len(cliques) == 7
    assert texts["transcribed"]["w2-v1"] == LYRICS["w2"]  # kept chunks joined, the dropped one left out
    assert "w1-v3" not in texts["transcribed"] and "w1-v3" not in texts["editorial"]
    assert sorted(texts["editorial"].index) == sorted(texts["transcribed"].index)


def test_table1_scores_each_model_and_lyrics_source(demo_set):
    table, per_query = encoder_comparison.table1(demo_set)
    assert table[["set", "lyrics", "model"]].values.tolist() == [
        ["demo", "transcribed", "all-MiniLM-L6-v2"],
        ["demo", "editorial", "all-MiniLM-L6-v2"],
    ]
    # identical texts within a work: every query with a partner (w1 ×3, w2 ×2) finds it first
    for _, row in table.iterrows():
        assert (row["MAP10"], row["HR1"], row["MR1"], row["queries"]) == (1.0, 1.0, 1.0, 5)
        assert row["coverage"] == "5/7"
    assert sorted(per_query["id"].unique()) == ["w1-v0", "w1-v1", "w1-v2", "w2-v0", "w2-v1"]
    assert np.allclose(per_query["AP10"], 1.0)
