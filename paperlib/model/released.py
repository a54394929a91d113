"""The authors' released LIVI head (`livi.pth`, a state dict of their `LiviAudioEncoder`) as a checkpoint folder.

Key names (github deezer/LIVI-Lyrics-Informed-Version-Identification, src/livi/apps/audio_encoder/models):
  pooling.cls_token                      [1, 1, width]   → pool.cls
  pooling.attn.norm1 / norm2             LayerNorm       → pool.norm_attn / pool.norm_ffn
  pooling.attn.gamma_1 / gamma_2         [width]         → pool.gain_attn / pool.gain_ffn
  pooling.attn.attn.ql / kl / vl         [width, width]  → pool.query / pool.key / pool.value (no bias)
  pooling.attn.attn.proj                 Linear          → pool.out
  pooling.attn.mlp.fc1 / fc2             Linear          → pool.ffn.0 / pool.ffn.2
  pooling.norm_layer                     LayerNorm       → pool.norm_out
  audio_proj.net.<i>                     Linear/LayerNorm → project.mlp.<i>
`logit_scale` (a training-only temperature) is dropped, as their loader does. Widths come from the shapes; the
number of attention heads does not (their released configuration: 1). Their inference averages the chunk
embeddings without re-normalising the mean; this artifact re-normalises it: the cosine ranking is the same.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from paperlib.model.checkpoint import save_checkpoint
from paperlib.model.livi import LiviHead, LiviModel
from paperlib.runtime.config import HeadConfig
from paperlib.runtime.errors import PaperlibError
from paperlib.weights.packaged import resolve_model, unavailable

RENAMES = (
    ("pooling.cls_token", "pool.cls"),
    ("pooling.attn.norm1.", "pool.norm_attn."),
    ("pooling.attn.norm2.", "pool.norm_ffn."),
    ("pooling.attn.gamma_1", "pool.gain_attn"),
    ("pooling.attn.gamma_2", "pool.gain_ffn"),
    ("pooling.attn.attn.ql.", "pool.query."),
    ("pooling.attn.attn.kl.", "pool.key."),
    ("pooling.attn.attn.vl.", "pool.value."),
    ("pooling.attn.attn.proj.", "pool.out."),
    ("pooling.attn.mlp.fc1.", "pool.ffn.0."),
    ("pooling.attn.mlp.fc2.", "pool.ffn.2."),
    ("pooling.norm_layer.", "pool.norm_out."),
    ("audio_proj.net.", "project.mlp."),
)
DROPPED = ("logit_scale",)
WRAPPERS = ("module.", "_orig_mod.")  # DataParallel / torch.compile prefixes


class ReleasedCheckpointError(PaperlibError, ValueError):
    """A file that is not a state dict of the authors' head; str(exc) is one line."""


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a .pth, loaded with weights_only=True: a pickle that would run code is refused."""
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ReleasedCheckpointError(f"{path}: refused: not a plain tensor state dict ({first})") from None
    except OSError as exc:
        raise ReleasedCheckpointError(f"{path}: {exc}") from None
    state = loaded.get("state_dict", loaded) if isinstance(loaded, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ReleasedCheckpointError(f"{path}: not a state dict of tensors")
    return state


def rename(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Their keys → paperlib.model.livi.LiviHead keys; unknown keys are refused."""
    result, unknown = {}, []
    for key, tensor in state.items():
        for wrapper in WRAPPERS:
            key = key.removeprefix(wrapper)
        if key in DROPPED:
            continue
        new = next((ours + key[len(theirs) :] for theirs, ours in RENAMES if key.startswith(theirs)), None)
        if new is None:
            unknown.append(key)
        else:
            result[new] = tensor
    if unknown:
        raise ReleasedCheckpointError(f"unknown key(s) {', '.join(sorted(unknown)[:5])}: not the authors' LIVI head")
    return result


def head_config(state: dict[str, torch.Tensor], num_heads: int = 1) -> HeadConfig:
    """HeadConfig from the renamed tensors' shapes: width, projection hidden sizes, target dimension."""
    if "pool.cls" not in state:
        raise ReleasedCheckpointError("missing key pooling.cls_token: not the authors' LIVI head")
    linears = sorted(
        int(k.split(".")[2])
        for k in state
        if k.startswith("project.mlp.") and k.endswith(".weight") and state[k].ndim == 2
    )
    if not linears:
        raise ReleasedCheckpointError("missing keys audio_proj.net.*: not the authors' LIVI head")
    sizes = [int(state[f"project.mlp.{i}.weight"].shape[0]) for i in linears]
    return HeadConfig(
        width=int(state["pool.cls"].shape[-1]), target_dim=sizes[-1], hidden=tuple(sizes[:-1]), num_heads=num_heads
    )


def import_checkpoint(
    path: str | Path,
    whisper: str,
    out_dir: str | Path,
    models_dir: str | Path | None = None,
    num_heads: int = 1,
    settings: dict | None = None,
) -> Path:
    """Write a checkpoint folder (paperlib.model.checkpoint) holding the released head on the `whisper` encoder.

    whisper: the encoder the head was trained on (name, folder or hub id; theirs: openai/whisper-large-v3-turbo);
    only its configuration and feature extractor are read. settings: the "config" entry of the checkpoint
    (e.g. the vocal settings inference should chunk audio with).
    """
    from transformers import WhisperConfig, WhisperFeatureExtractor
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    state = rename(read_state_dict(path))
    config = head_config(state, num_heads)
    source = resolve_model(whisper, models_dir)
    try:
        encoder_config = WhisperConfig.from_pretrained(source)
        feature_extractor = WhisperFeatureExtractor.from_pretrained(source)
    except OSError as exc:
        raise unavailable(source, exc) from exc
    if encoder_config.d_model != config.width:
        raise ReleasedCheckpointError(
            f"{path}: head width {config.width} != {whisper} d_model {encoder_config.d_model}"
        )
    head = LiviHead(config)
    missing = sorted(set(head.state_dict()) - set(state))
    if missing:
        raise ReleasedCheckpointError(f"{path}: missing key(s) {', '.join(missing[:5])} for a head of {config}")
    try:
        head.load_state_dict(state, strict=True)
    except RuntimeError as exc:  # shapes that do not fit the inferred widths
        raise ReleasedCheckpointError(f"{path}: {str(exc).splitlines()[-1].strip()}") from None
    with torch.device("meta"):
        encoder = WhisperEncoder(encoder_config)  # only its configuration is written
    extra = {"config": settings or {}, "imported_from": Path(path).name}
    return save_checkpoint(out_dir, LiviModel(encoder, head), feature_extractor, whisper, extra)
