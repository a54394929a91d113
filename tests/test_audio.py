"""paperlib.runtime.audio: decoding, resampling, bad inputs, track listing, per-track status rows."""

import numpy as np
import pytest
import soundfile as sf

from paperlib.runtime.audio import AudioError, list_audio, load_audio, run_per_track


def sine(freq, seconds, rate, amplitude=0.5):
    return (amplitude * np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate)).astype(np.float32)


def amplitude_at(wave, freq, rate=16000):
    """Amplitude of the `freq` component of a whole-second wave (1 Hz bins)."""
    return 2 * np.abs(np.fft.rfft(wave))[int(freq * len(wave) / rate)] / len(wave)


@pytest.fixture
def bad_files(tmp_path):
    files = {}
    files["corrupt"] = tmp_path / "corrupt.wav"
    files["corrupt"].write_bytes(np.random.default_rng(0).bytes(4000))
    files["empty"] = tmp_path / "empty.wav"
    files["empty"].write_bytes(b"")
    files["text"] = tmp_path / "notes.txt"
    files["text"].write_text("these are lyrics, not audio\n" * 20)
    files["no_samples"] = tmp_path / "zero.wav"
    sf.write(files["no_samples"], np.zeros(0, np.float32), 16000)
    files["m4a"] = tmp_path / "song.m4a"
    files["m4a"].write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(100))
    files["missing"] = tmp_path / "missing.wav"
    return files


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("corrupt", "corrupt or unreadable audio file (Format not recognised.)"),
        ("empty", "empty file"),
        ("text", "not an audio file (Format not recognised.)"),
        ("no_samples", "no samples"),
        ("missing", "file not found"),
    ],
)
def test_bad_input_raises_clear_reason(bad_files, kind, reason):
    with pytest.raises(AudioError) as info:
        load_audio(bad_files[kind])
    assert str(info.value) == reason


def test_unsupported_container_says_so(bad_files):
    with pytest.raises(AudioError, match=r"unsupported audio format '\.m4a'"):
        load_audio(bad_files["m4a"])


def test_non_finite_samples_are_corrupt(tmp_path):
    path = tmp_path / "nan.wav"
    sf.write(path, np.array([0.0, np.nan, 0.1], np.float32), 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="non-finite"):
        load_audio(path)


def test_16k_mono_is_returned_unchanged(tmp_path):
    wave = np.random.default_rng(1).uniform(-0.5, 0.5, 16000).astype(np.float32)
    sf.write(tmp_path / "a.wav", wave, 16000, subtype="FLOAT")
    out = load_audio(tmp_path / "a.wav")
    assert out.dtype == np.float32 and np.array_equal(out, wave)


def test_22050_resampled_keeps_pitch_and_level(tmp_path):
    sf.write(tmp_path / "a.wav", sine(440, 2.0, 22050), 22050, subtype="FLOAT")
    out = load_audio(tmp_path / "a.wav")
    assert out.shape == (32000,) and out.dtype == np.float32
    middle = out[8000:24000]  # one second away from the edges
    assert np.argmax(np.abs(np.fft.rfft(middle))) == 440
    assert amplitude_at(middle, 440) == pytest.approx(0.5, abs=0.005)


def test_44100_stereo_is_mean_downmixed(tmp_path):
    left, right = sine(440, 1.0, 44100, 0.6), sine(1000, 1.0, 44100, 0.2)
    sf.write(tmp_path / "st.flac", np.stack([left, right], axis=1), 44100)
    out = load_audio(tmp_path / "st.flac")
    assert out.shape == (16000,)
    assert amplitude_at(out, 440) == pytest.approx(0.3, abs=0.01)
    assert amplitude_at(out, 1000) == pytest.approx(0.1, abs=0.01)


def test_mp3_is_decoded(tmp_path):
    sf.write(tmp_path / "a.mp3", sine(440, 2.0, 44100), 44100, format="MP3")
    out = load_audio(tmp_path / "a.mp3")
    assert abs(len(out) - 32000) < 1600  # mp3 frames may add encoder padding
    assert np.argmax(np.abs(np.fft.rfft(out[8000:24000]))) == 440


def test_twenty_minute_file_loads_with_exact_length(tmp_path):
    period = (300 * np.sin(2 * np.pi * np.arange(80) / 80)).astype(np.int16)  # 100 Hz at 8 kHz
    sf.write(tmp_path / "long.wav", np.tile(period, 20 * 60 * 8000 // 80), 8000, subtype="PCM_16")
    out = load_audio(tmp_path / "long.wav")
    assert out.shape == (20 * 60 * 16000,)
    assert np.abs(out[-32000:-16000]).max() == pytest.approx(300 / 32768, rel=0.02)


def test_list_audio_expands_directories_sorted_and_keeps_explicit_files(tmp_path):
    (tmp_path / "d" / "sub").mkdir(parents=True)
    for name in ["d/b.wav", "d/sub/a.FLAC", "d/readme.txt", "d/.hidden.wav", "d/c.mp3", "x.txt"]:
        (tmp_path / name).write_bytes(b"x")
    tracks = list_audio([tmp_path / "x.txt", tmp_path / "d"])
    assert tracks == [
        ("x", tmp_path / "x.txt"),
        ("b", tmp_path / "d/b.wav"),
        ("c", tmp_path / "d/c.mp3"),
        ("a", tmp_path / "d/sub/a.FLAC"),
    ]


def test_list_audio_rejects_duplicate_ids(tmp_path):
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    (tmp_path / "one/song.wav").write_bytes(b"x")
    (tmp_path / "two/song.mp3").write_bytes(b"x")
    with pytest.raises(ValueError, match=r"duplicate track id 'song'.*one/song\.wav.*two/song\.mp3"):
        list_audio([tmp_path])


def test_run_per_track_records_every_input_in_order(tmp_path, bad_files):
    sf.write(tmp_path / "good.wav", np.zeros(8000, np.float32), 16000)
    sf.write(tmp_path / "boom.wav", np.zeros(4000, np.float32), 16000)
    sf.write(tmp_path / "late.wav", np.full(24000, 0.1, np.float32), 16000)
    tracks = [
        ("good", tmp_path / "good.wav"),
        ("corrupt", bad_files["corrupt"]),
        ("boom", tmp_path / "boom.wav"),
        ("text", bad_files["text"]),
        ("late", tmp_path / "late.wav"),
    ]

    def process(track_id, wave):
        if track_id == "boom":
            raise RuntimeError("model exploded")
        return {"status": "instrumental" if wave.max() == 0 else "ok", "samples": len(wave)}, f"value of {track_id}"

    results = run_per_track(tracks, process, desc="test")
    rows = [row for row, _ in results]
    assert [r["id"] for r in rows] == ["good", "corrupt", "boom", "text", "late"]
    assert [r["status"] for r in rows] == ["instrumental", "error", "error", "error", "ok"]
    assert rows[1]["reason"].startswith("corrupt or unreadable audio file")
    assert rows[2]["reason"] == "RuntimeError: model exploded"
    assert rows[3]["reason"].startswith("not an audio file")
    assert rows[0]["duration_s"] == 0.5 and rows[2]["duration_s"] == 0.25 and rows[4]["duration_s"] == 1.5
    assert rows[1]["duration_s"] is None
    assert rows[4].pop("t_decode_s") >= 0 and "t_decode_s" not in rows[1]  # wall-clock seconds of loading
    assert rows[4] == {
        "id": "late",
        "path": str(tmp_path / "late.wav"),
        "status": "ok",
        "reason": "",
        "duration_s": 1.5,
        "samples": 24000,
    }
    # the value process returned comes back with its row; None for every failed track
    assert [value for _, value in results] == ["value of good", None, None, None, "value of late"]
