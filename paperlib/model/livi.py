"""The LIVI audio encoder (paper §3): frozen Whisper encoder → attention pooling → MLP → 768-d.

Shapes: log-mel `input_features` [B, n_mels, 3000] (30 s at 16 kHz) → Whisper frame states
[B, 1500, width] → [CLS] vector [B, width] → L2-normalised embedding [B, target_dim].
Only the head (pooling + projection) is trained; at the paper configuration (width 1280,
hidden [3072, 2048, 2048, 1536], target 768) it has 31,894,016 parameters.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from paperlib.runtime.config import PAPER_HIDDEN, HeadConfig


def rotate_keys(keys: torch.Tensor, base: float = 10_000.0) -> torch.Tensor:
    """Rotary position embedding (RoFormer, half-split form) of keys [B, heads, T, head_dim].

    Position t is the key's index in the sequence ([CLS] at 0, frame i at i + 1).
    """
    _, _, length, dim = keys.shape
    half = dim // 2
    inv_freq = base ** (-torch.arange(half, device=keys.device, dtype=torch.float32) / half)
    angles = torch.arange(length, device=keys.device, dtype=torch.float32)[:, None] * inv_freq
    cos, sin = angles.cos().to(keys.dtype), angles.sin().to(keys.dtype)
    first, second = keys[..., :half], keys[..., half:]
    return torch.cat((first * cos - second * sin, first * sin + second * cos), dim=-1)


class AttentionPooling(nn.Module):
    """A learnable [CLS] query attends over all frame states (class-attention, CaiT/PatchConvNet style).

    Pre-LayerNorm; keys carry rotary positions; the attention and the GELU feed-forward
    (hidden = 2 × width) are residual branches on the [CLS] token, each scaled by a learnable
    per-channel gain initialised at `layer_scale_init`; a final LayerNorm. Output: [B, width].
    """

    def __init__(self, width: int, num_heads: int = 8, layer_scale_init: float = 1e-4, rope_base: float = 10_000.0):
        super().__init__()
        if width % num_heads or (width // num_heads) % 2:
            raise ValueError(f"width {width} must split into {num_heads} heads of even size")
        self.num_heads, self.rope_base = num_heads, rope_base
        self.cls = nn.Parameter(torch.zeros(1, 1, width))
        nn.init.trunc_normal_(self.cls, std=0.02)
        self.norm_attn = nn.LayerNorm(width)
        self.query = nn.Linear(width, width, bias=False)
        self.key = nn.Linear(width, width, bias=False)
        self.value = nn.Linear(width, width, bias=False)
        self.out = nn.Linear(width, width)
        self.gain_attn = nn.Parameter(torch.full((width,), layer_scale_init))
        self.norm_ffn = nn.LayerNorm(width)
        self.ffn = nn.Sequential(nn.Linear(width, 2 * width), nn.GELU(), nn.Linear(2 * width, width))
        self.gain_ffn = nn.Parameter(torch.full((width,), layer_scale_init))
        self.norm_out = nn.LayerNorm(width)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, width = x.shape
        return x.view(batch, length, self.num_heads, width // self.num_heads).transpose(1, 2)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        batch, _, width = frames.shape
        heads, head_dim = self.num_heads, width // self.num_heads
        cls = self.cls.expand(batch, -1, -1)
        tokens = self.norm_attn(torch.cat((cls, frames), dim=1))  # [B, 1 + T, W]
        query = self._heads(self.query(tokens[:, :1]))
        keys = rotate_keys(self._heads(self.key(tokens)), self.rope_base)
        weights = torch.softmax(query @ keys.transpose(-1, -2) * head_dim**-0.5, dim=-1)  # [B, heads, 1, 1 + T]
        # values carry no positions, so the value projection commutes with the weighted average:
        # average the tokens per head first ([B, heads, W]), then project (1 row instead of 1 + T)
        mixed = torch.bmm(weights.squeeze(2), tokens)
        attended = torch.einsum("bhw,hdw->bhd", mixed, self.value.weight.view(heads, head_dim, width))
        x = cls + self.gain_attn * self.out(attended.reshape(batch, 1, width))
        x = x + self.gain_ffn * self.ffn(self.norm_ffn(x))
        return self.norm_out(x)[:, 0]


class ProjectionHead(nn.Module):
    """Linear → LayerNorm → ReLU per hidden size, then Linear to `target_dim`; L2-normalised output."""

    def __init__(self, width: int, hidden: tuple[int, ...], target_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        for size in hidden:
            layers += [nn.Linear(width, size), nn.LayerNorm(size), nn.ReLU()]
            width = size
        layers.append(nn.Linear(width, target_dim))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=-1)


class LiviHead(nn.Module):
    """The trainable part: frame states [B, T, width] → embeddings [B, target_dim] (unit norm)."""

    def __init__(self, config: HeadConfig):
        super().__init__()
        self.config = config
        self.pool = AttentionPooling(config.width, config.num_heads, config.layer_scale_init, config.rope_base)
        self.project = ProjectionHead(config.width, config.hidden, config.target_dim)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        return self.project(self.pool(frames.float()))


def load_whisper_encoder(name_or_path: str | Path | None = None, config=None):
    """The Whisper encoder of `transformers.WhisperModel`, frozen (eval mode, no gradients).

    Give a hub id or local directory (`name_or_path`) or a `WhisperConfig` (random weights,
    for tests and benchmarks).
    """
    from transformers import WhisperModel
    from transformers.models.whisper.modeling_whisper import WhisperEncoder

    if config is not None:
        encoder = WhisperEncoder(config)
    else:
        encoder = WhisperModel.from_pretrained(str(name_or_path)).get_encoder()
    encoder.eval().requires_grad_(False)
    return encoder


def autocast_for(device: torch.device | str, dtype: torch.dtype = torch.float16):
    """fp16/bf16 autocast on CUDA, a no-op (fp32) elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


class LiviModel(nn.Module):
    """Frozen Whisper encoder + trainable `LiviHead`: log-mel [B, n_mels, 3000] → [B, target_dim]."""

    def __init__(self, encoder: nn.Module, head: LiviHead, encoder_dtype: torch.dtype = torch.float16):
        super().__init__()
        self.encoder, self.head, self.encoder_dtype = encoder, head, encoder_dtype
        self.encoder.eval().requires_grad_(False)

    def train(self, mode: bool = True):
        super().train(mode)
        self.encoder.eval()  # frozen: never in training mode (no dropout)
        return self

    @torch.no_grad()
    def frames(self, input_features: torch.Tensor) -> torch.Tensor:
        """Frozen encoder states [B, 1500, width] (float32), mixed precision on CUDA."""
        with autocast_for(input_features.device, self.encoder_dtype):
            states = self.encoder(input_features).last_hidden_state
        return states.float()

    def forward(self, input_features: torch.Tensor) -> torch.Tensor:
        return self.head(self.frames(input_features))


def count_trainable(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


__all__ = [
    "HeadConfig",
    "AttentionPooling",
    "ProjectionHead",
    "LiviHead",
    "LiviModel",
    "load_whisper_encoder",
    "autocast_for",
    "count_trainable",
    "rotate_keys",
    "PAPER_HIDDEN",
]
