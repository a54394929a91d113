"""Atomic writers: complete files or none, readable like any new file."""

import os

import pandas as pd
import pytest

from paperlib import io


def test_written_files_get_the_umask_permissions(tmp_path):
    """mkstemp creates 0600 files; what a stage writes is readable as a plain open() would make it."""
    io.write_csv(pd.DataFrame({"a": [1]}), tmp_path / "t.csv")
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(tmp_path / "t.csv").st_mode & 0o777 == 0o666 & ~mask


def test_a_failed_write_leaves_nothing(tmp_path):
    (tmp_path / "keep.json").write_text("old\n")
    with pytest.raises(TypeError):
        io.write_json({"x": object()}, tmp_path / "keep.json")
    assert (tmp_path / "keep.json").read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["keep.json"]
