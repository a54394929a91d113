"""Same bits under any instruction set: the demo's stages, run under forced instruction sets, compared byte for byte.

Each run takes a fresh copy of the repository (tracked files, data/speech), switches it to the English tiny corpus
(TINY: the test tier's pipeline, minutes) and runs `dvc repro` under an environment that forces every numerical
library's instruction set (FORCED: what an AVX-512 Xeon and an AVX2-only CPU would choose by themselves). Compared:
the bytes of every file under results/ (results/runtime aside: wall-clock times) and the hashes of every stage output
in dvc.lock (the data arrays: teacher targets, LIVI checkpoint, embeddings).

Conditions:
  pinned   the default: paperlib.runtime.kernels pins AVX2 in every process the stages start, over the forced sets;
  native   PAPERLIB_NATIVE_KERNELS=1: the forced sets take effect (the control: it shows they change the bits).

    python benchmarks/kernel_isa.py [--out results/benchmarks/kernel_isa] [--conditions pinned native]

Writes OUT.json (per run: digests; per pair: the files that differ) and OUT.md.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from paperlib.runtime.io import copy_worktree, write_report
from paperlib.runtime.kernels import KERNELS, NATIVE

ROOT = Path(__file__).parents[1]
TINY = {"corpus": {"kind": "english", "size": "tiny"}, "train": {"epochs": 4, "batch_size": 4, "warmup_steps": 2}}
FORCED = {
    "avx512": {
        "ATEN_CPU_CAPABILITY": "avx512",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE_AMX",
        "OPENBLAS_CORETYPE": "SkylakeX",
        "FAISS_SIMD_LEVEL": "AVX512",
    },
    "avx2": {
        "ATEN_CPU_CAPABILITY": "avx2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "OPENBLAS_CORETYPE": "Haswell",
        "FAISS_SIMD_LEVEL": "AVX2",
    },
}


def tiny_params(repo: Path) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    for section, values in TINY.items():
        params[section].update(values)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def digests(repo: Path) -> dict[str, str]:
    """sha256 of every results/ file (runtime aside) and the md5 DVC recorded for every stage output."""
    found = {}
    for path in sorted((repo / "results").rglob("*")):
        rel = path.relative_to(repo).as_posix()
        if path.is_file() and not rel.startswith("results/runtime/"):
            found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    for stage, entry in sorted(lock.items()):
        for out in entry.get("outs", []):
            found[f"dvc.lock:{stage}:{out['path']}"] = out.get("md5", "")
    return found


def run(condition: str, forced: str, work: Path) -> dict:
    repo = copy_worktree(ROOT, work / f"{condition}-{forced}")
    tiny_params(repo)
    env = {k: v for k, v in os.environ.items() if k not in KERNELS.keys() | FORCED[forced].keys() | {NATIVE}}
    env |= FORCED[forced] | ({NATIVE: "1"} if condition == "native" else {})
    start = time.perf_counter()
    proc = subprocess.run(["dvc", "repro"], cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{condition}/{forced}: dvc repro failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return {"condition": condition, "forced": forced, "seconds": time.perf_counter() - start, "digests": digests(repo)}


def compare(a: dict, b: dict) -> list[str]:
    return sorted(k for k in a["digests"].keys() | b["digests"].keys() if a["digests"].get(k) != b["digests"].get(k))


def markdown(report: dict) -> str:
    lines = [
        "# The demo's stages under forced instruction sets (English tiny corpus)",
        "",
        f"{report['cpu']}; {report['files']} files compared per run (results/ except runtime, dvc.lock outputs).",
        "",
        "| run A | run B | files that differ | examples |",
        "|---|---|---:|---|",
    ]
    for pair in report["pairs"]:
        examples = ", ".join(f"`{name}`" for name in pair["differ"][:4])
        lines.append(f"| {pair['a']} | {pair['b']} | {len(pair['differ'])} | {examples} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="results/benchmarks/kernel_isa")
    parser.add_argument("--conditions", nargs="+", default=["pinned", "native"], choices=["pinned", "native"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kernel_isa.") as work:
        runs = []
        for condition, forced in itertools.product(args.conditions, FORCED):
            runs.append(run(condition, forced, Path(work)))
            print(f"{condition}/{forced}: {runs[-1]['seconds']:.0f} s", file=sys.stderr)
    label = {id(r): f"{r['condition']} / forced {r['forced']}" for r in runs}
    pairs = [
        {"a": label[id(a)], "b": label[id(b)], "differ": compare(a, b)} for a, b in itertools.combinations(runs, 2)
    ]
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    report = {
        "cpu": cpu,
        "forced": FORCED,
        "files": len(runs[0]["digests"]),
        "runs": [{k: v for k, v in r.items() if k != "digests"} for r in runs],
        "pairs": pairs,
    }
    write_report(report, args.out, markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
