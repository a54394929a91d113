"""paperlib.data.multilingual_corpus: the plan of works and versions (fast), and the rendered tiny corpus (slow)."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pandas as pd
import pytest

from paperlib.data import line_banks
from paperlib.data import multilingual_corpus as mc


@pytest.fixture(scope="module")
def demo():
    works = mc.plan_works("demo", 0)
    return works, mc.plan_versions(works, "demo", 0)


def test_every_work_has_five_versions_of_the_stated_kinds(demo):
    works, versions = demo
    assert len(works) == 56 and len(versions) == 280
    assert Counter(w["split"] for w in works) == {"train": 20, "val": 4, "test": 32}  # 160 test queries
    by_work = {}
    for version in versions:
        by_work.setdefault(version.work, []).append(version)
    for work in works:
        kinds = [v.kind for v in by_work[work["work"]]]
        if work["source"] is not None:
            assert kinds == ["distractor"] * 5
        else:
            assert kinds[:3] == ["original", "translated", "cover"] and kinds[4] == "translated"
            assert kinds[3] == mc.SPECIAL[work["index"] % 4]
    counts = Counter(v.kind for v in versions)
    assert counts["translated"] >= 80 and min(counts[k] for k in mc.SPECIAL) >= 10


def test_versions_change_what_their_kind_says(demo):
    works, versions = demo
    plan = {(v.work, v.version): v for v in versions}
    for work in (w for w in works if w["source"] is None):
        original, translated, cover, special, last = (plan[work["work"], v] for v in range(5))
        assert original.language == work["languages"][0] and original.arrangement == work["band"]
        assert translated.arrangement == work["band"]  # the same music
        assert translated.language != original.language and last.language not in (
            original.language,
            translated.language,
        )
        assert cover.language == original.language and cover.voice != original.voice
        assert cover.arrangement.tonic != work["band"].tonic and cover.lines == original.lines
        if special.kind == "reharmonised":
            same = ("tonic", "mode", "tempo_bpm")
            assert all(getattr(special.arrangement, k) == getattr(work["band"], k) for k in same)
            assert special.arrangement.progression != work["band"].progression and special.lines == original.lines
        if special.kind == "changed_lyrics":
            assert special.lines[0] == original.lines[0] and special.lines[1] != original.lines[1]
        if special.kind == "instrumental":
            assert special.lines == () and special.voice == ""
        for version in (original, translated, last):  # each line is the same meaning in its language
            assert version.lines == mc.lyrics(work, version.language)


def test_no_theme_line_is_sung_by_two_works(demo):
    works, _ = demo
    used = Counter((w["theme"], i) for w in works for i in w["lines"] if i is not None)
    assert max(used.values()) == 1
    themes = Counter(w["theme"] for w in works)
    assert len(themes) == len(line_banks.THEMES) and max(themes.values()) >= 3  # works that share a theme


def test_distractors_borrow_their_sources_band_version_by_version(demo):
    works, versions = demo
    plan = {(v.work, v.version): v for v in versions}
    distractors = [w for w in works if w["source"] is not None]
    assert len(distractors) == 7  # one work in eight
    for work in distractors:
        source = works[work["source"]]
        assert work["theme"] == source["theme"] and work["split"] == source["split"]
        assert set(work["lines"]).isdisjoint(source["lines"])
        for v in range(5):
            assert plan[work["work"], v].arrangement == plan[source["work"], v].arrangement
            assert plan[work["work"], v].lines  # sung, even over the source's instrumental version


def test_held_out_voice_sings_in_the_test_split_only(demo):
    works, versions = demo
    split = {w["work"]: w["split"] for w in works}
    held_out = {split[v.work] for v in versions if v.voice == mc.HELD_OUT_VOICE}
    assert held_out == {"test"}
    assert {v.voice for v in versions if v.language == "en"} >= {"piper/en_US-joe-medium", "kokoro/jm_kumo"}
    languages = Counter(v.language for v in versions if v.lines)
    assert set(languages) == set(mc.LANGUAGES) and min(languages.values()) >= 30


def test_plan_is_seeded():
    first = mc.plan_versions(mc.plan_works("tiny", 0), "tiny", 0)
    assert first == mc.plan_versions(mc.plan_works("tiny", 0), "tiny", 0)
    assert first != mc.plan_versions(mc.plan_works("tiny", 1), "tiny", 1)
    with pytest.raises(ValueError, match="size must be 'tiny', 'demo' or a number of works, got 'huge'"):
        mc.layout("huge")


@pytest.mark.slow
def test_tiny_corpus_is_written_whole_and_byte_identical(tmp_path):
    """The tiny corpus (6 works × 5 versions): tables and audio agree, and a second run gives the same bytes."""
    table = mc.generate(tmp_path / "a", "tiny", seed=0, workers=1)
    assert len(table) == 30 and (tmp_path / "a" / "works.csv").is_file()
    for row in table.itertuples():
        segments = json.loads(row.vocal_segments)
        assert (tmp_path / "a" / row.path).is_file()
        assert (row.kind == "instrumental") == (row.lyrics == "") == (segments == [])
        assert all(0 < start < end <= row.duration_s for start, end in segments)
        assert len(segments) == len(row.lyrics.split("\n")) if row.lyrics else True
    mc.generate(tmp_path / "b", "tiny", seed=0, workers=2)
    for name in ["tracks.csv", "works.csv", *table["path"]]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    works = pd.read_csv(tmp_path / "a" / "works.csv", keep_default_na=False)
    assert set(works["language"]) <= set(mc.LANGUAGES) and np.all(works["languages"].str.count(r"\+") == 3)
