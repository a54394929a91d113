"""paperlib.runtime.vectors: embeddings files read, validated and written; clique tables, labelled embeddings,
catalogues; track pooling and the stated precision of cosines. Expected values worked out by hand."""

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from paperlib.runtime import vectors
from paperlib.runtime.vectors import VectorError


# --------------------------------------------------------------------------- the validator
def test_check_vectors_returns_valid_rows_unchanged():
    x = np.array([[3.0, 4.0], [0.0, -2.0]])
    got = vectors.check_vectors(x, ["a", "b"], dim=2)
    assert got.dtype == np.float32 and got.tolist() == [[3.0, 4.0], [0.0, -2.0]]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([[1.0, 0.0], [np.nan, 1.0]], "q: vector of 'b' contains NaN or infinite values"),
        ([[1.0, 0.0], [np.inf, 1.0]], "q: vector of 'b' contains NaN or infinite values"),
        ([[0.0, 0.0], [0.0, 1.0]], "q: vector of 'a' is a zero vector"),
        ([[1.0, 0.0, 0.0]], "q: expected 2 rows of one dimension, got shape (1, 3)"),
        ([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], "q: dimension 3 does not match the expected 2"),
    ],
)
def test_check_vectors_names_what_and_the_first_bad_id(rows, message):
    with pytest.raises(VectorError) as caught:
        vectors.check_vectors(np.array(rows), ["a", "b"], dim=2, what="q")
    assert str(caught.value) == message


def test_vector_error_is_a_value_error():
    assert issubclass(VectorError, ValueError)


def test_track_embedding_is_renormalised_mean_of_normalised_chunks():
    """Chunks [2, 0] and [0, 5] → unit [1, 0] and [0, 1] → mean [.5, .5] → [1/√2, 1/√2]; a vector is one chunk."""
    np.testing.assert_allclose(vectors.track_embedding(np.array([[2.0, 0.0], [0.0, 5.0]])), [2**-0.5, 2**-0.5])
    np.testing.assert_allclose(vectors.track_embedding(np.array([3.0, 4.0])), [0.6, 0.8], rtol=1e-6)


# --------------------------------------------------------------------------- embeddings files
@pytest.fixture
def npz(tmp_path):
    """a: a vector [3, 4]; b: chunks [1, 0], [0, 2]; c: chunks [3, 4], [0, -5] (unit: [.6, .8], [0, -1])."""
    path = tmp_path / "e.npz"
    vectors.write_embeddings(
        path, {"a": np.array([3.0, 4.0]), "b": np.array([[1.0, 0.0], [0.0, 2.0]]), "c": np.array([[3, 4], [0, -5]])}
    )
    return path


def test_read_embeddings_pools_chunks_into_unit_track_vectors_in_id_order(npz):
    # c: mean of [.6, .8] and [0, -1] = [.3, -.1], norm √.1 → [3/√10, -1/√10]
    expected = [[10**-0.5 * 3, -(10**-0.5)], [2**-0.5, 2**-0.5], [0.6, 0.8]]
    np.testing.assert_allclose(vectors.read_embeddings(npz, ["c", "b", "a"]), expected, rtol=1e-6)
    ids, matrix = vectors.read_vectors(npz)
    assert ids == ["a", "b", "c"] and matrix.dtype == np.float32 and matrix.shape == (3, 2)
    assert list(vectors.read_vector_map(npz)) == ["a", "b", "c"]


def _write(path, **arrays):
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        ({"a": [1.0, 0.0], "b": [np.nan, 1.0]}, "vector of 'b' contains NaN or infinite values"),
        ({"a": [1.0, 0.0], "b": [[1.0, 0.0], [0.0, 0.0]]}, "vector of 'b' is a zero vector"),  # one chunk is zero
        ({"a": [1.0, 0.0, 0.0], "b": [1.0, 0.0]}, "vector of 'b' has dimension 2, the others 3"),
        ({"a": [1.0, 0.0], "b": np.ones((2, 2, 2))}, "vector of 'b' has shape (2, 2, 2); expected (d,) or (chunks, d)"),
    ],
)
def test_read_embeddings_rejects_a_bad_vector_naming_file_and_id(tmp_path, arrays, message):
    path = _write(tmp_path / "bad.npz", **{k: np.array(v) for k, v in arrays.items()})
    with pytest.raises(VectorError) as caught:
        vectors.read_embeddings(path, ["a", "b"])
    assert str(caught.value) == f"{path}: {message}"


def test_read_embeddings_file_errors_are_one_line(npz, tmp_path):
    cases = {
        "1 id(s) of the clique table are missing from {p}: zzz": (npz, ["a", "zzz"]),
        "embeddings file {p} is empty": (_write(tmp_path / "empty.npz"), ["a"]),
        "embeddings file not found: {p}": (tmp_path / "nope.npz", ["a"]),
        "embeddings file {p} is not a readable .npz (ValueError)": (tmp_path / "x.npz", ["a"]),
    }
    (tmp_path / "x.npz").write_text("hello")
    for message, (path, ids) in cases.items():
        with pytest.raises(VectorError) as caught:
            vectors.read_embeddings(path, ids)
        assert str(caught.value) == message.format(p=path)


def test_a_shard_directory_is_read_and_validated_like_an_npz(tmp_path):
    from paperlib.runtime import shards

    writer = shards.ShardWriter(tmp_path / "run")
    writer.write([{"id": "a", "status": "ok", "vector": np.array([3.0, 4.0])}])
    writer.write([{"id": "b", "status": "ok", "vector": np.array([0.0, 2.0])}, {"id": "c", "status": "error"}])
    ids, matrix = vectors.read_vectors(tmp_path / "run")
    assert ids == ["a", "b"]
    np.testing.assert_allclose(matrix, [[0.6, 0.8], [0.0, 1.0]], rtol=1e-6)
    shards.ShardWriter(tmp_path / "bad").write([{"id": "z", "status": "ok", "vector": np.zeros(2)}])
    with pytest.raises(VectorError, match=r"bad: vector of 'z' is a zero vector$"):
        vectors.read_vectors(tmp_path / "bad")
    (tmp_path / "none").mkdir()
    with pytest.raises(VectorError, match=r"^no shards \(part-\*\.parquet\) in "):
        vectors.read_vectors(tmp_path / "none")


def test_write_embeddings_is_float32_reproducible_and_refuses_bad_vectors(npz, tmp_path):
    with np.load(npz) as archive:
        assert archive.files == ["a", "b", "c"] and archive["c"].dtype == np.float32
        np.testing.assert_array_equal(archive["c"], [[3.0, 4.0], [0.0, -5.0]])
    for name in ("once.npz", "twice.npz"):
        vectors.write_embeddings(tmp_path / name, vectors.read_vector_map(npz))
    assert (tmp_path / "once.npz").read_bytes() == (tmp_path / "twice.npz").read_bytes()
    with pytest.raises(VectorError, match=r"out.npz: vector of 'n' contains NaN"):
        vectors.write_embeddings(tmp_path / "out.npz", {"n": np.array([np.nan, 1.0])})
    assert not (tmp_path / "out.npz").exists()


# --------------------------------------------------------------------------- tables with the vectors
def _csv(path, text):
    path.write_text(text)
    return path


def test_read_cliques_and_its_one_line_errors(tmp_path):
    assert vectors.read_cliques(_csv(tmp_path / "c.csv", "id,clique,title\na,w1,x\nb,w2,y\n")) == (
        ["a", "b"],
        ["w1", "w2"],
    )
    cases = {
        "id,work\na,w\n": "lacks column(s) clique (has: id, work)",
        "id,clique\n": "has no rows",
        "id,clique\na,w\na,v\n": "lists id(s) more than once: a",
        "id,clique\na,\n": "has empty id or clique values",
    }
    for text, message in cases.items():
        path = _csv(tmp_path / "bad.csv", text)
        with pytest.raises(VectorError) as caught:
            vectors.read_cliques(path)
        assert str(caught.value) == f"clique table {path} {message}"
    with pytest.raises(VectorError, match="clique table not found"):
        vectors.read_cliques(tmp_path / "nope.csv")


def test_read_labelled_keeps_the_tracks_with_an_embedding_in_table_order(npz, tmp_path):
    table = _csv(tmp_path / "c.csv", "id,clique\nc,w1\nx,w1\na,w2\n")  # x: no embedding (instrumental)
    ids, matrix, cliques = vectors.read_labelled(npz, table)
    assert ids == ["c", "a"] and cliques == ["w1", "w2"]
    np.testing.assert_allclose(matrix[1], [0.6, 0.8], rtol=1e-6)
    with pytest.raises(VectorError, match="no track of .* has an embedding in"):
        vectors.read_labelled(npz, _csv(tmp_path / "d.csv", "id,clique\nx,w\n"))


def test_read_catalogue_finds_the_manifest_next_to_the_npz(npz, tmp_path):
    assert vectors.read_catalogue(npz)[2] is None  # no manifest: no paths
    pd.DataFrame({"id": ["a", "c"], "path": ["a.wav", "c.wav"]}).to_csv(npz.with_suffix(".manifest.csv"), index=False)
    ids, matrix, paths = vectors.read_catalogue(npz)
    assert ids == ["a", "b", "c"] and paths == ["a.wav", "", "c.wav"] and matrix.shape == (3, 2)
    with pytest.raises(VectorError, match="manifest not found: "):
        vectors.read_catalogue(npz, tmp_path / "nope.csv")
    with pytest.raises(VectorError, match="lacks column"):
        vectors.read_catalogue(npz, _csv(tmp_path / "m.csv", "id,file\na,a.wav\n"))


# --------------------------------------------------------------------------- precision, weight
def test_vectors_imports_no_torch():
    code = "import sys, paperlib.runtime.vectors; assert 'torch' not in sys.modules, 'torch imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
