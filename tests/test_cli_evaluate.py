"""`paperlib evaluate`: JSON on stdout; each bad input → one clear stderr line, exit 2, no traceback."""

import json
import subprocess
import sys

import numpy as np
import pytest
from test_metrics import CLIQUES, VECTORS

from paperlib.cli import main


@pytest.fixture
def inputs(tmp_path):
    emb = tmp_path / "emb.npz"
    np.savez(emb, **{f"t{i}": v for i, v in enumerate(VECTORS)})
    csv = tmp_path / "cliques.csv"
    csv.write_text("id,clique\n" + "".join(f"t{i},{c}\n" for i, c in enumerate(CLIQUES)))
    return tmp_path, emb, csv


def test_prints_one_json_object(inputs, capsys):
    _, emb, csv = inputs
    assert main(["evaluate", str(emb), str(csv)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert list(result) == ["MAP", "MAP10", "MR1", "HR1", "HR10", "HR100", "P10", "NAR", "queries"]
    assert result["queries"] == 5 and result["MR1"] == pytest.approx(2.6)


def write(path, text):
    path.write_text(text)
    return path


CASES = {
    "missing id": lambda d, emb, csv: (emb, write(d / "c.csv", "id,clique\nt0,A\nzzz,A\n"), "missing from"),
    "missing column": lambda d, emb, csv: (emb, write(d / "c.csv", "id,work\nt0,A\n"), "lacks column(s) clique"),
    "empty csv": lambda d, emb, csv: (emb, write(d / "c.csv", ""), "not a readable CSV"),
    "header only": lambda d, emb, csv: (emb, write(d / "c.csv", "id,clique\n"), "has no rows"),
    "no csv": lambda d, emb, csv: (emb, d / "nope.csv", "not found"),
    "no npz": lambda d, emb, csv: (d / "nope.npz", csv, "not found"),
    "not an npz": lambda d, emb, csv: (write(d / "x.npz", "hello"), csv, "not a readable .npz"),
    "nan vector": lambda d, emb, csv: (_npz(d, t1=[np.nan, 0, 0]), csv, "NaN"),
    "dimension mismatch": lambda d, emb, csv: (_npz(d, t1=[1.0, 0.0]), csv, "dimension 2"),
    "zero vector": lambda d, emb, csv: (_npz(d, t1=[0.0, 0.0, 0.0]), csv, "zero vector"),
    "empty npz": lambda d, emb, csv: (_empty_npz(d), csv, "is empty"),
}


def _npz(d, **override):
    arrays = {f"t{i}": v for i, v in enumerate(VECTORS)} | {k: np.array(v) for k, v in override.items()}
    np.savez(d / "bad.npz", **arrays)
    return d / "bad.npz"


def _empty_npz(d):
    np.savez(d / "empty.npz")
    return d / "empty.npz"


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_inputs_give_one_clear_line(inputs, capsys, case):
    emb, csv, message = CASES[case](*inputs)
    assert main(["evaluate", str(emb), str(csv)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("paperlib evaluate: error:") and message in lines[0]


def test_console_script_has_no_traceback(inputs):
    d, emb, _ = inputs
    bad = write(d / "c.csv", "id,clique\nt0,A\nghost,A\n")
    proc = subprocess.run(
        [sys.executable, "-m", "paperlib.cli", "evaluate", str(emb), str(bad)], capture_output=True, text=True
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "ghost" in proc.stderr
