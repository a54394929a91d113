"""params.yaml is the demo profile; `paperlib profile` switches to the paper's setup and back."""

import shutil
from pathlib import Path

import pytest
import yaml

from paperlib.cli import main
from paperlib.runtime.config import ConfigError, apply_profile, find_profile

ROOT = Path(__file__).parents[1]


def keys(tree, prefix=""):
    return {
        k
        for key, value in tree.items()
        for k in (keys(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}"})
    }


def test_profiles_set_the_same_keys():
    demo = yaml.safe_load((ROOT / "profiles/demo.yaml").read_text())
    paper = yaml.safe_load((ROOT / "profiles/paper.yaml").read_text())
    assert keys(demo) == keys(paper)


def test_params_yaml_is_the_demo_profile(tmp_path):
    params = shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    assert apply_profile(params, ROOT / "profiles/demo.yaml") == []


def test_paper_and_back_is_byte_identical(tmp_path):
    params = shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    changed = apply_profile(params, ROOT / "profiles/paper.yaml")
    paper = yaml.safe_load(Path(params).read_text())
    assert "models.whisper" in changed and paper["models"]["whisper"] == "openai/whisper-large-v3-turbo"
    assert paper["vocals"]["detector"] == "demucs" and paper["train"]["batch_size"] == 128
    assert paper["evaluate"]["sets"] == ["covers80", "shs100k_test", "discogs_vi_test"]
    apply_profile(params, ROOT / "profiles/demo.yaml")
    assert Path(params).read_bytes() == (ROOT / "params.yaml").read_bytes()


def test_unknown_key_is_refused(tmp_path):
    params = shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    (tmp_path / "bad.yaml").write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match="train.epoch is not a parameter"):
        apply_profile(params, tmp_path / "bad.yaml")
    assert Path(params).read_bytes() == (ROOT / "params.yaml").read_bytes()


def test_unknown_profile_name(capsys):
    assert main(["profile", "nope"]) == 2
    assert "unknown profile 'nope'" in capsys.readouterr().err


def test_profile_names_resolve_to_files_or_profiles_folder(tmp_path):
    (tmp_path / "own.yaml").write_text("seed: 1\n")
    assert find_profile("paper", ROOT / "profiles") == ROOT / "profiles/paper.yaml"
    assert find_profile(str(tmp_path / "own.yaml"), ROOT / "profiles") == tmp_path / "own.yaml"
    with pytest.raises(ConfigError, match=r"^unknown profile 'nope' \(known: demo, paper\)$"):
        find_profile("nope", ROOT / "profiles")


def test_set_changes_one_key_and_a_bad_value_leaves_the_file(tmp_path):
    params = shutil.copy(ROOT / "params.yaml", tmp_path / "params.yaml")
    assert apply_profile(params, None, ["train.epochs=7"]) == ["train.epochs"]
    assert yaml.safe_load(Path(params).read_text())["train"]["epochs"] == 7
    before = Path(params).read_bytes()
    with pytest.raises(ConfigError, match="train.epochs must be an integer"):
        apply_profile(params, None, ["train.epochs=many"])
    assert Path(params).read_bytes() == before
