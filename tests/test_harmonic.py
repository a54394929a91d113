"""paperlib.harmonic.release / harmonic_models: the CLEWS release's harmonic systems, their checkpoints and the
protocol.

All models here carry RANDOM weights at SMALL configurations (few channels, short segments): the tests check the
release's checkpoint layout, strict loading, numerics through a save/load round trip, shingling and the reductions,
never the quality of real embeddings.
"""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

omegaconf = pytest.importorskip("omegaconf")
OmegaConf = omegaconf.OmegaConf

from paperlib.harmonic.architectures import CQT, build_model  # noqa: E402
from paperlib.harmonic.release import (  # noqa: E402
    HarmonicError,
    bpwr_distance,
    embed_track,
    load_release_checkpoint,
    segment_starts,
    shingle,
    track_vector,
)

SR = 16000

SMALL = {
    "clews": {
        "name": "clews",
        "shingling": {"len": 2, "hop": 2},
        "cqt": {"hoplen": 0.02, "noctaves": 7, "nbinsoct": 12, "fscale": 1, "pool": 5},
        "frontend": {"cqtpow": 0.5, "channels": [8, 16]},
        "backbone": {"blocks": [2, 1, 1, 1], "channels": [16, 16, 32, 32], "down": [1, 2, 2, 1]},
        "zdim": 8,
        "loss": {"redux": {"pos": "bpwr-5", "neg": "min"}, "gamma": 5, "epsilon": 1e-6},
    },
    "dvinetp": {
        "name": "dvinetp",
        "shingling": {"len": 5, "hop": 5},
        "cqt": {"hoplen": 0.02, "noctaves": 7, "nbinsoct": 12, "pool": {"len": 2, "hop": 1}},
        "ncha_in": 2,
        "zdim": 8,
        "margin": 0.3,
        "lamb": 0.02,
    },
    "cqtnet": {
        "name": "cqtnet",
        "shingling": {"len": 5, "hop": 5},
        "cqt": {"hoplen": 0.02, "noctaves": 7, "nbinsoct": 12, "pool": {"len": 2, "hop": 1}},
        "zdim": 12,
        "maxcliques": 10,
    },
    "bytecover2x": {
        "name": "bytecover2x",
        "shingling": {"len": 3, "hop": 3},
        "cqt": {"hoplen": 0.023, "noctaves": 7, "nbinsoct": 12, "pool": {"len": 5, "hop": 5}},
        "ncha": 64,
        "zdim": 16,
        "maxcliques": 10,
        "smooth": 0.1,
        "margin": 0.3,
        "lamb": 0,
    },
}

# Key names of the release's state dicts (github sony/clews: models/*.py, lib/layers.py; nnAudio CQT1992v2 buffers)
RELEASE_KEYS = {
    "clews": [
        "cqt.0.lenghts",
        "cqt.0.cqt_kernels_real",
        "cqt.0.cqt_kernels_imag",
        "frontend.0.gain",
        "frontend.0.bias",
        "frontend.1.weight",
        "frontend.2.running_var",
        "frontend.4.weight",
        "backbone.0.convs.0.bn.running_mean",
        "backbone.0.convs.0.inst.weight",
        "backbone.0.convs.2.conv.weight",
        "backbone.0.convs.3.weight",
        "backbone.0.convs.5.conv.weight",
        "backbone.0.gain",
        "backbone.2.skip.0.running_mean",
        "backbone.2.skip.2.conv.weight",
        "pool.p",
        "proj.0.num_batches_tracked",
        "proj.1.weight",
    ],
    "dvinetp": [
        "cqt.lenghts",
        "block1.0.weight",
        "block1.1.running_mean",
        "block1.3.weight",
        "block5.4.bias",
        "fc.bias",
    ],
    "cqtnet": ["cqt.cqt_kernels_imag", "block1.0.weight", "block5.3.weight", "fc0.weight", "fc1.weight", "fc1.bias"],
    "bytecover2x": [
        "cqt.cqt_kernels_real",
        "frontend.1.weight",
        "frontend.2.running_mean",
        "resblocks.0.convs.0.weight",
        "resblocks.0.convs.1.bn.weight",
        "resblocks.0.convs.1.inst.bias",
        "resblocks.0.convs.3.weight",
        "resblocks.0.convs.7.running_var",
        "resblocks.3.residual.0.weight",
        "resblocks.3.residual.1.weight",
        "resblocks.13.convs.1.running_mean",
        "resblocks.15.convs.6.weight",
        "embpool.0.p",
        "embpool.1.weight",
        "embpool.1.bias",
        "bn.running_var",
        "fc.weight",
    ],
}


def randomise(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random weights and BN statistics (the CQT kernels stay), so every layer moves the output."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in list(model.named_parameters()) + list(model.named_buffers()):
            if "cqt_kernels" in name or "lenghts" in name or "num_batches_tracked" in name:
                continue
            noise = torch.rand(tensor.shape, generator=gen)
            if name.endswith("running_var"):
                tensor.copy_(0.5 + noise)
            elif name.endswith(("weight", "gain")) and tensor.ndim <= 1:
                tensor.copy_(0.5 + noise)
            else:
                tensor.copy_((noise - 0.5) * 0.5)
    return model.eval()


def full_conf(model_conf: dict) -> dict:
    """A configuration in the release's layout (configuration.yaml / the checkpoint's conf)."""
    return {
        "jobname": "test",
        "seed": 43,
        "path": {"cache": "cache/", "logs": "logs/"},
        "fabric": {"nnodes": 1, "ngpus": 1, "precision": "32"},
        "data": {"samplerate": SR, "audiolen": 150, "pad_mode": "repeat"},
        "model": copy.deepcopy(model_conf),
        "training": {"batchsize": 25, "optim": {"name": "adam", "lr": 2e-4}},
    }


def save_release(folder, model: torch.nn.Module, model_conf: dict, state: dict | None = None, yaml: bool = True):
    """Write checkpoint_best.ckpt as Fabric's save does (a pickled dict) and configuration.yaml beside it."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = OmegaConf.create(full_conf(model_conf))
    payload = {
        "model": model.state_dict() if state is None else state,
        "optim": {},
        "sched": {},
        "conf": conf,
        "epoch": 0,
        "lr": 0.0,
        "cost_best": 0.0,
    }
    path = folder / "checkpoint_best.ckpt"
    torch.save(payload, path)
    if yaml:
        OmegaConf.save(conf, folder / "configuration.yaml")
    return path


def tone_wave(seconds: float, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    tones = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 330.0, 523.25))
    return (0.3 * tones + 0.05 * rng.standard_normal(t.size)).astype(np.float32)


@pytest.mark.parametrize("name", sorted(SMALL))
def test_release_key_names(name):
    """Random weights: the built module carries the release's key names."""
    keys = build_model(SMALL[name], sr=SR).state_dict().keys()
    missing = [k for k in RELEASE_KEYS[name] if k not in keys]
    assert not missing


@pytest.mark.parametrize("name", sorted(SMALL))
def test_round_trip_through_release_checkpoint(name, tmp_path):
    """Random weights: save in the release's layout, load back, same embeddings to the bit."""
    original = randomise(build_model(SMALL[name], sr=SR), seed=3)
    path = save_release(tmp_path / name, original, SMALL[name])
    loaded, conf = load_release_checkpoint(path)
    assert type(loaded) is type(original)
    assert conf.model.name == name and not loaded.training
    assert loaded.segment_seconds == SMALL[name]["shingling"]["len"] and loaded.zdim == SMALL[name]["zdim"]
    seg = int(SR * loaded.segment_seconds)
    wave = torch.from_numpy(np.stack([tone_wave(loaded.segment_seconds, s) for s in (1, 2)]))[:, :seg]
    a = original.embed(wave)
    b = loaded.embed(wave)
    assert a.shape == (2, SMALL[name]["zdim"]) and a.dtype == torch.float32
    assert torch.isfinite(a).all() and not torch.allclose(a[0], a[1])
    assert torch.equal(a, b)
    if name == "dvinetp":
        assert torch.allclose(a.norm(dim=-1), torch.ones(2), atol=1e-5)


def test_conf_from_configuration_yaml_only(tmp_path):
    """Random weights: a checkpoint without an embedded conf is built from configuration.yaml beside it."""
    model = randomise(build_model(SMALL["clews"], sr=SR))
    path = save_release(tmp_path, model, SMALL["clews"])
    payload = torch.load(path, weights_only=False)
    payload["conf"] = None
    torch.save(payload, path)
    loaded, conf = load_release_checkpoint(path)
    assert conf.model.name == "clews"
    wave = torch.from_numpy(tone_wave(2.0))[None]
    assert torch.equal(model.embed(wave), loaded.embed(wave))


def test_conflicting_yaml_is_refused(tmp_path):
    """Random weights: the checkpoint's conf.model and configuration.yaml must agree."""
    model = build_model(SMALL["clews"], sr=SR)
    path = save_release(tmp_path, model, SMALL["clews"])
    other = full_conf(SMALL["clews"])
    other["model"]["zdim"] = 16
    OmegaConf.save(OmegaConf.create(other), tmp_path / "configuration.yaml")
    with pytest.raises(HarmonicError, match="differs"):
        load_release_checkpoint(path)


def test_missing_key_is_named(tmp_path):
    """Random weights: strict loading; a missing key is a one-line HarmonicError naming it."""
    model = build_model(SMALL["clews"], sr=SR)
    state = model.state_dict()
    del state["proj.1.weight"]
    path = save_release(tmp_path, model, SMALL["clews"], state=state)
    with pytest.raises(HarmonicError, match=r"missing proj\.1\.weight") as info:
        load_release_checkpoint(path)
    assert "\n" not in str(info.value)


def test_renamed_key_is_named(tmp_path):
    """Random weights: a renamed key is reported as missing (the release's name) and unexpected (the new one)."""
    model = build_model(SMALL["cqtnet"], sr=SR)
    state = model.state_dict()
    state["fc_unused.weight"] = state.pop("fc1.weight")
    path = save_release(tmp_path, model, SMALL["cqtnet"], state=state)
    with pytest.raises(HarmonicError) as info:
        load_release_checkpoint(path)
    message = str(info.value)
    assert "missing fc1.weight" in message and "unexpected fc_unused.weight" in message and "\n" not in message


def test_wrong_shape_is_named(tmp_path):
    """Random weights: a configuration that does not fit the tensors names the key and both shapes."""
    model = build_model(SMALL["dvinetp"], sr=SR)
    conf = copy.deepcopy(SMALL["dvinetp"])
    conf["zdim"] = 4
    path = save_release(tmp_path, model, conf)
    with pytest.raises(HarmonicError, match=r"fc\.weight has shape \(8, 32\)"):
        load_release_checkpoint(path)


def test_wrapper_prefix_is_stripped(tmp_path):
    """Random weights: a state dict saved from a DDP/compile-wrapped module still loads."""
    model = randomise(build_model(SMALL["dvinetp"], sr=SR))
    state = {"module." + k: v for k, v in model.state_dict().items()}
    path = save_release(tmp_path, model, SMALL["dvinetp"], state=state)
    loaded, _ = load_release_checkpoint(path)
    wave = torch.from_numpy(tone_wave(5.0))[None]
    assert torch.equal(model.embed(wave), loaded.embed(wave))


def test_not_a_checkpoint(tmp_path):
    """Files that are not release checkpoints give one-line HarmonicErrors."""
    text = tmp_path / "notes.ckpt"
    text.write_text("hello\n")
    with pytest.raises(HarmonicError, match="not a CLEWS-release checkpoint") as info:
        load_release_checkpoint(text)
    assert "\n" not in str(info.value)
    tensor = tmp_path / "tensor.ckpt"
    torch.save(torch.zeros(3), tensor)
    with pytest.raises(HarmonicError, match="no 'model' state dict"):
        load_release_checkpoint(tensor)
    with pytest.raises(HarmonicError, match="no such checkpoint"):
        load_release_checkpoint(tmp_path / "absent.ckpt")
    bare = tmp_path / "bare" / "model.ckpt"
    bare.parent.mkdir()
    torch.save({"model": {"w": torch.zeros(1)}}, bare)
    with pytest.raises(HarmonicError, match="no conf.model"):
        load_release_checkpoint(bare)


def test_unknown_architecture(tmp_path):
    model = build_model(SMALL["cqtnet"], sr=SR)
    conf = copy.deepcopy(SMALL["cqtnet"])
    conf["name"] = "coverhunterc"
    with pytest.raises(HarmonicError, match="not a harmonic system"):
        load_release_checkpoint(save_release(tmp_path, model, conf))


@pytest.mark.parametrize(
    ("file", "zdim", "shapes"),
    [
        ("dvi-clews", 1024, {"proj.1.weight": (1024, 2048), "backbone.15.convs.5.conv.weight": (2048, 1024, 3, 3)}),
        ("shs-clews", 2048, {"proj.1.weight": (2048, 2048), "frontend.4.weight": (256, 128, 12, 3)}),
        ("dvi-dvinetp", 512, {"fc.weight": (512, 768), "block1.0.weight": (48, 1, 12, 3)}),
        ("dvi-cqtnet", 300, {"fc0.weight": (300, 512), "fc1.weight": (100000, 300)}),
        ("dvi-bytecover2x", 1536, {"embpool.1.weight": (1536, 2048), "fc.weight": (100000, 1536)}),
    ],
)
def test_full_size_shapes(file, zdim, shapes):
    """No weights at all (meta tensors): the release's configurations build the expected tensor shapes."""
    conf = {
        "dvi-clews": {**SMALL["clews"], "zdim": 1024},
        "shs-clews": {**SMALL["clews"], "zdim": 2048},
        "dvi-dvinetp": {**SMALL["dvinetp"], "ncha_in": 48, "zdim": 512},
        "dvi-cqtnet": {**SMALL["cqtnet"], "zdim": 300, "maxcliques": 100000},
        "dvi-bytecover2x": {**SMALL["bytecover2x"], "ncha": 2048, "zdim": 1536, "maxcliques": 100000},
    }[file]
    if "clews" in file:
        conf["frontend"] = {"cqtpow": 0.5, "channels": [128, 256]}
        conf["backbone"] = {"blocks": [3, 4, 6, 3], "channels": [256, 512, 1024, 2048], "down": [1, 2, 2, 1]}
    with torch.device("meta"):
        model = build_model(conf, sr=SR)
    got = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert model.zdim == zdim
    for key, shape in shapes.items():
        assert got[key] == shape
    assert got[next(k for k in got if k.endswith("cqt_kernels_real"))] == (84, 1, 16384)
    if "clews" in file:
        assert sum(k.endswith(".gain") and k.startswith("backbone.") for k in got) == 16


def test_cqt_shape_and_tone():
    """The CQT of a 440 Hz tone peaks at A4 (bin 45 above C1 = 32.70 Hz); frames are 1 + T // hop."""
    cqt = CQT(SR, 320, 84, 12)
    t = torch.arange(2 * SR) / SR
    spec = cqt(torch.sin(2 * np.pi * 440.0 * t)[None])
    assert spec.shape == (1, 84, 1 + 2 * SR // 320)
    assert int(spec[0, :, 50].argmax()) == 45


# ---------------------------------------------------------------------------------------------------------------------
# Protocol


def test_segment_starts_61s():
    """61 s, 20 s shingles every 5 s: ceil(41 / 5) + 1 = 10 shingles, the last at 45 s running to 65 s."""
    starts = segment_starts(61 * SR, 20 * SR, 5 * SR)
    assert len(starts) == 10
    assert list(starts // SR) == [0, 5, 10, 15, 20, 25, 30, 35, 40, 45]
    assert len(segment_starts(60 * SR, 20 * SR, 5 * SR)) == 9  # exact fit: no padded shingle
    assert len(segment_starts(3 * SR, 20 * SR, 5 * SR)) == 1  # shorter than one shingle


def test_shingle_last_segment_padding():
    """The last shingle of 61 s is 45..61 s then 4 s of zeros, or (CLEWS, "repeat") the first 4 s again."""
    wave = np.arange(61 * SR, dtype=np.float32)
    zeros = shingle(wave, 20 * SR, 5 * SR, "zeros")
    assert zeros.shape == (10, 20 * SR) and zeros.dtype == np.float32
    np.testing.assert_array_equal(zeros[1], wave[5 * SR : 25 * SR])
    np.testing.assert_array_equal(zeros[-1, : 16 * SR], wave[45 * SR :])
    assert not zeros[-1, 16 * SR :].any()
    repeat = shingle(wave, 20 * SR, 5 * SR, "repeat")
    np.testing.assert_array_equal(repeat[-1, : 16 * SR], wave[45 * SR :])
    np.testing.assert_array_equal(repeat[-1, 16 * SR :], wave[: 4 * SR])
    short = shingle(wave[: 3 * SR], 20 * SR, 5 * SR, "repeat")  # 3 s repeated to fill 20 s
    assert short.shape == (1, 20 * SR)
    np.testing.assert_array_equal(short[0, 6 * SR : 9 * SR], wave[: 3 * SR])


class StubModel(torch.nn.Module):
    """Stands in for a harmonic model: the 'embedding' of a shingle is its first and last sample."""

    def __init__(self, segment_seconds, pad_mode):
        super().__init__()
        self.sr, self.segment_seconds, self.zdim, self.pad_mode = SR, segment_seconds, 2, pad_mode
        self.dummy = torch.nn.Parameter(torch.zeros(1))

    def embed(self, wave):
        return torch.stack([wave[:, 0], wave[:, -1]], dim=1)


def test_embed_track_cuts_at_240s():
    """A 300 s track is cut to 240 s: 45 shingles of 20 s (CLEWS), 19 of 150 s (the others), 5 s apart."""
    wave = np.arange(300 * SR, dtype=np.float32)
    clews = embed_track(StubModel(20, "repeat"), wave, batch_size=7)
    assert clews.shape == (45, 2) and clews.dtype == np.float32
    np.testing.assert_array_equal(clews[:, 0], np.arange(45) * 5 * SR)
    assert clews[-1, 1] == 240 * SR - 1  # exact fit: the last shingle ends at 240 s
    long = embed_track(StubModel(150, "zeros"), wave)
    assert long.shape == (19, 2) and long[-1, 0] == 90 * SR and long[-1, 1] == 240 * SR - 1
    uncut = embed_track(StubModel(150, "zeros"), wave, max_seconds=None)
    assert uncut.shape == (31, 2)
    last = embed_track(StubModel(20, "zeros"), wave[: 61 * SR])
    assert last.shape == (10, 2) and last[-1, 0] == 45 * SR and last[-1, 1] == 0.0


def test_embed_track_real_model():
    """Random weights: embed_track of a small CLEWS equals its embed of the shingles one by one."""
    model = randomise(build_model(SMALL["clews"], sr=SR))
    wave = tone_wave(4.5)
    segments = embed_track(model, wave, hop_s=1.0, batch_size=1)  # batch 1: the same float operations as below
    assert segments.shape == (4, 8)  # ceil(2.5 / 1) + 1
    batched = embed_track(model, wave, hop_s=1.0)
    np.testing.assert_allclose(batched, segments, rtol=1e-4, atol=1e-5)
    pieces = shingle(wave, 2 * SR, SR, "repeat")
    for i, piece in enumerate(pieces):
        np.testing.assert_array_equal(segments[i], model.embed(torch.from_numpy(piece)[None])[0].numpy())
    with pytest.raises(HarmonicError):
        embed_track(model, np.zeros(0, dtype=np.float32))


def test_track_vector():
    vector = track_vector(np.array([[3.0, 0.0], [3.0, 8.0]]))
    np.testing.assert_allclose(vector, [0.6, 0.8], rtol=1e-6)
    assert vector.dtype == np.float32


def test_bpwr_exact():
    """Hand-made segments (zdim 1, so nsqeuc is the squared difference)."""
    a = np.array([[0.0], [3.0], [9.0]])
    b = np.array([[1.0], [5.0], [10.0]])
    # pairs: (0,0)=1, then (2,2)=1, then (1,1)=4  -> mean 2
    assert bpwr_distance(a, b, r=10) == 2.0
    assert bpwr_distance(a, b, r=2) == 1.0
    assert bpwr_distance(a, b, r=1) == 1.0
    # without replacement: after (0,0)=1 the next pair cannot reuse a[0] (whose distance to b[1] is 4)
    assert bpwr_distance(np.array([[0.0], [10.0]]), np.array([[1.0], [2.0]]), r=2) == 32.5
    # unequal counts: at most min(Sa, Sb) pairs
    assert bpwr_distance(np.array([[0.0]]), b, r=10) == 1.0
    # zdim 2: divided by zdim
    assert bpwr_distance(np.array([[0.0, 0.0]]), np.array([[2.0, 2.0]]), r=10) == 4.0
    # cosine metric
    assert bpwr_distance(np.array([[1.0, 0.0]]), np.array([[0.0, 2.0], [3.0, 0.0]]), metric="cos") == 0.0
    with pytest.raises(HarmonicError):
        bpwr_distance(a, np.zeros((2, 3)))
