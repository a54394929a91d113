"""Settings: one frozen dataclass per section of params.yaml, loaded once and passed down.

The defaults below are the paper's method (LIVI, ECIR 2026); params.yaml holds the offline demo's
values, each departure with its reason, and profiles/paper.yaml sets the paper's data and models.
Every stage notebook and CLI command reads its settings through `load`, with optional dotted
overrides such as ``train.epochs=5`` (values are parsed as YAML); `apply_profile` rewrites a parameters
file with a profile's values (`paperlib profile`), keeping its comments.
Units: seconds for times, optimizer steps for schedules.
"""

from __future__ import annotations

import dataclasses
import shlex
import types
import typing
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from paperlib.runtime.errors import PaperlibError
from paperlib.runtime.io import atomic_path

PAPER_HIDDEN = (3072, 2048, 2048, 1536)
MONITORS = {"val_cosine": 1.0, "val_loss": -1.0}
ENGINES = ("local", "ray")
"""Where embedding and transcription run (Scale.engine)."""
"""Metrics that can select the kept checkpoint, with the sign that makes larger better."""


class ConfigError(PaperlibError, ValueError):
    """A settings file or override that does not fit the dataclasses; str(exc) is one line."""


@dataclass(frozen=True)
class Paths:
    """Where each stage reads and writes (relative to the working directory)."""

    models: str = "models"  # offline models written by the `models` stage
    corpus: str = "data/corpus"  # the generated corpus
    speech: str = "data/speech"  # the multilingual corpus' sung lines, Ogg Vorbis (a frozen stage, committed)
    teacher: str = "data/teacher"  # transcripts and lyrics targets of the training tracks
    checkpoint: str = "data/livi"  # the trained (or imported) LIVI head
    transcripts: str = "data/transcripts"  # per evaluation set: its transcripts and the text systems
    embeddings: str = "data/embeddings"  # per evaluation set: the audio systems
    harmonic: str = "data/harmonic"  # per evaluation set: the harmonic audio systems (chroma, CLEWS release)
    results: str = "results"  # tables and figures (byte-identical on rerun)
    runtime: str = "results/runtime"  # wall-clock measurements: outside DVC, differ on every run


@dataclass(frozen=True)
class Models:
    """Teacher ASR / LIVI's frozen encoder, and the lyrics sentence encoder (paper §3.1)."""

    whisper: str = "openai/whisper-large-v3-turbo"
    text: str = "Alibaba-NLP/gte-multilingual-base"  # 768-d


TABLE1_MODELS = (
    "Alibaba-NLP/gte-multilingual-base",
    "intfloat/multilingual-e5-small",
    "intfloat/multilingual-e5-large",
    "intfloat/multilingual-e5-large-instruct",
    "jinaai/jina-embeddings-v3",
    "sentence-transformers/paraphrase-multilingual-mpnet-base-v2",
)


@dataclass(frozen=True)
class Text:
    """Table 1 (§5.1): the sentence encoders compared on transcribed and editorial lyrics."""

    models: tuple[str, ...] = TABLE1_MODELS  # hub ids, offline names or local folders


@dataclass(frozen=True)
class Corpus:
    """The generated multi-version corpus (train / val / test split by work)."""

    # multilingual: en/fr/de/it lyrics, Kokoro and Piper voices over soundfont bands
    # (paperlib.data.multilingual_corpus);
    # english: one Piper voice over tones (paperlib.data.corpus), the fast corpus of the test tier
    kind: str = "multilingual"
    size: str = "demo"  # tiny | demo | <number of works>
    seed: int = 0


@dataclass(frozen=True)
class Vocals:
    """Vocal segments → 30 s chunks (paper §3.1); stored in each checkpoint for inference."""

    detector: str = "demucs"  # repet (REPET-SIM separation + VAD) | silero (VAD on the mix) | demucs (vocal stem)
    detector_model: str = "htdemucs"  # demucs model name; "" = backend default
    detector_repo: str = ""  # local folder of demucs model files (<sig>.th, bag .yaml); "" = hub or cache
    threshold: float = 0.5  # a segment is vocal when its vocalness is above this
    min_mean_vocalness: float = 0.5  # tracks below are rejected as instrumental
    chunk_s: float = 30.0
    max_pad_s: float = 10.0  # total padding of a vocal segment toward chunk_s

    def chunking(self) -> dict:
        """Keyword arguments of paperlib.lyrics.vocals.vocal_chunks."""
        return {k: getattr(self, k) for k in ("threshold", "min_mean_vocalness", "chunk_s", "max_pad_s")}


@dataclass(frozen=True)
class Asr:
    """Teacher transcription (Whisper generate, temperature fallback) and transcript clean-up."""

    language: str | None = None  # an ISO 639-1 code, or None (null, "") = detect per chunk (multilingual models)
    batch_size: int = 32  # chunks per Whisper call
    compression_ratio_threshold: float = 1.35  # re-decode at a higher temperature above this gzip ratio
    logprob_threshold: float = -1.0
    min_words: int = 4  # chunks with fewer words after clean-up are dropped
    max_repeats: int = 3  # a word repeated this often in a row collapses to one
    no_speech_threshold: float = 0.6  # Whisper's no-speech gating of the fixed-window front end (§5.2)


@dataclass(frozen=True)
class Train:
    """Training of the LIVI head (paper §3.2): AdamW, linear warmup then constant lr."""

    data: str = "corpus"  # corpus | a CSV with id,path,split (paths relative to the CSV)
    checkpoint: str = ""  # a checkpoint folder to evaluate instead of training one ("" = train)
    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-4
    warmup_steps: int = 10_000
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    alpha: float = 0.5  # loss = α·alignment + (1 − α)·geometry
    patience: int = 1  # evaluations without improvement before stopping; ≤ 0: never
    monitor: str = "val_cosine"  # metric that selects the kept checkpoint: val_cosine | val_loss
    cache_frames: bool = False  # frozen-encoder states computed once (float16; small corpora only)
    eval_every: int = 0  # also validate every N optimizer steps (0: once per epoch)
    num_workers: int = 0  # DataLoader workers
    hidden: tuple[int, ...] = PAPER_HIDDEN  # projection MLP hidden sizes
    num_heads: int = 1  # attention-pooling heads (paper §4.3: single-head attention)
    layer_scale_init: float = 1e-4  # initial gain of the attention pooling's residual branches

    def __post_init__(self):
        if self.monitor not in MONITORS:
            raise ConfigError(f"train.monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")


@dataclass(frozen=True)
class Evaluate:
    """Evaluation sets and retrieval (paper §4)."""

    sets: tuple[str, ...] = ("covers80", "shs100k_test", "discogs_vi_test")  # or demo (corpus test split)
    audio_root: str = "data/audio"  # benchmark audio under <audio_root>/<set>/
    benchmark_mirror: str = ""  # local copy of the benchmark metadata ("" = download, checksummed)
    batch_size: int = 32  # chunks per LIVI encoder batch at inference
    index: str = "Flat"  # faiss index_factory string of the retrieval example
    block_size: int = 2048  # rows per similarity tile in the metrics (memory ~ its square)
    front_end_works: int = 0  # §5.2 compares front ends on all tracks of each set's first N works by id (0: all)


RELEASE_CHECKPOINTS = tuple(
    f"data/clews/dvi-{name}/checkpoint_best.ckpt" for name in ("bytecover2x", "clews", "cqtnet", "dvinetp")
)


@dataclass(frozen=True)
class Harmonic:
    """The harmonic audio systems of Table 2 (paperlib.harmonic.systems) and their fusion with LIVI (Table 2, beyond
    the paper). Checkpoints: CLEWS-release files (Zenodo record 15045900, each with its configuration.yaml); the paper
    runs the four Discogs-VI ones, one per architecture."""

    checkpoints: tuple[str, ...] = RELEASE_CHECKPOINTS
    hop_s: float = 5.0  # shingle hop (s), the paper's protocol
    max_seconds: float = 240.0  # audio cut to its first seconds
    batch_size: int = 8  # shingles per forward pass
    chroma: bool = True  # the training-free 2DFTM baseline (paperlib.harmonic.chroma)
    chroma_patch_beats: int = 75  # beats per 2DFTM patch (Bertin-Mahieux & Ellis 2012)
    chroma_power: float = 1.96  # power-law expansion of the chroma
    fusion: str = "chroma"  # harmonic system fused with LIVI ("" = no fusion row)
    fusion_weight: float = 0.5  # weight of LIVI's per-query z-scores (the harmonic system's: 1 - weight)

    def __post_init__(self):
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ConfigError(f"harmonic.fusion_weight must be in [0, 1], got {self.fusion_weight}")
        for name in ("hop_s", "max_seconds", "batch_size", "chroma_patch_beats"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"harmonic.{name} must be positive, got {getattr(self, name)}")


@dataclass(frozen=True)
class Scale:
    """Where per-track jobs (teacher, transcription, embedding) run: in this process, or on a Ray cluster
    (paperlib.runtime.engine)."""

    engine: str = "local"  # local | ray
    address: str = ""  # Ray cluster address ("" = start a local Ray instance, "auto" = the running cluster)
    actors: int = 1  # model actors, each holding the model once (one GPU each when device is cuda)
    track_batch: int = 8  # tracks per model-step call (Whisper batches their chunks together; LIVI each track's)
    shard_tracks: int = 256  # tracks per Parquet shard of a shard-directory output (the unit of resume)

    def __post_init__(self):
        if self.engine not in ENGINES:
            raise ConfigError(f"scale.engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        for name in ("actors", "track_batch", "shard_tracks"):
            if getattr(self, name) < 1:
                raise ConfigError(f"scale.{name} must be at least 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class HeadConfig:
    """Shape of the trainable head (saved next to its weights). Paper: width 1280, target 768."""

    width: int  # Whisper d_model (1280 for large-v3-turbo, 512 for base)
    target_dim: int = 768  # dimension of the text-embedding space
    hidden: tuple[int, ...] = Train.hidden
    num_heads: int = Train.num_heads
    layer_scale_init: float = Train.layer_scale_init
    rope_base: float = 10_000.0

    def to_dict(self) -> dict:
        return to_dict(self)

    @classmethod
    def from_dict(cls, values: dict) -> HeadConfig:
        return build(cls, values)


@dataclass(frozen=True)
class Config:
    """The whole parameter file."""

    profile: str = "paper"
    seed: int = 0
    device: str = "cpu"  # torch device: cpu | cuda
    paths: Paths = field(default_factory=Paths)
    models: Models = field(default_factory=Models)
    text: Text = field(default_factory=Text)
    corpus: Corpus = field(default_factory=Corpus)
    vocals: Vocals = field(default_factory=Vocals)
    asr: Asr = field(default_factory=Asr)
    train: Train = field(default_factory=Train)
    evaluate: Evaluate = field(default_factory=Evaluate)
    harmonic: Harmonic = field(default_factory=Harmonic)
    scale: Scale = field(default_factory=Scale)

    def to_dict(self) -> dict:
        return to_dict(self)


# --------------------------------------------------------------------------- loading
def load(params: str | Path | None = "params.yaml", overrides: str | Iterable[str] = ()) -> Config:
    """Config from a YAML parameters file (None: the defaults) and dotted `key=value` overrides.

    overrides: an iterable of "section.key=value", or one string of them separated by spaces
    (shell quoting applies), as papermill passes them.
    """
    import yaml

    tree = {}
    if params is not None:
        try:
            tree = yaml.safe_load(Path(params).read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ConfigError(f"cannot read parameters {params}: {exc}") from None
    for item in shlex.split(overrides) if isinstance(overrides, str) else overrides:
        tree = apply_override(tree, item)
    cfg = build(Config, tree, source=str(params or "defaults"))
    return dataclasses.replace(cfg, device=available_device(cfg.device))


def available_device(device: str) -> str:
    """`device`, or "cpu" (with a warning) when it names CUDA and no CUDA device is present."""
    if not device.startswith("cuda"):
        return device
    import torch

    if torch.cuda.is_available():
        return device
    warnings.warn(f"device {device!r} requested but CUDA is not available: running on the CPU", stacklevel=3)
    return "cpu"


def apply_override(tree: dict, item: str) -> dict:
    """A copy of `tree` with "a.b=value" set (value parsed as YAML: 5, 0.1, true, [a, b], text)."""
    import yaml

    key, sep, text = item.partition("=")
    if not sep or not key:
        raise ConfigError(f"override {item!r} is not of the form section.key=value")
    *parents, leaf = key.split(".")
    result = dict(tree)
    node = result
    for part in parents:
        node[part] = dict(node.get(part) or {})
        node = node[part]
    node[leaf] = yaml.safe_load(text) if text else ""
    return result


def build(cls, values: dict, source: str = "settings", prefix: str = ""):
    """Instantiate dataclass `cls` from a (nested) dict, checking keys and converting types."""
    if not isinstance(values, dict):
        raise ConfigError(f"{source}: {prefix.rstrip('.') or 'the file'} must be a mapping")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(values) - set(names))
    if unknown:
        raise ConfigError(f"{source}: {prefix}{unknown[0]} is not a setting (known: {', '.join(names)})")
    kwargs = {}
    for name, value in values.items():
        kind = hints[name]
        if dataclasses.is_dataclass(kind):
            kwargs[name] = build(kind, value or {}, source, f"{prefix}{name}.")
        else:
            kwargs[name] = _convert(value, kind, f"{source}: {prefix}{name}")
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"{source}: {prefix.rstrip('.')}: {exc}") from None


def _convert(value, kind, where: str):
    origin = typing.get_origin(kind)
    if origin is types.UnionType and type(None) in typing.get_args(kind):  # X | None: null and "" are None
        (inner,) = [arg for arg in typing.get_args(kind) if arg is not type(None)]
        return None if value in (None, "") else _convert(value, inner, where)
    if origin is tuple:
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        inner = typing.get_args(kind)[0]
        return tuple(_convert(v.strip() if isinstance(v, str) else v, inner, where) for v in items if v != "")
    if kind is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if kind in (int, float):
        number = _number(value)
        if number is None or (kind is int and number != int(number)):
            raise ConfigError(f"{where} must be {'an integer' if kind is int else 'a number'}, got {value!r}")
        return kind(number)
    if kind is str:
        return "" if value is None else str(value)
    return value


def _number(value) -> float | int | None:
    """A number from YAML, or from text such as "1e-4" and "16" (YAML 1.1 reads "1e-4" as a string)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return value
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def to_dict(settings) -> dict:
    """Plain nested dict (tuples as lists) of a settings dataclass: JSON and YAML safe."""

    def plain(value):
        return list(value) if isinstance(value, tuple) else value

    return dataclasses.asdict(settings, dict_factory=lambda items: {k: plain(v) for k, v in items})


# --------------------------------------------------------------------------- profiles
def find_profile(name: str, folder: str | Path = "profiles") -> Path:
    """The profile `name`: a YAML file of that path, else <folder>/<name>.yaml; ConfigError naming the known
    profiles when neither exists."""
    path = Path(name)
    if not path.is_file():
        path = Path(folder) / f"{name}.yaml"
    if not path.is_file():
        known = sorted(p.stem for p in Path(folder).glob("*.yaml"))
        raise ConfigError(f"unknown profile {name!r} (known: {', '.join(known) or 'none'})")
    return path


def apply_profile(
    params_path: str | Path, profile_path: str | Path | None = None, overrides: Iterable[str] = ()
) -> list[str]:
    """Overlay a profile's values, then dotted overrides, onto a parameters file in place (comments and key
    order kept). Every key must already be in the file, and the result must load as a Config, or the file is
    left as it was (ConfigError). Returns the dotted keys whose values changed, in file order."""
    from ruamel.yaml import YAML

    yaml = YAML()  # round-trip: keeps comments and key order
    yaml.preserve_quotes = True
    yaml.width = 4096  # a list stays on its line
    yaml.representer.add_representer(type(None), lambda rep, _: rep.represent_scalar("tag:yaml.org,2002:null", "null"))
    params = _read_yaml(yaml, params_path)
    overlay = _read_yaml(yaml, profile_path) if profile_path else {}
    for item in overrides:
        overlay = apply_override(overlay or {}, item)
    changed = _merge(params, overlay or {}, str(profile_path or "--set"), str(params_path))
    with atomic_path(params_path) as tmp:
        with open(tmp, "w") as fh:
            yaml.dump(params, fh)
        build(Config, YAML(typ="safe").load(Path(tmp)) or {}, source=str(params_path))
    return changed


def _read_yaml(yaml, path: str | Path):
    """The round-trip tree of a YAML file; ConfigError with one line when it cannot be read or parsed."""
    from ruamel.yaml.error import YAMLError

    try:
        return yaml.load(Path(path).read_text())
    except (OSError, YAMLError) as exc:
        raise ConfigError(f"cannot read {path}: {str(exc).splitlines()[0]}") from None


def _merge(target, source, origin: str, params_path: str, prefix: str = "") -> list[str]:
    """Write source's leaves into the round-trip YAML tree `target`; returns the dotted keys that changed."""
    changed = []
    for key, value in source.items():
        if key not in target:
            raise ConfigError(f"{origin}: {prefix}{key} is not a parameter of {params_path}")
        if hasattr(value, "items"):
            changed += _merge(target[key], value, origin, params_path, f"{prefix}{key}.")
        elif target[key] != value:
            target[key] = value
            changed.append(f"{prefix}{key}")
    return changed
