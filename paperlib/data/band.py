"""A small General-MIDI band rendered offline, and a voice-over-band mixer (synthetic test material).

`score(Arrangement, ...)` writes a pretty_midi.PrettyMIDI (4/4 time, one chord per `bars_per_chord` bars,
the progression looped); `render(midi)` plays it through TinySoundFont (the `tinysoundfont` package, offline
only: its pyaudio dependency is never imported) with the General-MIDI soundfont TimGM6mb.sf2 that ships inside
the `pretty-midi` package; `mix(voice, band, snr_db, intro_s)` lays a voice over the band at a given SNR.

Conventions: audio is mono float32 at paperlib.SAMPLE_RATE (16 kHz); times and durations in seconds; levels
in dB; pitches are MIDI note numbers (60 = middle C); pitch classes 0..11 with C = 0.

Chords are Roman numerals relative to the key (Arrangement.tonic, .mode): the degree I..VII is counted on the
major scale (mode "major") or the natural minor scale (mode "minor"); upper case = major triad, lower case =
minor triad; an optional prefix "b" or "#" lowers or raises the root a semitone (bVII); suffixes: "o"
diminished triad (viio), "+" augmented (III+), "7" adds a minor seventh (V7, ii7), "maj7" a major seventh
(IVmaj7). So in C major, I-V-vi-IV is C-G-Am-F; in A minor, i-iv-V-VI is Am-Dm-E-F.

Instruments (GM program numbers, 0-based as in pretty_midi): piano 0 (Acoustic Grand Piano, block chords on
beats 1 and 3), epiano 4 (Electric Piano 1, block chords), organ 16 (Drawbar Organ, sustained chords), nylon
guitar 24 (Acoustic Guitar (nylon), eighth-note arpeggio), guitar 25 (Acoustic Guitar (steel), arpeggio), bass
33 (Electric Bass (finger), root-root-fifth-root quarter notes), strings 48 (String Ensemble 1, sustained pad);
drums: the GM kit (channel 10, pretty_midi `is_drum=True`): kick 36 on beats 1 and 3, snare 38 on 2 and 4,
closed hi-hat 42 on eighth notes, crash 49 at the start. The seed only varies note velocities (numpy
default_rng(seed)); everything else is fixed, and rendering is sample-exact and byte-identical on rerun.

Licence note: TimGM6mb.sf2 (Tim Brechbill's 6 MB General-MIDI soundfont) is distributed under the GPL,
version 2 (as packaged by e.g. Debian's timgm6mb-soundfont); pretty-midi 0.2.11's wheel ships the file without
a licence file of its own (the wheel's LICENSE.txt is pretty-midi's MIT licence, and the sf2's INFO chunk has no
copyright field). Audio rendered here is test material and is not redistributed with this artifact.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from paperlib import SAMPLE_RATE
from paperlib.runtime.errors import PaperlibError
from paperlib.runtime.io import verified

SOUNDFONT_SHA256 = "82475b91a76de15cb28a104707d3247ba932e228bada3f47bba63c6b31aaf7a1"  # pretty-midi 0.2.11.post0
SYNTH_RATE = 48_000  # TinySoundFont output rate (stereo); an exact 3:1 ratio to SAMPLE_RATE
SYNTH_GAIN_DB = 0.0  # TinySoundFont global gain
RELEASE_TAIL_S = 1.0  # rendered after the last note-off so releases ring out (before the final trim)

NOTE_NAMES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SCALES = {"major": (0, 2, 4, 5, 7, 9, 11), "minor": (0, 2, 3, 5, 7, 8, 10)}
NUMERALS = ("vii", "iii", "vi", "iv", "ii", "v", "i")  # longest first, for prefix matching
DEGREES = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}

# name -> (GM program, role); role decides the part written by score()
INSTRUMENTS = {
    "piano": (0, "block"),
    "epiano": (4, "block"),
    "organ": (16, "pad"),
    "nylon": (24, "arpeggio"),
    "guitar": (25, "arpeggio"),
    "bass": (33, "bass"),
    "strings": (48, "pad"),
    "drums": (0, "drums"),
}
KICK, SNARE, CLOSED_HAT, CRASH = 36, 38, 42, 49
DRUM_CHANNEL = 9  # GM channel 10


class BandError(PaperlibError, RuntimeError):
    """The band cannot be rendered: tinysoundfont or the pretty-midi soundfont is missing."""


@dataclass(frozen=True)
class Arrangement:
    """What the band plays: key, tempo, a looped chord progression (Roman numerals, see the module docstring),
    bars per chord (4/4 time), instruments (names of INSTRUMENTS, in score order) and a velocity seed."""

    tonic: str = "C"
    mode: str = "major"
    tempo_bpm: float = 100.0
    progression: tuple[str, ...] = ("I", "V", "vi", "IV")
    bars_per_chord: int = 1
    instruments: tuple[str, ...] = ("piano", "bass", "drums")
    seed: int = 0

    def __post_init__(self):
        unknown = [name for name in self.instruments if name not in INSTRUMENTS]
        if unknown:
            raise ValueError(f"unknown instrument(s) {unknown}; choose among {', '.join(INSTRUMENTS)}")
        if self.mode not in SCALES:
            raise ValueError(f"unknown mode {self.mode!r}; choose 'major' or 'minor'")
        if not self.progression or self.bars_per_chord < 1 or self.tempo_bpm <= 0:
            raise ValueError("need a non-empty progression, bars_per_chord >= 1 and tempo_bpm > 0")
        tonic_pitch_class(self.tonic)
        for numeral in self.progression:
            chord_pitch_classes(numeral, self.tonic, self.mode)

    @property
    def bar_s(self) -> float:
        """Seconds per 4/4 bar."""
        return 4 * 60.0 / self.tempo_bpm


def tonic_pitch_class(tonic: str) -> int:
    """ "C", "F#", "Bb", "Ebb" ... -> pitch class 0..11."""
    if not tonic or tonic[0].upper() not in NOTE_NAMES or set(tonic[1:]) - {"#", "b"}:
        raise ValueError(f"unknown tonic {tonic!r}; use a letter A-G with optional '#' or 'b' accidentals")
    return (NOTE_NAMES[tonic[0].upper()] + tonic.count("#") - tonic[1:].count("b")) % 12


def chord_pitch_classes(numeral: str, tonic: str = "C", mode: str = "major") -> tuple[int, ...]:
    """Roman numeral in a key -> pitch classes, root first (e.g. "V7" in C major -> (7, 11, 2, 5))."""
    text, shift = numeral, 0
    while text[:1] in ("b", "#") and text[1:2].lower() in ("i", "v"):
        shift += 1 if text[0] == "#" else -1
        text = text[1:]
    base = next((n for n in NUMERALS if text.lower().startswith(n)), None)
    if base is None or text[: len(base)] not in (base, base.upper()):
        raise ValueError(f"cannot read chord {numeral!r}; use Roman numerals like I, ii, bVII, V7, viio, IVmaj7")
    major, suffix = text[: len(base)].isupper(), text[len(base) :]
    qualities = {"": (4 if major else 3, 7), "o": (3, 6), "+": (4, 8)}
    sevenths = {"7": 10, "maj7": 11, "o7": 9}
    if suffix in qualities:
        intervals = qualities[suffix]
    elif suffix in sevenths:
        intervals = (*qualities["o" if suffix == "o7" else ""], sevenths[suffix])
    else:
        raise ValueError(f"unknown chord suffix in {numeral!r}; use '', 'o', '+', '7', 'maj7' or 'o7'")
    root = (tonic_pitch_class(tonic) + SCALES[mode][DEGREES[base]] + shift) % 12
    return (root, *((root + i) % 12 for i in intervals))


def _voice(pitch_classes: tuple[int, ...], center: int) -> list[int]:
    """Close voicing: each pitch class at its pitch in [center - 6, center + 6), sorted."""
    low = center - 6
    return sorted(low + (pc - low) % 12 for pc in pitch_classes)


def _grid(n: int, step: float) -> list[float]:
    """Onsets 0, step, ..., (n - 1) * step (exact counts, no float-range rounding)."""
    return [k * step for k in range(n)]


def _part(role: str, chord: tuple[int, ...], start: float, beat: float) -> list[tuple[int, float, float]]:
    """(pitch, start_s, end_s) of one instrument over one 4/4 bar of `chord` from `start`."""
    root = 36 + (chord[0] - 36) % 12  # in [36, 48): C2..B2
    if role == "block":  # half-note chords around E4
        return [(p, start + t, start + t + 1.9 * beat) for t in _grid(2, 2 * beat) for p in _voice(chord, 64)]
    if role == "pad":  # whole-bar chord around C4 over the root an octave up from the bass
        return [(p, start, start + 4 * beat) for p in [root + 12, *_voice(chord, 60)]]
    if role == "arpeggio":  # eighth notes up and down the chord around A#3
        voiced = _voice(chord, 58)
        order = [voiced[i % len(voiced)] for i in (0, 1, 2, 3, 2, 1)] + [voiced[0] + 12, voiced[1] + 12]
        return [(order[i], start + t, start + t + 0.9 * beat) for i, t in enumerate(_grid(8, beat / 2))]
    if role == "bass":  # quarter notes root, root, fifth, root
        pitches = (root, root, root + 7, root)
        return [(pitches[i], start + t, start + t + 0.9 * beat) for i, t in enumerate(_grid(4, beat))]
    raise AssertionError(role)


def _drums(start: float, beat: float, first: bool) -> list[tuple[int, float, float]]:
    """One 4/4 bar of the GM kit: kick on 1 and 3, snare on 2 and 4, closed hi-hat on eighths, crash if `first`."""
    hits = [(CRASH, 0.0)] if first else []
    hits += [(KICK if i % 2 == 0 else SNARE, t) for i, t in enumerate(_grid(4, beat))]
    hits += [(CLOSED_HAT, t) for t in _grid(8, beat / 2)]
    return [(p, start + t, start + t + 0.1) for p, t in hits]


def score(arrangement: Arrangement, duration_s: float | None = None, n_bars: int | None = None):
    """The arrangement as a pretty_midi.PrettyMIDI of `n_bars` bars, or cut at `duration_s` seconds (notes
    starting at or after it dropped, the others ended by it). Give exactly one of the two. One instrument per
    name, in arrangement order; velocities 80 +- up to 8 drawn from default_rng(seed) in that order."""
    import pretty_midi

    if (duration_s is None) == (n_bars is None):
        raise ValueError("give exactly one of duration_s and n_bars")
    a = arrangement
    end = n_bars * a.bar_s if duration_s is None else float(duration_s)
    n_bars = n_bars if duration_s is None else math.ceil(end / a.bar_s - 1e-9)
    beat, rng = 60.0 / a.tempo_bpm, np.random.default_rng(a.seed)
    chords = [chord_pitch_classes(c, a.tonic, a.mode) for c in a.progression]
    midi = pretty_midi.PrettyMIDI(initial_tempo=a.tempo_bpm)
    for name in a.instruments:
        program, role = INSTRUMENTS[name]
        instrument = pretty_midi.Instrument(program=program, is_drum=role == "drums", name=name)
        for bar in range(n_bars):
            start = bar * a.bar_s
            if role == "drums":
                notes = _drums(start, beat, bar == 0)
            else:
                notes = _part(role, chords[(bar // a.bars_per_chord) % len(chords)], start, beat)
            for pitch, on, off in sorted(notes, key=lambda n: (n[1], n[0])):
                if on < end - 1e-9:
                    velocity = int(80 + rng.integers(-8, 9))
                    instrument.notes.append(pretty_midi.Note(velocity, int(pitch), float(on), float(min(off, end))))
        midi.instruments.append(instrument)
    return midi


@functools.lru_cache(maxsize=1)
def _soundfont_bytes() -> bytes:
    """TimGM6mb.sf2 from the installed pretty-midi package (read once per process)."""
    try:
        import pretty_midi
    except ImportError as exc:
        raise BandError("pretty-midi is not installed: it provides the TimGM6mb.sf2 soundfont") from exc
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    if not path.is_file():
        raise BandError(f"soundfont {path} missing: the pretty-midi package should ship TimGM6mb.sf2")
    return verified(path, SOUNDFONT_SHA256).read_bytes()


def _new_synth():
    """A fresh TinySoundFont synth (no state carried between renders) and its soundfont id."""
    try:
        import tinysoundfont
    except ImportError as exc:
        raise BandError("tinysoundfont is not installed: pip install tinysoundfont (offline rendering only)") from exc
    synth = tinysoundfont.Synth(gain=SYNTH_GAIN_DB, samplerate=SYNTH_RATE)
    return synth, synth.sfload(_soundfont_bytes())


def _events(midi, channels: list[int]) -> list[tuple[int, int, int, int, int]]:
    """Note events (sample, on?, channel, pitch, velocity) at SYNTH_RATE, sorted: at one sample, offs first."""
    events = []
    for instrument, chan in zip(midi.instruments, channels):
        for note in instrument.notes:
            on, off = round(note.start * SYNTH_RATE), round(note.end * SYNTH_RATE)
            events += [(on, 1, chan, note.pitch, note.velocity), (max(off, on + 1), 0, chan, note.pitch, 0)]
    return sorted(events)


def render(midi, duration_s: float | None = None) -> np.ndarray:
    """A pretty_midi.PrettyMIDI -> float32 mono wave at SAMPLE_RATE, [round(duration_s * SAMPLE_RATE)].

    Events are sent to a fresh TinySoundFont synth at their exact sample (48 kHz stereo), rendered up to the
    last note-off plus RELEASE_TAIL_S, averaged to mono, resampled to 16 kHz with soxr (quality "HQ") and
    trimmed or zero-padded to duration_s (default: midi.get_end_time() + RELEASE_TAIL_S). Instruments get
    channels in order, skipping the drum channel 10 (drums go there); at most 15 melodic instruments.
    """
    import soxr

    synth, sfid = _new_synth()
    melodic = iter(c for c in range(16) if c != DRUM_CHANNEL)
    channels = [DRUM_CHANNEL if inst.is_drum else next(melodic) for inst in midi.instruments]
    for inst, chan in zip(midi.instruments, channels):
        synth.program_select(chan, sfid, 0, 0 if inst.is_drum else inst.program, inst.is_drum)
    events = _events(midi, channels)
    total = (events[-1][0] if events else 0) + round(RELEASE_TAIL_S * SYNTH_RATE)
    stereo, position = np.zeros((total, 2), np.float32), 0
    for sample, on, chan, pitch, velocity in [*events, (total, -1, 0, 0, 0)]:
        if sample > position:
            stereo[position:sample] = np.frombuffer(synth.generate_simple(sample - position), np.float32).reshape(-1, 2)
            position = sample
        if on == 1:
            synth.noteon(chan, pitch, velocity)
        elif on == 0:
            synth.noteoff(chan, pitch)
    mono = stereo.astype(np.float64).mean(axis=1)
    wave = soxr.resample(mono, SYNTH_RATE, SAMPLE_RATE, quality="HQ")
    seconds = midi.get_end_time() + RELEASE_TAIL_S if duration_s is None else duration_s
    n = round(seconds * SAMPLE_RATE)
    return np.pad(wave, (0, max(0, n - len(wave))))[:n].astype(np.float32)


def active_span(voice: np.ndarray, threshold_db: float = -40.0) -> tuple[int, int]:
    """[first, last + 1) sample indices of `voice` whose |amplitude| >= peak * 10^(threshold_db / 20)."""
    magnitude = np.abs(np.asarray(voice, np.float64))
    if magnitude.size == 0 or magnitude.max() == 0:
        raise ValueError("the voice is silent")
    loud = np.flatnonzero(magnitude >= magnitude.max() * 10 ** (threshold_db / 20))
    return int(loud[0]), int(loud[-1]) + 1


def voiced_span(voice: np.ndarray, intro_s: float, threshold_db: float = -40.0) -> tuple[float, float]:
    """Seconds (start, end) of the voice's active span in a mix made by mix(..., intro_s): ground truth for
    vocal detection. The whole voice occupies [intro_s, intro_s + len(voice) / SAMPLE_RATE]."""
    first, last = active_span(voice, threshold_db)
    offset = round(intro_s * SAMPLE_RATE)
    return (offset + first) / SAMPLE_RATE, (offset + last) / SAMPLE_RATE


def mix(
    voice: np.ndarray,
    band: np.ndarray,
    snr_db: float,
    intro_s: float = 0.0,
    peak: float = 0.9,
    threshold_db: float = -40.0,
) -> np.ndarray:
    """Voice [n] over band [m] (both 16 kHz mono) -> float32 mix [max(m, round(intro_s * 16000) + n)].

    The voice starts at sample round(intro_s * SAMPLE_RATE); the band is zero-padded at its end if shorter.
    SNR definition: over the voice's active span S = active_span(voice, threshold_db) (first to last sample
    within threshold_db of the voice's peak, silences inside included), shifted by the intro, SNR =
    20 log10(RMS(g * voice over S) / RMS(band over the same samples)); the voice gain g is chosen so that SNR =
    snr_db. The whole mix is then scaled by min(1, peak / max|mix|) so its peak is at most `peak`; that scales
    voice and band alike, so the SNR is kept (exactly in float64; to ~1e-6 dB after the float32 cast).
    """
    voice, band = np.asarray(voice, np.float64), np.asarray(band, np.float64)
    offset = round(intro_s * SAMPLE_RATE)
    if offset < 0:
        raise ValueError(f"intro_s must be >= 0, got {intro_s}")
    out = np.zeros(max(len(band), offset + len(voice)))
    out[: len(band)] = band
    first, last = active_span(voice, threshold_db)
    band_rms = math.sqrt(np.mean(out[offset + first : offset + last] ** 2))
    if band_rms == 0:
        raise ValueError("the band is silent where the voice is active: SNR undefined")
    voice_rms = math.sqrt(np.mean(voice[first:last] ** 2))
    out[offset : offset + len(voice)] += voice * (band_rms / voice_rms * 10 ** (snr_db / 20))
    top = np.abs(out).max()
    return (out * min(1.0, peak / top)).astype(np.float32)
