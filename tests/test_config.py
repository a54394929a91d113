"""paperlib.runtime.config: params.yaml → frozen dataclasses, dotted overrides, clear errors, the paper's defaults."""

import dataclasses
import inspect
import json
from pathlib import Path

import pytest
import torch
import yaml

from paperlib.runtime import config
from paperlib.runtime.config import Asr, Config, ConfigError, Evaluate, HeadConfig, Models, Text, Train, Vocals

ROOT = Path(__file__).parents[1]


def flat(tree, prefix=""):
    """{"a.b": value} of a nested dict."""
    return {
        k: v
        for key, value in tree.items()
        for k, v in (flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value}).items()
    }


def test_params_yaml_loads_as_written():
    """Every value written in params.yaml is the loaded setting (lists as tuples)."""
    written = flat(yaml.safe_load((ROOT / "params.yaml").read_text()))
    loaded = flat(config.load(ROOT / "params.yaml").to_dict())
    assert {key: loaded[key] for key in written} == written
    cfg = config.load(ROOT / "params.yaml")
    assert cfg.train.hidden == () and cfg.evaluate.sets == ("demo",)
    assert (cfg.models.whisper, cfg.vocals.detector, cfg.asr.language) == ("whisper-base", "repet", None)


def test_keys_params_yaml_omits_keep_their_defaults():
    """A setting absent from the file is the dataclass default (here train.betas, eval_every, num_workers)."""
    cfg = config.load(ROOT / "params.yaml")
    assert (cfg.train.betas, cfg.train.eval_every, cfg.train.num_workers) == (Train.betas, 0, 0)


@pytest.mark.parametrize(
    "item, section, key, value",
    [
        ("train.epochs=5", "train", "epochs", 5),
        ("train.lr=0.003", "train", "lr", 0.003),
        ("train.warmup_steps=2.0", "train", "warmup_steps", 2),
        ("train.cache_frames=true", "train", "cache_frames", True),
        ("train.hidden=[16, 8]", "train", "hidden", (16, 8)),
        ("train.betas=[0.8, 0.9]", "train", "betas", (0.8, 0.9)),
        ("evaluate.sets=[demo, covers80]", "evaluate", "sets", ("demo", "covers80")),
        ("evaluate.sets=covers80,shs100k_test", "evaluate", "sets", ("covers80", "shs100k_test")),
        ("asr.language=en", "asr", "language", "en"),
        ("asr.language=", "asr", "language", None),
        ("asr.language=null", "asr", "language", None),
        ("models.whisper=123", "models", "whisper", "123"),
        ("vocals.threshold=1", "vocals", "threshold", 1.0),
    ],
)
def test_dotted_overrides_are_parsed_as_yaml(item, section, key, value):
    """`section.key=value`: the value is YAML, converted to the setting's type."""
    got = getattr(getattr(config.load(None, [item]), section), key)
    assert got == value and type(got) is type(value)


def test_top_level_overrides_and_space_separated_string_form():
    """One string of overrides is split like a shell line (quotes keep spaces), as papermill passes them."""
    cfg = config.load(None, "seed=3 device=mps train.epochs=2 'models.whisper=/models/my whisper'")
    assert (cfg.seed, cfg.device, cfg.train.epochs, cfg.models.whisper) == (3, "mps", 2, "/models/my whisper")


def test_overrides_apply_on_top_of_the_file():
    """Overrides change only their key; the file's other values stay."""
    cfg = config.load(ROOT / "params.yaml", ["train.epochs=1", "vocals.threshold=0.4"])
    expected = config.load(ROOT / "params.yaml")
    assert cfg.train == dataclasses.replace(expected.train, epochs=1)
    assert cfg.vocals == dataclasses.replace(expected.vocals, threshold=0.4) and cfg.models == expected.models


@pytest.mark.parametrize(
    "item, name",
    [
        ("train.epoch=3", "train.epoch"),
        ("trian.epochs=3", "trian"),
        ("vocals.detector_modle=x", "vocals.detector_modle"),
    ],
)
def test_unknown_key_is_an_error_naming_it(item, name):
    """A key that is not a setting: ConfigError naming it (and the known keys)."""
    with pytest.raises(ConfigError, match=rf"defaults: {name} is not a setting \(known: "):
        config.load(None, [item])


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    """The error of a file's unknown key starts with the file's path."""
    (tmp_path / "p.yaml").write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=rf"^{tmp_path / 'p.yaml'}: train.epoch is not a setting"):
        config.load(tmp_path / "p.yaml")


@pytest.mark.parametrize(
    "item, message",
    [
        ("train.epochs=many", "train.epochs must be an integer, got 'many'"),
        ("train.epochs=2.5", "train.epochs must be an integer, got 2.5"),
        ("train.lr=true", "train.lr must be a number, got True"),
        ("train.cache_frames=1", "train.cache_frames must be true or false, got 1"),
        ("train.hidden=16", "train.hidden must be a list, got 16"),
        ("train=5", "train must be a mapping"),
        ("train.monitor=val_hr1", "train.monitor must be one of val_cosine, val_loss, got 'val_hr1'"),
        ("train.epochs", "is not of the form section.key=value"),
    ],
)
def test_wrong_type_is_a_config_error(item, message):
    """A value of the wrong type (or a malformed override) is a one-line ConfigError, a ValueError."""
    with pytest.raises(ConfigError, match=message) as info:
        config.load(None, [item])
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_unreadable_file_is_a_config_error(tmp_path):
    """A missing or malformed parameters file is a ConfigError naming it."""
    with pytest.raises(ConfigError, match="cannot read parameters .*missing.yaml"):
        config.load(tmp_path / "missing.yaml")
    (tmp_path / "bad.yaml").write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="cannot read parameters .*bad.yaml"):
        config.load(tmp_path / "bad.yaml")


def test_scientific_notation_numbers():
    """Numbers written as 1e-4 (YAML 1.1 reads them as text) are numbers for float settings."""
    assert config.load(None, ["train.lr=1e-4"]).train.lr == 1e-4


def test_defaults_are_the_papers():
    """The dataclass defaults (and load(None)) are the paper's method (LIVI, ECIR 2026)."""
    train = Train()
    assert (train.epochs, train.batch_size, train.lr, train.warmup_steps) == (3, 128, 1e-4, 10_000)
    assert (train.betas, train.weight_decay, train.alpha, train.monitor) == ((0.9, 0.98), 0.01, 0.5, "val_cosine")
    assert (train.hidden, train.num_heads, train.layer_scale_init) == ((3072, 2048, 2048, 1536), 1, 1e-4)
    assert Models() == Models("openai/whisper-large-v3-turbo", "Alibaba-NLP/gte-multilingual-base")
    assert (Vocals().detector, Vocals().detector_model, Vocals().chunk_s, Vocals().max_pad_s) == (
        "demucs",
        "htdemucs",
        30.0,
        10.0,
    )
    assert (Asr().language, Asr().compression_ratio_threshold, Asr().min_words) == (None, 1.35, 4)
    assert Evaluate().sets == ("covers80", "shs100k_test", "discogs_vi_test")
    assert config.load(None) == Config()


def test_paper_profile_sets_the_default_settings(tmp_path):
    """params.yaml switched to profiles/paper.yaml loads the defaults (but its training table and device)."""
    import shutil

    params = shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    config.apply_profile(params, ROOT / "profiles/paper.yaml")
    cfg = config.load(params)
    assert (cfg.models, cfg.text, cfg.vocals, cfg.asr, cfg.evaluate) == (Models(), Text(), Vocals(), Asr(), Evaluate())
    assert cfg.train == dataclasses.replace(Train(), data="data/discogs_vi_train.csv")
    assert cfg.device == config.available_device("cuda")


def test_settings_are_frozen():
    """Settings cannot be changed in place (dataclasses.replace makes a changed copy)."""
    with pytest.raises(dataclasses.FrozenInstanceError):
        Train().epochs = 5
    with pytest.raises(dataclasses.FrozenInstanceError):
        HeadConfig(width=32).width = 64


def test_to_dict_and_build_round_trip():
    """to_dict is plain JSON (tuples as lists); build(Config, to_dict(cfg)) == cfg, also through JSON."""
    cfg = config.load(ROOT / "params.yaml", ["evaluate.sets=[demo, covers80]", "train.hidden=[1024, 512]"])
    tree = cfg.to_dict()
    assert tree["train"]["hidden"] == [1024, 512] and tree["evaluate"]["sets"] == ["demo", "covers80"]
    assert config.build(Config, tree) == cfg
    assert config.build(Config, json.loads(json.dumps(tree))) == cfg
    assert config.build(Vocals, config.to_dict(cfg.vocals)) == cfg.vocals


def test_build_fills_missing_keys_with_defaults_and_checks_the_rest():
    """build takes a partial dict; unknown keys and wrong types are ConfigErrors."""
    assert config.build(Vocals, {"detector": "silero"}) == Vocals(detector="silero")
    with pytest.raises(ConfigError, match="vocals.detectr is not a setting"):
        config.build(Config, {"vocals": {"detectr": "silero"}})
    with pytest.raises(ConfigError, match="threshold must be a number"):
        config.build(Vocals, {"threshold": "high"})


def test_head_config_defaults_come_from_train():
    """HeadConfig's head shape defaults are Train's (the paper's); paperlib.model.livi re-exports the same class."""
    from paperlib.model import livi

    head = HeadConfig(width=1280)
    assert (head.hidden, head.num_heads, head.layer_scale_init) == (
        Train.hidden,
        Train.num_heads,
        Train.layer_scale_init,
    )
    assert head.target_dim == 768 and livi.HeadConfig is HeadConfig
    assert HeadConfig.from_dict(head.to_dict()) == head and head.to_dict()["hidden"] == list(Train.hidden)


def test_vocals_chunking_gives_the_keyword_arguments_of_vocal_chunks():
    """Vocals.chunking(): exactly vocal_chunks' tuning keywords, with the settings' values."""
    from paperlib.lyrics.vocals import vocal_chunks

    chunking = Vocals(threshold=0.3, max_pad_s=5.0).chunking()
    assert set(chunking) == set(inspect.signature(vocal_chunks).parameters) - {"wave", "detector"}
    assert chunking == {"threshold": 0.3, "min_mean_vocalness": 0.5, "chunk_s": 30.0, "max_pad_s": 5.0}


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the fallback of a machine without CUDA")
def test_cuda_falls_back_to_the_cpu_with_a_warning():
    with pytest.warns(UserWarning, match="CUDA is not available: running on the CPU"):
        assert config.load(None, ["device=cuda"]).device == "cpu"
