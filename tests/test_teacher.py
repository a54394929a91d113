"""paperlib.lyrics.teacher and `paperlib lyrics`: the teacher pipeline on a folder mixing good and bad
inputs (Piper speech, silence, corrupt/empty/non-audio files, 44.1 kHz stereo with a chord, a clip
Whisper hears as a known hallucination), with Silero VAD, Whisper tiny.en and all-MiniLM-L6-v2."""

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
import soxr
import torch
import yaml

from paperlib import SAMPLE_RATE, cli
from paperlib.lyrics import teacher
from paperlib.lyrics.asr import word_error_rate
from paperlib.lyrics.text_embedding import track_vector
from paperlib.runtime.config import Asr, Vocals
from paperlib.runtime.schema import CHUNK_COLUMNS, MANIFEST_COLUMNS, read_table

VOCALS = Vocals(detector="silero", detector_model="")  # the paper's chunking, Silero VAD
ASR = Asr()  # the paper's clean-up: min_words 4, max_repeats 3

SPEECH = "I walked along the river in the evening light. The city lights were shining on the water."
STEREO_SPEECH = "Hold my hand and never let me go. We can dance until the morning comes."
EXPECTED = {
    "a_speech": "ok",
    "b_silence": "instrumental",
    "c_corrupt": "error",
    "d_empty": "error",
    "e_notes": "error",
    "f_stereo44k": "ok",
    "g_thanks": "instrumental",
    "readme": "error",
}
OUTPUTS = [
    "manifest.csv",
    "chunks.csv",
    "chunk_text_embeddings.npy",
    "text_embeddings.npz",
    "timings.csv",
    "vocalness.npz",
]


def _with_chord(wave: np.ndarray, rate: int, snr_db: float) -> np.ndarray:
    """Add a soft A-major chord (220, 277.2, 329.6 Hz) at `snr_db` below the speech power."""
    t = np.arange(len(wave)) / rate
    chord = sum(np.sin(2 * np.pi * f * t) for f in (220.0, 277.18, 329.63))
    chord *= np.sqrt(np.mean(wave**2) / np.mean(chord**2) / 10 ** (snr_db / 10))
    return (wave + chord).astype(np.float32)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, speak):
    folder = tmp_path_factory.mktemp("lyrics_in")
    sf.write(folder / "a_speech.wav", speak(SPEECH), SAMPLE_RATE)
    sf.write(folder / "b_silence.wav", np.zeros(5 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    (folder / "c_corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 4)
    (folder / "d_empty.wav").write_bytes(b"")
    (folder / "e_notes.mp3").write_text("these are lyrics notes, not audio\n" * 20)
    stereo = soxr.resample(speak(STEREO_SPEECH), SAMPLE_RATE, 44_100)
    stereo = np.stack([_with_chord(stereo, 44_100, 15.0), _with_chord(0.8 * stereo, 44_100, 15.0)], axis=1)
    sf.write(folder / "f_stereo44k.flac", stereo, 44_100)
    sf.write(folder / "g_thanks.wav", speak("Thank you for watching. " * 3), SAMPLE_RATE)
    (folder / "skip.txt").write_text("not an input: folders only yield audio suffixes")
    readme = tmp_path_factory.mktemp("extra") / "readme.txt"
    readme.write_text("named explicitly, so it gets a row")
    return [str(folder), str(readme)]


def _lyrics(inputs, out, models_dir, *extra):
    """`paperlib lyrics` with Whisper tiny.en and MiniLM by offline name under models_dir, Silero, Whisper batch 2,
    the paper's compression-ratio threshold, on the CPU (the rest: vocals/asr values shared by both profiles)."""
    overrides = [
        "models.whisper=whisper-tiny.en",
        "models.text=all-MiniLM-L6-v2",
        f"paths.models={models_dir}",
        "vocals.detector=silero",
        "asr.batch_size=2",
        "scale.track_batch=2",
        "asr.language=en",
        "asr.compression_ratio_threshold=1.35",
        "device=cpu",
    ]
    return cli.main(["lyrics", *inputs, "--out", str(out), *[arg for o in overrides for arg in ("--set", o)], *extra])


@pytest.fixture(scope="module")
def lyrics_out(inputs, tmp_path_factory, models_dir, whisper_tiny_en, minilm):
    out = tmp_path_factory.mktemp("lyrics_out")
    assert _lyrics(inputs, out, models_dir) == 0
    return out


def test_manifest_has_one_row_per_input_with_its_status(lyrics_out, speak):
    manifest = pd.read_csv(lyrics_out / "manifest.csv", keep_default_na=False)
    assert list(manifest.columns) == MANIFEST_COLUMNS
    assert dict(zip(manifest.id, manifest.status)) == EXPECTED
    assert list(manifest.id) == list(EXPECTED)  # input order
    reasons = dict(zip(manifest.id, manifest.reason))
    assert reasons["d_empty"] == "empty file"
    assert reasons["g_thanks"] == "no lyrics transcribed"
    assert reasons["b_silence"].startswith("mean vocalness 0.0")  # silence: Silero ~0.003
    assert reasons["a_speech"] == "" and reasons["f_stereo44k"] == ""
    durations = dict(zip(manifest.id, manifest.duration_s))
    assert durations["b_silence"] == "5.0" and durations["c_corrupt"] == ""
    assert float(durations["f_stereo44k"]) == pytest.approx(len(speak(STEREO_SPEECH)) / SAMPLE_RATE, abs=1e-3)


def test_outputs_are_consistent(lyrics_out):
    manifest = pd.read_csv(lyrics_out / "manifest.csv", keep_default_na=False)
    chunks = pd.read_csv(lyrics_out / "chunks.csv", keep_default_na=False)
    matrix = np.load(lyrics_out / "chunk_text_embeddings.npy")
    tracks = np.load(lyrics_out / "text_embeddings.npz")
    assert list(chunks.columns) == CHUNK_COLUMNS
    assert matrix.dtype == np.float32 and matrix.shape == (len(chunks), 384)
    assert list(chunks.id.unique()) == ["a_speech", "f_stereo44k", "g_thanks"]
    n_chunks = dict(zip(manifest.id, manifest.n_chunks))
    for track_id, group in chunks.groupby("id", sort=False):
        assert list(group.chunk) == list(range(len(group))) and int(n_chunks[track_id]) == len(group)
    kept = chunks.kept.to_numpy(dtype=bool)
    np.testing.assert_allclose(np.linalg.norm(matrix[kept], axis=1), 1.0, atol=1e-5)
    assert not matrix[~kept].any()
    assert ((chunks.text == "") == ~kept).all()
    assert sorted(tracks.files) == sorted(manifest.id[manifest.status == "ok"])
    for track_id in tracks.files:
        rows = (chunks.id == track_id).to_numpy() & kept
        np.testing.assert_allclose(tracks[track_id], track_vector(matrix[rows]), atol=1e-6)
    # Whisper heard the lyrics; the hallucinated clip was transcribed, then dropped by the clean-up
    text = dict(zip(chunks.id, chunks.text))
    assert word_error_rate(SPEECH, text["a_speech"]) <= 0.2, text["a_speech"]
    assert word_error_rate(STEREO_SPEECH, text["f_stereo44k"]) <= 0.2, text["f_stereo44k"]
    thanks = chunks[chunks.id == "g_thanks"].iloc[0]
    assert not thanks.kept and "thank you for watching" in thanks.raw_text.lower()
    # tiny.en is English-only: every chunk is decoded in English, with certainty
    assert set(chunks.language) == {"en"} and (chunks.language_prob == 1.0).all()


def test_chunk_times_recut_the_teachers_chunks_exactly(tmp_path, inputs, tiny_transcriber, minilm_embedder):
    """chunks.csv start_s/end_s are exact sample times: cutting the track there gives the very chunk the
    teacher transcribed (training re-cuts chunks this way). The track's length is not a whole number of
    milliseconds, so times rounded to ms would cut its last samples off."""
    from paperlib.lyrics import vocals
    from paperlib.model.features import cut_chunk
    from paperlib.runtime import audio

    wave = sf.read(f"{inputs[0]}/a_speech.wav", dtype="float32")[0]
    wave = wave[: len(wave) // 16 * 16 - 5]
    sf.write(tmp_path / "odd.wav", wave, SAMPLE_RATE, subtype="FLOAT")
    detector = vocals.make_detector("silero")
    teacher.run_teacher(
        [("odd", tmp_path / "odd.wav")], tmp_path / "out", detector, tiny_transcriber, minilm_embedder, VOCALS, ASR
    )
    chunks = pd.read_csv(tmp_path / "out" / "chunks.csv")
    found = vocals.vocal_chunks(audio.load_audio(tmp_path / "odd.wav"), detector)
    assert len(found.chunks) == len(chunks) >= 1 and chunks.end_s.iloc[-1] * SAMPLE_RATE == len(wave)
    for row, chunk in zip(chunks.itertuples(), found.chunks):
        np.testing.assert_array_equal(cut_chunk(wave, row.start_s, row.end_s), chunk)


def test_no_temporary_files_left(lyrics_out):
    assert sorted(p.name for p in lyrics_out.iterdir()) == sorted([*OUTPUTS, "settings.json", "shards"])
    shard_files = ["job.json", "part-000000.parquet"]  # 8 tracks: one shard of scale.shard_tracks (256)
    assert sorted(p.name for p in (lyrics_out / "shards").iterdir()) == shard_files


@pytest.mark.slow
def test_lyrics_is_deterministic(lyrics_out, inputs, tmp_path, models_dir):
    assert _lyrics(inputs, tmp_path, models_dir) == 0
    for name in set(OUTPUTS) - {"timings.csv"}:  # timings are wall-clock measurements
        assert (tmp_path / name).read_bytes() == (lyrics_out / name).read_bytes(), name


def test_ray_engine_writes_the_local_engines_files_and_resumes(lyrics_out, inputs, tmp_path, models_dir, ray_local):
    """`--engine ray`: the same statuses, chunks and texts (Whisper batches of 2 tracks, as locally), vectors to
    float rounding; a rerun finds every track in OUT/shards/ and writes the same files."""
    assert _lyrics(inputs, tmp_path, models_dir, "--engine", "ray") == 0
    for name in ("manifest.csv", "chunks.csv"):
        assert (tmp_path / name).read_bytes() == (lyrics_out / name).read_bytes(), name
    np.testing.assert_allclose(
        np.load(tmp_path / "chunk_text_embeddings.npy"), np.load(lyrics_out / "chunk_text_embeddings.npy"), atol=1e-5
    )
    for name in ("text_embeddings.npz", "vocalness.npz"):
        with np.load(tmp_path / name) as remote, np.load(lyrics_out / name) as local:
            assert remote.files == local.files, name
            for key in local.files:
                np.testing.assert_allclose(remote[key], local[key], atol=1e-5)
    shards = sorted((tmp_path / "shards").glob("part-*.parquet"))
    assert _lyrics(inputs, tmp_path, models_dir, "--engine", "ray") == 0
    assert sorted((tmp_path / "shards").glob("part-*.parquet")) == shards
    assert (tmp_path / "chunks.csv").read_bytes() == (lyrics_out / "chunks.csv").read_bytes()


def _two_speech_tracks(tmp_path, inputs, peaks=(0.5, 0.5)):
    """The speech track at each peak level, named first, second, third."""
    wave = sf.read(f"{inputs[0]}/a_speech.wav", dtype="float32")[0]
    tracks = []
    for name, peak in zip(("first", "second", "third"), peaks):
        sf.write(tmp_path / f"{name}.wav", wave * (peak / np.abs(wave).max()), SAMPLE_RATE, subtype="FLOAT")
        tracks.append((name, tmp_path / f"{name}.wav"))
    return tracks


def test_tracks_share_whisper_batches_and_a_failing_batch_is_retried_track_by_track(
    tmp_path, inputs, tiny_transcriber, minilm_embedder
):
    """A batch mixing both tracks' chunks fails (as an out-of-memory would): each track is retried
    alone and both succeed with the same transcript."""
    from paperlib.lyrics import vocals

    calls = []

    class FailsOnBatches:
        batch_size = 8

        def run(self, chunks, progress=True, encoder_states=False):
            calls.append(len(chunks))
            if len(chunks) > 1:
                raise RuntimeError("decoder out of memory")
            return tiny_transcriber.run(chunks, progress, encoder_states)

    manifest = teacher.run_teacher(
        _two_speech_tracks(tmp_path, inputs),
        tmp_path / "out",
        vocals.make_detector("silero"),
        FailsOnBatches(),
        minilm_embedder,
        VOCALS,
        ASR,
    )
    assert calls == [2, 1, 1]  # one call for the window of two one-chunk tracks, then one per track
    assert list(manifest.status) == ["ok", "ok"] and list(manifest.n_chunks) == [1, 1]
    chunks = pd.read_csv(tmp_path / "out" / "chunks.csv", keep_default_na=False)
    assert list(chunks.id) == ["first", "second"] and chunks.text[0] == chunks.text[1]
    assert word_error_rate(SPEECH, chunks.text[0]) <= 0.2


def test_failure_inside_a_track_records_an_error_and_no_chunks(tmp_path, inputs, tiny_transcriber, minilm_embedder):
    from paperlib.lyrics import vocals

    class FailsOnLoudChunks:
        batch_size = 8

        def run(self, chunks, progress=True, encoder_states=False):
            if np.abs(chunks).max() > 0.9:
                raise RuntimeError("decoder out of memory")
            return tiny_transcriber.run(chunks, progress, encoder_states)

    tracks = _two_speech_tracks(tmp_path, inputs, peaks=(0.95, 0.5))
    manifest = teacher.run_teacher(
        tracks, tmp_path / "out", vocals.make_detector("silero"), FailsOnLoudChunks(), minilm_embedder, VOCALS, ASR
    )
    assert list(manifest.status) == ["error", "ok"]
    assert manifest.reason[0] == "RuntimeError: decoder out of memory"
    assert pd.isna(manifest.n_chunks[0])
    chunks = pd.read_csv(tmp_path / "out" / "chunks.csv")
    assert list(chunks.id) == ["second"]
    assert np.load(tmp_path / "out" / "chunk_text_embeddings.npy").shape == (1, 384)


def test_asr_settings_drive_the_clean_up(tmp_path, inputs, tiny_transcriber, minilm_embedder):
    """asr_settings.min_words above the transcript's length drops every chunk: the track becomes instrumental;
    the wall-clock timings go to timings_path instead of out_dir."""
    from paperlib.lyrics import vocals

    manifest = teacher.run_teacher(
        _two_speech_tracks(tmp_path, inputs, peaks=(0.5,)),
        tmp_path / "out",
        vocals.make_detector("silero"),
        tiny_transcriber,
        minilm_embedder,
        VOCALS,
        Asr(min_words=100),
        timings_path=tmp_path / "runtime" / "teacher.csv",
    )
    assert (manifest.status[0], manifest.reason[0]) == ("instrumental", "no lyrics transcribed")
    assert not pd.read_csv(tmp_path / "out" / "chunks.csv")["kept"].any()
    assert (tmp_path / "runtime" / "teacher.csv").is_file() and not (tmp_path / "out" / "timings.csv").exists()


def test_encoder_states_are_kept_for_training(tmp_path, inputs, tiny_transcriber, minilm_embedder, whisper_tiny_en):
    """keep_encoder_states: encoder_states.npy row i belongs to chunks.csv row i (a failed track has none).
    Training pairs for the same Whisper are those states and equal what training's own encoder computes
    from the re-cut chunks; for another Whisper they are log-mel; a rerun without keeping removes them."""
    import json

    from paperlib.lyrics import vocals
    from paperlib.model.livi import HeadConfig, LiviHead, LiviModel, load_whisper_encoder
    from paperlib.model.pairs import build_pairs
    from paperlib.model.training import encode_frames

    class FailsOnLoudChunks:
        batch_size, model, source = 8, tiny_transcriber.model, tiny_transcriber.source

        def run(self, chunks, progress=True, encoder_states=False):
            if np.abs(chunks).max() > 0.9:
                raise RuntimeError("decoder out of memory")
            return tiny_transcriber.run(chunks, progress, encoder_states)

    tracks = _two_speech_tracks(tmp_path, inputs, peaks=(0.95, 0.5, 0.3))
    out = tmp_path / "out"
    manifest = teacher.run_teacher(
        tracks,
        out,
        vocals.make_detector("silero"),
        FailsOnLoudChunks(),
        minilm_embedder,
        VOCALS,
        ASR,
        keep_encoder_states=True,
    )
    assert list(manifest.status) == ["error", "ok", "ok"]
    chunks = pd.read_csv(out / "chunks.csv")
    states = np.load(out / "encoder_states.npy")
    assert list(chunks.id) == ["second", "third"] and chunks.kept.all()
    assert states.dtype == np.float16 and states.shape == (2, 1500, 384)
    assert json.loads((out / "encoder_states.json").read_text()) == {"whisper": str(whisper_tiny_en)}

    table = pd.DataFrame(
        {"id": [t[0] for t in tracks], "path": [str(t[1]) for t in tracks], "split": ["train", "train", "val"]}
    )
    features = tiny_transcriber.processor.feature_extractor
    reused = build_pairs(out, table, features, whisper=str(whisper_tiny_en))
    assert reused["train"].encoded and reused["val"].encoded
    np.testing.assert_array_equal(reused["train"].features.numpy(), states[[0]])
    np.testing.assert_array_equal(reused["val"].features.numpy(), states[[1]])
    recut = build_pairs(out, table, features, whisper="another/whisper")
    assert not recut["train"].encoded and recut["train"].features.shape == (1, 80, 3000)
    model = LiviModel(load_whisper_encoder(whisper_tiny_en), LiviHead(HeadConfig(width=384, target_dim=384)))
    own = encode_frames(model, torch.cat([recut["train"].features, recut["val"].features]), 2, "cpu")
    np.testing.assert_allclose(own.float().numpy(), states.astype(np.float32), rtol=1e-3, atol=1e-3)

    teacher.run_teacher(tracks[1:], out, vocals.make_detector("silero"), tiny_transcriber, minilm_embedder, VOCALS, ASR)
    assert not (out / "encoder_states.npy").exists() and not (out / "encoder_states.json").exists()
    assert not build_pairs(out, table, features, whisper=str(whisper_tiny_en))["train"].encoded


def test_cli_user_errors(tmp_path, capsys, models_dir, minilm):
    (tmp_path / "empty_dir").mkdir()
    assert cli.main(["lyrics", str(tmp_path / "empty_dir"), "--out", str(tmp_path / "o")]) == 2
    assert "no audio files found" in capsys.readouterr().err
    sf.write(tmp_path / "x.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    args = [
        "lyrics",
        str(tmp_path / "x.wav"),
        "--out",
        str(tmp_path / "o"),
        "--set",
        "vocals.detector=silero",
        "--set",
        f"paths.models={models_dir}",
        "--set",
        "models.text=all-MiniLM-L6-v2",
    ]
    assert cli.main([*args, "--set", "models.whisper=openai/whisper-large-v3"]) == 2
    assert "model openai/whisper-large-v3 is not available offline" in capsys.readouterr().err
    assert cli.main([*args, "--set", "asr.batch=2"]) == 2  # not a setting
    assert "asr.batch is not a setting" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_twenty_minute_file(tmp_path, speak, tiny_transcriber, minilm_embedder):
    """A 20 min file (speech then near-silence): loaded in blocks, one row, instrumental by mean vocalness."""
    from paperlib.lyrics import vocals

    wave = np.zeros(20 * 60 * SAMPLE_RATE, np.float32)
    speech = speak(SPEECH)
    wave[: len(speech)] = speech
    wave += np.random.default_rng(0).normal(0, 1e-4, len(wave)).astype(np.float32)
    sf.write(tmp_path / "long.flac", wave, SAMPLE_RATE)
    manifest = teacher.run_teacher(
        [("long", tmp_path / "long.flac")],
        tmp_path / "out",
        vocals.make_detector("silero"),
        tiny_transcriber,
        minilm_embedder,
        VOCALS,
        ASR,
    )
    row = manifest.iloc[0]
    assert (row.status, row.duration_s, row.n_chunks) == ("instrumental", 1200.0, 0)
    assert row.reason.startswith("mean vocalness")
    assert row.mean_vocalness < 0.05


def test_corpus_quality_by_hand(tmp_path):
    """WER per vocal-level band and segment-level vocal detection on a hand-made teacher output."""
    import json

    from paperlib.lyrics.teacher import corpus_quality
    from paperlib.runtime import io

    tracks = pd.DataFrame(
        {
            "id": ["a", "b", "c"],
            "kind": ["original", "cover", "instrumental"],
            "lyrics": ["one two three four", "five six seven eight", ""],
            "vocal_segments": [json.dumps([[0.0, 2.0]]), json.dumps([[1.0, 3.0]]), "[]"],
            "snr_db": [2.0, 12.0, float("nan")],
        }
    )
    io.write_csv(
        pd.DataFrame({"id": ["a", "b", "c"], "status": ["ok", "ok", "instrumental"]}), tmp_path / "manifest.csv"
    )
    io.write_csv(
        pd.DataFrame(
            {
                "id": ["a", "b"],
                "chunk": [0, 0],
                "start_s": [0.0, 0.0],
                "end_s": [3.0, 3.0],
                "text": ["one two tree four", "five six seven eight"],
                "kept": [True, True],
            }
        ),
        tmp_path / "chunks.csv",
    )
    # 1 s segments; truth a: [1, 1, 0], b: [0, 1, 1], c: [0, 0]
    io.save_npz(
        tmp_path / "vocalness.npz",
        {"a": np.array([0.9, 0.2, 0.8]), "b": np.array([0.1, 0.9, 0.9]), "c": np.array([0.0, 0.7])},
    )
    summary, by_band = corpus_quality(tracks, tmp_path, threshold=0.5)
    assert summary["wer"] == pytest.approx(0.125)  # a: 1 substitution in 4 words, b: perfect
    assert by_band.set_index("snr_band")["wer"].to_dict() == {
        "0–5": 0.25,
        "5–10": pytest.approx(float("nan"), nan_ok=True),
        "10–15": 0.0,
    }
    # predicted vocal: a {0, 2}, b {1, 2}, c {1}; true: a {0, 1}, b {1, 2} -> TP 3, FP 2, FN 1
    assert summary["vocal_segments"] == {"precision": 0.6, "recall": 0.75}
    assert summary["sung_tracks_accepted"] == "2/2" and summary["instrumental_tracks_rejected"] == "1/1"


# --------------------------------------------------------------------------- the teacher stage on an engine
ROOT = Path(__file__).parents[1]
STAGE_FILES = ("manifest.csv", "chunks.csv", "chunk_text_embeddings.npy", "text_embeddings.npz", "vocalness.npz")


@pytest.fixture(scope="module")
def stage_dir(tmp_path_factory, models_dir, whisper_tiny_en, minilm):
    """A folder with the tiny corpus and the repository's params.yaml (Whisper tiny.en, this session's models)."""
    folder = tmp_path_factory.mktemp("stage")
    assert cli.main(["corpus", "--out", str(folder / "data/corpus"), "--kind", "english", "--size", "tiny"]) == 0
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["models"] |= {"whisper": "whisper-tiny.en", "text": "all-MiniLM-L6-v2"}
    params["paths"]["models"] = str(models_dir)
    params["corpus"] |= {"kind": "english", "size": "tiny"}
    (folder / "params.yaml").write_text(yaml.safe_dump(params))
    return folder


def _teacher_stage(folder: Path, overrides: str) -> Path:
    """notebooks/03_teacher.ipynb through papermill in `folder` with `overrides`; returns its paths.teacher."""
    out = folder / f"teacher-{abs(hash(overrides))}"
    cmd = [sys.executable, "-m", "papermill", "-k", "python3", str(ROOT / "notebooks/03_teacher.ipynb")]
    cmd += [str(folder / "executed.ipynb"), "--cwd", str(folder), "-p", "overrides", f"paths.teacher={out} {overrides}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _same_teacher_files(a: Path, b: Path, names=STAGE_FILES) -> None:
    """Byte-identical tables; arrays equal to float rounding (Ray batches a track's chunks with others)."""
    for name in names:
        if name.endswith(".csv"):
            assert (a / name).read_bytes() == (b / name).read_bytes(), name
        elif name.endswith(".npy"):
            np.testing.assert_allclose(np.load(a / name), np.load(b / name), atol=2e-3 if "states" in name else 1e-5)
        else:
            with np.load(a / name) as left, np.load(b / name) as right:
                assert left.files == right.files, name
                for key in left.files:
                    np.testing.assert_allclose(left[key], right[key], atol=1e-5)


@pytest.mark.slow
def test_the_teacher_stage_on_ray_writes_the_local_stage_files(stage_dir, ray_local):
    """`--set scale.engine=ray` on the teacher stage's notebook (tiny corpus, encoder states kept as the demo keeps
    them): the same manifest and chunks byte for byte, the same vectors and encoder states to float rounding."""
    address = ray_local.get_runtime_context().gcs_address
    local = _teacher_stage(stage_dir, "scale.engine=local")
    remote = _teacher_stage(stage_dir, f"scale.engine=ray scale.address={address} scale.track_batch=3")
    assert len(read_table(local / "manifest.csv")) == 18
    _same_teacher_files(local, remote, (*STAGE_FILES, "encoder_states.npy"))
    assert (local / "encoder_states.json").read_bytes() == (remote / "encoder_states.json").read_bytes()


DRIVER = """
import sys, time
from paperlib import cli
from paperlib.lyrics import teacher
step = teacher.transcribe_tracks
def slow(*args, **kw):
    time.sleep(1.0)
    return step(*args, **kw)
teacher.transcribe_tracks = slow
sys.exit(cli.main({argv!r}))
"""


@pytest.mark.slow
def test_a_killed_teacher_run_resumes_from_its_shards(stage_dir, tmp_path):
    """`paperlib lyrics` (no encoder states: shards) killed (SIGKILL) after two shards; the rerun transcribes only
    the tracks not in a shard and writes the files of an uninterrupted run."""
    audio = sorted((stage_dir / "data/corpus/audio").glob("*.wav"))[:6]
    argv = ["lyrics", *map(str, audio), "--params", str(stage_dir / "params.yaml")]
    argv += ["--set", "scale.track_batch=1", "--set", "scale.shard_tracks=1"]
    reference, out = tmp_path / "reference", tmp_path / "killed"
    assert cli.main([*argv, "--out", str(reference)]) == 0
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(argv=[*argv, "--out", str(out)]))
    proc = subprocess.Popen(
        [sys.executable, str(script)], cwd=stage_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while (
        len(list((out / "shards").glob("part-*.parquet"))) < 2 and proc.poll() is None and time.monotonic() < deadline
    ):
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    written = sorted((out / "shards").glob("part-*.parquet"))
    assert 2 <= len(written) < len(audio) and not (out / "manifest.csv").exists()
    before = {p.name: p.stat().st_mtime_ns for p in written}
    assert cli.main([*argv, "--out", str(out)]) == 0
    assert {p.name: p.stat().st_mtime_ns for p in written} == before  # kept, not transcribed again
    assert len(list((out / "shards").glob("part-*.parquet"))) == len(audio)
    _same_teacher_files(reference, out)


FRENCH = "Les enfants jouent dans la cour de l'école. Le soleil brille et tout le monde est content."
GERMAN = "Am Sonntag fahren wir mit dem Fahrrad an den See. Dort schwimmen wir und essen ein Eis."


@pytest.mark.slow
def test_lyrics_hears_french_and_german_over_a_band(tmp_path, models_dir, whisper_base, multilingual_e5):
    """`paperlib lyrics` with the demo's teacher (REPET-SIM + Silero, Whisper base detecting the language per chunk,
    multilingual-e5-small-q4) on Kokoro voices over a General-MIDI band at 0 dB SNR: each mix gives one chunk,
    transcribed in its own language, and chunks.csv records that language with Whisper's confidence."""
    from paperlib.data import band, voices

    for name, (language, text) in {"fr_mix": ("fr", FRENCH), "de_mix": ("de", GERMAN)}.items():
        voice = voices.speak(text, language, "kokoro/jm_kumo")
        seconds = 4.0 + len(voice) / SAMPLE_RATE + 3.0
        arrangement = band.Arrangement(tonic="E", mode="minor", progression=("i", "VI", "III", "VII"))
        accompaniment = band.render(band.score(arrangement, duration_s=seconds), duration_s=seconds)
        sf.write(tmp_path / f"{name}.wav", band.mix(voice, accompaniment, 0.0, intro_s=4.0), SAMPLE_RATE)
    overrides = ["models.whisper=whisper-base", "models.text=multilingual-e5-small-q4", f"paths.models={models_dir}"]
    overrides += ["vocals.detector=repet", "vocals.min_mean_vocalness=0.2", "asr.language=null", "device=cpu"]
    args = ["lyrics", str(tmp_path / "fr_mix.wav"), str(tmp_path / "de_mix.wav"), "--out", str(tmp_path / "out")]
    assert cli.main([*args, *[arg for o in overrides for arg in ("--set", o)]]) == 0
    manifest = read_table(tmp_path / "out" / "manifest.csv")
    assert list(manifest.status) == ["ok", "ok"] and list(manifest.n_chunks) == [1, 1]
    chunks = read_table(tmp_path / "out" / "chunks.csv").set_index("id")
    assert chunks.loc["fr_mix", "language"] == "fr" and chunks.loc["de_mix", "language"] == "de"
    assert (chunks.language_prob > 0.5).all()
    assert word_error_rate(FRENCH, chunks.loc["fr_mix", "text"]) <= 0.35, chunks.loc["fr_mix", "text"]
    assert word_error_rate(GERMAN, chunks.loc["de_mix", "text"]) <= 0.35, chunks.loc["de_mix", "text"]
