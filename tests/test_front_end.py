"""paperlib.evaluation.front_end (§5.2): fixed windows, hallucination counting before clean-up, WER per track, the
summary and its paired test; the fixed-window route end to end with the packaged Whisper tiny.en."""

import numpy as np
import pandas as pd
import pytest

from paperlib import SAMPLE_RATE
from paperlib.evaluation import front_end
from paperlib.lyrics import asr


def test_fixed_windows_cover_the_track_without_overlap():
    wave = np.arange(int(65.5 * SAMPLE_RATE), dtype=np.float32)
    windows = front_end.fixed_windows(wave)
    assert windows.shape == (3, 30 * SAMPLE_RATE)
    np.testing.assert_array_equal(windows.ravel()[: len(wave)], wave)
    assert not windows[2, int(5.5 * SAMPLE_RATE) :].any()  # the last window is zero-padded
    assert front_end.fixed_windows(np.zeros(10, np.float32)).shape == (1, 30 * SAMPLE_RATE)


def test_hallucinations_are_counted_per_output_before_clean_up():
    outputs = [
        "Thank you for watching!",  # 1
        "the harbor light is calling me home",  # 0
        "♪ ♪ ♪",  # 1 (one output, however many marks)
        "THANKS FOR WATCHING. Please subscribe to my channel",  # 1: two phrases, one output
        "thank you for watchingly",  # 0: not the whole word
        "",  # 0
    ]
    assert front_end.count_hallucinations(outputs) == 3
    assert [asr.clean_transcript(o) for o in outputs[:1]] == [None]  # what the clean-up would have hidden


def test_track_row_scores_raw_outputs_against_lyrics():
    row = front_end.track_row("t1", ["the harbor light", "Thank you for watching.", "♪"], "The harbor light.")
    assert row == {
        "id": "t1",
        "chunks": 3,
        "texts": 2,  # "♪" has no word
        "hallucinations": 2,
        "lyrics_words": 3,
        "wer": pytest.approx(4 / 3),
    }
    assert front_end.track_row("t2", [], "sung words here")["wer"] == 1.0  # a sung track that got no text
    instrumental = front_end.track_row("t3", ["the more you go the more you find"], "")
    assert (instrumental["texts"], instrumental["lyrics_words"]) == (1, 0) and np.isnan(instrumental["wer"])
    unknown = front_end.track_row("t4", ["words"], None)  # a set without lyrics
    assert np.isnan(unknown["lyrics_words"]) and np.isnan(unknown["wer"])


def test_detector_route_reads_the_teachers_raw_transcripts(tmp_path):
    chunks = pd.DataFrame(
        {
            "id": ["a", "a", "b", "d", "d"],
            "chunk": [1, 0, 0, 0, 1],
            "start_s": [30.0, 0.0, 0.0, 0.0, 30.0],
            "end_s": [60.0, 30.0, 30.0, 30.0, 60.0],
            "text": ["three four", "", "", "", ""],
            "raw_text": ["three four", "one two", "Thank you for watching", "♪", "five six"],
            "kept": [True, False, False, False, False],
        }
    )
    chunks.to_csv(tmp_path / "chunks.csv", index=False)
    tracks = pd.DataFrame({"id": ["a", "b", "c", "d"], "lyrics": ["one two three four", "", "seven", "five six"]})
    scored = front_end.detector_route(tmp_path, tracks).set_index("id")
    assert scored["chunks"].tolist() == [2, 1, 0, 2]  # c: rejected before transcription
    assert scored["hallucinations"].tolist() == [0, 1, 0, 1]
    assert scored.loc["a", "wer"] == 0.0  # raw outputs (kept or not) joined in time order
    assert np.isnan(scored.loc["b", "wer"]) and scored.loc["c", "wer"] == 1.0 and scored.loc["d", "wer"] == 0.0


def test_summary_and_paired_wer_test():
    rows = []
    for i in range(8):
        base = {"set": "demo", "id": f"t{i}", "lyrics_words": 10}
        rows.append(base | {"front_end": "detector", "chunks": 1, "texts": 1, "hallucinations": 0, "wer": 0.1})
        rows.append(
            base
            | {"front_end": "windows", "chunks": 2, "texts": 2, "hallucinations": i % 2, "wer": 0.1 + 0.05 * (i + 1)}
        )
    instrumental = {"set": "demo", "id": "x", "lyrics_words": 0, "wer": np.nan}
    rows.append(instrumental | {"front_end": "windows", "chunks": 1, "texts": 1, "hallucinations": 3})
    rows.append(instrumental | {"front_end": "detector", "chunks": 0, "texts": 0, "hallucinations": 0})
    table = front_end.summary(pd.DataFrame(rows)).set_index("front_end")
    windows, detector = table.loc["fixed 30 s windows"], table.loc["vocal detection"]
    assert (windows["tracks"], windows["chunks"], windows["hallucinations"]) == (9, 17, 7)
    assert windows["hallucinations_per_track"] == pytest.approx(7 / 9)
    assert (windows["instrumental_tracks"], windows["texts_on_instrumental"]) == (1, 1)
    assert (detector["instrumental_tracks"], detector["texts_on_instrumental"]) == (1, 0)
    assert windows["WER"] == pytest.approx(0.1 + 0.05 * 4.5) and detector["WER"] == pytest.approx(0.1)
    assert windows["sung_tracks"] == 8
    # all 8 differences positive: exact two-sided Wilcoxon p = 2 / 2^8
    assert windows["WER_wilcoxon_p"] == pytest.approx(2 / 256) == detector["WER_wilcoxon_p"]


def test_windows_route_with_packaged_whisper(tiny_transcriber, speak, tmp_path):
    """Fixed windows through the packaged Whisper tiny.en: a sung (spoken) track gives its words, a file that
    cannot be decoded gives no text, and seconds are recorded per track."""
    import soundfile as sf

    voice = speak("the harbor light is calling me home tonight")
    wave = np.concatenate([np.zeros(SAMPLE_RATE, np.float32), voice, np.zeros(SAMPLE_RATE, np.float32)])
    sf.write(tmp_path / "sung.wav", wave, SAMPLE_RATE)
    (tmp_path / "broken.wav").write_bytes(b"not audio")
    tracks = pd.DataFrame(
        {
            "id": ["sung", "broken"],
            "path": [str(tmp_path / "sung.wav"), str(tmp_path / "broken.wav")],
            "lyrics": ["the harbor light is calling me home tonight", "words"],
        }
    )
    scored, seconds = front_end.windows_route(tracks, tiny_transcriber)
    assert scored["chunks"].tolist() == [1, 0]
    assert scored.loc[0, "wer"] < 0.5 and scored.loc[1, "wer"] == 1.0
    assert seconds["id"].tolist() == ["sung", "broken"] and (seconds["seconds"] >= 0).all()
