"""The harmonic audio baselines of Table 2 (ByteCover2x, CLEWS, CQTNet, DVINet+) from the CLEWS release's checkpoints.

A release checkpoint is what Lightning Fabric's `save` wrote: a pickled dict {"model": state_dict, "optim", "sched",
"conf" (the OmegaConf training configuration), "epoch", "lr", "cost_best"}, with `configuration.yaml` in the same
folder (github sony/clews, inference.py). `load_release_checkpoint` builds the architecture its configuration names
(paperlib.harmonic.architectures) and loads the state dict strictly.

The embedding protocol is the authors' pre-release one (github jaffolter/version-identification-lyrics,
src/livi/apps/audio_baselines/inference.py): mono 16 kHz audio cut to its first 240 s, shingles of the model's
segment length every 5 s (the last one padded as the release pads it), one embedding per shingle. Two track
reductions: `track_vector` (mean of the segment embeddings, L2-normalised; compared by cosine) and `bpwr_distance`
(CLEWS's best pairs without replacement over segment pairs).
"""

from __future__ import annotations

import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from paperlib.harmonic.architectures import ARCHITECTURES, HarmonicError, HarmonicModel, build_model

__all__ = [
    "HarmonicError",
    "HarmonicModel",
    "load_release_checkpoint",
    "release_architecture",
    "shingle",
    "segment_starts",
    "embed_track",
    "track_vector",
    "bpwr_distance",
]

CONFIG_NAME = "configuration.yaml"
WRAPPERS = ("_forward_module.", "module.", "_orig_mod.")  # Fabric / DDP / torch.compile prefixes
DEFAULT_SR = 16000


# ---------------------------------------------------------------------------------------------------------------------
# Loading


def load_release_checkpoint(path: str | Path) -> tuple[HarmonicModel, Any]:
    """(model in eval mode on CPU, conf) from a CLEWS-release checkpoint file.

    The file is unpickled with `torch.load(weights_only=False)`, because the release stores an OmegaConf object in
    it: unpickling can run code, so call this only on files the user named. The architecture and its
    hyperparameters come from the checkpoint's `conf.model` (else from `configuration.yaml` beside it; when both
    exist their `model` sections must agree); the sample rate from `conf.data.samplerate` (16 kHz by default).
    The `model` state dict must match the architecture exactly (strict loading): a missing, unexpected or
    mis-shaped key is a HarmonicError naming it. Returns conf as an OmegaConf DictConfig.
    """
    from omegaconf import DictConfig, OmegaConf

    path = Path(path)
    if not path.is_file():
        raise HarmonicError(f"{path}: no such checkpoint file")
    payload = _payload(path)
    state = dict(payload["model"])
    if not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise HarmonicError(f"{path}: not a CLEWS-release checkpoint: 'model' is not a dict of tensors")

    conf = _read_conf(path, payload.get("conf"), OmegaConf, DictConfig)
    model_conf = OmegaConf.to_container(conf.model, resolve=True)
    sr = int(OmegaConf.select(conf, "data.samplerate", default=DEFAULT_SR) or DEFAULT_SR)
    model = build_model(model_conf, sr=sr)
    _load_strict(model, _strip_wrappers(state), path)
    model.eval()
    return model, conf


def release_architecture(path: str | Path) -> str:
    """The architecture (paperlib.harmonic.architectures name: bytecover2x, clews, cqtnet, dvinetp) of a release
    checkpoint, from the configuration.yaml beside it (else from the checkpoint's own conf, which loads the file)."""
    from omegaconf import DictConfig, OmegaConf

    path = Path(path)
    if not path.is_file():
        raise HarmonicError(f"{path}: no such checkpoint file")
    sibling = path.parent / CONFIG_NAME
    embedded = None if sibling.is_file() else _payload(path).get("conf")
    conf = _read_conf(path, embedded, OmegaConf, DictConfig, compare=False)
    return ARCHITECTURES[str(conf.model.name)].name


def _payload(path: Path) -> Mapping:
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except (pickle.UnpicklingError, RuntimeError, EOFError, AttributeError, ModuleNotFoundError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise HarmonicError(f"{path}: not a CLEWS-release checkpoint: cannot be read ({first})") from None
    if not isinstance(payload, Mapping) or not isinstance(payload.get("model"), Mapping):
        raise HarmonicError(f"{path}: not a CLEWS-release checkpoint: no 'model' state dict")
    return payload


def _read_conf(path: Path, embedded: Any, OmegaConf: Any, DictConfig: Any, compare: bool = True) -> Any:
    """The training configuration: the checkpoint's own, checked against configuration.yaml beside it (compare)."""
    sibling = path.parent / CONFIG_NAME
    from_file = None
    if sibling.is_file():
        try:
            from_file = OmegaConf.load(sibling)
        except Exception as exc:  # omegaconf/yaml raise many types; report one line
            raise HarmonicError(f"{sibling}: unreadable configuration ({str(exc).splitlines()[0]})") from None
    if isinstance(embedded, Mapping) and not isinstance(embedded, DictConfig):
        embedded = OmegaConf.create(dict(embedded))
    if isinstance(embedded, DictConfig) and "model" in embedded:
        if compare and from_file is not None and "model" in from_file:
            a = OmegaConf.to_container(embedded.model, resolve=True)
            b = OmegaConf.to_container(from_file.model, resolve=True)
            if a != b:
                raise HarmonicError(f"{path}: the checkpoint's conf.model differs from {sibling}")
        conf = embedded
    elif from_file is not None and "model" in from_file:
        conf = from_file
    else:
        raise HarmonicError(f"{path}: not a CLEWS-release checkpoint: no conf.model inside and no {CONFIG_NAME}")
    name = OmegaConf.select(conf, "model.name")
    if name not in ARCHITECTURES:
        raise HarmonicError(
            f"{path}: model.name {name!r} is not a harmonic system ({', '.join(sorted(ARCHITECTURES))})"
        )
    return conf


def _strip_wrappers(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop a wrapper prefix that every key carries (a state dict saved from a wrapped module)."""
    changed = True
    while changed:
        changed = False
        for prefix in WRAPPERS:
            if state and all(k.startswith(prefix) for k in state):
                state = {k[len(prefix) :]: v for k, v in state.items()}
                changed = True
    return state


def _load_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], path: Path) -> None:
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_few(missing)}")
        if unexpected:
            parts.append(f"unexpected {_few(unexpected)}")
        raise HarmonicError(f"{path}: state dict does not fit {model.name}: {'; '.join(parts)}")
    for key, tensor in expected.items():
        if tuple(state[key].shape) != tuple(tensor.shape):
            raise HarmonicError(
                f"{path}: state dict does not fit {model.name}: {key} has shape {tuple(state[key].shape)}, "
                f"the configuration gives {tuple(tensor.shape)}"
            )
    model.load_state_dict(state, strict=True)


def _few(keys: list[str], n: int = 4) -> str:
    shown = ", ".join(keys[:n])
    return shown + (f" (+{len(keys) - n} more)" if len(keys) > n else "")


# ---------------------------------------------------------------------------------------------------------------------
# Protocol


def segment_starts(n_samples: int, length: int, hop: int) -> np.ndarray:
    """Start samples of the shingles of a signal of n_samples: 0, hop, 2·hop, ... as the release frames it.

    The release pads the signal to L + ceil((n - L) / hop)·hop samples (at least L = length) and frames that, so
    every sample is covered and the last shingle may run past the end. [S] int64.
    """
    if n_samples <= 0 or length <= 0 or hop <= 0:
        raise HarmonicError(f"cannot shingle {n_samples} samples with length {length} and hop {hop}")
    count = max(-(-(n_samples - length) // hop), 0) + 1
    return np.arange(count, dtype=np.int64) * hop


def shingle(wave: np.ndarray, length: int, hop: int, pad_mode: str = "zeros") -> np.ndarray:
    """Shingles [S, length] (float32) of a mono signal [T]: `segment_starts` windows of `length` samples.

    The padding past the end is zeros, or (pad_mode "repeat", CLEWS) the signal repeated from its start.
    """
    wave = np.asarray(wave, dtype=np.float32).reshape(-1)
    starts = segment_starts(len(wave), length, hop)
    total = int(starts[-1]) + length
    if pad_mode == "repeat":
        padded = np.resize(wave, total)  # repeats the signal cyclically
    elif pad_mode == "zeros":
        padded = np.zeros(total, dtype=np.float32)
        padded[: min(len(wave), total)] = wave[:total]
    else:
        raise HarmonicError(f"pad_mode must be 'repeat' or 'zeros', got {pad_mode!r}")
    return np.stack([padded[s : s + length] for s in starts]).astype(np.float32, copy=False)


def embed_track(
    model: HarmonicModel,
    wave: np.ndarray | torch.Tensor,
    hop_s: float = 5.0,
    max_seconds: float | None = 240.0,
    batch_size: int = 8,
) -> np.ndarray:
    """Segment embeddings [S, zdim] float32 of one track: mono `wave` [T] at model.sr Hz (16 kHz), cut to its first
    `max_seconds` (None: no cut), shingled by the model's segment length every `hop_s` seconds, embedded
    `batch_size` shingles at a time on the model's device."""
    signal = wave.detach().cpu().numpy() if isinstance(wave, torch.Tensor) else np.asarray(wave)
    signal = np.asarray(signal, dtype=np.float32)
    if signal.ndim == 2 and 1 in signal.shape:
        signal = signal.reshape(-1)
    if signal.ndim != 1 or signal.size == 0:
        raise HarmonicError(f"embed_track expects a non-empty mono signal [T], got shape {signal.shape}")
    if max_seconds is not None:
        signal = signal[: int(model.sr * max_seconds)]
    segments = shingle(signal, int(model.sr * model.segment_seconds), int(model.sr * hop_s), model.pad_mode)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.eval()
    out = []
    for i in range(0, len(segments), batch_size):
        batch = torch.from_numpy(segments[i : i + batch_size]).to(device)
        out.append(model.embed(batch).float().cpu().numpy())
    return np.concatenate(out).astype(np.float32, copy=False)


# ---------------------------------------------------------------------------------------------------------------------
# Track reductions


def track_vector(segments: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """One track vector [zdim] float32: the mean of the segment embeddings [S, zdim], L2-normalised."""
    segments = np.asarray(segments, dtype=np.float64)
    if segments.ndim != 2 or len(segments) == 0:
        raise HarmonicError(f"track_vector expects segments [S, zdim] with S ≥ 1, got shape {segments.shape}")
    mean = segments.mean(axis=0)
    return (mean / max(np.linalg.norm(mean), eps)).astype(np.float32)


def bpwr_distance(segments_a: np.ndarray, segments_b: np.ndarray, r: int = 10, metric: str = "nsqeuc") -> float:
    """CLEWS's best-pairs-without-replacement distance between two tracks' segments [Sa, zdim] and [Sb, zdim].

    Pairwise segment distances (metric "nsqeuc": squared Euclidean divided by zdim, CLEWS's own; "cos": 1 - cosine),
    then greedily the smallest remaining pair, removing its two segments from further choice, min(r, Sa, Sb) times;
    the distance is the mean of the chosen pairs. Ties go to the lower (row, column) index; the release instead
    breaks them with 1e-7 random noise.
    """
    a = np.asarray(segments_a, dtype=np.float64)
    b = np.asarray(segments_b, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise HarmonicError(f"bpwr_distance expects [Sa, D] and [Sb, D] segments, got {a.shape} and {b.shape}")
    if r < 1:
        raise HarmonicError(f"bpwr_distance needs r ≥ 1, got {r}")
    if metric == "nsqeuc":
        dist = ((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / a.shape[1]
    elif metric == "cos":
        an = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
        bn = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
        dist = 1.0 - an @ bn.T
    else:
        raise HarmonicError(f"bpwr_distance metric must be 'nsqeuc' or 'cos', got {metric!r}")
    dist = dist.copy()
    chosen = []
    for _ in range(min(r, len(a), len(b))):
        i, j = np.unravel_index(np.argmin(dist), dist.shape)
        chosen.append(dist[i, j])
        dist[i, :] = np.inf
        dist[:, j] = np.inf
    return float(np.mean(chosen))
