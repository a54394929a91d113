"""Importing the authors' released head (livi.pth): their key names, widths from shapes, the paper's equations.

The state dict here has their key names and random values (no released weights are installable offline); the
reference below computes the head from those tensors directly, written from the paper (§3.2) and the authors'
module structure, independently of paperlib.model.livi.
"""

import math
import pickle

import pytest
import torch
import torch.nn.functional as F

from paperlib.cli import main
from paperlib.model import released
from paperlib.model.checkpoint import load_checkpoint, read_checkpoint_config, vocal_settings

WIDTH, HIDDEN, TARGET, FRAMES = 64, (96, 48), 32, 20


def their_state_dict(seed: int = 0, width: int = WIDTH, hidden_sizes=HIDDEN, target: int = TARGET) -> dict:
    """Random tensors under the authors' LiviAudioEncoder key names (1 head, mlp_ratio 2, no qkv bias)."""
    g = torch.Generator().manual_seed(seed)

    def rand(*shape, scale=0.2):
        return torch.randn(*shape, generator=g) * scale

    state = {"pooling.cls_token": rand(1, 1, width), "logit_scale": torch.tensor(2.6)}
    for norm in ("pooling.attn.norm1", "pooling.attn.norm2", "pooling.norm_layer"):
        state |= {f"{norm}.weight": 1 + rand(width), f"{norm}.bias": rand(width)}
    state |= {"pooling.attn.gamma_1": rand(width, scale=0.5), "pooling.attn.gamma_2": rand(width, scale=0.5)}
    for name in ("ql", "kl", "vl"):
        state[f"pooling.attn.attn.{name}.weight"] = rand(width, width)
    state |= {"pooling.attn.attn.proj.weight": rand(width, width), "pooling.attn.attn.proj.bias": rand(width)}
    state |= {"pooling.attn.mlp.fc1.weight": rand(2 * width, width), "pooling.attn.mlp.fc1.bias": rand(2 * width)}
    state |= {"pooling.attn.mlp.fc2.weight": rand(width, 2 * width), "pooling.attn.mlp.fc2.bias": rand(width)}
    size, index = width, 0
    for hidden in hidden_sizes:  # Linear, LayerNorm, ReLU per hidden size
        state |= {f"audio_proj.net.{index}.weight": rand(hidden, size), f"audio_proj.net.{index}.bias": rand(hidden)}
        state |= {
            f"audio_proj.net.{index + 1}.weight": 1 + rand(hidden),
            f"audio_proj.net.{index + 1}.bias": rand(hidden),
        }
        size, index = hidden, index + 3
    state |= {f"audio_proj.net.{index}.weight": rand(target, size), f"audio_proj.net.{index}.bias": rand(target)}
    return state


def reference(t: dict[str, torch.Tensor], frames: torch.Tensor) -> torch.Tensor:
    """The head from the paper's equations, float64: [CLS] ⊕ frames → LayerNorm → one attention head whose
    keys carry rotary positions (RoFormer, 10000^(2i/d)), residual scaled by γ₁; GELU feed-forward scaled by
    γ₂; LayerNorm; MLP (Linear, LayerNorm, ReLU)*, Linear; L2 normalisation."""
    t = {k: v.double() for k, v in t.items()}
    x = frames.double()
    batch, length, width = x.shape

    def norm(v, name):
        return F.layer_norm(v, (v.shape[-1],), t[f"{name}.weight"], t[f"{name}.bias"], eps=1e-5)

    cls = t["pooling.cls_token"].expand(batch, 1, width)
    tokens = norm(torch.cat([cls, x], dim=1), "pooling.attn.norm1")
    q = tokens[:, :1] @ t["pooling.attn.attn.ql.weight"].T
    k = tokens @ t["pooling.attn.attn.kl.weight"].T
    v = tokens @ t["pooling.attn.attn.vl.weight"].T
    half = width // 2
    angle = torch.arange(length + 1, dtype=torch.float64)[:, None] / 10000 ** (2 * torch.arange(half) / width)
    k = torch.cat(
        [
            k[..., :half] * angle.cos() - k[..., half:] * angle.sin(),
            k[..., half:] * angle.cos() + k[..., :half] * angle.sin(),
        ],
        dim=-1,
    )
    attention = torch.softmax(q @ k.transpose(1, 2) / math.sqrt(width), dim=-1)
    attended = attention @ v @ t["pooling.attn.attn.proj.weight"].T + t["pooling.attn.attn.proj.bias"]
    h = cls + t["pooling.attn.gamma_1"] * attended
    ffn = norm(h, "pooling.attn.norm2") @ t["pooling.attn.mlp.fc1.weight"].T + t["pooling.attn.mlp.fc1.bias"]
    h = h + t["pooling.attn.gamma_2"] * (
        F.gelu(ffn) @ t["pooling.attn.mlp.fc2.weight"].T + t["pooling.attn.mlp.fc2.bias"]
    )
    y = norm(h, "pooling.norm_layer")[:, 0]
    index = 0
    for _ in HIDDEN:
        y = y @ t[f"audio_proj.net.{index}.weight"].T + t[f"audio_proj.net.{index}.bias"]
        y = torch.relu(norm(y, f"audio_proj.net.{index + 1}"))
        index += 3
    y = y @ t[f"audio_proj.net.{index}.weight"].T + t[f"audio_proj.net.{index}.bias"]
    return F.normalize(y, dim=-1)


@pytest.fixture(scope="module")
def whisper_dir(tmp_path_factory):
    """A random-weight Whisper of the head's width, saved and loaded through transformers (test stand-in)."""
    from transformers import WhisperConfig, WhisperFeatureExtractor, WhisperModel

    folder = tmp_path_factory.mktemp("whisper")
    config = WhisperConfig(
        d_model=WIDTH,
        encoder_layers=1,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        num_mel_bins=80,
    )
    torch.manual_seed(0)
    WhisperModel(config).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def pth(tmp_path_factory):
    path = tmp_path_factory.mktemp("released") / "livi.pth"
    torch.save(their_state_dict(), path)
    return path


def test_imported_head_equals_the_paper_equations(pth, whisper_dir, tmp_path):
    out = released.import_checkpoint(
        pth, str(whisper_dir), tmp_path / "ckpt", settings={"vocals": {"detector": "silero"}}
    )
    model = load_checkpoint(out)
    frames = torch.randn(3, FRAMES, WIDTH, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model.head(frames).double()
    assert torch.allclose(ours, reference(their_state_dict(), frames), atol=1e-5, rtol=0)
    config = read_checkpoint_config(out)
    assert config["head"]["hidden"] == list(HIDDEN) and config["head"]["num_heads"] == 1
    assert config["text_dim"] == TARGET and config["encoder"]["name"] == str(whisper_dir)
    assert vocal_settings(out).detector == "silero"


def test_wrapped_keys_and_a_nested_state_dict_are_accepted(whisper_dir, tmp_path):
    """DataParallel's "module." prefix and a {"state_dict": ...} wrapper give the same head."""
    state = {"module." + k: v for k, v in their_state_dict().items()}
    torch.save({"state_dict": state}, tmp_path / "wrapped.pth")
    out = released.import_checkpoint(tmp_path / "wrapped.pth", str(whisper_dir), tmp_path / "ckpt")
    frames = torch.randn(2, FRAMES, WIDTH)
    with torch.no_grad():
        assert torch.allclose(
            load_checkpoint(out).head(frames).double(), reference(their_state_dict(), frames), atol=1e-5, rtol=0
        )


class Payload:
    """Unpickling this would create a file: what a malicious download link could do."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def import_cli(pth, whisper_dir, out, *extra) -> int:
    """`paperlib import-checkpoint` with the settings' defaults (an empty parameters file next to `out`)."""
    (out.parent / "none.yaml").write_text("{}\n")
    args = ["import-checkpoint", str(pth), "--whisper", str(whisper_dir), "--out", str(out)]
    return main([*args, "--params", str(out.parent / "none.yaml"), *extra])


def test_a_pickle_that_runs_code_is_refused(tmp_path, whisper_dir, capsys):
    marker = tmp_path / "executed"
    with open(tmp_path / "evil.pth", "wb") as handle:
        pickle.dump({"pooling.cls_token": Payload(marker)}, handle, protocol=2)
    code = import_cli(tmp_path / "evil.pth", whisper_dir, tmp_path / "ckpt")
    err = capsys.readouterr().err
    assert code == 2 and "refused: not a plain tensor state dict" in err and len(err.strip().splitlines()) == 1
    assert not marker.exists() and not (tmp_path / "ckpt").exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda s: s | {"pooling.attn.extra.weight": torch.zeros(1)}, "unknown key(s) pooling.attn.extra.weight"),
        (lambda s: {k: v for k, v in s.items() if k != "pooling.attn.gamma_2"}, "missing key(s) pool.gain_ffn"),
        (lambda s: {k: v for k, v in s.items() if not k.startswith("audio_proj")}, "missing keys audio_proj.net"),
    ],
)
def test_unknown_or_missing_keys_are_refused(edit, message, tmp_path, whisper_dir):
    torch.save(edit(their_state_dict()), tmp_path / "bad.pth")
    with pytest.raises(released.ReleasedCheckpointError, match=message.replace("(", r"\(").replace(")", r"\)")):
        released.import_checkpoint(tmp_path / "bad.pth", str(whisper_dir), tmp_path / "ckpt")


def test_width_must_match_the_encoder(tmp_path, whisper_dir):
    state = their_state_dict()
    state["pooling.cls_token"] = torch.zeros(1, 1, 2 * WIDTH)
    torch.save(state, tmp_path / "wide.pth")
    with pytest.raises(released.ReleasedCheckpointError):
        released.import_checkpoint(tmp_path / "wide.pth", str(whisper_dir), tmp_path / "ckpt")


def test_cli_import_then_load(pth, whisper_dir, tmp_path, capsys):
    code = import_cli(pth, whisper_dir, tmp_path / "ckpt", "--set", "vocals.detector=silero")
    assert code == 0, capsys.readouterr().err
    assert "width 64, hidden [96, 48], target 32, 1 head(s)" in capsys.readouterr().err
    assert vocal_settings(tmp_path / "ckpt").detector == "silero"
