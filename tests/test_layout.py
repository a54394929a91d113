"""The package's imports resolve: every `from paperlib... import name` anywhere (functions included) in paperlib/,
benchmarks/ and the notebooks names a module that exists and a name it defines, so a moved module cannot leave a
stale import behind in code that only runs on some path."""

import ast
import importlib
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def sources() -> dict[str, str]:
    found = {
        str(p.relative_to(ROOT)): p.read_text() for d in ("paperlib", "benchmarks") for p in (ROOT / d).rglob("*.py")
    }
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(notebook.read_text())["cells"]
        code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
        found[str(notebook.relative_to(ROOT))] = "\n".join(
            line for line in code.splitlines() if not line.lstrip().startswith(("%", "!"))
        )
    return found


def paperlib_imports(source: str) -> list[tuple[str, str]]:
    """(module, name) of every `from paperlib... import name` (relative imports are not used)."""
    pairs = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "paperlib":
            pairs += [(node.module, alias.name) for alias in node.names]
        elif isinstance(node, ast.Import):
            pairs += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "paperlib"]
    return pairs


@pytest.mark.parametrize("path,source", sorted(sources().items()), ids=sorted(sources()))
def test_every_paperlib_import_resolves(path, source):
    for module, name in paperlib_imports(source):
        loaded = importlib.import_module(module)
        if name and not hasattr(loaded, name):
            importlib.import_module(f"{module}.{name}")  # a submodule, or ModuleNotFoundError names the stale import
