"""Teacher ASR (paper Sec. 3.1): Whisper transcription of 30 s vocal chunks, clean-up, WER.

Decoding follows Whisper's reference heuristics through transformers' `generate`: greedy at
T=0, re-decoded with temperature fallback (0.2 ... 1.0, sampling) when the token compression
ratio exceeds 1.35 or the mean log-probability is below -1.0; no conditioning on previous text.
Sampling uses a fixed torch seed per batch, so the same batch gives the same text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from contextlib import contextmanager
from typing import NamedTuple

import numpy as np
import torch
from transformers.modeling_outputs import BaseModelOutput

from paperlib import SAMPLE_RATE
from paperlib.weights.packaged import unavailable

log = logging.getLogger(__name__)

TEMPERATURES = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)

HALLUCINATIONS = (
    "Thank you for watching",
    "Thanks for watching",
    "Thank you so much for watching",
    "Please subscribe to my channel",
    "Please subscribe",
    "Like and subscribe",
    "Subtitles by the Amara.org community",
    "♪",
    "♫",
)
"""Phrases Whisper emits on music/silence without them being sung (removed case-insensitively)."""


class Transcriber:
    """Whisper (transformers) transcription of 30 s, 16 kHz mono chunks.

    model: local folder or hub id (see paperlib.weights.packaged.resolve_model). language: None = detect
    per chunk (the paper's multilingual setting), or a code like "en"; ignored (with task) for
    English-only models. max_new_tokens: tokens decoded per chunk (224 = half the text context,
    as openai-whisper's sample_len; None = up to the context). no_speech_threshold: Whisper's gating (None =
    off): a chunk whose no-speech probability is above it and whose mean log-probability is below
    logprob_threshold gives "". float16 on CUDA (bfloat16 with
    dtype="bfloat16"), float32 on CPU.
    """

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        batch_size: int = 8,
        language: str | None = None,
        temperatures: Sequence[float] = TEMPERATURES,
        compression_ratio_threshold: float | None = 1.35,
        logprob_threshold: float | None = -1.0,
        max_new_tokens: int | None = 224,
        no_speech_threshold: float | None = None,
        seed: int = 0,
        dtype: str | None = None,
    ):
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.device = torch.device(device)
        if dtype is None:
            dtype = "float16" if self.device.type == "cuda" else "float32"
        self.dtype = getattr(torch, dtype)
        try:
            self.processor = WhisperProcessor.from_pretrained(model)
            self.model = WhisperForConditionalGeneration.from_pretrained(model, dtype=self.dtype)
        except OSError as exc:
            raise unavailable(model, exc) from exc
        self.model.to(self.device).eval()
        self.source = str(model)
        self.multilingual = bool(getattr(self.model.generation_config, "is_multilingual", False))
        if language and not self.multilingual:
            log.info("%s is English-only: language %r ignored", model, language)
        self.language = _language_code(language) if language and self.multilingual else None
        self.batch_size, self.seed = batch_size, seed
        self.generate_kwargs = dict(
            temperature=tuple(temperatures),
            compression_ratio_threshold=compression_ratio_threshold,
            logprob_threshold=logprob_threshold,
            no_speech_threshold=no_speech_threshold,
            condition_on_prev_tokens=False,
            return_timestamps=False,
            max_new_tokens=max_new_tokens,
        )
        if self.multilingual:
            self.generate_kwargs.update(task="transcribe", language=self.language)
        if max_new_tokens is not None:
            self.model.generation_config.max_length = None  # max_new_tokens rules (avoids a warning per batch)

    def transcribe(self, chunks: np.ndarray, progress: bool = True, encoder_states: bool = False):
        """chunks float32 [n, samples ≤ 480000] at 16 kHz → n raw transcripts (stripped), and with encoder_states
        their encoder states (see `run`)."""
        found = self.run(chunks, progress, encoder_states)
        return (found.texts, found.states) if encoder_states else found.texts

    @torch.inference_mode()
    def run(self, chunks: np.ndarray, progress: bool = True, encoder_states: bool = False) -> Transcription:
        """chunks float32 [n, samples ≤ 480000] at 16 kHz → their Transcription.

        Each chunk's language is the one it was decoded in: `language` when set, else Whisper's detection from the
        chunk (the language token most probable after <|startoftranscript|>), "en" for English-only models; its
        probability is Whisper's (softmax over the language tokens, from the same encoder states; 1.0 for
        English-only models). encoder_states: also the encoder's last hidden states of the chunks, float16
        [n, 1500, d_model] — the ones `generate` decoded from (one encoder pass per batch, reused by the
        language detection and by `generate`, also for fallback re-decodes of the whole batch), which LIVI's
        frozen encoder would compute again from the same log-mel.
        """
        from tqdm.auto import tqdm

        chunks = np.asarray(chunks, dtype=np.float32)
        if chunks.ndim != 2:
            raise ValueError(f"chunks must be [n, samples], got shape {chunks.shape}")
        parts = []
        starts = range(0, len(chunks), self.batch_size)
        for start in tqdm(starts, desc="transcribe", unit="batch", disable=not progress or len(starts) < 2):
            parts.append(self._batch(list(chunks[start : start + self.batch_size]), encoder_states))
        config = self.model.config
        empty = np.zeros((0, config.max_source_positions, config.d_model), np.float16)
        return Transcription(
            [text for part in parts for text in part.texts],
            [code for part in parts for code in part.languages],
            np.concatenate([part.language_probs for part in parts]) if parts else np.zeros(0),
            (np.concatenate([part.states for part in parts]) if parts else empty) if encoder_states else None,
        )

    def _batch(self, batch: list[np.ndarray], encoder_states: bool) -> Transcription:
        """One encoder pass and one `generate` call on a batch of chunks, decoded in the languages detected from
        (or set for) that pass's states."""
        features = self.processor.feature_extractor(batch, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        features = features.input_features.to(self.device, self.dtype)
        encoder = self.model.get_encoder()
        states = encoder(features).last_hidden_state
        languages, probs = self._languages(states)
        kwargs = self.generate_kwargs | ({"language": languages} if self.multilingual else {})
        with _encoder_reused(encoder, features, states):
            with torch.random.fork_rng(devices=[self.device.index or 0] if self.device.type == "cuda" else []):
                torch.manual_seed(self.seed)
                tokens = self.model.generate(features, **kwargs)
        texts = [t.strip() for t in self.processor.batch_decode(tokens, skip_special_tokens=True)]
        kept = states.to("cpu", torch.float16).numpy() if encoder_states else None
        return Transcription(texts, languages, probs, kept)

    def _languages(self, states: torch.Tensor) -> tuple[list[str], np.ndarray]:
        """(language code, its probability) per chunk from its encoder states [n, frames, width]: the language set,
        or the detected one (transformers' detect_language rule: argmax over the language tokens after
        <|startoftranscript|>)."""
        n = len(states)
        if not self.multilingual:
            return ["en"] * n, np.ones(n)
        codes = self.model.generation_config.lang_to_id  # "<|en|>" → token id
        ids = torch.tensor(list(codes.values()), device=states.device)
        start = torch.full((n, 1), self.model.generation_config.decoder_start_token_id, device=states.device)
        logits = self.model(encoder_outputs=(states,), decoder_input_ids=start, use_cache=False).logits[:, -1]
        probs = torch.softmax(logits[:, ids].double(), dim=-1).cpu().numpy()
        names = [token[2:-2] for token in codes]
        chosen = [names.index(self.language)] * n if self.language else probs.argmax(axis=1).tolist()
        return [names[i] for i in chosen], probs[np.arange(n), chosen]


class Transcription(NamedTuple):
    """Transcriber.run's result for n chunks."""

    texts: list[str]  # raw transcripts, stripped
    languages: list[str]  # the language each chunk was decoded in (ISO 639-1 code, Whisper's token)
    language_probs: np.ndarray  # float64 [n]: Whisper's probability of that language
    states: np.ndarray | None  # float16 [n, 1500, d_model] when asked for


def _language_code(language: str) -> str:
    """A Whisper language as its code: "en", "english" and "English" → "en" (transformers' table)."""
    from transformers.models.whisper.tokenization_whisper import TO_LANGUAGE_CODE

    return TO_LANGUAGE_CODE.get(language.lower(), language)


@contextmanager
def _encoder_reused(encoder: torch.nn.Module, features: torch.Tensor, states: torch.Tensor):
    """Within the block the encoder returns `states` for log-mel equal to `features` and computes anything else
    (a temperature-fallback subset of the batch): `generate` would otherwise encode the batch again."""
    compute = encoder.forward

    def forward(input_features, *args, **kwargs):
        if input_features.shape == features.shape and torch.equal(input_features, features):
            return BaseModelOutput(last_hidden_state=states)
        return compute(input_features, *args, **kwargs)

    encoder.forward = forward
    try:
        yield
    finally:
        del encoder.forward  # the class's forward again


def phrase_pattern(phrase: str) -> re.Pattern:
    """`phrase` as a case-insensitive pattern: whole words at its alphanumeric ends, with the punctuation and
    spaces right after it."""
    edge = [r"\b" if c.isalnum() else "" for c in (phrase[0], phrase[-1])]
    return re.compile(edge[0] + re.escape(phrase) + edge[1] + r"[\s.!?,]*", flags=re.IGNORECASE)


def clean_transcript(
    text: str,
    hallucinations: Sequence[str] = HALLUCINATIONS,
    min_words: int = 4,
    max_repeats: int = 3,
) -> str | None:
    """Clean one chunk transcript; None when it carries no usable lyrics.

    1. remove every occurrence of each hallucination phrase (case-insensitive, with the
       punctuation right after it); 2. collapse a word repeated `max_repeats` or more times in a
       row (case-insensitive, ignoring trailing punctuation) into one occurrence; 3. collapse
       whitespace and strip; 4. None when fewer than `min_words` words remain.
    """
    for phrase in sorted(hallucinations, key=len, reverse=True):
        text = phrase_pattern(phrase).sub(" ", text)
    words = text.split()
    kept: list[str] = []
    i = 0
    while i < len(words):
        key = words[i].lower().strip(".,!?;:")
        j = i
        while j + 1 < len(words) and words[j + 1].lower().strip(".,!?;:") == key:
            j += 1
        run = j - i + 1
        kept += [words[i]] if run >= max_repeats else words[i : j + 1]
        i = j + 1
    text = " ".join(kept).strip()
    return text if len(kept) >= min_words else None


def normalise_for_wer(text: str) -> str:
    """Lower case, punctuation and apostrophes removed, whitespace collapsed."""
    text = re.sub(r"[^\w\s']|_", " ", text.lower())
    return " ".join(text.replace("'", "").split())


def word_error_rate(reference: str, hypothesis: str) -> float:
    """WER (jiwer) after normalising both sides: lower case, punctuation and apostrophes removed,
    whitespace collapsed. "Don't stop!" and "dont stop" are equal (WER 0)."""
    import jiwer

    return float(jiwer.wer(normalise_for_wer(reference), normalise_for_wer(hypothesis)))
