"""paperlib.lyrics.text_embedding: sentence embeddings (offline all-MiniLM-L6-v2) and the track vector; the loading
path of other sentence-transformers models (trust_remote_code) is tested with a tiny RANDOMLY
INITIALISED BERT sentence-transformer built and saved here (its vectors carry no meaning)."""

import numpy as np
import pytest

from paperlib.lyrics.text_embedding import TextEmbedder, track_vector
from paperlib.weights.packaged import ModelUnavailableError


def test_minilm_embeddings(minilm_embedder):
    texts = [
        "I miss you every night when the stars come out",
        "Every night under the stars I long for you",
        "Add two cups of flour and bake for twenty minutes",
    ]
    vectors = minilm_embedder.embed(texts)
    assert minilm_embedder.dim == 384
    assert vectors.shape == (3, 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similar, unrelated = vectors[0] @ vectors[1], vectors[0] @ vectors[2]
    assert similar > 0.5 > unrelated
    # A text's vector does not depend on its batch, up to float32 rounding: padding to the
    # batch's longest text changes the matmul shapes, and with them the summation order.
    np.testing.assert_allclose(minilm_embedder.embed(texts[:1]), vectors[:1], rtol=0, atol=1e-6)
    assert minilm_embedder.embed([]).shape == (0, 384)


def test_track_vector():
    vectors = np.array([[2.0, 0.0], [0.0, 0.5]], np.float32)  # rows are normalised first
    np.testing.assert_allclose(track_vector(vectors), [2**-0.5, 2**-0.5], rtol=1e-6)
    assert track_vector(vectors).dtype == np.float32
    np.testing.assert_allclose(track_vector(np.array([[3.0, 4.0]])), [0.6, 0.8], rtol=1e-6)


@pytest.fixture(scope="module")
def tiny_random_sentence_model(tmp_path_factory):
    """A 2-layer, 32-d BERT with random weights and a 12-word vocabulary, wrapped as a
    sentence-transformer (Transformer + mean Pooling) and saved with .save(dir)."""
    import torch
    from sentence_transformers import SentenceTransformer
    from sentence_transformers import models as st_models
    from transformers import BertConfig, BertModel, BertTokenizerFast

    root = tmp_path_factory.mktemp("tiny_st")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "love", "night", "you", "stars", "the", "flour", "bake"]
    (root / "vocab.txt").write_text("\n".join(vocab) + "\n")
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(root / "bert")
    BertTokenizerFast(vocab_file=str(root / "vocab.txt")).save_pretrained(root / "bert")
    transformer = st_models.Transformer(str(root / "bert"), max_seq_length=32)
    pooling = st_models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[transformer, pooling]).save(str(root / "st"))
    return root / "st"


def test_loads_a_saved_sentence_transformer(tiny_random_sentence_model):
    embedder = TextEmbedder(str(tiny_random_sentence_model), batch_size=2)
    vectors = embedder.embed(["love you", "the stars night", "bake flour"])
    assert embedder.dim == 32 and vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_trust_remote_code_is_passed(tiny_random_sentence_model, monkeypatch):
    import sentence_transformers

    seen = []
    real = sentence_transformers.SentenceTransformer

    def recording(model, **kwargs):
        seen.append((model, kwargs["trust_remote_code"]))
        return real(model, **kwargs)

    monkeypatch.setattr(sentence_transformers, "SentenceTransformer", recording)
    assert TextEmbedder(str(tiny_random_sentence_model), trust_remote_code=True).dim == 32
    TextEmbedder(str(tiny_random_sentence_model))
    with pytest.raises(ModelUnavailableError, match="gte-multilingual-base is not available offline"):
        TextEmbedder("Alibaba-NLP/gte-multilingual-base")  # the paper's model: remote code on by default
    assert [flag for _, flag in seen] == [True, False, True]


def test_model_card_prompts_and_tasks(tiny_random_sentence_model, monkeypatch):
    """e5 models get their "query: " prompt (large-instruct its instruction), jina its text-matching adapter; the
    hub id decides, also when the weights come from a local folder (here: the tiny random model)."""
    from sentence_transformers import SentenceTransformer

    from paperlib.lyrics import text_embedding

    calls = []
    real = SentenceTransformer.encode

    def recording(self, sentences, **kwargs):
        calls.append({k: kwargs[k] for k in ("prompt", "task") if k in kwargs})
        return real(self, sentences, **{k: v for k, v in kwargs.items() if k != "task"})

    monkeypatch.setattr(SentenceTransformer, "encode", recording)
    folder = str(tiny_random_sentence_model)
    for name in ("intfloat/multilingual-e5-small", "intfloat/multilingual-e5-large-instruct", folder):
        text_embedding.TextEmbedder(folder, name=name, trust_remote_code=False).embed(["love you"])
    assert calls == [{"prompt": "query: "}, {"prompt": text_embedding.E5_INSTRUCTION}, {}]
    assert text_embedding.ENCODE_OPTIONS["jinaai/jina-embeddings-v3"] == {"task": "text-matching"}
    prompted = text_embedding.TextEmbedder(folder, name="intfloat/multilingual-e5-small", trust_remote_code=False)
    plain = text_embedding.TextEmbedder(folder, trust_remote_code=False)
    assert not np.allclose(prompted.embed(["love you"]), plain.embed(["love you"]))  # the prompt is encoded


def test_use_multilingual_finds_translations():
    """USE-multilingual-v3 from its package (files checked by sha256): each sentence's nearest neighbour among 16
    (4 meanings × en/fr/de/it, paired with tests/test_e5.PARALLEL) is one of its translations."""
    from test_e5 import PARALLEL

    from paperlib.lyrics.text_embedding import USE_NAME, load_embedder

    embedder = load_embedder(USE_NAME)
    texts = [sentence for row in PARALLEL for sentence in row]
    vectors = embedder.embed(texts)
    assert vectors.shape == (16, 512) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-6)
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -1)
    meaning = np.repeat(np.arange(len(PARALLEL)), 4)
    assert (meaning[similarity.argmax(axis=1)] == meaning).all()
    assert embedder.truncated(texts) == 0 and embedder.embed([]).shape == (0, 512)
