"""Indexes larger than memory (paperlib.retrieval.two_tier, CoverIndex.build_file): a streamed build writes the
bytes faiss would, finds the neighbours of the same index built in memory, takes additions after a reopen, and
`paperlib index build` streams several files and shard folders. Small catalogues of random vectors."""

import io
import json

import faiss
import numpy as np
import pandas as pd
import pytest

from paperlib.cli import main
from paperlib.retrieval import two_tier
from paperlib.retrieval.index import CoverIndex, RetrievalError, normalise, training_sample
from paperlib.runtime.io import save_npz
from paperlib.runtime.shards import ShardWriter

DIM = 32
N = 3000
TWO_TIER = ["IVF8,PQ16x4fs,RFlat", "IVF8,PQ16x4fs,Refine(SQfp16)", "PCA16,IVF8,PQ8x4fs,Refine(SQ8)"]


@pytest.fixture(scope="module")
def tracks():
    rng = np.random.default_rng(7)
    x = normalise(rng.standard_normal((N, DIM)).astype(np.float32))
    return [f"t{i:05d}" for i in range(N)], x


def chunked(ids, x, size=700):
    return lambda: ((ids[lo : lo + size], x[lo : lo + size], None) for lo in range(0, len(ids), size))


@pytest.mark.parametrize("factory", TWO_TIER)
def test_streamed_codes_are_the_bytes_faiss_writes(tracks, factory):
    """First tier filled chunk by chunk, refine codes spooled: byte for byte faiss.serialize_index of the same
    index with every row added in memory."""
    _, x = tracks
    index = faiss.index_factory(DIM, factory, faiss.METRIC_INNER_PRODUCT)
    index.train(x)
    whole = faiss.clone_index(index)
    whole.add(x)
    codes = two_tier.Codes(two_tier.refine_tier(index).code_size)
    for lo in range(0, N, 700):
        two_tier.first_tier(index).add(x[lo : lo + 700])
        codes.append(two_tier.encode(index, x[lo : lo + 700]))
    out = io.BytesIO()
    two_tier.write(out, index, codes)
    assert out.getvalue() == faiss.serialize_index(whole).tobytes()


@pytest.mark.parametrize("factory", TWO_TIER[:2])
def test_a_streamed_index_finds_what_the_in_memory_one_finds(tracks, tmp_path, factory):
    ids, x = tracks
    params = "nprobe=4,k_factor_rf=8"
    on_disk = CoverIndex.build_file(tmp_path / "a.index", chunked(ids, x), factory, params, progress=False)
    in_memory = CoverIndex.build(ids, x, factory, search_params=params)
    assert on_disk.mapped and len(on_disk) == N and on_disk.ids == ids
    scores, rows = on_disk.search(x[:200], 10)
    expected_scores, expected_rows = in_memory.search(x[:200], 10)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_allclose(scores, expected_scores, rtol=1e-6)  # refine kernels: last-bit differences
    code_size = 4 * DIM if factory.endswith("RFlat") else 2 * DIM
    info = on_disk.info()
    assert info["mappable_bytes"] == N * code_size and info["memory_bytes_per_row"] < DIM


def test_add_to_a_mapped_two_tier_index_then_search_after_reopening(tracks, tmp_path):
    ids, x = tracks
    path = tmp_path / "a.index"
    CoverIndex.build_file(path, chunked(ids[:2000], x[:2000]), TWO_TIER[0], "nprobe=8,k_factor_rf=50", progress=False)
    index = CoverIndex.load(path, mapped=True)
    assert index.add(ids[2000:], x[2000:]) == 0
    with pytest.raises(RetrievalError, match="saved and loaded"):
        index.search(x[:1])
    assert index.add(["t00005"], -x[5:6], replace=True) == 1
    index.save(path)
    reopened = CoverIndex.load(path, mapped=True)
    everything = CoverIndex.build(ids, x, "Flat")  # exact, rows numbered as in the file
    everything.add(["t00005"], -x[5:6], replace=True)
    assert len(reopened) == N and reopened.info()["retired_rows"] == 1
    for query in (2500, 2999, 5):  # added tracks, and the replaced one: each its own nearest neighbour
        hits = reopened.search_ids(-x[query : query + 1] if query == 5 else x[query : query + 1], 3)[0]
        assert hits[0][0] == ids[query] and hits[0][1] == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_array_equal(reopened.search(x[:100], 10)[1], everything.search(x[:100], 10)[1])


def test_the_training_sample_ignores_order_and_chunking(tracks):
    ids, x = tracks
    sample = training_sample(chunked(ids, x, 700)(), 500)
    order = np.random.default_rng(0).permutation(N)
    shuffled = training_sample(chunked([ids[i] for i in order], x[order], 333)(), 500)
    assert sample.shape == (500, DIM)
    np.testing.assert_array_equal(sample, shuffled)
    assert len(training_sample(chunked(ids[:10], x[:10])(), 500)) == 10
    with pytest.raises(RetrievalError, match="no tracks to index"):
        training_sample(iter(()), 500)


def test_a_duplicate_id_across_chunks_leaves_no_file(tracks, tmp_path):
    ids, x = tracks
    repeated = [*ids[:1000], *ids[:10]]
    with pytest.raises(RetrievalError, match="already in the index"):
        CoverIndex.build_file(tmp_path / "a.index", chunked(repeated, np.vstack([x[:1000], x[:10]])), TWO_TIER[0])
    assert not any(tmp_path.iterdir())  # no index, no spool


def test_a_moved_refine_tier_is_a_corrupt_file(tracks, tmp_path):
    ids, x = tracks
    path = tmp_path / "a.index"
    CoverIndex.build_file(path, chunked(ids, x), TWO_TIER[0], progress=False)
    data = bytearray(path.read_bytes())
    faiss_bytes = CoverIndex.load(path, mapped=True)._faiss_bytes
    count_at = faiss_bytes - 4 - N * 4 * DIM - 8
    assert int.from_bytes(data[count_at : count_at + 8], "little") == N * DIM  # IndexFlat counts floats
    data[count_at] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(RetrievalError, match="corrupt"):
        CoverIndex.load(path, mapped=True)


def test_cli_builds_from_npz_files_and_shard_folders(tracks, tmp_path, capsys):
    """`index build A.npz SHARDS/ --factory …,RFlat`: every track of both, audio paths from each manifest, the
    same neighbours as an in-memory build; then `index add` and `search` on the file."""
    ids, x = tracks
    save_npz(tmp_path / "a.npz", dict(zip(ids[:1000], x[:1000])))
    pd.DataFrame({"id": ids[:1000], "path": [f"a/{i}.wav" for i in ids[:1000]]}).to_csv(
        tmp_path / "a.manifest.csv", index=False
    )
    writer = ShardWriter(tmp_path / "shards")
    for lo in range(1000, 2500, 500):
        writer.write([{"id": i, "status": "ok", "vector": v} for i, v in zip(ids[lo : lo + 500], x[lo : lo + 500])])
    out = tmp_path / "cat.index"
    factory, params = "IVF8,PQ16x4fs,RFlat", "nprobe=8,k_factor_rf=40"
    args = ["index", "build", tmp_path / "a.npz", tmp_path / "shards", "--out", out, "--factory", factory]
    assert main([str(a) for a in [*args, "--search-params", params, "--train", 2000]]) == 0
    assert "2500 tracks" in capsys.readouterr().err
    index = CoverIndex.load(out, mapped=True)
    assert index.ids == ids[:2500] and index.paths[999] == "a/t00999.wav" and index.paths[1000] == ""
    reference = CoverIndex.build(ids[:2500], x[:2500], factory, search_params=params)
    np.testing.assert_array_equal(index.search(x[:50], 10)[1], reference.search(x[:50], 10)[1])
    save_npz(tmp_path / "new.npz", dict(zip(ids[2500:], x[2500:])))
    assert main(["index", "add", str(out), str(tmp_path / "new.npz")]) == 0
    capsys.readouterr()
    assert main(["search", str(out), "--embeddings", str(tmp_path / "new.npz"), "--ids", "t02999", "-k", "1"]) == 0
    line = json.loads(capsys.readouterr().out)
    assert line["hits"][0]["id"] != "t02999" and len(line["hits"]) == 1  # not its own hit
    assert len(CoverIndex.load(out, mapped=True)) == N
