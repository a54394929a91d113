"""dvc.yaml declares the paperlib code each stage runs, and DVC acts on those declarations.

A stage must rerun when any paperlib module its notebook can execute changes. Which modules a
notebook can execute is computed here from the source alone (``ast``, nothing is imported): the
paperlib modules imported by its code cells, at top level or inside functions, then transitively
through the modules themselves. Nothing below names a particular module, so the checks keep
working while paperlib is renamed or split.
"""

import ast
import json
import os
import posixpath
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

from paperlib.runtime.io import copy_worktree

ROOT = Path(__file__).parents[1]
PACKAGE = "paperlib"
PREFERRED_MODULE = "paperlib/lyrics/vocals.py"  # the module test 2 edits when it qualifies


# --------------------------------------------------------------------------- import closure (ast only)
def code_cells(notebook: Path) -> list[str]:
    """The notebook's code cells, with IPython magics and shell lines (% and !) removed."""
    nb = nbformat.read(notebook, as_version=4)
    return [
        "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for cell in nb.cells
        if cell.cell_type == "code"
    ]


def module_file(root: Path, dotted: str) -> str | None:
    """``a.b.c`` -> ``a/b/c.py`` or ``a/b/c/__init__.py`` (relative to root), None if neither exists."""
    base = dotted.replace(".", "/")
    for rel in (f"{base}.py", f"{base}/__init__.py"):
        if (root / rel).is_file():
            return rel
    return None


def with_parents(dotted: str) -> list[str]:
    """Importing ``a.b.c`` runs ``a``, ``a.b`` and ``a.b.c``."""
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def imported_modules(source: str, root: Path, package: str, current: str | None = None) -> set[str]:
    """Dotted names of the ``package`` modules ``source`` imports anywhere (functions included).

    ``current`` is the dotted name of the module the source belongs to (for relative imports).
    ``from package.m import name`` counts ``package.m.name`` only when that is a module file;
    otherwise the name lives in ``package.m`` itself.
    """
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = absolute_base(node, root, current)
            if base is None:
                continue
            found.add(base)
            found |= {f"{base}.{a.name}" for a in node.names if module_file(root, f"{base}.{a.name}")}
    ours = {m for m in found if m == package or m.startswith(package + ".")}
    return {parent for m in ours for parent in with_parents(m)}


def absolute_base(node: ast.ImportFrom, root: Path, current: str | None) -> str | None:
    """The absolute module a ``from ... import`` reads from (relative ones resolved against ``current``)."""
    if node.level == 0:
        return node.module
    if current is None:
        return None
    is_package = (module_file(root, current) or "").endswith("__init__.py")
    parts = current.split(".") if is_package else current.split(".")[:-1]
    parts = parts[: len(parts) - (node.level - 1)]
    return ".".join(parts + ([node.module] if node.module else []))


def import_closure(sources: list[str], root: Path, package: str = PACKAGE) -> set[str]:
    """Files (relative to root) of every ``package`` module the sources can execute, transitively."""
    todo = set().union(*(imported_modules(s, root, package) for s in sources))
    seen: set[str] = set()
    while todo:
        dotted = todo.pop()
        seen.add(dotted)
        path = module_file(root, dotted)
        if path is None:  # a missing module is an ImportError for other tests to catch, not a dep
            continue
        todo |= imported_modules((root / path).read_text(), root, package, current=dotted) - seen
    return {path for path in (module_file(root, m) for m in seen) if path}


# --------------------------------------------------------------------------- dvc.yaml, read as YAML
INTERPOLATION = re.compile(r"\$\{\s*([^}]+?)\s*\}")


def load_vars(root: Path, dvc_yaml: dict) -> dict:
    """params.yaml plus the ``vars`` of dvc.yaml (files and inline mappings), merged."""
    merged = {}
    for entry in ["params.yaml", *dvc_yaml.get("vars", [])]:
        if isinstance(entry, dict):
            merged |= entry
        elif (root / entry.split(":")[0]).is_file():
            merged |= yaml.safe_load((root / entry.split(":")[0]).read_text()) or {}
    return merged


def resolve(text: str, variables: dict) -> str | None:
    """``${a.b}`` replaced by its value; None when some name does not resolve."""

    def lookup(match):
        value = variables
        for key in match.group(1).split("."):
            if not isinstance(value, dict) or key not in value:
                raise KeyError(match.group(1))
            value = value[key]
        return str(value)

    try:
        return INTERPOLATION.sub(lookup, text)
    except KeyError:
        return None


def normalise(path: str) -> str:
    return posixpath.normpath(path.strip()).rstrip("/")


def entries(items, variables: dict) -> list[str]:
    """Resolved, normalised paths of a deps/outs list (entries may be ``{path: options}``)."""
    paths = [next(iter(item)) if isinstance(item, dict) else item for item in items or []]
    resolved = (resolve(str(p), variables) for p in paths)
    return [normalise(p) for p in resolved if p is not None]


def read_stages(root: Path) -> dict[str, dict]:
    """Stage name -> {"notebook", "deps", "outs"}, interpolations resolved (unresolvable entries skipped)."""
    dvc_yaml = yaml.safe_load((root / "dvc.yaml").read_text())
    variables = load_vars(root, dvc_yaml)
    stages = {}
    for name, stage in dvc_yaml["stages"].items():
        cmd = stage.get("cmd", "")
        cmd = " ".join(cmd) if isinstance(cmd, list) else str(cmd)
        notebook = re.search(r"notebooks/\S+?\.ipynb", resolve(cmd, variables) or cmd)
        stages[name] = {
            "notebook": notebook.group(0) if notebook else None,
            "deps": entries(stage.get("deps"), variables),
            "outs": entries(stage.get("outs"), variables),
        }
    return stages


def covers(dep: str, path: str) -> bool:
    """A dep covers a file when it is the file or a folder above it."""
    return dep in (".", path) or path.startswith(dep + "/")


# --------------------------------------------------------------------------- test 1
def missing_module_deps(root: Path) -> dict[str, list[str]]:
    """Stage -> the paperlib files its notebook can execute that its deps do not cover."""
    missing = {}
    for name, stage in read_stages(root).items():
        if stage["notebook"] is None:
            continue
        closure = import_closure(code_cells(root / stage["notebook"]), root)  # has paperlib/__init__.py
        uncovered = sorted(f for f in closure if not any(covers(d, f) for d in stage["deps"]))
        if uncovered:
            missing[name] = uncovered
    return missing


def test_stage_deps_cover_import_closure():
    """Every paperlib module a stage's notebook imports, directly, lazily or transitively, is a dep."""
    stages = read_stages(ROOT)
    assert any(s["notebook"] for s in stages.values()), "no stage runs a notebooks/*.ipynb"
    missing = missing_module_deps(ROOT)
    listing = "\n".join(f"  {stage}: {', '.join(files)}" for stage, files in missing.items())
    if missing:
        pytest.fail(f"dvc.yaml stage deps miss paperlib modules their notebook imports:\n{listing}", pytrace=False)


# Which tracks the teacher transcribes and whether it keeps encoder states: the only training settings it may read.
TEACHER_INPUTS = {"train.data", "train.checkpoint", "train.cache_frames"}


def stage_params(root: Path) -> dict[str, list[str]]:
    """Stage -> its params entries (dotted keys or whole sections), as dvc.yaml lists them."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    return {name: [p for p in stage.get("params", []) if isinstance(p, str)] for name, stage in stages.items()}


def test_transcription_and_training_stay_apart():
    """A stage with `asr` settings reads no checkpoint and no training setting beyond what the teacher transcribes;
    the stages writing the checkpoint or the LIVI vectors have no `asr` setting: retraining never transcribes again
    and a change of decoding never re-embeds."""
    stages, params = read_stages(ROOT), stage_params(ROOT)
    variables = load_vars(ROOT, yaml.safe_load((ROOT / "dvc.yaml").read_text()))
    checkpoint, embeddings = (normalise(variables["paths"][key]) for key in ("checkpoint", "embeddings"))
    for name, keys in params.items():
        asr = any(k == "asr" or k.startswith("asr.") for k in keys)
        training = {k for k in keys if k == "train" or k.startswith("train.")} - TEACHER_INPUTS
        if asr:
            assert checkpoint not in stages[name]["deps"], f"{name} has asr settings and reads the checkpoint"
            assert not training, f"{name} has asr settings and training settings {sorted(training)}"
        if checkpoint in stages[name]["outs"] or embeddings in stages[name]["outs"]:
            assert not asr, f"{name} writes {stages[name]['outs']} and has asr settings"
    assert any(any(k.startswith("asr") for k in keys) for keys in params.values())
    assert any(embeddings in s["outs"] for s in stages.values()) and any(
        checkpoint in s["outs"] for s in stages.values()
    )


FAKE_PACKAGES = {
    "lazy import inside a function": (
        {"pkg/__init__.py": "", "pkg/a.py": "def f():\n    from pkg import b\n", "pkg/b.py": ""},
        "from pkg.a import f",
        {"pkg/__init__.py", "pkg/a.py", "pkg/b.py"},
    ),
    "a name from the package maps to __init__": (
        {"pkg/__init__.py": "RATE = 1\n", "pkg/b.py": ""},
        "from pkg import RATE",
        {"pkg/__init__.py"},
    ),
    "relative imports": (
        {"pkg/__init__.py": "", "pkg/a.py": "from . import b\nfrom .c import x\n", "pkg/b.py": "", "pkg/c.py": "x = 1"},
        "import pkg.a",
        {"pkg/__init__.py", "pkg/a.py", "pkg/b.py", "pkg/c.py"},
    ),
    "transitive through __init__": (
        {"pkg/__init__.py": "from .d import y\n", "pkg/d.py": "import pkg.e\n", "pkg/e.py": ""},
        "import pkg",
        {"pkg/__init__.py", "pkg/d.py", "pkg/e.py"},
    ),
    "subpackage": (
        {"pkg/__init__.py": "", "pkg/sub/__init__.py": "", "pkg/sub/e.py": "from .. import b\n", "pkg/b.py": ""},
        "from pkg.sub import e",
        {"pkg/__init__.py", "pkg/sub/__init__.py", "pkg/sub/e.py", "pkg/b.py"},
    ),
    "other packages and magics ignored": (
        {"pkg/__init__.py": "", "pkg/a.py": ""},
        "%matplotlib inline\n!ls\nimport pkgx.a\nimport os",
        set(),
    ),
}


@pytest.mark.parametrize("files,cell,expected", FAKE_PACKAGES.values(), ids=FAKE_PACKAGES.keys())
def test_import_closure_on_fake_package(tmp_path, files, cell, expected):
    """The closure helpers find lazy, relative, transitive and name imports in a notebook."""
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    notebook = tmp_path / "nb.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(cell)]), notebook)
    assert import_closure(code_cells(notebook), tmp_path, package="pkg") == expected


# --------------------------------------------------------------------------- test 2: DVC in a copy
def run(cmd: list[str], cwd: Path) -> str:
    env = os.environ | {"DVC_NO_ANALYTICS": "1"}
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


def dvc(*args: str, cwd: Path) -> str:
    return run([sys.executable, "-m", "dvc", *args], cwd)


def fake_outputs(repo: Path, stages: dict) -> None:
    """A placeholder for every missing out (a file when the name has a suffix, else a folder)."""
    for out in (o for s in stages.values() for o in s["outs"]):
        path = repo / out
        if path.exists():
            continue
        if path.suffix:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text("placeholder\n")
        else:
            path.mkdir(parents=True)
            (path / "placeholder").write_text("placeholder\n")


def changed_deps(status: dict) -> dict[str, dict[str, str]]:
    """``dvc status --json`` -> stage -> {dep: "modified" | "deleted" | ...} (stages with none left out)."""
    changed = {}
    for stage, reports in status.items():
        for report in reports:
            if isinstance(report, dict) and report.get("changed deps"):
                changed.setdefault(stage, {}).update(report["changed deps"])
    return {k: v for k, v in changed.items() if v}


def choose_module(stages: dict, repo: Path) -> str:
    """A paperlib file declared by some stages, preferring PREFERRED_MODULE, then some-but-not-all."""
    files = sorted(str(p.relative_to(repo)) for p in (repo / PACKAGE).rglob("*.py"))
    declared = {f: {n for n, s in stages.items() if any(covers(d, f) for d in s["deps"])} for f in files}
    partial = [f for f in files if 0 < len(declared[f]) < len(stages)]
    anywhere = [f for f in files if declared[f]]
    for pool in (partial, anywhere):
        if pool:
            return PREFERRED_MODULE if PREFERRED_MODULE in pool else pool[0]
    pytest.fail(f"no stage in dvc.yaml declares any {PACKAGE}/*.py file")


def downstream(stages: dict, marked: set[str]) -> set[str]:
    """Marked stages plus every stage fed, transitively, by one of their outs."""
    result, grew = set(marked), True
    while grew:
        feeds = {o for n in result for o in stages[n]["outs"]}
        more = {n for n, s in stages.items() if any(covers(o, d) or covers(d, o) for d in s["deps"] for o in feeds)}
        grew = bool(more - result)
        result |= more
    return result


def dry_run_stages(repo: Path) -> set[str]:
    """Stages ``dvc repro --dry --force-downstream`` would run."""
    output = dvc("repro", "--dry", "--force-downstream", "--no-run-cache", cwd=repo)
    return set(re.findall(r"^Running stage '([^']+)'", output, flags=re.M))


def test_dvc_status_marks_downstream_stages(tmp_path):
    """Editing a module marks exactly the stages that declare it, and every stage that imports it.

    In a copy of the repository every out gets a placeholder and ``dvc commit -f`` records the
    current state, so ``dvc status`` starts clean. A comment appended to one paperlib module must
    then show up as a "modified" changed dep of exactly the stages whose deps cover it; those must
    include every stage whose notebook imports it (so dropping the dep from dvc.yaml fails here too).

    Downstream: plain ``dvc repro --dry`` lists only the marked stages, because DVC reruns a
    downstream stage only when the upstream run actually changes its outs, which a dry run cannot
    know. So the check uses ``--force-downstream``: it must list the marked stages and the stages
    fed by their outs (transitively, from dvc.yaml), and nothing else.
    """
    copy_worktree(ROOT, tmp_path)
    stages = read_stages(tmp_path)
    fake_outputs(tmp_path, stages)
    dvc("commit", "-f", cwd=tmp_path)
    baseline = changed_deps(json.loads(dvc("status", "--json", cwd=tmp_path)))
    assert not baseline, f"dvc status not clean after dvc commit: {baseline}"

    module = choose_module(stages, tmp_path)
    with open(tmp_path / module, "a") as f:
        f.write("\n# touched by test_dvc_status_marks_downstream_stages\n")
    changed = changed_deps(json.loads(dvc("status", "--json", cwd=tmp_path)))
    marked = {n for n, deps in changed.items() if any(covers(d, module) and v == "modified" for d, v in deps.items())}
    declaring = {n for n, s in stages.items() if any(covers(d, module) for d in s["deps"])}
    assert marked == declaring, f"{module}: dvc status marks {sorted(marked)}, dvc.yaml declares {sorted(declaring)}"
    mentioning = {n for n, deps in changed.items() if any(covers(d, module) for d in deps)}
    assert mentioning <= declaring, f"{module} mentioned by undeclaring stages {sorted(mentioning - declaring)}"

    assert dry_run_stages(tmp_path) == downstream(stages, marked)

    importing = {
        n
        for n, s in stages.items()
        if s["notebook"] and module in import_closure(code_cells(tmp_path / s["notebook"]), tmp_path)
    }
    assert importing <= marked, f"{module} is imported by stages dvc does not rerun: {sorted(importing - marked)}"
