"""Text targets (paper Sec. 3.1): sentence embeddings of chunk transcripts.

The paper embeds lyrics with a multilingual sentence encoder (gte-multilingual-base, which
needs trust_remote_code=True); the offline default is all-MiniLM-L6-v2 (384-d, English).
Embeddings are L2-normalised float32 rows.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from paperlib.model import track_embedding

# Hub ids whose sentence-transformers code lives in the model repository.
REMOTE_CODE_MODELS = frozenset({"Alibaba-NLP/gte-multilingual-base"})


class TextEmbedder:
    """sentence-transformers encoder: texts → L2-normalised float32 [n, dim].

    model: local folder or hub id. trust_remote_code: None = only for REMOTE_CODE_MODELS.
    """

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 32, trust_remote_code: bool | None = None):
        from sentence_transformers import SentenceTransformer

        from paperlib.offline import unavailable

        if trust_remote_code is None:
            trust_remote_code = model in REMOTE_CODE_MODELS
        try:
            self.model = SentenceTransformer(model, device=device, trust_remote_code=trust_remote_code)
        except OSError as exc:
            raise unavailable(model, exc) from exc
        self.model.eval()
        self.batch_size = batch_size
        self.dim = int(self.model.get_embedding_dimension())

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
        )
        return np.asarray(vectors, dtype=np.float32)

    def truncated(self, texts: Sequence[str]) -> int:
        """How many texts are longer than the model reads (max_seq_length tokens, special tokens included)."""
        if len(texts) == 0:
            return 0
        lengths = [len(ids) for ids in self.model.tokenizer(list(texts))["input_ids"]]
        return int(sum(n > self.model.max_seq_length for n in lengths))


def track_vector(chunk_vectors: np.ndarray) -> np.ndarray:
    """Track target [d] = mean of the L2-normalised chunk vectors [n, d], re-normalised
    (same rule as the audio side, paperlib.model.track_embedding)."""
    return track_embedding(chunk_vectors)
