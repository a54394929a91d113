"""paperlib.data.band: the General-MIDI band (pretty-midi score, TinySoundFont render with TimGM6mb.sf2) and the mixer.

Chroma expectations were measured once (librosa chroma_cqt, 8 bars of piano + bass + strings at 100 bpm) and
are asserted with margin: I-V-vi-IV vs ii-V-I-vi Pearson 0.77, each chroma vs its own score's pitch-class
durations 0.98 / 0.96 (vs the other's 0.85 / 0.79); a transposed arrangement correlates 0.99+ at the interval.
"""

import dataclasses
import hashlib
import subprocess
import sys

import numpy as np
import pytest

from paperlib import SAMPLE_RATE
from paperlib.data import band

PADS = ("piano", "bass", "strings")
POP = band.Arrangement(tonic="C", progression=("I", "V", "vi", "IV"), instruments=PADS)
JAZZ = dataclasses.replace(POP, progression=("ii", "V", "I", "vi"))
PITCH_CLASSES = "C C# D D# E F F# G G# A A# B".split()


def chroma(arrangement: band.Arrangement, bars: int = 8) -> np.ndarray:
    """Mean chroma_cqt [12] of the rendered arrangement."""
    import librosa

    wave = band.render(band.score(arrangement, n_bars=bars))
    return librosa.feature.chroma_cqt(y=wave, sr=SAMPLE_RATE).mean(axis=1)


def score_profile(arrangement: band.Arrangement, bars: int = 8) -> np.ndarray:
    """Seconds sounded per pitch class [12] by the pitched instruments of the score."""
    profile = np.zeros(12)
    for instrument in band.score(arrangement, n_bars=bars).instruments:
        for note in instrument.notes:
            profile[note.pitch % 12] += 0 if instrument.is_drum else note.end - note.start
    return profile


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a, b)[0, 1])


def top(vector: np.ndarray, k: int = 3) -> set[str]:
    return {PITCH_CLASSES[i] for i in np.argsort(vector)[::-1][:k]}


@pytest.fixture(scope="module")
def chromas():
    return {"pop": chroma(POP), "jazz": chroma(JAZZ)}


# --------------------------------------------------------------------------- chords and score
def test_roman_numerals_spell_chords():
    assert band.chord_pitch_classes("I") == (0, 4, 7)
    assert band.chord_pitch_classes("vi") == (9, 0, 4)
    assert band.chord_pitch_classes("V7", "G") == (2, 6, 9, 0)  # D7 in G major
    assert band.chord_pitch_classes("i", "A", "minor") == (9, 0, 4)
    assert band.chord_pitch_classes("VII", "A", "minor") == (7, 11, 2)  # natural minor: G
    assert band.chord_pitch_classes("bVII", "Eb") == (1, 5, 8)  # Db
    assert band.chord_pitch_classes("viio") == (11, 2, 5)
    assert band.chord_pitch_classes("IVmaj7") == (5, 9, 0, 4)
    with pytest.raises(ValueError, match="Roman numerals"):
        band.chord_pitch_classes("Cmaj")


def test_score_is_deterministic_and_seed_only_moves_velocities():
    def notes(midi):
        return [[(n.pitch, n.start, n.end, n.velocity) for n in inst.notes] for inst in midi.instruments]

    arrangement = dataclasses.replace(POP, instruments=("piano", "guitar", "bass", "strings", "drums"))
    first, second = band.score(arrangement, duration_s=10.0), band.score(arrangement, duration_s=10.0)
    assert notes(first) == notes(second)
    assert first.get_end_time() == pytest.approx(10.0)
    assert [inst.is_drum for inst in first.instruments] == [False, False, False, False, True]
    assert [inst.program for inst in first.instruments[:4]] == [0, 25, 33, 48]
    other = notes(band.score(dataclasses.replace(arrangement, seed=1), duration_s=10.0))
    assert [[n[:3] for n in inst] for inst in other] == [[n[:3] for n in inst] for inst in notes(first)]
    assert other != notes(first)


def test_unknown_instrument_is_a_one_line_error_listing_choices():
    with pytest.raises(ValueError) as error:
        band.Arrangement(instruments=("piano", "kazoo"))
    message = str(error.value)
    assert "\n" not in message and "kazoo" in message
    assert all(name in message for name in ("piano", "guitar", "bass", "strings", "drums"))


# --------------------------------------------------------------------------- render
def test_render_is_byte_identical_in_process_and_in_a_new_process():
    arrangement = dataclasses.replace(POP, instruments=("piano", "guitar", "bass", "strings", "drums"))
    first = band.render(band.score(arrangement, duration_s=6.0), 6.0)
    second = band.render(band.score(arrangement, duration_s=6.0), 6.0)
    assert first.dtype == np.float32 and first.shape == (6 * SAMPLE_RATE,)
    assert first.tobytes() == second.tobytes()
    code = (
        "import dataclasses, hashlib; from paperlib.data import band\n"
        "a = band.Arrangement(progression=('I', 'V', 'vi', 'IV'), instruments=('piano', 'guitar', 'bass', "
        "'strings', 'drums'))\n"
        "print(hashlib.sha256(band.render(band.score(a, duration_s=6.0), 6.0).tobytes()).hexdigest())"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == hashlib.sha256(first.tobytes()).hexdigest()


def test_render_trims_or_pads_to_the_requested_duration():
    midi = band.score(POP, n_bars=1)  # 2.4 s at 100 bpm
    assert len(band.render(midi)) == round((2.4 + band.RELEASE_TAIL_S) * SAMPLE_RATE)
    assert len(band.render(midi, 7.3)) == 116_800
    long, short = band.render(midi, 7.3), band.render(midi, 1.0)
    assert np.array_equal(long[:16_000], short) and not long[-8000:].any()


@pytest.mark.parametrize("instrument", ["drums", "bass"])
def test_single_instrument_renders_audible_sound(instrument):
    wave = band.render(band.score(band.Arrangement(instruments=(instrument,)), n_bars=2))
    rms = np.sqrt(np.mean(wave.astype(np.float64) ** 2))
    assert rms > 0.01 and np.abs(wave).max() < 1.0


def test_missing_tinysoundfont_or_soundfont_is_a_one_line_band_error(monkeypatch, tmp_path):
    import pretty_midi

    monkeypatch.setitem(sys.modules, "tinysoundfont", None)
    with pytest.raises(band.BandError, match="tinysoundfont is not installed"):
        band.render(band.score(POP, n_bars=1))
    monkeypatch.undo()
    band._soundfont_bytes.cache_clear()
    monkeypatch.setattr(pretty_midi, "__file__", str(tmp_path / "pretty_midi" / "__init__.py"))
    try:
        with pytest.raises(band.BandError, match="pretty-midi") as error:
            band.render(band.score(POP, n_bars=1))
        assert "\n" not in str(error.value)
    finally:
        monkeypatch.undo()
        band._soundfont_bytes.cache_clear()


# --------------------------------------------------------------------------- chroma follows the chords
def test_a_change_of_chords_changes_the_chroma(chromas):
    pop, jazz = chromas["pop"], chromas["jazz"]
    assert pearson(pop, jazz) < 0.88  # measured 0.77
    assert "C" in top(pop) and "D" in top(jazz)  # tonic of the I-heavy loop; root of ii
    assert top(pop) == top(score_profile(POP)) == {"C", "G", "A"}
    assert top(jazz) == top(score_profile(JAZZ)) == {"A", "D", "G"}
    own, crossed = pearson(pop, score_profile(POP)), pearson(pop, score_profile(JAZZ))
    assert own > 0.95 and own - crossed > 0.08  # measured 0.98 vs 0.85
    own, crossed = pearson(jazz, score_profile(JAZZ)), pearson(jazz, score_profile(POP))
    assert own > 0.92 and own - crossed > 0.08  # measured 0.96 vs 0.79


@pytest.mark.parametrize("tonic, interval", [("D", 2), ("F#", 6), ("Bb", 10)])
def test_the_key_rolls_the_chroma(chromas, tonic, interval):
    transposed = chroma(dataclasses.replace(POP, tonic=tonic))
    correlations = [pearson(np.roll(chromas["pop"], shift), transposed) for shift in range(12)]
    assert int(np.argmax(correlations)) == interval
    assert correlations[interval] > 0.97  # measured 0.99+
    assert sorted(correlations)[-2] < 0.75  # next best shift, measured ~0.6


# --------------------------------------------------------------------------- mixer
def fake_voice(seconds: float = 3.0, silence_s: float = 0.5) -> np.ndarray:
    """A sung-vowel stand-in: 220 Hz harmonics with vibrato and syllable envelope, silence at both ends."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * 220 * t + 0.5 * np.sin(2 * np.pi * 5 * t)
    tone = sum(np.cos(k * phase) / k for k in range(1, 6)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t) ** 2)
    pad = np.zeros(int(silence_s * SAMPLE_RATE))
    return np.concatenate([pad, 0.3 * tone, pad]).astype(np.float32)


@pytest.fixture(scope="module")
def backing():
    arrangement = dataclasses.replace(POP, instruments=("piano", "guitar", "bass", "strings", "drums"))
    return band.render(band.score(arrangement, duration_s=8.0), 8.0)


@pytest.mark.parametrize("snr_db", [-3.0, 0.0, 3.0, 6.0])
def test_mix_reaches_the_requested_snr_with_the_voice_after_the_intro(backing, snr_db):
    voice, intro_s, peak = fake_voice(), 2.0, 0.9
    out = band.mix(voice, backing, snr_db, intro_s, peak=peak)
    offset = int(intro_s * SAMPLE_RATE)
    assert out.dtype == np.float32 and len(out) == max(len(backing), offset + len(voice)) == len(backing)
    assert np.abs(out).max() <= peak
    band64, out64 = backing.astype(np.float64), out.astype(np.float64)
    scale = (out64[:offset] @ band64[:offset]) / (band64[:offset] @ band64[:offset])  # the whole-mix limiter
    assert np.allclose(out64[:offset], scale * band64[:offset], atol=1e-6)  # band only before the intro
    vocal = out64 / scale - band64
    first, last = band.active_span(voice)
    assert (first, last) == (8000, 56000)  # the voice's silent padding is outside its active span
    assert np.abs(vocal[: offset + first]).max() < 1e-5 and np.abs(vocal[offset + last :]).max() < 1e-5
    span = slice(offset + first, offset + last)
    measured = 20 * np.log10(np.sqrt(np.mean(vocal[span] ** 2)) / np.sqrt(np.mean(band64[span] ** 2)))
    assert measured == pytest.approx(snr_db, abs=0.01)
    assert band.voiced_span(voice, intro_s) == (2.5, 5.5)


def test_mix_extends_past_a_short_band_and_is_deterministic(backing):
    voice = fake_voice()
    out = band.mix(voice, backing[:64_000], 0.0, intro_s=2.0)
    assert len(out) == 32_000 + len(voice)
    assert out.tobytes() == band.mix(voice, backing[:64_000], 0.0, intro_s=2.0).tobytes()
    with pytest.raises(ValueError, match="silent"):
        band.mix(voice, np.zeros(16_000, np.float32), 0.0, intro_s=0.0)
