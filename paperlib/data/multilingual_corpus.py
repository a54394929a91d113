"""The multilingual corpus: works sung in several languages over General-MIDI bands, with ground truth.

`generate(out_dir, size, seed)` writes what paperlib.data.corpus writes (audio/<id>.wav 16 kHz mono PCM_16, tracks.csv,
works.csv; the same columns, so every stage reads it unchanged) plus the columns language (the sung language, ""
when instrumental), instruments, progression (Roman numerals, "-"-joined) and key (tonic and mode).

A work is an original text: two lines of one theme of paperlib.data.line_banks (lines are never shared between works,
so no line of a test work was heard in training) and one theme-free hook, sung line, line, hook. Its original is in
one language (English for 40 % of the works, else French, German or Italian); its band is an Arrangement of
paperlib.data.band (key, mode, tempo, progression, two chord instruments with bass and drums). Versions, each a kind:
  original        the original language, voice and band;
  translated      the same band (the same music), the lyrics in another language, another voice;
  cover           the original language, another voice, the band moved to another key and tempo with other
                  instruments;
  reharmonised    the original lyrics, voice and key over other chords of the same mode and other instruments;
  instrumental    the original band alone;
  changed_lyrics  the original with its second line replaced by a line of another work's theme;
  distractor      a work of its own that reuses another work's band version by version, with other lyrics of the
                  same theme in the same languages (works.csv `accompaniment_of`).
Version 1 is translated, version 2 a cover, version 3 in turn instrumental, changed_lyrics, reharmonised or a
second translation, version 4 a translation into a third language. Works that share a theme or a chord progression
are near-misses for lyrics or for harmony.

Voices (paperlib.data.voices): Kokoro styles for every language and Piper for English; the style HELD_OUT_VOICE sings in
the test split only. Each (line, language, voice) is synthesised once and reused by every version that sings it.
Splits are by work (a distractor with the work it borrows from), seeded. Everything is deterministic: the same
size and seed give byte-identical files on one machine.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from paperlib import SAMPLE_RATE
from paperlib.data import band, corpus, line_banks, speech
from paperlib.data.corpus import _assign_splits, _write_wav, size_spec
from paperlib.runtime.io import write_csv

LANGUAGES = ("en", "fr", "de", "it")
FIRST_LANGUAGE_P = (0.4, 0.2, 0.2, 0.2)  # the original's language
TRAINING_VOICES = {"en": ("piper/en_US-joe-medium", "kokoro/jm_kumo", "kokoro/jf_nezumi")}
TRAINING_VOICES |= {
    language: ("kokoro/jm_kumo", "kokoro/jf_nezumi", "kokoro/jf_tebukuro") for language in "fr de it".split()
}
HELD_OUT_VOICE = "kokoro/jf_gongitsune"
PROGRESSIONS = {
    "major": (("I", "V", "vi", "IV"), ("I", "IV", "V", "IV"), ("vi", "IV", "I", "V"), ("I", "vi", "ii", "V")),
    "minor": (("i", "VI", "III", "VII"), ("i", "iv", "v", "i"), ("i", "VII", "VI", "VII")),
}
CHORD_INSTRUMENTS = ("piano", "guitar", "strings", "epiano", "organ", "nylon")
TONICS = ("C", "Db", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")
SPECIAL = ("instrumental", "changed_lyrics", "reharmonised", "translated")
GAP_S = 0.4  # silence between sung lines
INSTRUMENTAL_S = 14.0  # length of an instrumental version


@dataclass(frozen=True)
class Layout:
    """A corpus size: works, versions per work, split fractions (train, val, test), vocal-to-band SNR range (dB),
    band-only intro and outro ranges (s)."""

    works: int
    versions: int = 5
    fractions: tuple[float, float, float] = (0.45, 0.1, 0.45)
    snr_db: tuple[float, float] = (0.0, 9.0)
    intro_s: tuple[float, float] = (1.5, 4.0)
    outro_s: tuple[float, float] = (1.0, 2.5)


# demo: 32 test works x 5 versions = 160 queries; 20 training works (about 100 chunks for the head)
SIZES = {
    "tiny": Layout(works=6, fractions=(1 / 3, 1 / 3, 1 / 3)),
    "demo": Layout(works=56, fractions=(0.36, 0.07, 0.57)),
}


@dataclass(frozen=True)
class Version:
    """One track to render: its lyrics (line texts in `language`, empty when instrumental), voice and band."""

    work: str
    version: int
    kind: str
    language: str
    voice: str
    lines: tuple[str, ...]
    arrangement: band.Arrangement
    snr_db: float
    intro_s: float
    outro_s: float


def layout(size) -> Layout:
    """The layout of a size ("tiny", "demo" or a number of works ≥ 3); ValueError otherwise."""
    if isinstance(size, str) and size in SIZES:
        return SIZES[size]
    return replace(SIZES["demo"], works=size_spec(size)["works"])  # the English corpus' rule for a count


def _rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


def _two(rng: np.random.Generator, names) -> tuple[str, str]:
    """Two different names drawn from `names`."""
    first, second = rng.choice(list(names), size=2, replace=False)
    return str(first), str(second)


def _arrangement(rng: np.random.Generator, seed: int) -> band.Arrangement:
    mode = str(rng.choice(("major", "minor"), p=(0.6, 0.4)))
    progressions = PROGRESSIONS[mode]
    return band.Arrangement(
        tonic=str(rng.choice(TONICS)),
        mode=mode,
        tempo_bpm=float(rng.choice((84, 92, 100, 108, 116, 124))),
        progression=progressions[int(rng.integers(len(progressions)))],
        instruments=(*_two(rng, CHORD_INSTRUMENTS), "bass", "drums"),
        seed=seed,
    )


def plan_works(size, seed: int = 0) -> list[dict]:
    """Every work: id, theme, line indices into its theme, hook index, languages in version order, band,
    the work it borrows its band from (distractors, the last eighth of the works) and its split."""
    spec = layout(size)
    plan = _rng(seed, 0)
    count = spec.works
    n_distractors = max(1, round(count / 8)) if count >= 4 else 0
    sources = sorted(int(s) for s in plan.choice(count - n_distractors, n_distractors, replace=False))
    themes = sorted(line_banks.THEMES)
    free = {theme: list(_rng(seed, 1, t).permutation(len(line_banks.THEMES[theme]))) for t, theme in enumerate(themes)}
    works = []
    for w in range(count):
        rng = _rng(seed, 2, w)
        source = sources[w - (count - n_distractors)] if w >= count - n_distractors else None
        theme = works[source]["theme"] if source is not None else themes[w % len(themes)]
        if not free[theme]:
            raise ValueError(f"theme {theme!r} has no unused lines left for {count} works")
        lines = (int(free[theme].pop()), int(free[theme].pop()) if free[theme] else None)
        first = str(rng.choice(LANGUAGES, p=FIRST_LANGUAGE_P))
        others = [str(x) for x in rng.permutation([x for x in LANGUAGES if x != first])]
        work = {
            "work": f"w{w:03d}",
            "index": w,
            "theme": theme,
            "lines": lines,
            "hook": int(rng.integers(len(line_banks.HOOKS))),
            "languages": (first, *others),
            "band": _arrangement(rng, w),
            "source": source,
        }
        if source is not None:
            work["languages"], work["band"] = works[source]["languages"], works[source]["band"]
        works.append(work)
    _assign_splits(works, spec.fractions, plan)
    return works


def lyrics(work: dict, language: str, replaced: str | None = None) -> tuple[str, ...]:
    """The work's sung lines in `language`: theme line, theme line (or `replaced`), hook."""
    theme = line_banks.THEMES[work["theme"]]
    first, second = (theme[i][language] if i is not None else None for i in work["lines"])
    lines = (first, replaced or second, line_banks.HOOKS[work["hook"]][language])
    return tuple(line for line in lines if line)


def _voice(rng, language: str, split: str, exclude: tuple[str, ...] = ()) -> str:
    pool = [v for v in TRAINING_VOICES[language] if v not in exclude] or list(TRAINING_VOICES[language])
    if split == "test" and rng.random() < 0.5 and HELD_OUT_VOICE not in exclude:
        return HELD_OUT_VOICE
    return str(rng.choice(pool))


def _moved(arrangement: band.Arrangement, rng) -> band.Arrangement:
    """The band in another key and tempo with other chord instruments (a cover's arrangement)."""
    tonic = str(rng.choice([t for t in TONICS if t != arrangement.tonic]))
    chords = _two(rng, [i for i in CHORD_INSTRUMENTS if i not in arrangement.instruments])
    tempo = round(arrangement.tempo_bpm * float(rng.choice((0.85, 0.92, 1.08, 1.15))), 1)
    return replace(arrangement, tonic=tonic, tempo_bpm=tempo, instruments=(*chords, "bass", "drums"))


def _reharmonised(arrangement: band.Arrangement, rng) -> band.Arrangement:
    """Other chords of the same mode and other chord instruments, the same key and tempo."""
    others = [p for p in PROGRESSIONS[arrangement.mode] if p != arrangement.progression]
    chords = _two(rng, [i for i in CHORD_INSTRUMENTS if i not in arrangement.instruments])
    return replace(arrangement, progression=others[int(rng.integers(len(others)))], instruments=(*chords, "bass"))


def plan_versions(works: list[dict], size, seed: int = 0) -> list[Version]:
    """Every track, work by work in version order (see the module docstring); distractors copy their source's
    band version by version."""
    spec = layout(size)
    versions: dict[tuple[int, int], Version] = {}
    for work in works:
        first, second, third, fourth = work["languages"]
        special = SPECIAL[work["index"] % len(SPECIAL)]
        rng = _rng(seed, 3, work["index"])
        voice = _voice(rng, first, work["split"])
        plans = [
            ("original", first, voice, work["band"], None),
            ("translated", second, _voice(rng, second, work["split"], (voice,)), work["band"], None),
            ("cover", first, _voice(rng, first, work["split"], (voice,)), _moved(work["band"], rng), None),
        ]
        if special == "translated":
            plans.append(("translated", fourth, _voice(rng, fourth, work["split"]), _moved(work["band"], rng), None))
        elif special == "reharmonised":
            plans.append(("reharmonised", first, voice, _reharmonised(work["band"], rng), None))
        elif special == "changed_lyrics":
            other = line_banks.THEMES[sorted(line_banks.THEMES)[(work["index"] + 5) % len(line_banks.THEMES)]]
            plans.append(("changed_lyrics", first, voice, work["band"], other[int(rng.integers(len(other)))][first]))
        else:
            plans.append(("instrumental", "", "", work["band"], None))
        plans.append(("translated", third, _voice(rng, third, work["split"]), _moved(work["band"], rng), None))
        for v, (kind, language, singer, arrangement, replaced) in enumerate(plans[: spec.versions]):
            if work["source"] is not None:
                kind, arrangement = "distractor", versions[work["source"], v].arrangement
                if not language:  # the source's instrumental version: sing the original over it
                    language, singer = first, voice
            versions[work["index"], v] = Version(
                work=work["work"],
                version=v,
                kind=kind,
                language=language,
                voice=singer,
                lines=lyrics(work, language, replaced) if language else (),
                arrangement=arrangement,
                snr_db=round(float(rng.uniform(*spec.snr_db)), 1),
                intro_s=round(float(rng.uniform(*spec.intro_s)), 2),
                outro_s=round(float(rng.uniform(*spec.outro_s)), 2),
            )
    return [versions[key] for key in sorted(versions)]


def render(version: Version, spoken: dict) -> tuple[np.ndarray, list[list[float]]]:
    """(the track's audio, float32 at 16 kHz; its sung-line segments in s): intro, the lines GAP_S apart, outro,
    the voice at `snr_db` over its band (band.mix), peak 0.9; an instrumental version is its band alone."""
    takes = [spoken[line, version.language, version.voice] for line in version.lines]
    if not takes:
        music = band.render(band.score(version.arrangement, duration_s=INSTRUMENTAL_S), duration_s=INSTRUMENTAL_S)
        return (0.9 * music / max(np.abs(music).max(), 1e-9)).astype(np.float32), []
    gap = np.zeros(int(round(GAP_S * SAMPLE_RATE)), np.float32)
    voice = np.concatenate([piece for take in takes for piece in (take, gap)][:-1])
    starts = np.cumsum([0, *[len(take) + len(gap) for take in takes[:-1]]])
    segments = [
        [round(version.intro_s + s / SAMPLE_RATE, 3), round(version.intro_s + (s + len(t)) / SAMPLE_RATE, 3)]
        for s, t in zip(starts, takes)
    ]
    seconds = version.intro_s + len(voice) / SAMPLE_RATE + version.outro_s
    music = band.render(band.score(version.arrangement, duration_s=seconds), duration_s=seconds)
    return band.mix(voice, music, version.snr_db, intro_s=version.intro_s), segments


def _row(version: Version, work: dict, audio: np.ndarray, segments: list) -> dict:
    arrangement = version.arrangement
    track_id = f"{version.work}-v{version.version}"
    return {
        "id": track_id,
        "path": f"audio/{track_id}.wav",
        "work": version.work,
        "clique": version.work,
        "version": version.version,
        "split": work["split"],
        "kind": version.kind,
        "lyrics": "\n".join(version.lines),
        "vocal_segments": json.dumps(segments),
        "duration_s": len(audio) / SAMPLE_RATE,
        "language": version.language,
        "voice": version.voice,
        "snr_db": version.snr_db if version.lines else np.nan,
        "offset_s": version.intro_s if version.lines else np.nan,
        "key": f"{arrangement.tonic} {arrangement.mode}",
        "key_shift": (band.tonic_pitch_class(arrangement.tonic) - band.tonic_pitch_class(work["band"].tonic)) % 12,
        "tempo_bpm": arrangement.tempo_bpm,
        "progression": "-".join(arrangement.progression),
        "instruments": "+".join(arrangement.instruments),
        "timbre": arrangement.instruments[0],
    }


def line_jobs(size="demo", seed: int = 0) -> list[speech.Job]:
    """Every sung line of the corpus as a (text, language, voice) job, each once, in plan order."""
    return _jobs(plan_versions(plan_works(size, int(seed)), size, int(seed)))


def _jobs(planned: list[Version]) -> list[speech.Job]:
    return list(dict.fromkeys((line, v.language, v.voice) for v in planned for line in v.lines))


def generate(out_dir, size="demo", seed: int = 0, workers: int | None = None, store=None) -> pd.DataFrame:
    """Write the corpus (audio/, tracks.csv, works.csv) under out_dir; return the tracks table. store: a folder of
    paperlib.data.speech lines (lines it lacks are synthesised); workers: processes for the voices (default
    min(2, CPUs)); the output depends on neither. Audio first, tables last."""
    works = plan_works(size, int(seed))
    planned = plan_versions(works, size, int(seed))
    spoken = speech.sing(_jobs(planned), store, min(2, os.cpu_count() or 1) if workers is None else workers)
    out, by_id = Path(out_dir), {work["work"]: work for work in works}
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for version in tqdm(planned, desc="corpus", unit="track"):
        audio, segments = render(version, spoken)
        rows.append(_row(version, by_id[version.work], audio, segments))
        _write_wav(out / rows[-1]["path"], audio)
    keep = {row["path"].split("/")[1] for row in rows}
    for stale in (out / "audio").glob("w*-v*.wav"):  # left over from an earlier, larger corpus
        if stale.name not in keep and re.fullmatch(r"w\d+-v\d+\.wav", stale.name):
            stale.unlink()
    write_csv(_works_table(works), out / "works.csv")
    table = pd.DataFrame(rows)
    write_csv(table, out / "tracks.csv")
    return table


def generate_kind(kind: str, out_dir, size="demo", seed: int = 0, store=None, workers: int | None = None):
    """The corpus of `kind` (config Corpus.kind): "multilingual" (this module) or "english" (paperlib.data.corpus: one
    Piper voice over tones, the fast corpus of the test tier); ValueError for another kind."""
    if kind == "multilingual":
        return generate(out_dir, size, seed, workers, store)
    if kind == "english":
        return corpus.generate(out_dir, size=size, seed=seed, workers=workers)
    raise ValueError(f"corpus.kind must be multilingual or english, got {kind!r}")


def _works_table(works: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "work": w["work"],
                "title": lyrics(w, "en")[0].rstrip(".,!?"),
                "theme": w["theme"],
                "split": w["split"],
                "lyrics": "\n".join(lyrics(w, w["languages"][0])),
                "language": w["languages"][0],
                "languages": "+".join(w["languages"]),
                "accompaniment_of": works[w["source"]]["work"] if w["source"] is not None else "",
                "key": f"{w['band'].tonic} {w['band'].mode}",
                "progression": "-".join(w["band"].progression),
                "tempo_bpm": w["band"].tempo_bpm,
            }
            for w in works
        ]
    )
