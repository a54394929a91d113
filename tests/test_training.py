"""paperlib.model.training (loss, loop, and the train stage through `paperlib train`), paperlib.model.pairs and
paperlib.model.checkpoint on a tiny, learnable stand-in: a randomly initialised tiny Whisper encoder and a fake
teacher folder written here (synthetic tone "tracks"; each work has its own random 8-d "lyrics" target
shared by its versions, as covers share lyrics)."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from conftest import tiny_whisper_config
from transformers import WhisperFeatureExtractor

from paperlib import CHUNK_SAMPLES, SAMPLE_RATE
from paperlib.cli import main
from paperlib.model.checkpoint import (
    load_checkpoint,
    load_feature_extractor,
    read_checkpoint_config,
    trained_settings,
    vocal_settings,
)
from paperlib.model.features import cut_chunk
from paperlib.model.livi import load_whisper_encoder
from paperlib.model.pairs import build_pairs
from paperlib.model.training import _Split, retrieval_metrics, train, validate
from paperlib.runtime import config as settings
from paperlib.runtime.config import ConfigError, HeadConfig, Train, Vocals
from paperlib.runtime.schema import read_tracks

ROOT = Path(__file__).parents[1]
TEXT_DIM = 8
HEAD = HeadConfig(
    width=32, target_dim=TEXT_DIM, hidden=(32,), num_heads=2, layer_scale_init=1.0
)  # learns in a few steps


def tone(freq, seconds, amplitude, detune):
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f = freq * (1 + detune)
    return (amplitude * (np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t))).astype(np.float32)


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """Fake `paperlib lyrics` output for 3 works x 3 versions (v0, v1 train; v2 val) plus an instrumental
    train track. Each vocal track: chunk 0 = [1.0 s, 12.5 s) kept, chunk 1 = [12.5 s, 16 s) dropped.
    tracks.csv holds paths relative to its own folder; the returned table (schema.read_tracks) has them
    usable from the working directory."""
    root = tmp_path_factory.mktemp("teacher")
    (root / "audio").mkdir()
    rng = np.random.default_rng(0)
    targets = rng.normal(size=(3, TEXT_DIM))
    tracks, manifest, chunks, vectors = [], [], [], []
    for work, freq in enumerate((220.0, 370.0, 600.0)):
        for version in range(3):
            track_id = f"w{work}-v{version}"
            path = root / "audio" / f"{track_id}.wav"
            sf.write(path, tone(freq, 16.0, 0.3, 0.01 * version), SAMPLE_RATE, subtype="FLOAT")
            tracks.append(
                {"id": track_id, "path": f"audio/{track_id}.wav", "split": "val" if version == 2 else "train"}
            )
            manifest.append(
                {
                    "id": track_id,
                    "path": str(path),
                    "status": "ok",
                    "reason": "",
                    "mean_vocalness": 0.9,
                    "n_chunks": 2,
                    "duration_s": 16.0,
                }
            )
            chunks += [
                {
                    "id": track_id,
                    "chunk": 0,
                    "start_s": 1.0,
                    "end_s": 12.5,
                    "text": "la",
                    "raw_text": "la",
                    "kept": True,
                },
                {
                    "id": track_id,
                    "chunk": 1,
                    "start_s": 12.5,
                    "end_s": 16.0,
                    "text": "",
                    "raw_text": "oh",
                    "kept": False,
                },
            ]
            target = targets[work] + 0.1 * rng.normal(size=TEXT_DIM)
            vectors += [target / np.linalg.norm(target), np.zeros(TEXT_DIM)]
    sf.write(root / "audio" / "inst.wav", tone(100.0, 5.0, 0.3, 0.0), SAMPLE_RATE)
    tracks.append({"id": "inst", "path": "audio/inst.wav", "split": "train"})
    manifest.append(
        {
            "id": "inst",
            "path": "",
            "status": "instrumental",
            "reason": "mean vocalness 0.1 < 0.5",
            "mean_vocalness": 0.1,
            "n_chunks": 0,
            "duration_s": 5.0,
        }
    )
    pd.DataFrame(manifest).to_csv(root / "manifest.csv", index=False)
    pd.DataFrame(chunks).to_csv(root / "chunks.csv", index=False)
    np.save(root / "chunk_text_embeddings.npy", np.asarray(vectors, np.float32))
    pd.DataFrame(tracks).to_csv(root / "tracks.csv", index=False)
    return root, read_tracks(str(root / "tracks.csv"))


@pytest.fixture(scope="module")
def feature_extractor():
    return WhisperFeatureExtractor(feature_size=80)


@pytest.fixture(scope="module")
def pairs(teacher, feature_extractor):
    root, tracks = teacher
    return build_pairs(root, tracks, feature_extractor)


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return load_whisper_encoder(config=tiny_whisper_config())


def config(**changes):
    values = {"epochs": 3, "batch_size": 4, "lr": 3e-3, "warmup_steps": 0, "patience": 0, "cache_frames": True}
    return Train(**(values | changes))


def test_build_pairs_recuts_kept_chunks_of_ok_tracks(teacher, pairs, feature_extractor):
    root, tracks = teacher
    assert list(pairs) == ["train", "val"]
    train_set, val_set = pairs["train"], pairs["val"]
    # instrumental track and dropped chunks are left out; tracks order is kept
    assert list(train_set.keys["id"]) == ["w0-v0", "w0-v1", "w1-v0", "w1-v1", "w2-v0", "w2-v1"]
    assert list(val_set.keys["id"]) == ["w0-v2", "w1-v2", "w2-v2"]
    assert (train_set.keys["chunk"] == 0).all()
    assert train_set.features.shape == (6, 80, 3000) and train_set.features.dtype == torch.float32
    vectors = np.load(root / "chunk_text_embeddings.npy")
    np.testing.assert_array_equal(val_set.text.numpy(), vectors[[4, 10, 16]])
    # chunk w1-v2: samples [16000, 200000) of its wave, zero-padded to 30 s, then Whisper's log-mel
    wave, _ = sf.read(root / "audio" / "w1-v2.wav", dtype="float32")
    by_hand = np.zeros(CHUNK_SAMPLES, np.float32)
    by_hand[: 200_000 - 16_000] = wave[16_000:200_000]
    expected = feature_extractor(by_hand, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
    np.testing.assert_array_equal(val_set.features[1].numpy(), expected)
    # the teacher zero-pads after the chunk's end, not after the track's: audio up to 16 s differs
    longer = feature_extractor(wave[16_000:], sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
    assert not np.allclose(expected, longer)
    # lazy features are the same numbers
    lazy = build_pairs(root, tracks, feature_extractor, splits=["val"], lazy=True)["val"]
    assert len(lazy.features) == 3
    np.testing.assert_array_equal(lazy.features[1].numpy(), expected)


def test_cut_chunk_rounds_to_samples_and_clips_at_track_end():
    wave = np.arange(40_000, dtype=np.float32)
    chunk = cut_chunk(wave, 0.5, 3.0)  # [8000, 40000): the track ends before end_s
    assert chunk.shape == (CHUNK_SAMPLES,)
    np.testing.assert_array_equal(chunk[:32_000], wave[8000:])
    assert not chunk[32_000:].any()


def test_retrieval_metrics_by_hand():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # rows 1 and 2 share lyrics
    audio = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0]])  # cos with own: 0.6, 1, 0
    metrics = retrieval_metrics(audio, text)
    assert metrics["val_cosine"] == pytest.approx(1.6 / 3)
    # row 0: own 0.6 vs 0.8 -> miss; row 1: tie 1 = 1 -> hit; row 2: own 0 vs 1 -> miss
    assert metrics["val_hr1"] == pytest.approx(1 / 3)


def test_training_lowers_loss_and_raises_val_cosine(pairs, encoder, tmp_path):
    summary = train(config(epochs=5), pairs, encoder, tmp_path, head_config=HEAD)
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    steps = pd.read_csv(tmp_path / "train_log.csv")
    assert list(epochs["epoch"]) == [0, 1, 2, 3, 4, 5] and summary["epochs_run"] == 5
    assert len(steps) == 5 * 2 and list(steps["step"]) == list(range(1, 11))  # 6 pairs, batch 4
    assert epochs["train_loss"].iloc[-1] < 0.5 * epochs["train_loss"].iloc[1]
    assert summary["best_val_cosine"] > summary["initial_val_cosine"] + 0.3
    assert summary["best_val_cosine"] == epochs["val_cosine"].max()
    assert summary["train_pairs"] == 6 and summary["val_pairs"] == 3
    assert json.loads((tmp_path / "summary.json").read_text()) == summary


def test_warmup_is_linear_then_constant(pairs, encoder, tmp_path):
    train(config(epochs=3, lr=1e-3, warmup_steps=4), pairs, encoder, tmp_path, head_config=HEAD)
    lrs = pd.read_csv(tmp_path / "train_log.csv")["lr"].to_numpy()
    np.testing.assert_allclose(lrs, [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_early_stopping_when_validation_stops_improving(pairs, encoder, tmp_path):
    summary = train(config(epochs=10, lr=0.0, patience=2), pairs, encoder, tmp_path, head_config=HEAD)
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    assert summary["stopped_early"] and summary["epochs_run"] == 2 and summary["best_epoch"] == 0
    assert list(epochs["improved"]) == [True, False, False]
    assert epochs["val_cosine"].nunique() == 1


def test_monitor_val_loss_keeps_the_lowest_validation_loss(pairs, encoder, tmp_path):
    summary = train(config(epochs=5, monitor="val_loss"), pairs, encoder, tmp_path, head_config=HEAD)
    epochs = pd.read_csv(tmp_path / "epochs.csv")
    best = epochs["val_loss"].idxmin()
    assert summary["best_epoch"] == epochs["epoch"][best] and summary["best_val_loss"] == epochs["val_loss"][best]
    running_min = epochs["val_loss"].cummin()
    assert list(epochs["improved"]) == [True] + list(epochs["val_loss"][1:] < running_min.shift()[1:])
    assert read_checkpoint_config(tmp_path)["best"]["val_loss"] == epochs["val_loss"][best]
    with pytest.raises(ConfigError, match="monitor must be one of val_cosine, val_loss"):
        Train(monitor="val_hr1")


def test_training_figure_marks_the_checkpoint_training_kept():
    """The marker follows `improved` (here: val loss kept epoch 2), not the highest val cosine (epoch 3)."""
    from paperlib.reporting import report

    epochs = pd.DataFrame(
        {
            "epoch": [0, 1, 2, 3],
            "step": [0, 2, 4, 6],
            "train_loss": [np.nan, 0.6, 0.5, 0.4],
            "val_loss": [0.9, 0.5, 0.4, 0.45],
            "val_cosine": [0.1, 0.6, 0.5, 0.7],
            "val_hr1": [0.0, 0.3, 0.3, 0.6],
            "improved": [True, True, True, False],
        }
    )
    fig = report.plot_training_curves(epochs)
    assert [line.get_xdata()[0] for line in fig.axes[1].lines if line.get_linestyle() == "--"] == [2]


def test_checkpoint_reloads_to_the_best_model(pairs, encoder, feature_extractor, tmp_path):
    """The checkpoint is the best evaluation's model; config.json keeps `extra` (here the settings it was
    trained with: checkpoint.vocal_settings returns their vocals, defaults for the keys they lack)."""
    trained_with = {"seed": 3, "vocals": {"detector": "silero", "threshold": 0.4}}
    summary = train(
        config(epochs=2, cache_frames=False, eval_every=1),
        pairs,
        encoder,
        tmp_path,
        head_config=HEAD,
        extra={"config": trained_with},
        seed=3,
    )
    model = load_checkpoint(tmp_path)
    val = pairs["val"]
    metrics = validate(model, _Split(val.features, val.text, cached=False), batch_size=4, alpha=0.5, device="cpu")
    assert metrics["val_cosine"] == summary["best_val_cosine"] and metrics["val_hr1"] == summary["best_val_hr1"]
    torch.testing.assert_close(model(val.features), load_checkpoint(tmp_path)(val.features), rtol=0, atol=0)
    saved = read_checkpoint_config(tmp_path)
    assert saved["head"] == HEAD.to_dict() and saved["encoder"]["name"] is None
    assert saved["best"]["epoch"] == summary["best_epoch"] and saved["config"] == trained_with
    assert saved["pairs"] == {"train": 6, "val": 3}
    assert vocal_settings(tmp_path) == Vocals(detector="silero", threshold=0.4)
    assert trained_settings(tmp_path).seed == 3 and trained_settings(tmp_path).train == Train()
    assert load_feature_extractor(tmp_path).to_dict() == feature_extractor.to_dict()
    assert len(pd.read_csv(tmp_path / "epochs.csv")) == 1 + 2 * 2  # initial + one per step (2 steps/epoch)


def test_same_seed_same_run_other_seed_other_run(pairs, encoder, tmp_path):
    runs = {name: tmp_path / name for name in ("a", "b", "c")}
    for name, seed in (("a", 7), ("b", 7), ("c", 8)):
        train(config(epochs=2), pairs, encoder, runs[name], head_config=HEAD, seed=seed)
    logs = {name: pd.read_csv(path / "epochs.csv") for name, path in runs.items()}
    pd.testing.assert_frame_equal(logs["a"], logs["b"])
    assert (runs["a"] / "head.safetensors").read_bytes() == (runs["b"] / "head.safetensors").read_bytes()
    assert not np.array_equal(logs["a"]["val_cosine"], logs["c"]["val_cosine"])


def test_training_on_the_teachers_encoder_states_equals_training_on_its_own_frames(
    teacher, pairs, encoder, feature_extractor, tmp_path
):
    """Pairs carrying the teacher's encoder states (here: written from this encoder's frames) train the
    same head as cached frames computed in train(), whatever cache_frames says."""
    import shutil

    from paperlib.model.livi import LiviHead, LiviModel
    from paperlib.model.training import encode_frames

    root, tracks = teacher
    copy = shutil.copytree(root, tmp_path / "teacher")
    chunks = pd.read_csv(copy / "chunks.csv")
    states = np.zeros((len(chunks), 1500, 32), np.float16)
    row = {(i, c): n for n, (i, c) in enumerate(zip(chunks["id"], chunks["chunk"]))}
    model = LiviModel(encoder, LiviHead(HEAD))
    for part in pairs.values():
        states[[row[k] for k in zip(part.keys["id"], part.keys["chunk"])]] = encode_frames(
            model, part.features, 4, "cpu"
        )
    np.save(copy / "encoder_states.npy", states)
    (copy / "encoder_states.json").write_text(json.dumps({"whisper": "tiny-random"}))
    reused = build_pairs(copy, tracks, feature_extractor, whisper="tiny-random")
    assert reused["train"].encoded and reused["train"].features.dtype == torch.float16
    runs = {name: tmp_path / name for name in ("frames", "states", "states_uncached")}
    train(config(epochs=2), pairs, encoder, runs["frames"], head_config=HEAD)
    train(config(epochs=2), reused, encoder, runs["states"], head_config=HEAD)
    train(config(epochs=2, cache_frames=False), reused, encoder, runs["states_uncached"], head_config=HEAD)
    expected = pd.read_csv(runs["frames"] / "epochs.csv")
    for name in ("states", "states_uncached"):
        pd.testing.assert_frame_equal(pd.read_csv(runs[name] / "epochs.csv"), expected)
        assert (runs[name] / "head.safetensors").read_bytes() == (runs["frames"] / "head.safetensors").read_bytes()
    np.save(copy / "encoder_states.npy", states[:4])  # states that do not belong to these chunks
    with pytest.raises(ValueError, match="18 chunks but encoder states for 4"):
        build_pairs(copy, tracks, feature_extractor, whisper="tiny-random")


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory, feature_extractor):
    """The tiny random Whisper saved as a model folder (what models.whisper names)."""
    from transformers import WhisperModel

    folder = tmp_path_factory.mktemp("tiny-whisper")
    torch.manual_seed(0)
    WhisperModel(tiny_whisper_config()).save_pretrained(folder)
    feature_extractor.save_pretrained(folder)
    return folder


def test_train_cli(teacher, tiny_whisper_dir, tmp_path, capsys):
    """`paperlib train` (training.train_head): --set overrides on params.yaml reach the head and the loop, and
    the checkpoint records the settings it was trained with (seed, models, vocals, asr, train)."""
    root, _ = teacher
    out = tmp_path / "ckpt"
    overrides = [
        f"models.whisper={tiny_whisper_dir}",
        "train.epochs=1",
        "train.batch_size=4",
        "train.warmup_steps=0",
        "train.hidden=[16]",
        "train.num_heads=2",
        "vocals.threshold=0.4",
    ]
    code = main(
        [
            "train",
            "--teacher",
            str(root),
            "--tracks",
            str(root / "tracks.csv"),
            "--out",
            str(out),
            "--params",
            str(ROOT / "params.yaml"),
            *[arg for o in overrides for arg in ("--set", o)],
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["train_pairs"] == 6 and summary["epochs_run"] == 1
    saved = read_checkpoint_config(out)
    assert saved["encoder"]["name"] == str(tiny_whisper_dir) and not (out / "encoder.safetensors").exists()
    expected = settings.load(ROOT / "params.yaml", [*overrides, f"train.data={root / 'tracks.csv'}"]).to_dict()
    assert saved["config"] == {k: expected[k] for k in ("seed", "models", "vocals", "asr", "train")}
    assert saved["head"]["hidden"] == [16] and saved["config"]["train"]["epochs"] == 1
    assert saved["config"]["train"]["betas"] == [0.9, 0.98] and saved["config"]["vocals"]["threshold"] == 0.4
    assert vocal_settings(out) == dataclasses.replace(settings.load(ROOT / "params.yaml").vocals, threshold=0.4)
    assert load_checkpoint(out).head.config.hidden == (16,)


def test_train_cli_rejects_bad_tables(teacher, tiny_whisper_dir, tmp_path, capsys):
    """A track table without `split`, or a teacher folder without manifest.csv: one error line, exit 2."""
    root, tracks = teacher
    tracks.drop(columns="split").to_csv(tmp_path / "tracks.csv", index=False)
    whisper = ["--set", f"models.whisper={tiny_whisper_dir}"]
    args = ["train", "--teacher", str(root), "--out", str(tmp_path / "o"), *whisper]
    assert main(args + ["--tracks", str(tmp_path / "tracks.csv")]) == 2
    assert "lacks column(s) split" in capsys.readouterr().err
    assert (
        main(["train", "--teacher", str(tmp_path), "--tracks", str(root / "tracks.csv"), "--out", "x", *whisper]) == 2
    )
    assert "manifest.csv" in capsys.readouterr().err
    assert not (tmp_path / "o").exists() and not Path("x").exists()


def test_train_cli_rejects_unknown_settings(capsys):
    """A --set key that is not a setting is a one-line user error naming it."""
    assert main(["train", "--set", "train.epoch=3"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "train.epoch is not a setting" in err


def test_the_progress_bar_does_not_change_training(pairs, encoder, tmp_path, monkeypatch):
    """tqdm's asyncio flavour (tqdm.auto) calls iter() on what it wraps, and each DataLoader iterator draws from
    the loader's generator: the loop must give the same run whichever bar is in use."""
    from tqdm.asyncio import tqdm_asyncio

    import paperlib.model.training

    train(config(epochs=3), pairs, encoder, tmp_path / "std", head_config=HEAD)
    monkeypatch.setattr(paperlib.model.training, "tqdm", tqdm_asyncio)
    train(config(epochs=3), pairs, encoder, tmp_path / "asyncio", head_config=HEAD)
    assert (tmp_path / "std/train_log.csv").read_bytes() == (tmp_path / "asyncio/train_log.csv").read_bytes()
