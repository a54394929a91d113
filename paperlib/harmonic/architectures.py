"""The four harmonic (CQT-based) audio systems of the CLEWS release, as torch modules that load its checkpoints.

Written for this artifact from the architecture descriptions in github sony/clews (indexed as the fork progsi/clews:
models/clews.py, models/dvinetp.py, models/cqtnet.py, models/bytecover2x.py, lib/layers.py) and the CLEWS paper; no
code is copied. Attribute names and module orders follow the release so that `load_state_dict(strict=True)` takes the
`model` state dict of a release checkpoint unchanged:

  CQT layer (nnAudio `CQT1992v2`, trainable=False, used as is): buffers `lenghts` [n_bins] (sic), `cqt_kernels_real` and
    `cqt_kernels_imag` [n_bins, 1, n_fft]. CLEWS holds it as `cqt.0` (a Sequential with the time pooling as `cqt.1`),
    the other three as `cqt` (their pooling `cqtpool` has no state).
  CLEWS      frontend.0 (gain, bias: CQT preparation) .1 conv .2 BN .4 conv; backbone.<i> residual blocks with
             convs.0 (IBN: bn + inst) .2.conv .3 BN .5.conv, skip.0 BN .2.conv (when shape changes), gain (ReZero);
             pool.p (GeM); proj.0 BN1d, proj.1 Linear (no bias).
  DVINet+    block1..block5 (conv at .0 .3, BN at .1 .4), fc Linear + L2 normalisation.
  CQTNet     block1..block5 (same layout, fixed widths 32..512), fc0 Linear (the embedding); fc1 is the training
             classifier over `maxcliques` classes, kept only so that strict loading works (unused at inference).
  ByteCover2x frontend.1 conv .2 BN; resblocks.<i> bottlenecks with convs.0 conv .1 (IBN or BN) .3 conv .4 BN .6 conv
             .7 BN and residual.0 conv .1 BN (when shape changes); embpool.0.p (GeM) .1 Linear; bn BN1d (its output is
             the embedding); fc is the training classifier (unused at inference).

Every module takes mono 16 kHz segments `wave` [B, T] (float, T samples) in `embed(wave) -> [B, zdim]` and exposes
`name`, `sr` (Hz), `segment_seconds` (the training shingle length, s), `zdim` and `pad_mode` (how the release pads a
track's last shingle: "repeat" for CLEWS, "zeros" for the others).

One deliberate difference: the release's CLEWS CQT preparation adds uniform noise of 1e-6 (after min-max scaling to
[0, 1]) at inference too; here it is added in training mode only, so embeddings are deterministic.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from paperlib.runtime.errors import PaperlibError

CQT_FMIN = 32.70  # Hz: nnAudio's default lowest bin (C1), used by every release model


class HarmonicError(PaperlibError, ValueError):
    """A checkpoint or configuration that is not one of the CLEWS release's harmonic systems; str(exc) is one line."""


# ---------------------------------------------------------------------------------------------------------------------
# CQT front end


def CQT(sr: int, hop_length: int, n_bins: int, bins_per_octave: int, filter_scale: float = 1.0) -> nn.Module:
    """nnAudio's `CQT1992v2` as the release builds it (fmin C1, not trainable): wave [B, T] → magnitude
    [B, n_bins, 1 + T // hop_length]. Its kernels are buffers (`cqt_kernels_real`, `cqt_kernels_imag` [n_bins, 1,
    n_fft], `lenghts` [n_bins]) that a checkpoint carries."""
    from nnAudio.features import CQT1992v2

    top = CQT_FMIN * 2.0 ** ((n_bins - 1) / bins_per_octave)
    if top > sr / 2:
        raise HarmonicError(f"CQT top bin {top:.1f} Hz is above the Nyquist frequency of {sr} Hz")
    return CQT1992v2(
        sr=sr,
        hop_length=int(hop_length),
        fmin=CQT_FMIN,
        n_bins=int(n_bins),
        bins_per_octave=int(bins_per_octave),
        filter_scale=filter_scale,
        trainable=False,
        verbose=False,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Shared layers


class PaddedConv2d(nn.Module):
    """Conv2d with 'same' padding for an odd square kernel, held as `.conv` (release key `<name>.conv.weight`)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.conv(h)


class IBN2d(nn.Module):
    """Instance-batch norm: BatchNorm2d on the first half of the channels (`bn`), InstanceNorm2d on the rest."""

    def __init__(self, channels: int):
        super().__init__()
        if channels % 2:
            raise HarmonicError(f"instance-batch norm needs an even channel count, got {channels}")
        self.bn = nn.BatchNorm2d(channels // 2)
        self.inst = nn.InstanceNorm2d(channels // 2, affine=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        first, second = torch.chunk(h, 2, dim=1)
        return torch.cat([self.bn(first), self.inst(second)], dim=1)


class GeM(nn.Module):
    """Generalised-mean pooling over all positions, exponent 1 + softplus(p) learned (`p` [1, 1, 1], init 3).

    [N, C, ...] → [N, C].
    """

    def __init__(self, init: float = 3.0, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.p = nn.Parameter(torch.full((1, 1, 1), math.log(math.exp(init - 1.0) - 1.0)))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = h.flatten(2)
        power = 1.0 + F.softplus(self.p)
        return h.clamp(min=self.eps).pow(power).mean(-1).pow(1.0 / power.squeeze(-1))


def _max_normalise(spec: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Scale each [C, T] spectrogram of a batch by its largest absolute value."""
    return spec / (spec.abs().amax(dim=(1, 2), keepdim=True) + eps)


def _force_length(wave: torch.Tensor, length: int, mode: str) -> torch.Tensor:
    """Pad [B, T] segments shorter than `length` samples by repetition or zeros (longer ones are kept)."""
    if wave.shape[-1] >= length:
        return wave
    if mode == "repeat":
        reps = -(-length // wave.shape[-1])
        return wave.repeat(1, reps)[:, :length]
    return F.pad(wave, (0, length - wave.shape[-1]))


class HarmonicModel(nn.Module):
    """Common interface: `embed(wave [B, T] at `sr` Hz) -> [B, zdim]` float32, in eval mode without gradients."""

    name = ""
    pad_mode = "zeros"  # padding of a track's last shingle in the release's protocol
    minlen_pad_mode = "zeros"  # padding of a segment shorter than the model length

    def __init__(self, sr: int, segment_seconds: float, zdim: int):
        super().__init__()
        self.sr = int(sr)
        self.segment_seconds = float(segment_seconds)
        self.zdim = int(zdim)

    @property
    def segment_samples(self) -> int:
        return int(self.sr * self.segment_seconds)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def embed(self, wave: torch.Tensor) -> torch.Tensor:
        if wave.ndim != 2:
            raise HarmonicError(f"embed expects a batch of mono segments [B, T], got shape {tuple(wave.shape)}")
        wave = _force_length(wave.float(), self.segment_samples, self.minlen_pad_mode)
        with torch.inference_mode():
            return self.features(wave)


def _conv_block(cin: int, cmid: int, cout: int, k1: tuple, k2: tuple, pad1: tuple = (0, 0), last: bool = False):
    """CQTNet/DVINet+ block: conv k1 → BN → ReLU → conv k2 dilated (1, 2) → BN → ReLU → max pool over time (the last
    block: global max pool). Indices .0 .3 convs, .1 .4 BN, as in the release."""
    return nn.Sequential(
        nn.Conv2d(cin, cmid, k1, padding=pad1, bias=False),
        nn.BatchNorm2d(cmid),
        nn.ReLU(),
        nn.Conv2d(cmid, cout, k2, dilation=(1, 2), bias=False),
        nn.BatchNorm2d(cout),
        nn.ReLU(),
        nn.AdaptiveMaxPool2d((1, 1)) if last else nn.MaxPool2d((1, 2), (1, 2)),
    )


def _cqtnet_blocks(c: int) -> list[nn.Sequential]:
    """Five blocks with widths c → 2c → 2c → 4c → 8c → 16c (CQTNet: c = 32; DVINet+: c = ncha_in)."""
    return [
        _conv_block(1, c, 2 * c, (12, 3), (13, 3), pad1=(6, 0)),
        _conv_block(2 * c, 2 * c, 2 * c, (13, 3), (3, 3)),
        _conv_block(2 * c, 4 * c, 4 * c, (3, 3), (3, 3)),
        _conv_block(4 * c, 8 * c, 8 * c, (3, 3), (3, 3)),
        _conv_block(8 * c, 16 * c, 16 * c, (3, 3), (3, 3), last=True),
    ]


# ---------------------------------------------------------------------------------------------------------------------
# CLEWS


class CQTPrepare(nn.Module):
    """CLEWS's CQT preparation: clamp ≥ 0, power `pow`, per-segment min-max scaling to [0, 1] over (bins, frames),
    then a learned affine `gain * h + bias` (scalars). [N, 1, C, T] → same shape."""

    def __init__(self, power: float = 0.5, eps: float = 1e-6):
        super().__init__()
        self.power = power
        self.eps = eps
        self.gain = nn.Parameter(torch.ones(1))
        self.bias = nn.Parameter(torch.zeros(1))

    def _minmax(self, h: torch.Tensor) -> torch.Tensor:
        h = h - h.amin(dim=(2, 3), keepdim=True)
        return h / (h.amax(dim=(2, 3), keepdim=True) + self.eps)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self._minmax(h.clamp(min=0).pow(self.power))
        if self.training:  # the release also adds this noise at inference; see the module docstring
            h = self._minmax(h + self.eps * torch.rand_like(h))
        return self.gain * h + self.bias


class IBNResBlock(nn.Module):
    """Pre-activation residual block: IBN → ReLU → 3×3 conv (stride) → BN → ReLU → 3×3 conv, scaled by a ReZero
    `gain` (init 0), plus a skip (BN → ReLU → 3×3 conv) when channels or stride change."""

    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        mid = max(1, int(max(cin, cout) * 0.5))
        mid += mid % 2
        self.convs = nn.Sequential(
            IBN2d(cin),
            nn.ReLU(inplace=True),
            PaddedConv2d(cin, mid, 3, stride=stride),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            PaddedConv2d(mid, cout, 3),
        )
        if cin != cout or stride != 1:
            self.skip = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True), PaddedConv2d(cin, cout, 3, stride))
        else:
            self.skip = nn.Identity()
        self.gain = nn.Parameter(torch.zeros(1))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.gain * self.convs(h) + self.skip(h)


class CLEWS(HarmonicModel):
    """CLEWS (Serrà et al. 2025): CQT (hop `cqt.hoplen` s, pooled by `cqt.pool` frames) → CQT preparation → two
    convs → IBN residual stages → GeM → BN + Linear to zdim. Segment 20 s in the release (`shingling.len`)."""

    name = "clews"
    pad_mode = "repeat"
    minlen_pad_mode = "repeat"

    def __init__(self, conf: Mapping[str, Any], sr: int = 16000):
        super().__init__(sr, _get(conf, "shingling.len"), _get(conf, "zdim"))
        cqt = _get(conf, "cqt")
        n_bins = _get(cqt, "noctaves", "cqt.") * _get(cqt, "nbinsoct", "cqt.")
        pool = int(_get(cqt, "pool", "cqt."))
        self.cqt = nn.Sequential(
            CQT(sr, int(_get(cqt, "hoplen", "cqt.") * sr), n_bins, _get(cqt, "nbinsoct", "cqt."), cqt.get("fscale", 1)),
            nn.AvgPool1d(pool, stride=pool),
        )
        c0, c1 = _get(conf, "frontend.channels")
        self.frontend = nn.Sequential(
            CQTPrepare(power=_get(conf, "frontend.cqtpow")),
            nn.Conv2d(1, c0, (12, 3), stride=(1, 2), bias=False),
            nn.BatchNorm2d(c0),
            nn.ReLU(inplace=True),
            nn.Conv2d(c0, c1, (12, 3), stride=2, bias=False),
        )
        blocks: list[nn.Module] = []
        width = c1
        for count, channels, stride in zip(
            _get(conf, "backbone.blocks"), _get(conf, "backbone.channels"), _get(conf, "backbone.down")
        ):
            blocks.append(IBNResBlock(width, channels, stride=stride))
            blocks.extend(IBNResBlock(channels, channels) for _ in range(count - 1))
            width = channels
        self.backbone = nn.Sequential(*blocks)
        self.pool = GeM()
        self.proj = nn.Sequential(nn.BatchNorm1d(width), nn.Linear(width, self.zdim, bias=False))

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        h = self.cqt(wave).unsqueeze(1)
        h = self.backbone(self.frontend(h))
        return self.proj(self.pool(h))


# ---------------------------------------------------------------------------------------------------------------------
# CQTNet and DVINet+


class _CQTNetBase(HarmonicModel):
    def _init_cqt(self, conf: Mapping[str, Any], sr: int) -> None:
        cqt = _get(conf, "cqt")
        bpo = _get(cqt, "nbinsoct", "cqt.")
        self.cqt = CQT(sr, int(_get(cqt, "hoplen", "cqt.") * sr), _get(cqt, "noctaves", "cqt.") * bpo, bpo)
        self.cqtpool = nn.AvgPool1d(_get(conf, "cqt.pool.len"), stride=_get(conf, "cqt.pool.hop"))

    def _trunk(self, wave: torch.Tensor) -> torch.Tensor:
        h = _max_normalise(self.cqtpool(self.cqt(wave))).unsqueeze(1)
        for block in (self.block1, self.block2, self.block3, self.block4, self.block5):
            h = block(h)
        return h.flatten(1)


class CQTNet(_CQTNetBase):
    """CQTNet (Yu et al. 2020) as in the release: CQT pooled by `cqt.pool.len`/`hop` frames, five conv blocks
    (32..512 channels), `fc0` to zdim (300). `fc1` [maxcliques, zdim] is the training classifier: unused here."""

    name = "cqtnet"

    def __init__(self, conf: Mapping[str, Any], sr: int = 16000):
        super().__init__(sr, _get(conf, "shingling.len"), _get(conf, "zdim"))
        self._init_cqt(conf, sr)
        self.block1, self.block2, self.block3, self.block4, self.block5 = _cqtnet_blocks(32)
        self.fc0 = nn.Linear(512, self.zdim)
        self.fc1 = nn.Linear(self.zdim, int(_get(conf, "maxcliques")))  # training only

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        return self.fc0(self._trunk(wave))


class DVINetPlus(_CQTNetBase):
    """DVINet+ (the release's `dvinetp`): CQTNet's layout with widths scaled by `ncha_in` (48), `fc` to zdim (512),
    then L2 normalisation."""

    name = "dvinetp"

    def __init__(self, conf: Mapping[str, Any], sr: int = 16000):
        super().__init__(sr, _get(conf, "shingling.len"), _get(conf, "zdim"))
        self._init_cqt(conf, sr)
        c = int(_get(conf, "ncha_in"))
        self.block1, self.block2, self.block3, self.block4, self.block5 = _cqtnet_blocks(c)
        self.fc = nn.Linear(16 * c, self.zdim)

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.fc(self._trunk(wave)), dim=-1)


# ---------------------------------------------------------------------------------------------------------------------
# ByteCover2x


class Bottleneck(nn.Module):
    """ResNet-50 bottleneck: 1×1 → (IBN or BN) → ReLU → k×k (stride) → BN → ReLU → 1×1 → BN, plus a k×k conv + BN
    `residual` when channels or stride change, then ReLU. Middle width max(cin, cout) / 4, made even."""

    def __init__(self, cin: int, cout: int, stride: int = 1, ibn: bool = False, kernel: int = 3):
        super().__init__()
        mid = int(max(cin, cout) * 0.25)
        mid += mid % 2
        pad = kernel // 2
        self.convs = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False),
            IBN2d(mid) if ibn else nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, kernel, stride=stride, padding=pad, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        if cin != cout or stride != 1:
            self.residual = nn.Sequential(
                nn.Conv2d(cin, cout, kernel, stride=stride, padding=pad, bias=False), nn.BatchNorm2d(cout)
            )
        else:
            self.residual = nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return F.relu(self.convs(h) + self.residual(h))


class ByteCover2x(HarmonicModel):
    """ByteCover2 as re-implemented in the release (`bytecover2x`): CQT (hop 0.023 s, pooled 5/5) → 7×7 conv → max
    pool → 16 bottlenecks (IBN in the first 13) with widths ncha/8, /4, /2, ncha → GeM → Linear to zdim → BN (the
    embedding). `fc` [maxcliques, zdim] is the training classifier: unused here."""

    name = "bytecover2x"
    minlen_pad_mode = "repeat"

    def __init__(self, conf: Mapping[str, Any], sr: int = 16000):
        super().__init__(sr, _get(conf, "shingling.len"), _get(conf, "zdim"))
        cqt = _get(conf, "cqt")
        bpo = _get(cqt, "nbinsoct", "cqt.")
        self.cqt = CQT(sr, int(_get(cqt, "hoplen", "cqt.") * sr), _get(cqt, "noctaves", "cqt.") * bpo, bpo)
        self.cqtpool = nn.AvgPool1d(_get(conf, "cqt.pool.len"), stride=_get(conf, "cqt.pool.hop"))
        ncha = int(_get(conf, "ncha"))
        c1, c2, c3, c4 = ncha // 8, ncha // 4, ncha // 2, ncha
        self.frontend = nn.Sequential(
            nn.Identity(),  # the release's Unsqueeze(1) (no state); done in features()
            nn.Conv2d(1, c1, 7, stride=(1, 2), bias=False),
            nn.BatchNorm2d(c1),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2),
        )
        plan = (
            [(c1, c1, 1, True)] * 3
            + [(c1, c2, 2, True)]
            + [(c2, c2, 1, True)] * 3
            + [(c2, c3, 2, True)]
            + [(c3, c3, 1, True)] * 5
            + [(c3, c4, 1, False)]
            + [(c4, c4, 1, False)] * 2
        )
        self.resblocks = nn.Sequential(*(Bottleneck(a, b, stride=s, ibn=i) for a, b, s, i in plan))
        self.embpool = nn.Sequential(GeM(), nn.Linear(ncha, self.zdim))
        self.bn = nn.BatchNorm1d(self.zdim)
        self.fc = nn.Linear(self.zdim, int(_get(conf, "maxcliques")), bias=False)  # training only

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        h = _max_normalise(self.cqtpool(self.cqt(wave))).unsqueeze(1)
        h = self.resblocks(self.frontend(h))
        return self.bn(self.embpool(h))


# ---------------------------------------------------------------------------------------------------------------------
# Registry

ARCHITECTURES: dict[str, type[HarmonicModel]] = {
    "clews": CLEWS,
    "dvinetp": DVINetPlus,
    "dvinet": DVINetPlus,  # the authors' pre-release configuration name
    "cqtnet": CQTNet,
    "bytecover2x": ByteCover2x,
    "bytecover": ByteCover2x,  # the authors' pre-release configuration name
}


def build_model(model_conf: Mapping[str, Any], sr: int = 16000) -> HarmonicModel:
    """The module named by `model_conf["name"]`, built from that `model:` section (a plain nested dict)."""
    name = str(_get(model_conf, "name"))
    if name not in ARCHITECTURES:
        raise HarmonicError(f"unknown harmonic architecture {name!r} (known: {', '.join(sorted(ARCHITECTURES))})")
    try:
        return ARCHITECTURES[name](model_conf, sr=sr)
    except (TypeError, ValueError, ZeroDivisionError) as exc:
        if isinstance(exc, HarmonicError):
            raise
        raise HarmonicError(f"{name}: configuration does not build: {exc}") from None


def _get(conf: Mapping[str, Any], dotted: str, prefix: str = "") -> Any:
    """conf["a"]["b"] for "a.b"; a missing entry is a HarmonicError naming `model.<prefix><dotted>`."""
    node: Any = conf
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node or node[part] is None:
            raise HarmonicError(f"configuration lacks model.{prefix}{dotted}")
        node = node[part]
    if isinstance(node, Sequence) and not isinstance(node, str):
        return list(node)
    return node
