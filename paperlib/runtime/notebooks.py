"""Running a pipeline notebook: papermill in a new kernel that starts on the pinned CPU kernels (runtime.kernels).

    python -m paperlib.runtime.notebooks notebooks/03_teacher.ipynb [OUT]

OUT defaults to notebooks/executed/<name> beside the notebook. The notebook reads its settings from params.yaml (its
`parameters` cell), so this runs exactly what the notebook's `dvc repro` stage runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from paperlib.runtime import kernels


def executed_path(notebook: str | Path) -> Path:
    """notebooks/X.ipynb -> notebooks/executed/X.ipynb."""
    notebook = Path(notebook)
    return notebook.parent / "executed" / notebook.name


def run(notebook: str | Path, out: str | Path | None = None) -> Path:
    """Execute `notebook` with papermill (kernel python3, no parameters) into `out`; returns `out`. The kernel process
    inherits this one's environment: KERNELS pinned, idle OpenMP threads sleeping (OMP_WAIT_POLICY=PASSIVE)."""
    import papermill

    kernels.pin()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    out = Path(out) if out else executed_path(notebook)
    papermill.execute_notebook(str(notebook), str(out), kernel_name="python3")
    return out


if __name__ == "__main__":
    run(*sys.argv[1:3])
