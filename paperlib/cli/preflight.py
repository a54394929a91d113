"""Pre-flight: everything a profile needs (models, vocal detector, training table, harmonic checkpoints, benchmark
audio) is
checked before any stage spends time, and every missing piece is named at once."""

from __future__ import annotations

from pathlib import Path

from paperlib.runtime.config import Config, Vocals
from paperlib.weights.packaged import ModelUnavailableError, resolve_model


def check(cfg: Config) -> dict:
    """What the profile will use, by role; raises ModelUnavailableError listing every missing piece."""
    found, problems = {}, []
    roles = [("whisper", cfg.models.whisper), ("text model", cfg.models.text)]
    roles += [(f"Table 1 model {name}", name) for name in cfg.text.models]
    for role, name in roles:
        _record(found, problems, role, *_check_model(name, cfg.paths.models))
    _record(found, problems, "detector", *_check_detector(cfg.vocals))
    if cfg.train.checkpoint:
        _record(found, problems, "checkpoint", *_check_checkpoint(cfg.train.checkpoint, cfg.paths.models))
    elif cfg.train.data != "corpus":
        _record(found, problems, "train_data", *_check_training_table(cfg.train.data))
    for path in cfg.harmonic.checkpoints:
        _record(found, problems, f"harmonic {path}", *_check_release_checkpoint(path))
    for name in cfg.evaluate.sets:
        if name != "demo":
            _record(found, problems, name, *_check_audio(Path(cfg.evaluate.audio_root) / name, name))
    if problems:
        raise ModelUnavailableError("the profile cannot run here:\n  - " + "\n  - ".join(problems))
    return found


def _record(found: dict, problems: list, role: str, value: str | None, problem: str | None) -> None:
    if problem:
        problems.append(problem)
    else:
        found[role] = value


def _check_model(name: str, models_dir: str) -> tuple[str | None, str | None]:
    """Loads the model's configuration (local folder, hub cache, or hub), or a packaged encoder whole."""
    from transformers import AutoConfig

    from paperlib.lyrics.text_embedding import PACKAGED_ENCODERS

    if name in PACKAGED_ENCODERS:
        try:
            PACKAGED_ENCODERS[name]()
        except Exception as exc:  # package missing or its files changed
            return None, f"model {name!r} is not available: {exc}"
        return name, None

    resolved = resolve_model(name, models_dir)
    try:
        AutoConfig.from_pretrained(resolved, trust_remote_code=False)
    except Exception as exc:  # OSError offline; ValueError for configs that need the model's own code
        if "trust_remote_code" not in str(exc):
            return None, (
                f"model {name!r} is not available (no folder {Path(models_dir) / name}, not in the hub "
                f"cache, hub unreachable): {type(exc).__name__}"
            )
    return resolved, None


def _check_detector(settings: Vocals) -> tuple[str | None, str | None]:
    if settings.detector != "demucs":
        return settings.detector, None
    from paperlib.lyrics.vocals import detector_for

    name = settings.detector_model or "htdemucs"
    try:
        detector_for(settings)
    except Exception as exc:  # weights neither cached nor downloadable
        return None, f"demucs model {name!r} is not available: {exc}"
    return f"demucs {name}", None


def _check_training_table(path: str) -> tuple[str | None, str | None]:
    from paperlib.runtime.schema import read_tracks

    try:
        table = read_tracks(path)
    except (OSError, ValueError) as exc:
        return None, f"training table (train.data: a CSV with id,path,split): {exc}"
    present = table["path"].map(lambda p: Path(p).is_file())
    empty = [split for split in ("train", "val") if not present[table["split"] == split].any()]
    if empty:
        return None, f"training table {path}: no audio file found for split(s) {', '.join(empty)}"
    return f"{int(present.sum())}/{len(table)} audio files present", None


def _check_checkpoint(path: str, models_dir: str) -> tuple[str | None, str | None]:
    """A checkpoint folder (train.checkpoint) whose encoder loads here."""
    from paperlib.model.checkpoint import read_checkpoint_config

    try:
        encoder = read_checkpoint_config(path)["encoder"]["name"]
    except (OSError, ValueError, KeyError) as exc:
        return None, f"train.checkpoint: {exc}"
    if encoder is None:
        return path, None
    resolved, problem = _check_model(encoder, models_dir)
    return (path, None) if problem is None else (None, f"train.checkpoint {path}: its encoder {problem}")


def _check_release_checkpoint(path: str) -> tuple[str | None, str | None]:
    """A CLEWS-release checkpoint (harmonic.checkpoints) whose configuration names a harmonic architecture."""
    from paperlib.harmonic.release import HarmonicError, release_architecture

    try:
        return release_architecture(path), None
    except HarmonicError as exc:
        return None, f"harmonic.checkpoints: {exc} (the CLEWS release, zenodo.org/records/15045900: see the README)"


def _check_audio(folder: Path, name: str) -> tuple[str | None, str | None]:
    if not folder.is_dir() or not any(p.is_file() for p in folder.rglob("*")):
        return None, f"no audio for evaluation set {name!r}: put it under {folder}/"
    return str(folder), None
