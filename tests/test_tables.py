"""The paper's tables: paired tests with known p-values, Holm–Bonferroni, Table 2's † marks and formats."""

import numpy as np
import pandas as pd
import pytest

from paperlib.evaluation import significance, tables
from paperlib.runtime import io
from paperlib.runtime.config import Paths


def test_wilcoxon_exact_p_of_ten_positive_differences():
    """All 10 differences positive and distinct: exact two-sided p = 2 / 2^10."""
    a = np.arange(1.0, 11.0)
    assert significance.wilcoxon_p(a, a + np.arange(1, 11) / 10) == pytest.approx(2 / 1024)
    assert significance.wilcoxon_p(a, a) == 1.0


def test_mcnemar_exact_uses_only_discordant_pairs():
    """9 queries hit by A only, 1 by B only, 5 by both, 5 by neither: p = 2·P(X ≤ 1 | 10, ½) = 22/1024."""
    a = [1] * 9 + [0] + [1] * 5 + [0] * 5
    b = [0] * 9 + [1] + [1] * 5 + [0] * 5
    assert significance.mcnemar_p(a, b) == pytest.approx(22 / 1024)
    assert significance.mcnemar_p([1, 0], [1, 0]) == 1.0


def test_holm_step_down():
    """Sorted 0.005·4, 0.01·3, 0.03·2, 0.04·1 → running max 0.02, 0.03, 0.06, 0.06; back in input order."""
    np.testing.assert_allclose(significance.holm([0.01, 0.04, 0.03, 0.005]), [0.03, 0.06, 0.06, 0.02])
    np.testing.assert_allclose(significance.holm([0.5, 0.9]), [1.0, 1.0])  # monotone, capped at 1


def per_query(system: str, r1, ap10) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": [f"q{i}" for i in range(len(r1))],
            "set": "demo",
            "system": system,
            "R1": r1,
            "HR1": [float(r == 1) for r in r1],
            "AP10": ap10,
        }
    )


@pytest.fixture
def evaluation():
    """LIVI first-ranks every query at 1; 'other' misses 10 of 12 at rank 2 (MR1, HR1 and AP@10 all differ)."""
    livi = per_query("LIVI (audio)", [1] * 12, [1.0] * 12)
    other = per_query("other", [2] * 10 + [1, 1], [0.5] * 10 + [1.0, 1.0])
    queries = pd.concat([livi, other], ignore_index=True)
    results = queries.groupby("system", sort=False).agg(MR1=("R1", "mean"), HR1=("HR1", "mean"), MAP10=("AP10", "mean"))
    results = results.reset_index().assign(
        set="demo", MAP=results["MAP10"].to_numpy(), HR10=1.0, NAR=0.0, queries=12, coverage="12/12"
    )
    return results, queries


def test_table2_marks_significant_differences(evaluation, tmp_path):
    results, queries = evaluation
    table = tables.table2(results, queries)
    other = table.set_index("system").loc["other"]
    # Wilcoxon: 10 equal non-zero differences → exact p = 2/2^10 each; McNemar: 10 discordant → 2/2^10; Holm ×3
    assert other["p_MR1"] == pytest.approx(3 * 2 / 1024) and other["p_HR1"] == pytest.approx(3 * 2 / 1024)
    tables.write(table, tmp_path / "table2")
    markdown = (tmp_path / "table2.md").read_text()
    assert "| 1.833† " in markdown and "| **1.000** " in markdown  # other's MR1 marked, LIVI's the best
    latex = (tmp_path / "table2.tex").read_text()
    assert r"\toprule" in latex and r"\textbf{1.000}" in latex and "1.833†" in latex
    assert "p_MR1" in (tmp_path / "table2.csv").read_text()  # the CSV keeps the corrected p-values


def test_table2_leaves_out_the_oracle(evaluation):
    """The editorial-lyrics ceiling is Table 1's: no Table 2 row, no share of the Holm correction."""
    results, queries = evaluation
    oracle = per_query("Editorial lyrics", [1] * 12, [1.0] * 12)
    oracle_row = results.iloc[[0]].assign(system="Editorial lyrics")
    table = tables.table2(pd.concat([results, oracle_row]), pd.concat([queries, oracle]))
    assert table["system"].tolist() == ["LIVI (audio)", "other"]
    assert table.set_index("system").loc["other", "p_MR1"] == pytest.approx(3 * 2 / 1024)


def test_published_table2_is_labelled_and_complete():
    table = tables.published_table2()
    assert set(table["source"]) == {"published (paper, vocal subset)"}
    livi = table[(table["set"] == "covers80") & (table["system"] == "LIVI")].iloc[0]
    assert (livi["MR1"], livi["HR1"], livi["MAP10"]) == (1.51, 0.949, 0.966)
    assert len(table) == 24 and set(table["set"]) == {"covers80", "shs100k_test", "discogs_vi_test"}


# --------------------------------------------------------------------------- §5.3 at a stated precision
def agreement_inputs(root, nudge: bool = False):
    """Set "demo": tracks a, b (LIVI [1, 0] and [.6, .8]; t_local both [.6, .8]: cosines .6 and 1) and their
    chunks (a: [1, 0] kept, [0, 1] dropped; b: [.6, .8]; transcripts [.8, .6], [1, 0], [0, 1]: kept segments
    .8 and .8), in the set folders of the embed and transcribe stages. `nudge` moves every non-zero LIVI value by
    one float32 step (what another CPU type may compute). Returns the config.Paths."""
    paths = Paths(embeddings=str(root / "embeddings"), transcripts=str(root / "transcripts"))
    folder, teacher = root / "embeddings" / "demo", root / "transcripts" / "demo"

    def livi(x):
        x = np.asarray(x, dtype=np.float32)
        return np.where(x != 0, np.nextafter(x, np.float32(0)), x) if nudge else x

    io.save_npz(folder / "livi.npz", {"a": livi([1.0, 0.0]), "b": livi([0.6, 0.8])})
    io.save_npz(teacher / "asr.npz", {"a": np.float32([0.6, 0.8]), "b": np.float32([0.6, 0.8])})
    io.save_npz(folder / "livi.chunks.npz", {"a": livi([[1.0, 0.0], [0.0, 1.0]]), "b": livi([[0.6, 0.8]])})
    chunks = pd.DataFrame({"id": ["a", "a", "b"], "chunk": [0, 1, 0], "kept": [True, False, True]})
    io.write_csv(chunks, teacher / "chunks.csv")
    np.save(teacher / "chunk_text_embeddings.npy", np.float32([[0.8, 0.6], [1.0, 0.0], [0.0, 1.0]]))
    return paths


def test_audio_lyrics_agreement_by_hand(tmp_path):
    table = tables.audio_lyrics_agreement(["demo"], agreement_inputs(tmp_path))
    assert table.to_dict("records") == [
        {"set": "demo", "level": "segment", "mean": 0.8, "std": 0.0, "n": 2},
        {"set": "demo", "level": "track", "mean": 0.8, "std": 0.282843, "n": 2},  # std of .6, 1 = √.08
    ]


def test_agreement_files_are_identical_when_the_vectors_differ_in_their_last_bit(tmp_path):
    """The same table from float32 vectors one step apart: the unrounded cosines differ, the files do not."""
    written, raw = [], []
    for nudge in (False, True):
        root = tmp_path / str(nudge)
        paths = agreement_inputs(root, nudge)
        raw.append(tables._segment_cosines(root / "embeddings/demo/livi.chunks.npz", root / "transcripts/demo"))
        tables.write(tables.audio_lyrics_agreement(["demo"], paths), root / "section5_3", ranked=False)
        written.append({s: (root / f"section5_3{s}").read_bytes() for s in (".csv", ".md", ".tex")})
    assert 0 < abs(raw[0][0] - raw[1][0]) < 1e-7
    assert written[0] == written[1]
    assert b"demo,track,0.8,0.282843,2\n" in written[0][".csv"]
