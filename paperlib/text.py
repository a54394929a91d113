"""Text targets (paper Sec. 3.1): sentence embeddings of chunk transcripts.

The paper embeds lyrics with a multilingual sentence encoder (gte-multilingual-base, which
needs trust_remote_code=True); the offline default is all-MiniLM-L6-v2 (384-d, English).
Embeddings are L2-normalised float32 rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from paperlib.vectors import track_embedding

# Hub ids whose sentence-transformers code lives in the model repository.
REMOTE_CODE_MODELS = frozenset({"Alibaba-NLP/gte-multilingual-base", "jinaai/jina-embeddings-v3"})
E5_INSTRUCTION = "Instruct: Given song lyrics, retrieve other versions of the same song\nQuery: "
ENCODE_OPTIONS = {
    "intfloat/multilingual-e5-small": {"prompt": "query: "},
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

        from paperlib.offline import unavailable

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

    def truncated(self, texts: Sequence[str]) -> int:
        """How many texts are longer than the model reads (max_seq_length tokens, special tokens included)."""
        if len(texts) == 0:
            return 0
        prompt = self.options.get("prompt", "")
        lengths = [len(ids) for ids in self.model.tokenizer([prompt + t for t in texts])["input_ids"]]
        return int(sum(n > self.model.max_seq_length for n in lengths))


def load_embedder(name: str, models_dir: str | None = None, device: str = "cpu") -> TextEmbedder:
    """The sentence encoder `name` (offline name, hub id or folder; paperlib.offline.resolve_model)."""
    from paperlib.offline import HUB_IDS, resolve_model

    return TextEmbedder(resolve_model(name, models_dir), device=device, name=HUB_IDS.get(name, name))


def track_vector(chunk_vectors: np.ndarray) -> np.ndarray:
    """Track target [d] = mean of the L2-normalised chunk vectors [n, d], re-normalised
    (same rule as the audio side, paperlib.vectors.track_embedding)."""
    return track_embedding(chunk_vectors)
