"""LIVI checkpoint folders: the trained head, how to find its frozen encoder, and the settings it was
trained with (paper §3.3 runs inference from these alone).

Folder layout (each file written atomically):
  head.safetensors           head state dict (float32)
  encoder.safetensors        only for an encoder without a name (random weights: tests, benchmarks)
  config.json                format, head (HeadConfig), encoder {name, WhisperConfig}, n_mels, text_dim,
                             and what training adds: config (the whole paperlib.runtime.config.Config), pairs, best
  preprocessor_config.json   the WhisperFeatureExtractor
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from paperlib.model.livi import LiviHead, LiviModel, load_whisper_encoder
from paperlib.runtime.config import Config, HeadConfig, Vocals, apply_override, build, to_dict
from paperlib.runtime.io import atomic_path, write_json
from paperlib.weights.packaged import resolve_model, unavailable

FORMAT = "livi-checkpoint/1"


def save_checkpoint(
    out_dir: str | Path,
    model: LiviModel,
    feature_extractor=None,
    encoder_name: str | None = None,
    extra: dict | None = None,
) -> Path:
    """Write the checkpoint folder; extra: more config.json entries (config, pairs, best)."""
    from safetensors.torch import save_file
    from transformers import WhisperFeatureExtractor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder_config = model.encoder.config
    if feature_extractor is None:
        feature_extractor = WhisperFeatureExtractor(feature_size=encoder_config.num_mel_bins)
    with atomic_path(out_dir / "head.safetensors") as tmp:
        save_file(_cpu_tensors(model.head), str(tmp))
    if encoder_name is None:
        with atomic_path(out_dir / "encoder.safetensors") as tmp:
            save_file(_cpu_tensors(model.encoder), str(tmp))
    with atomic_path(out_dir / "preprocessor_config.json") as tmp:
        feature_extractor.to_json_file(tmp)
    config = {
        "format": FORMAT,
        "head": model.head.config.to_dict(),
        "encoder": {"name": encoder_name, "config": encoder_config.to_dict()},
        "n_mels": int(encoder_config.num_mel_bins),
        "text_dim": int(model.head.config.target_dim),
    } | (extra or {})
    write_json(config, out_dir / "config.json")
    return out_dir


def _cpu_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}


def read_checkpoint_config(checkpoint: str | Path) -> dict:
    """config.json of a checkpoint folder; ValueError when it is not one."""
    path = Path(checkpoint) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint}: not a LIVI checkpoint (no config.json)")
    config = json.loads(path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{path}: format {config.get('format')!r}, expected {FORMAT!r}")
    return config


def trained_settings(checkpoint: str | Path) -> Config:
    """The settings the checkpoint was trained with (defaults where it records none)."""
    config = read_checkpoint_config(checkpoint)
    legacy = {"vocals": config["vocals"]} if "vocals" in config else {}  # written before settings were recorded whole
    return build(Config, config.get("config", legacy), source=f"{checkpoint}/config.json")


def vocal_settings(checkpoint: str | Path, overrides: Iterable[str] = ()) -> Vocals:
    """Vocal detection and chunking of the checkpoint's teacher (inference chunks audio the same way), with the
    `vocals.KEY=VALUE` items of `overrides` applied (other items are not vocal settings and are skipped).
    Raises config.ConfigError (a ValueError) for a bad override."""
    tree = {"vocals": to_dict(trained_settings(checkpoint).vocals)}
    for item in overrides:
        if item.startswith("vocals."):
            tree = apply_override(tree, item)
    return build(Vocals, tree["vocals"], prefix="vocals.")


def load_checkpoint(checkpoint: str | Path, models_dir: str | Path | None = None) -> LiviModel:
    """Rebuild the LiviModel of a checkpoint folder (eval mode, CPU): the named Whisper encoder
    (resolved with paperlib.weights.packaged.resolve_model) or the saved random one, and the trained head."""
    from safetensors.torch import load_file
    from transformers import WhisperConfig

    checkpoint = Path(checkpoint)
    config = read_checkpoint_config(checkpoint)
    name = config["encoder"]["name"]
    if name is None:
        encoder = load_whisper_encoder(config=WhisperConfig.from_dict(config["encoder"]["config"]))
        encoder.load_state_dict(load_file(str(checkpoint / "encoder.safetensors")), strict=True)
    else:
        source = resolve_model(name, models_dir)
        try:
            encoder = load_whisper_encoder(source)
        except OSError as exc:
            raise unavailable(source, exc) from exc
    head = LiviHead(HeadConfig.from_dict(config["head"]))
    head.load_state_dict(load_file(str(checkpoint / "head.safetensors")), strict=True)
    return LiviModel(encoder, head).eval()


def head_parameters(checkpoint: str | Path) -> int:
    """Trainable parameters of a checkpoint's head (the frozen encoder is not trained)."""
    from safetensors import safe_open

    with safe_open(str(Path(checkpoint) / "head.safetensors"), framework="pt") as handle:
        return int(sum(np.prod(handle.get_slice(key).get_shape()) for key in handle.keys()))


def adopt(source: str | Path, out_dir: str | Path) -> dict:
    """Copy an existing checkpoint folder (trained, or made by `paperlib import-checkpoint`) to out_dir, in place
    of training one; returns what the `train` stage reports for it."""
    config = read_checkpoint_config(source)
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir.parent, prefix=f".{out_dir.name}.") as staging:
        copy = Path(shutil.copytree(source, Path(staging) / out_dir.name))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        copy.rename(out_dir)
    return {"checkpoint": str(source), "imported_from": config.get("imported_from", ""), "trained_here": False}


def load_feature_extractor(checkpoint: str | Path):
    """The WhisperFeatureExtractor saved with a checkpoint."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor.from_json_file(str(Path(checkpoint) / "preprocessor_config.json"))
