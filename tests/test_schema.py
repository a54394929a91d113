"""paperlib.runtime.schema: track tables (paths relative to the table's own folder), stage tables, timing paths."""

from pathlib import Path

import pandas as pd
import pytest

from paperlib.runtime.schema import read_table, read_tracks, timings_path


def test_corpus_paths_are_joined_to_the_corpus_folder(tmp_path):
    """data "corpus": <corpus>/tracks.csv, ids and works as text, paths under the corpus folder."""
    (tmp_path / "tracks.csv").write_text("id,work,path,split,snr_db\n007,01,audio/007.wav,train,\n")
    table = read_tracks("corpus", tmp_path)
    assert table.loc[0, ["id", "work", "path"]].tolist() == ["007", "01", str(tmp_path / "audio/007.wav")]
    assert pd.isna(table.loc[0, "snr_db"])


def test_user_csv_paths_are_relative_to_the_csv_not_the_working_directory(tmp_path, monkeypatch):
    """A user CSV follows the corpus' rule: relative paths join its own folder; absolute and empty stay."""
    (tmp_path / "lists").mkdir()
    (tmp_path / "lists" / "train.csv").write_text("id,path,split\n1,../audio/a.wav,train\n2,/abs/b.wav,val\n3,,val\n")
    monkeypatch.chdir(tmp_path / "lists")
    table = read_tracks(str(tmp_path / "lists" / "train.csv"))
    assert table["path"].tolist() == [str(tmp_path / "lists" / "../audio/a.wav"), "/abs/b.wav", ""]
    assert table["id"].tolist() == ["1", "2", "3"]


def test_track_table_without_split_is_an_error_naming_the_column(tmp_path):
    (tmp_path / "t.csv").write_text("id,path\na,a.wav\n")
    with pytest.raises(ValueError, match=r"t.csv lacks column\(s\) split"):
        read_tracks(str(tmp_path / "t.csv"))


def test_read_table_keeps_ids_as_text_and_empty_cells_empty(tmp_path):
    """Stage tables: ids "007" stay text, empty cells are "" (never NaN), numbers are numbers."""
    (tmp_path / "m.csv").write_text("id,status,reason,n_chunks\n007,ok,,2\n")
    row = read_table(tmp_path / "m.csv").iloc[0]
    assert (row["id"], row["reason"], row["n_chunks"]) == ("007", "", 2)


def test_timings_paths():
    """The teacher's own run (demo or no set) → runtime/teacher.csv; otherwise runtime/<set>/<system>.csv."""
    assert timings_path("rt", None, "teacher") == timings_path("rt", "demo", "teacher") == Path("rt/teacher.csv")
    assert timings_path("rt", "demo", "livi") == Path("rt/demo/livi.csv")
    assert timings_path("rt", "covers80", "teacher") == Path("rt/covers80/teacher.csv")
