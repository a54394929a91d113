"""paperlib.data.speech: the stored sung lines (Ogg Vorbis, fixed serial numbers) and the committed store of the
demo."""

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from mutagen.ogg import OggPage

from paperlib.data import multilingual_corpus, speech, voices
from paperlib.runtime import config

STORE = config.load("params.yaml").paths.speech
PIPER_LINE = ("The river keeps the secrets of the town.", "en", "piper/en_US-joe-medium")


def _serials(data: bytes) -> set[int]:
    source, serials = io.BytesIO(data), set()
    while True:
        try:
            serials.add(OggPage(source).serial)
        except EOFError:
            return serials


def test_encoding_is_byte_identical_and_decodes_to_the_same_length():
    audio = (0.3 * np.sin(np.arange(40_000) * 0.03)).astype(np.float32)
    first, second = speech.encode(audio), speech.encode(audio)
    assert first == second and _serials(first) == {0}
    decoded = speech.decode(first)
    assert decoded.dtype == np.float32 and len(decoded) == len(audio)
    assert 10 * np.log10(np.sum(audio**2) / np.sum((audio - decoded) ** 2)) > 15  # lossy, not another signal


def test_sing_reads_the_store_and_sings_what_it_lacks(tmp_path):
    index = speech.write_store([PIPER_LINE], tmp_path / "store")
    assert index["key"].tolist() == [speech.key(PIPER_LINE)] and index["seconds"].iloc[0] > 1
    stored = (tmp_path / "store" / f"{speech.key(PIPER_LINE)}.ogg").read_bytes()
    other = ("The river keeps the secrets of the city.", "en", "piper/en_US-joe-medium")
    sung = speech.sing([PIPER_LINE, other], tmp_path / "store")
    np.testing.assert_array_equal(sung[PIPER_LINE], speech.decode(stored))
    np.testing.assert_array_equal(sung[other], speech.decode(speech.encode(voices.speak(*other))))
    assert not (tmp_path / "store" / f"{speech.key(other)}.ogg").exists()  # sung, not stored


def test_the_committed_store_holds_every_line_of_the_demo_corpus():
    cfg = config.load("params.yaml")
    jobs = multilingual_corpus.line_jobs(cfg.corpus.size, cfg.corpus.seed)
    index = pd.read_csv(f"{STORE}/{speech.INDEX}", keep_default_na=False)
    assert sorted(index["key"]) == sorted(speech.key(job) for job in jobs)
    assert sorted(p.stem for p in Path(STORE).glob("*.ogg")) == sorted(index["key"])
    listed = {speech.key((r.text, r.language, r.voice)) for r in index.itertuples()}
    assert listed == set(index["key"])  # each key is its own text, language and voice


@pytest.mark.slow
def test_regenerating_committed_lines_gives_the_same_bytes():
    """A sample of the frozen `speech` stage's lines, synthesised again (Piper, a training Kokoro style, the held-out
    style): the committed files byte for byte."""
    index = pd.read_csv(f"{STORE}/{speech.INDEX}", keep_default_na=False)
    sample = pd.concat([index[index["voice"] == voice].head(1) for voice in sorted(set(index["voice"]))])
    for row in sample.itertuples():
        fresh = speech.encode(voices.speak(row.text, row.language, row.voice))
        assert fresh == (Path(STORE) / f"{row.key}.ogg").read_bytes(), row.voice
