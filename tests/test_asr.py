"""paperlib.lyrics.asr: transcript clean-up rules, WER, and Whisper transcription of Piper speech with the
converted offline checkpoints (tiny.en fast, base slow)."""

import numpy as np
import pytest
import torch

from paperlib import CHUNK_SAMPLES
from paperlib.lyrics.asr import Transcriber, clean_transcript, word_error_rate

SENTENCES = [
    "I walked along the river in the evening light. The city lights were shining on the water.",
    "Hold my hand and never let me go. We can dance until the morning comes.",
    "The quick brown fox jumps over the lazy dog. We will meet again tomorrow morning.",
]


def _chunks(waves):
    chunks = np.zeros((len(waves), CHUNK_SAMPLES), np.float32)
    for row, wave in zip(chunks, waves):
        row[: len(wave)] = wave
    return chunks


@pytest.fixture(scope="module")
def speech_chunks(speak):
    return _chunks([speak(s) for s in SENTENCES])


# --------------------------------------------------------------------------- clean-up rules
@pytest.mark.parametrize(
    "raw, expected",
    [
        # known hallucination phrases are removed (with the punctuation after them), any case
        ("Thank you for watching! I will always love you, my dear", "I will always love you, my dear"),
        ("We walk alone tonight. Subtitles by the Amara.org community", "We walk alone tonight."),
        ("♪ Hold me close and never let go ♪", "Hold me close and never let go"),
        ("THANKS FOR WATCHING. the night is young again", "the night is young again"),
        # ... but only as whole words
        ("Please subscribed members sing along now", "Please subscribed members sing along now"),
        # a word repeated 3+ times in a row collapses to its first occurrence (case, punctuation ignored)
        ("baby baby baby baby come back to me", "baby come back to me"),
        ("go go go get it now", "go get it now"),
        ("Yeah yeah YEAH we are young", "Yeah we are young"),
        ("la, la, la, la sing with me", "la, sing with me"),
        ("no no stay with me", "no no stay with me"),  # twice is not a repetition run
        # whitespace is collapsed and stripped
        ("  hello   there   my  friend  ", "hello there my friend"),
        # fewer than 4 words left: dropped
        ("Thank you for watching.", None),
        ("Oh oh oh oh yeah", None),
        ("I love you so", "I love you so"),
        ("", None),
    ],
)
def test_clean_transcript(raw, expected):
    assert clean_transcript(raw) == expected


def test_clean_transcript_parameters():
    assert clean_transcript("Visit our website for more lyrics today", hallucinations=["Visit our website"]) == (
        "for more lyrics today"
    )
    assert clean_transcript("I love you so", min_words=5) is None
    assert clean_transcript("no no stay with me", max_repeats=2) == "no stay with me"


def test_word_error_rate_normalisation():
    assert word_error_rate("Don't stop me now!", "dont stop me NOW") == 0.0
    assert word_error_rate("Hello, World.", "hello world") == 0.0
    assert word_error_rate("the cat sat", "the cat sat down") == pytest.approx(1 / 3)
    assert word_error_rate("the cat sat", "a cat sat") == pytest.approx(1 / 3)


# --------------------------------------------------------------------------- Whisper
def test_tiny_en_transcribes_piper_speech(tiny_transcriber, speech_chunks):
    texts = tiny_transcriber.transcribe(speech_chunks)  # batch_size 2: two batches
    assert len(texts) == 3
    for reference, hypothesis in zip(SENTENCES, texts):
        assert word_error_rate(reference, hypothesis) <= 0.1, hypothesis


def test_encoder_states_are_the_ones_transcribed_from(tiny_transcriber, speech_chunks):
    """With encoder_states, the same transcripts plus the encoder's states of every chunk (float16),
    equal to running the encoder on the chunks' log-mel, in chunk order across batches (batch 2, 3 chunks)."""
    texts, states = tiny_transcriber.transcribe(speech_chunks, encoder_states=True)
    assert texts == tiny_transcriber.transcribe(speech_chunks)
    assert states.dtype == np.float16 and states.shape == (3, 1500, 384)
    features = tiny_transcriber.processor.feature_extractor(
        list(speech_chunks), sampling_rate=16_000, return_tensors="pt"
    ).input_features
    with torch.inference_mode():
        expected = tiny_transcriber.model.get_encoder()(features).last_hidden_state.half().numpy()
    np.testing.assert_allclose(states.astype(np.float32), expected.astype(np.float32), rtol=1e-3, atol=1e-3)
    assert np.abs(states[0] - states[1]).max() > 0.1  # each chunk its own states


def test_english_only_model_ignores_language(whisper_tiny_en):
    transcriber = Transcriber(str(whisper_tiny_en), language="en")
    assert not transcriber.multilingual
    assert "language" not in transcriber.generate_kwargs and "task" not in transcriber.generate_kwargs
    # the paper's decoding settings are the defaults
    assert transcriber.generate_kwargs["temperature"] == (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    assert transcriber.generate_kwargs["compression_ratio_threshold"] == 1.35
    assert transcriber.generate_kwargs["logprob_threshold"] == -1.0
    assert transcriber.generate_kwargs["condition_on_prev_tokens"] is False


def test_temperature_fallback_is_active_and_seeded(whisper_tiny_en, speech_chunks, monkeypatch):
    """Short-form (30 s) inputs go through transformers' fallback loop: one decoding pass at T=0 when
    the output passes the thresholds, every temperature when it cannot (logprob_threshold above 0);
    sampled (T>0) outputs are reproducible thanks to the fixed seed; the encoder runs once for all passes.
    (Three temperatures and 8 tokens instead of the defaults keep it cheap.)"""
    from transformers.generation.utils import GenerationMixin
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    calls, encodes = [], []
    real_generate, real_encode = GenerationMixin.generate, WhisperEncoder.forward
    monkeypatch.setattr(
        WhisperEncoder, "forward", lambda self, *a, **k: encodes.append(1) or real_encode(self, *a, **k)
    )

    def counting_generate(self, *args, **kwargs):
        calls.append(kwargs["generation_config"].temperature if kwargs["generation_config"].do_sample else 0.0)
        return real_generate(self, *args, **kwargs)

    monkeypatch.setattr(GenerationMixin, "generate", counting_generate)
    chunk = speech_chunks[:1]
    transcriber = Transcriber(str(whisper_tiny_en), temperatures=(0.0, 0.6, 1.0), max_new_tokens=8)
    transcriber.transcribe(chunk)
    assert calls == [0.0]

    calls.clear()
    transcriber.generate_kwargs["logprob_threshold"] = 1.0  # mean log-probability is always below
    first = transcriber.transcribe(chunk)
    assert calls == [0.0, 0.6, 1.0]
    assert transcriber.transcribe(chunk) == first
    assert len(encodes) == 3  # one per transcribe call


@pytest.mark.slow
def test_base_transcribes_piper_speech(whisper_base, speak):
    reference = " ".join(SENTENCES[:2])
    chunks = _chunks([speak(reference)])
    for language in (None, "en", "English"):  # detected language, and forced English by code or name
        found = Transcriber(str(whisper_base), language=language).run(chunks)
        assert word_error_rate(reference, found.texts[0]) <= 0.2, found.texts[0]
        assert found.languages == ["en"] and found.language_probs[0] > 0.9  # the same probability either way
    forced = Transcriber(str(whisper_base), language="fr").run(chunks)
    assert forced.languages == ["fr"] and forced.language_probs[0] < 0.01  # decoded in French, heard as English
