"""Atomic writers: complete files or none, readable like any new file."""

import os

import numpy as np
import pandas as pd
import pytest

from paperlib.runtime import io


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


def test_rounded_gives_one_value_to_inputs_a_billionth_apart():
    assert io.rounded(0.5968587158454789) == io.rounded(0.5968587097746355) == 0.596859
    np.testing.assert_array_equal(io.rounded(np.array([0.1234564, 0.1234564 + 1e-9])), [0.123456, 0.123456])
    assert isinstance(io.rounded(np.float32(0.5)), float)


def test_single_values_are_kept_at_fewer_decimals_than_means():
    assert io.rounded(0.83751249, io.VALUE_DECIMALS) == io.rounded(0.83750751, io.VALUE_DECIMALS) == 0.8375
    assert io.VALUE_DECIMALS < io.DECIMALS


def test_p_values_keep_six_significant_digits():
    assert io.significant(3.3987111470364826e-14) == 3.39871e-14
    assert io.significant(0.2035343811398888) == 0.203534
    assert np.isnan(io.significant(np.array([np.nan, 1.0]))[0])


def test_rounded_tree_rounds_floats_only():
    from paperlib.runtime.io import rounded_tree

    tree = {"a": 0.123456789, "b": [1, 2.0000004, "x", True], "c": {"d": (0.5, None)}}
    assert rounded_tree(tree) == {"a": 0.123457, "b": [1, 2.0, "x", True], "c": {"d": [0.5, None]}}


def test_verified_names_the_file_and_both_digests(tmp_path):
    import hashlib

    from paperlib.runtime.io import ChecksumError, verified

    path = tmp_path / "weights.bin"
    path.write_bytes(b"weights")
    good = hashlib.sha256(b"weights").hexdigest()
    assert verified(path, good) == path
    with pytest.raises(ChecksumError) as raised:
        verified(path, "0" * 64)
    assert str(raised.value).count("\n") == 0 and good in str(raised.value) and "0" * 64 in str(raised.value)
