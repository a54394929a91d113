"""paperlib.runtime.engine and paperlib.runtime.shards, on the embedding job: the Ray engine gives the local engine's
statuses and vectors, a shard directory resumes without losing or repeating a track, and faults (a bad file, a dead
actor, a killed driver) lose nothing. One local Ray instance (2 CPUs) for the module; the model is the tiny random
checkpoint of conftest, the vocal detector the stand-in paperlib.lyrics.vocals.EnergyDetector."""

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
from conftest import save_tiny_checkpoint

from paperlib import SAMPLE_RATE
from paperlib.lyrics.vocals import EnergyDetector
from paperlib.model import inference
from paperlib.model.inference import TIMING_COLUMNS
from paperlib.runtime import shards
from paperlib.runtime.config import Config, Scale, Vocals
from paperlib.runtime.schema import MANIFEST_COLUMNS, read_table

VOCALS = Vocals(detector="silero", detector_model="")


@dataclasses.dataclass(frozen=True)
class DyingJob(inference.EmbedJob):
    """The embedding job whose model step kills its process at its first call while `marker` is absent (Ray
    restarts the actor)."""

    marker: str = ""

    def process_step(self, device):
        process = super().process_step(device)

        def dying(items):
            if not os.path.exists(self.marker):
                Path(self.marker).touch()
                os._exit(1)
            return process(items)

        return dying


@pytest.fixture(scope="module", autouse=True)
def workers_unpickle_this_module():
    """Ray workers cannot import this test module: its classes travel by value."""
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(sys.modules[__name__])


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"), VOCALS)


@pytest.fixture(scope="module")
def tracks(tmp_path_factory):
    """Tones of 12–70 s (1–3 vocal chunks), silence (instrumental) and bad files (errors): 10 inputs."""
    folder = tmp_path_factory.mktemp("audio")
    names = []
    for i, (seconds, hz) in enumerate([(45, 330), (12, 220), (70, 440), (31, 550), (20, 660), (38, 250)]):
        t = np.arange(seconds * 22_050) / 22_050
        sf.write(folder / f"tone{i}.wav", (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), 22_050)
        names.append(f"tone{i}.wav")
    sf.write(folder / "quiet.wav", np.zeros(5 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(200)))
    (folder / "notes.txt").write_text("not audio\n")
    names += ["quiet.wav", "corrupt.wav", "notes.txt", "missing.wav"]
    return [(Path(name).stem, folder / name) for name in names]


def settings(engine: str, shard_tracks: int = 256, **scale) -> Config:
    return dataclasses.replace(Config(), scale=Scale(engine=engine, shard_tracks=shard_tracks, **scale))


def job(checkpoint, cls=inference.EmbedJob, **extra):
    return dataclasses.replace(cls.of(checkpoint, VOCALS, Config(), detector=EnergyDetector), **extra)


def run(tracks, out, checkpoint, name, cls=inference.EmbedJob, **scale):
    return inference.embed_to(out, job(checkpoint, cls), tracks, settings(name, **scale))


@pytest.fixture(scope="module")
def local_run(tracks, checkpoint, tmp_path_factory):
    """The local engine's npz output (the reference)."""
    out = tmp_path_factory.mktemp("local") / "livi.npz"
    run(tracks, out, checkpoint, "local")
    return out


def npz(path) -> dict:
    with np.load(path) as archive:
        return {key: archive[key] for key in archive.files}


def assert_same_vectors(vectors: dict, reference: dict):
    assert sorted(vectors) == sorted(reference)
    for key, value in reference.items():
        np.testing.assert_allclose(vectors[key], value, atol=1e-5)


def test_ray_gives_the_local_statuses_and_vectors(ray_local, tracks, checkpoint, local_run, tmp_path):
    out = tmp_path / "livi.npz"
    run(tracks, out, checkpoint, "ray", track_batch=3, shard_tracks=4)
    local, remote = (read_table(p.with_suffix(".manifest.csv")) for p in (local_run, out))
    pd.testing.assert_frame_equal(remote, local)
    assert list(local["status"]) == ["ok"] * 6 + ["instrumental"] + ["error"] * 3
    assert_same_vectors(npz(out), npz(local_run))
    assert list(npz(out)) == list(npz(local_run))  # manifest order
    timings = pd.read_csv(out.with_suffix(".timings.csv"))
    assert (timings.loc[timings["status"] == "ok", TIMING_COLUMNS] > 0).all().all()


def test_a_rerun_skips_written_ids_and_completes_a_lost_shard(ray_local, tracks, checkpoint, local_run, tmp_path):
    from paperlib.retrieval.index import read_catalogue
    from paperlib.runtime.vectors import read_embeddings

    out = tmp_path / "livi"
    run(tracks[:5], out, checkpoint, "ray", shard_tracks=2)
    first = shards.shard_files(out)
    lost = shards.read_rows(out).set_index("id")
    first[0].unlink()  # as if the run had been killed before this shard was written
    (out / ".part-000099.parquet.tmp").write_bytes(b"half a shard")  # an interrupted write
    before = {p.name: p.stat().st_mtime_ns for p in first[1:]}
    manifest = run(tracks, out, checkpoint, "ray", shard_tracks=2)
    assert {p.name: p.stat().st_mtime_ns for p in first[1:]} == before  # written shards untouched
    rows = shards.read_rows(out)  # raises if an id were written twice
    assert sorted(rows["id"]) == sorted(i for i, _ in tracks) and not list(out.glob(".*tmp"))
    pd.testing.assert_frame_equal(read_table(out / "manifest.csv"), read_table(local_run.with_suffix(".manifest.csv")))
    assert list(manifest["status"]) == list(read_table(out / "manifest.csv")["status"])
    assert set(lost.index) <= set(rows["id"])
    assert_same_vectors(shards.read_vectors(out), npz(local_run))
    ids, vectors, paths = read_catalogue(out)  # what `paperlib index build` reads
    assert sorted(ids) == [i for i, _ in tracks[:6]] and paths == [str(dict(tracks)[i]) for i in ids]
    np.testing.assert_allclose(vectors, read_embeddings(local_run, ids), atol=1e-5)
    np.testing.assert_allclose(read_embeddings(out, ids[::-1]), vectors[::-1], atol=1e-6)  # what `evaluate` reads


def test_the_local_engine_writes_the_same_shards(tracks, checkpoint, local_run, tmp_path):
    out = tmp_path / "livi"
    run(tracks, out, checkpoint, "local", shard_tracks=4)
    assert len(shards.shard_files(out)) == 3
    assert_same_vectors(shards.read_vectors(out), npz(local_run))
    run(tracks, out, checkpoint, "local", shard_tracks=4)  # nothing left to do
    assert len(shards.shard_files(out)) == 3


def test_a_dead_actor_is_restarted_and_nothing_is_lost_or_repeated(ray_local, tracks, checkpoint, local_run, tmp_path):
    marker = tmp_path / "died-once"
    out = tmp_path / "livi"
    inference.embed_to(
        out, job(checkpoint, DyingJob, marker=str(marker)), tracks, settings("ray", track_batch=2, shard_tracks=3)
    )
    assert marker.exists()
    assert sorted(shards.read_rows(out)["id"]) == sorted(i for i, _ in tracks)
    pd.testing.assert_frame_equal(read_table(out / "manifest.csv"), read_table(local_run.with_suffix(".manifest.csv")))
    assert_same_vectors(shards.read_vectors(out), npz(local_run))


def test_a_shard_keeps_fields_its_first_row_lacks(tmp_path):
    """A failed track has no vocalness; a shard whose first row is one keeps the others' (pyarrow infers a table's
    columns from its first row alone)."""
    writer = shards.ShardWriter(tmp_path / "shards")
    writer.write([{"id": "bad", "status": "error"}, {"id": "ok", "status": "ok", "mean_vocalness": 0.9, "n_chunks": 2}])
    rows = shards.read_rows(tmp_path / "shards").set_index("id")
    assert rows.loc["ok", "mean_vocalness"] == 0.9 and rows.loc["ok", "n_chunks"] == 2
    assert pd.isna(rows.loc["bad", "mean_vocalness"])


DRIVER = """
import sys, time
sys.path.insert(0, {tests!r})
import test_engine as t
from paperlib.runtime import engine
from pathlib import Path
tracks = [(i, Path(p)) for i, p in {tracks!r}]
slow = engine.ProcessActor.__call__
def call(self, batch):
    time.sleep({delay})
    return slow(self, batch)
engine.ProcessActor.__call__ = call
from ray import cloudpickle
cloudpickle.register_pickle_by_value(t)
cloudpickle.register_pickle_by_value(engine)
t.run(tracks, Path({out!r}), Path({checkpoint!r}), "ray", track_batch=1, shard_tracks=1, address={address!r})
"""


def test_a_killed_driver_leaves_whole_shards_and_a_rerun_completes(ray_local, tracks, checkpoint, local_run, tmp_path):
    """A driver attached to the running Ray instance is killed (SIGKILL) once it has written two shards."""
    out = tmp_path / "livi"
    script = tmp_path / "driver.py"
    paths = [(i, str(p)) for i, p in tracks]
    tests = str(Path(__file__).parent)
    script.write_text(
        DRIVER.format(
            tests=tests,
            tracks=paths,
            delay=0.5,
            out=str(out),
            checkpoint=str(checkpoint),
            address=ray_local.get_runtime_context().gcs_address,
        )
    )
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while len(shards.shard_files(out)) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = shards.read_rows(out)
    assert 2 <= len(written) < len(tracks) and not (out / "manifest.csv").exists()
    run(tracks, out, checkpoint, "ray", track_batch=2, shard_tracks=4)
    assert sorted(shards.read_rows(out)["id"]) == sorted(i for i, _ in tracks)
    pd.testing.assert_frame_equal(read_table(out / "manifest.csv"), read_table(local_run.with_suffix(".manifest.csv")))
    assert_same_vectors(shards.read_vectors(out), npz(local_run))


def test_shards_refuse_an_id_twice(tmp_path):
    writer = shards.ShardWriter(tmp_path / "d")
    assert writer.write([{"id": "a", "status": "ok", "vector": np.ones(2, np.float32)}]) is not None
    assert writer.write([{"id": "a", "status": "ok", "vector": np.zeros(2, np.float32)}]) is None
    again = shards.ShardWriter(tmp_path / "d")
    assert (
        again.ids == {"a"}
        and again.write([{"id": "b", "status": "error", "vector": None}]).name == "part-000001.parquet"
    )
    assert list(shards.read_vectors(tmp_path / "d")) == ["a"]
    np.testing.assert_array_equal(shards.read_vectors(tmp_path / "d")["a"], np.ones(2))


def test_manifest_columns_of_a_shard_directory(tracks, checkpoint, tmp_path):
    out = tmp_path / "livi"
    run(tracks[6:], out, checkpoint, "local")
    assert list(read_table(out / "manifest.csv").columns) == MANIFEST_COLUMNS
    assert list(read_table(out / "timings.csv").columns) == ["id", "status", "duration_s", "n_chunks", *TIMING_COLUMNS]


def test_cli_writes_a_shard_folder_that_index_and_evaluate_read(checkpoint, speak, tmp_path, capsys):
    """`embed --out FOLDER` (local engine, Silero on Piper speech), then `index build` and `evaluate` on the folder."""
    import json

    from paperlib.cli import main

    audio = tmp_path / "audio"
    audio.mkdir()
    speech = speak("I walked along the river in the evening light. The city lights were shining on the water.")
    for name, gain in (("a", 0.5), ("b", 0.25), ("c", 0.4)):
        sf.write(audio / f"{name}.wav", speech * gain / np.abs(speech).max(), SAMPLE_RATE)
    (audio / "d.wav").write_bytes(b"RIFF junk")
    out = tmp_path / "emb"
    assert main(["embed", str(audio), "--model", str(checkpoint), "--out", str(out), "--engine", "local"]) == 0
    assert list(read_table(out / "manifest.csv")["status"]) == ["ok", "ok", "ok", "error"]
    assert main(["index", "build", str(out), "--out", str(tmp_path / "x.index")]) == 0
    pd.DataFrame({"id": ["a", "b", "c"], "clique": ["w", "w", "w"]}).to_csv(tmp_path / "cliques.csv", index=False)
    capsys.readouterr()
    assert main(["evaluate", str(out), str(tmp_path / "cliques.csv")]) == 0
    assert json.loads(capsys.readouterr().out)["queries"] == 3


def test_cli_user_errors_of_the_engine_options(checkpoint, tracks, tmp_path, capsys):
    audio = str(tracks[0][1])
    model = ["--model", str(checkpoint)]
    assert main_args(["embed", audio, *model, "--out", str(tmp_path / "emb"), "--manifest", "m.csv"]) == 2
    assert "go with an .npz OUT" in capsys.readouterr().err
    assert main_args(["embed", audio, *model, "--out", str(tmp_path / "e.npz"), "--set", "scale.engine=spark"]) == 2
    assert "scale.engine must be one of local, ray" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main_args(["embed", audio, *model, "--out", str(tmp_path / "e.npz"), "--engine", "spark"])


def main_args(argv):
    from paperlib.cli import main

    return main(argv)


def test_a_shard_folder_of_other_settings_is_not_resumed(tracks, checkpoint, tmp_path):
    """A folder's shards resume only the same job: other vocal settings are a one-line ShardError naming them,
    and nothing is written."""
    out = tmp_path / "livi"
    run(tracks[:2], out, checkpoint, "local")
    written = shards.shard_files(out)
    other = dataclasses.replace(job(checkpoint), vocals=dataclasses.replace(VOCALS, min_mean_vocalness=0.9))
    with pytest.raises(shards.ShardError, match=r"holds shards of a run with other settings \(vocals\)"):
        inference.embed_to(out, other, tracks, settings("local"))
    assert shards.shard_files(out) == written
    run(tracks[:3], out, checkpoint, "local")  # the same job resumes
    assert len(shards.read_rows(out)) == 3
