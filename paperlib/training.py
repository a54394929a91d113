"""Training the LIVI head (paper §3.2): align audio embeddings with frozen lyrics-text targets."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def livi_loss(audio: torch.Tensor, text: torch.Tensor, alpha: float = 0.5) -> tuple[torch.Tensor, dict]:
    """α·mean(1 − cos(aᵢ, tᵢ)) + (1 − α)·MSE(A·Aᵀ, T·Tᵀ) on L2-normalised batches [B, d].

    The first term aligns each audio embedding with its own text target; the second preserves
    the geometry of the batch (in-batch cosine similarity matrices). Returns (loss, parts) with
    parts = {"alignment", "geometry"} as floats.
    """
    a = F.normalize(audio, dim=-1)
    t = F.normalize(text, dim=-1)
    alignment = (1.0 - (a * t).sum(dim=-1)).mean()
    geometry = F.mse_loss(a @ a.T, t @ t.T)
    loss = alpha * alignment + (1.0 - alpha) * geometry
    return loss, {"alignment": float(alignment.detach()), "geometry": float(geometry.detach())}
