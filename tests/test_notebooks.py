"""Stage notebooks take their settings from the parameters file: a papermill run without `-p` runs what
`dvc repro` runs, and `overrides` changes single settings."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def parameters_cell(path: Path) -> str:
    cells = [c for c in nbformat.read(path, as_version=4).cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{path.name}: one cell tagged 'parameters' expected"
    return cells[0].source


INPUTS = {"12_search": {"index": "", "query": "", "k": 10}}
"""Notebook-specific inputs besides the settings: what 12_search searches (an index file, a query recording, the
number of hits) is a question asked of the pipeline's outputs, not a setting of the pipeline, so it is no entry of
params.yaml; its defaults ("" = the evaluation set's own embeddings and first track) make the pipeline's run."""


def test_notebooks_are_numbered_in_pipeline_order_once_each():
    numbers = [int(p.stem.split("_")[0]) for p in NOTEBOOKS]
    assert numbers == list(range(1, len(NOTEBOOKS) + 1))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_parameters_are_the_file_and_overrides_only(path):
    """No notebook restates a setting: its parameters are the settings file and the overrides (plus, for the
    notebooks of INPUTS only, their inputs with the defaults the pipeline runs)."""
    names = {}
    exec(parameters_cell(path), {}, names)
    assert names == {"params": "params.yaml", "overrides": ""} | INPUTS.get(path.stem, {})


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_dvc_runs_the_notebook_without_parameters(path):
    """dvc.yaml passes no -p: the stage's command and a plain papermill rerun are the same run."""
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    (cmd,) = [s["cmd"] for s in stages.values() if f"notebooks/{path.name}" in s["cmd"]]
    assert " -p " not in cmd and " -y " not in cmd


def run_corpus_notebook(workdir: Path, *extra: str, check: bool = True) -> subprocess.CompletedProcess:
    """papermill on the corpus notebook in `workdir` (its params.yaml), executed copy at workdir/executed.ipynb."""
    notebook, out = ROOT / "notebooks/02_corpus.ipynb", workdir / "executed.ipynb"
    cmd = [sys.executable, "-m", "papermill", "-k", "python3", str(notebook), str(out), "--cwd", str(workdir), *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0 or not check, proc.stderr[-3000:]
    return proc


@pytest.fixture
def workdir(tmp_path):
    """A folder whose params.yaml is the repository's with the tiny corpus (seconds to generate)."""
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["corpus"]["kind"], params["corpus"]["size"] = "english", "tiny"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    return tmp_path


def test_papermill_without_parameters_uses_params_yaml(workdir):
    """The corpus stage's notebook alone writes the corpus params.yaml describes, where it says."""
    run_corpus_notebook(workdir)
    tracks = pd.read_csv(workdir / "data/corpus/tracks.csv")
    assert len(tracks) == 18 and tracks["work"].nunique() == 6  # the tiny corpus: 6 works × 3 versions
    counts = pd.read_csv(workdir / "results/corpus/tracks_per_split.csv")
    assert counts["tracks"].sum() == 18


def test_figures_are_shown_inline(workdir):
    """The figure the corpus stage saves is also an image output of its executed notebook; the progress bars
    are widgets, not text."""
    run_corpus_notebook(workdir)
    executed = nbformat.read(workdir / "executed.ipynb", as_version=4)
    outputs = [output for cell in executed.cells for output in cell.get("outputs", [])]
    assert sum("image/png" in output.get("data", {}) for output in outputs) == 1
    assert not any("IProgress not found" in output.get("text", "") for output in outputs)


def test_overrides_change_one_setting(workdir):
    """-p overrides "paths.results=..." moves the results and leaves the corpus where params.yaml puts it."""
    run_corpus_notebook(workdir, "-p", "overrides", "paths.results=elsewhere corpus.seed=3")
    assert (workdir / "elsewhere/corpus/tracks_per_split.csv").is_file()
    assert not (workdir / "results").exists()
    assert (workdir / "data/corpus/tracks.csv").is_file()


def test_bad_override_fails_with_the_key(workdir):
    proc = run_corpus_notebook(workdir, "-p", "overrides", "corpus.sise=tiny", check=False)
    assert proc.returncode != 0
    executed = json.dumps(json.loads((workdir / "executed.ipynb").read_text()))
    assert "corpus.sise is not a setting" in executed
