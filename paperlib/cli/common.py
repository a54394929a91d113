"""What every command shares: the settings options, one-line user errors, audio listing and model loading."""

from __future__ import annotations

import sys

from paperlib.runtime.errors import PaperlibError


class UserError(PaperlibError):
    """An error in what the user gave us; printed as one line, exit status 2."""


def add_settings(p) -> None:
    """--params and --set: the same settings the pipeline stages read (paperlib.runtime.config)."""
    p.add_argument("--params", help="parameters file (default: params.yaml when present, else the paper's defaults)")
    add_set(p, "override one setting, e.g. --set asr.batch_size=4 (repeatable)")


def add_set(p, help: str) -> None:
    """--set KEY=VALUE, repeatable, collected in args.overrides (dotted keys of paperlib.runtime.config)."""
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE", help=help)


def load_settings(args, **paths):
    """The settings of args.params and args.overrides; `paths` are overrides given as their own options."""
    from pathlib import Path

    from paperlib.runtime import config

    params = args.params or ("params.yaml" if Path("params.yaml").is_file() else None)
    extra = [f"{key}={value}" for key, value in paths.items() if value is not None]
    return config.load(params, [*args.overrides, *extra])


def local_steps(job, cfg, failure: str):
    """engine.local_steps of the job; a model that cannot be loaded is a UserError."""
    from paperlib.runtime import engine
    from paperlib.weights import packaged

    try:
        return engine.local_steps(job, cfg)
    except (packaged.ModelUnavailableError, OSError) as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # e.g. demucs weights neither cached nor downloadable
        raise UserError(f"{failure}: {type(exc).__name__}: {exc}") from None


def list_audio(inputs: list[str]) -> list:
    from paperlib.runtime import audio

    try:
        tracks = audio.list_audio(inputs)
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if not tracks:
        raise UserError(f"no audio files found in {' '.join(inputs)}")
    return tracks


def print_counts(manifest, out) -> None:
    from paperlib.runtime.schema import STATUSES

    counts = manifest.status.value_counts().reindex(list(STATUSES), fill_value=0)
    print(", ".join(f"{n} {status}" for status, n in counts.items()) + f" -> {out}", file=sys.stderr)


def add_engine(p) -> None:
    """--engine and --address: where the work runs (settings scale.engine, scale.address)."""
    from paperlib.runtime.config import ENGINES

    p.add_argument("--engine", choices=ENGINES, help="local: this process; ray: a Ray cluster (default: scale.engine)")
    p.add_argument(
        "--address", help="Ray cluster address, e.g. auto or HOST:6379 (default: scale.address; empty: a local Ray)"
    )


def engine_settings(args):
    return load_settings(args, **{"scale.engine": args.engine, "scale.address": args.address})


def vocal_settings(args):
    """The vocal settings of the checkpoint args.model with the `vocals.*` overrides applied."""
    from paperlib.model import checkpoint

    try:
        return checkpoint.vocal_settings(args.model, args.overrides)
    except (OSError, ValueError) as exc:
        raise UserError(str(exc)) from None


def load_inference(args, cfg):
    """paperlib.model.inference.Inference of args.model: its vocal settings with the `vocals.*` overrides applied."""
    from paperlib.model import inference
    from paperlib.weights import packaged

    settings = vocal_settings(args)
    try:
        return inference.load_inference(args.model, cfg, settings)
    except (packaged.ModelUnavailableError, OSError) as exc:
        raise UserError(str(exc)) from None
    except Exception as exc:  # e.g. demucs weights neither cached nor downloadable
        raise UserError(
            f"cannot load {args.model} or the {settings.detector} vocal detector: {type(exc).__name__}: {exc}"
        ) from None
