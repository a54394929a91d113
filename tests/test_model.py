"""The LIVI head: parameter count at the paper configuration, shapes, frozen encoder, loss."""

import pytest
import torch
from transformers import WhisperConfig

from paperlib.model.livi import (
    AttentionPooling,
    HeadConfig,
    LiviHead,
    LiviModel,
    count_trainable,
    load_whisper_encoder,
    rotate_keys,
)
from paperlib.model.training import livi_loss


def tiny_whisper_config(width=64, mels=80):
    """A randomly initialised Whisper encoder of small width (for tests only)."""
    return WhisperConfig(
        d_model=width,
        encoder_layers=2,
        encoder_attention_heads=4,
        encoder_ffn_dim=128,
        decoder_layers=1,
        decoder_attention_heads=4,
        decoder_ffn_dim=128,
        num_mel_bins=mels,
        max_source_positions=1500,
    )


def test_paper_configuration_has_31_894_016_trainable_parameters():
    # large-v3-turbo width and mel bins; encoder depth does not change the trainable count
    config = WhisperConfig(
        d_model=1280,
        encoder_layers=1,
        encoder_attention_heads=20,
        encoder_ffn_dim=5120,
        decoder_layers=1,
        decoder_attention_heads=20,
        decoder_ffn_dim=64,
        num_mel_bins=128,
    )
    model = LiviModel(load_whisper_encoder(config=config), LiviHead(HeadConfig(width=1280, target_dim=768)))
    assert count_trainable(model) == 31_894_016
    assert count_trainable(model.encoder) == 0


def test_shapes_and_unit_norm_output():
    torch.manual_seed(0)
    model = LiviModel(
        load_whisper_encoder(config=tiny_whisper_config()),
        LiviHead(HeadConfig(width=64, target_dim=24, hidden=(48, 32), num_heads=4)),
    )
    features = torch.randn(3, 80, 3000)
    frames = model.frames(features)
    assert frames.shape == (3, 1500, 64)
    assert model.head.pool(frames).shape == (3, 64)
    out = model(features)
    assert out.shape == (3, 24)
    torch.testing.assert_close(out.norm(dim=-1), torch.ones(3))


def test_gradients_reach_head_but_not_frozen_encoder():
    torch.manual_seed(0)
    model = LiviModel(
        load_whisper_encoder(config=tiny_whisper_config()),
        LiviHead(HeadConfig(width=64, target_dim=16, hidden=(32,), num_heads=4)),
    )
    model.train()
    assert not model.encoder.training  # frozen encoder stays in eval mode
    loss, _ = livi_loss(model(torch.randn(4, 80, 3000)), torch.randn(4, 16))
    loss.backward()
    head_grads = [p.grad for p in model.head.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in head_grads)
    assert any(g.abs().sum() > 0 for g in head_grads)
    assert all(p.grad is None for p in model.encoder.parameters())


def test_layer_scale_gains_start_at_1e_4():
    head = LiviHead(HeadConfig(width=32, target_dim=8, hidden=(16,), num_heads=4))
    assert torch.all(head.pool.gain_attn == 1e-4) and torch.all(head.pool.gain_ffn == 1e-4)


def test_rotary_keys_preserve_norm_and_encode_relative_position():
    torch.manual_seed(0)
    keys = torch.randn(1, 2, 7, 16)
    rotated = rotate_keys(keys)
    torch.testing.assert_close(rotated.norm(dim=-1), keys.norm(dim=-1))
    torch.testing.assert_close(rotated[:, :, 0], keys[:, :, 0])  # position 0 is not rotated
    # the same vector at positions m and n: <R_m v, R_n v> depends only on n − m
    v = torch.randn(16).expand(1, 1, 7, 16)
    r = rotate_keys(v)[0, 0]
    torch.testing.assert_close(r[1] @ r[3], r[2] @ r[4])


def test_pooling_equals_textbook_class_attention():
    """Averaging the tokens before the value projection is exact: same output as projecting every
    token to values and calling scaled_dot_product_attention (CaiT class-attention)."""
    torch.manual_seed(0)
    pool = AttentionPooling(32, num_heads=4, layer_scale_init=0.5)
    frames = torch.randn(3, 50, 32)

    def split(x):
        return x.view(3, -1, 4, 8).transpose(1, 2)

    cls = pool.cls.expand(3, -1, -1)
    tokens = pool.norm_attn(torch.cat((cls, frames), dim=1))
    attended = torch.nn.functional.scaled_dot_product_attention(
        split(pool.query(tokens[:, :1])), rotate_keys(split(pool.key(tokens))), split(pool.value(tokens))
    )
    x = cls + pool.gain_attn * pool.out(attended.transpose(1, 2).reshape(3, 1, 32))
    x = x + pool.gain_ffn * pool.ffn(pool.norm_ffn(x))
    torch.testing.assert_close(pool(frames), pool.norm_out(x)[:, 0], rtol=1e-5, atol=1e-5)


def test_pooling_depends_on_frame_order():
    torch.manual_seed(0)
    head = LiviHead(HeadConfig(width=32, target_dim=8, hidden=(16,), num_heads=4, layer_scale_init=1.0))
    frames = torch.randn(1, 10, 32)
    assert not torch.allclose(head(frames), head(frames.flip(1)))


def test_loss_by_hand():
    audio = torch.tensor([[3.0, 4.0], [0.0, 2.0]])  # normalised: (0.6, 0.8), (0, 1)
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    # alignment = mean(1 − 0.6, 1 − 1) = 0.2; geometry = MSE([[1, .8], [.8, 1]], I) = 2·0.64/4 = 0.32
    loss, parts = livi_loss(audio, text, alpha=0.5)
    assert parts["alignment"] == pytest.approx(0.2) and parts["geometry"] == pytest.approx(0.32)
    assert float(loss) == pytest.approx(0.26)
    assert float(livi_loss(audio, text, alpha=0.25)[0]) == pytest.approx(0.25 * 0.2 + 0.75 * 0.32)
    assert float(livi_loss(text, text)[0]) == pytest.approx(0.0, abs=1e-7)
