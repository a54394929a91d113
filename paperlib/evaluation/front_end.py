"""§5.2: the vocal-detection front end against Whisper alone on fixed 30 s windows.

Two front ends transcribe the same tracks with the same Whisper and decoding settings (`asr:`):
  detector  the teacher's route: vocal chunks (paperlib.lyrics.vocals), instrumental tracks never reach Whisper;
            its raw transcripts are the teacher's own (chunks.csv, raw_text);
  windows   every track cut into non-overlapping 30 s windows from 0 s (the last one zero-padded, as Whisper's
            feature extractor pads), Whisper's no-speech gating on (`asr.no_speech_threshold`: a window whose
            no-speech probability is above it and whose mean log-probability is below `asr.logprob_threshold`
            gives no text).
Per track: chunks transcribed, texts (raw outputs with at least one word), hallucinations (raw outputs, before
clean-up, that contain a phrase of paperlib.lyrics.asr.HALLUCINATIONS; one per output), the editorial lyrics' word count
(NaN where the set has no lyrics; 0 for an instrumental track, whose every text is invented) and WER of the raw
outputs joined in time order against the lyrics (sung tracks only; a sung track that got no text has WER 1).
Seconds per track are wall-clock and go to the runtime folder.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from paperlib import SAMPLE_RATE
from paperlib.data import eval_sets
from paperlib.evaluation import significance
from paperlib.lyrics import asr, teacher
from paperlib.runtime import audio, io
from paperlib.runtime.config import Config
from paperlib.runtime.schema import read_table, set_dir, timings_path

FRONT_ENDS = {"detector": "vocal detection", "windows": "fixed 30 s windows"}
TRACK_COLUMNS = ["set", "id", "front_end", "chunks", "texts", "hallucinations", "lyrics_words", "wer"]


def fixed_windows(wave: np.ndarray, window_s: float = 30.0) -> np.ndarray:
    """Non-overlapping windows [n, samples] of `window_s` seconds from the start of a 16 kHz wave; the last one
    zero-padded to full length, as Whisper's feature extractor pads it."""
    step = int(round(window_s * SAMPLE_RATE))
    count = max(1, -(-len(wave) // step))
    padded = np.zeros(count * step, np.float32)
    padded[: len(wave)] = wave
    return padded.reshape(count, step)


def count_hallucinations(outputs, phrases=asr.HALLUCINATIONS) -> int:
    """How many of the raw transcripts contain at least one of `phrases` (case-insensitive, as the clean-up)."""
    return sum(any(asr.phrase_pattern(p).search(text or "") for p in phrases) for text in outputs)


def track_row(track_id: str, outputs: list[str], lyrics: str | None) -> dict:
    """Scores of one track's raw transcripts; lyrics None: unknown (no WER, no word count), "": instrumental."""
    words = np.nan if lyrics is None else len(lyrics.split())
    wer = asr.word_error_rate(lyrics, " ".join(outputs)) if words and words > 0 else np.nan
    return {
        "id": track_id,
        "chunks": len(outputs),
        "texts": sum(bool(asr.normalise_for_wer(o)) for o in outputs),
        "hallucinations": count_hallucinations(outputs),
        "lyrics_words": words,
        "wer": wer,
    }


def detector_route(teacher_out: Path, tracks: pd.DataFrame) -> pd.DataFrame:
    """The teacher's raw transcripts of `tracks` (id, lyrics), scored per track; a track the teacher rejected
    before transcription has no chunks."""
    chunks = read_table(Path(teacher_out) / "chunks.csv").sort_values(["id", "chunk"], kind="stable")
    outputs = chunks.groupby("id", sort=False)["raw_text"].agg(list)
    rows = [track_row(i, list(outputs.get(i, [])), lyrics) for i, lyrics in zip(tracks["id"], tracks["lyrics"])]
    return pd.DataFrame(rows).assign(front_end="detector")


def windows_route(tracks: pd.DataFrame, transcriber: asr.Transcriber) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Fixed-window transcription of `tracks` (id, path, lyrics): (scores per track, seconds per track). Tracks go
    through in groups of transcriber.batch_size, one Whisper call per group (the teacher's batching), the call's
    time shared by window count. A file that cannot be decoded is scored as giving no text."""
    rows, seconds, group = [], [], max(1, transcriber.batch_size)
    for lo in tqdm(range(0, len(tracks), group), desc="fixed windows", unit="batch"):
        part = tracks.iloc[lo : lo + group]
        start = time.perf_counter()
        windows = [_windows_of(path) for path in part["path"]]
        outputs = transcriber.transcribe(np.concatenate(windows), progress=False) if sum(map(len, windows)) else []
        elapsed, offsets = time.perf_counter() - start, np.cumsum([0, *map(len, windows)])
        for track_id, lyrics, lo_, hi in zip(part["id"], part["lyrics"], offsets[:-1], offsets[1:]):
            rows.append(track_row(track_id, list(outputs[lo_:hi]), lyrics))
            seconds.append({"id": track_id, "front_end": "windows", "seconds": elapsed * (hi - lo_) / offsets[-1]})
    return pd.DataFrame(rows).assign(front_end="windows"), pd.DataFrame(seconds)


def _windows_of(path) -> np.ndarray:
    try:
        return fixed_windows(audio.load_audio(path))
    except audio.AudioError:
        return np.zeros((0, int(30 * SAMPLE_RATE)), np.float32)


def compare(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Both front ends on the tracks with audio of every evaluation set's first `evaluate.front_end_works` works
    (cliques, by id; 0: all): (scores per track, TRACK_COLUMNS; wall-clock seconds per track: set, id,
    front_end, seconds)."""
    transcriber = teacher.load_transcriber(cfg, no_speech_threshold=cfg.asr.no_speech_threshold)
    scores, seconds = [], []
    for name in cfg.evaluate.sets:
        tracks = _tracks(name, cfg)
        detected = detector_route(set_dir(cfg.paths, name), tracks)
        windowed, timed = windows_route(tracks, transcriber)
        scores += [detected.assign(set=name), windowed.assign(set=name)]
        seconds += [_detector_seconds(cfg, name, tracks["id"]).assign(set=name), timed.assign(set=name)]
    return pd.concat(scores, ignore_index=True)[TRACK_COLUMNS], pd.concat(seconds, ignore_index=True)


def _tracks(name: str, cfg: Config) -> pd.DataFrame:
    """id, path, lyrics (None where the set has none) of the set's tracks with audio of its first N works, by id."""
    tracks = eval_sets.read_cliques(name, cfg)
    tracks = tracks[tracks["path"] != ""].sort_values(["clique", "id"], kind="stable")
    if cfg.evaluate.front_end_works > 0:
        tracks = tracks[tracks["clique"].isin(tracks["clique"].drop_duplicates().head(cfg.evaluate.front_end_works))]
    lyrics = eval_sets.editorial_lyrics(name, cfg)
    tracks = tracks.assign(lyrics=None if lyrics is None else tracks["id"].map(lyrics).fillna(""))
    return tracks[["id", "path", "lyrics"]].reset_index(drop=True)


def _detector_seconds(cfg: Config, name: str, ids) -> pd.DataFrame:
    """The teacher's wall-clock detection + transcription seconds of `ids` (NaN where not recorded)."""
    path = timings_path(cfg.paths.runtime, name, "teacher")
    timings = read_table(path).set_index("id") if path.exists() else pd.DataFrame(columns=["t_detect_s", "t_asr_s"])
    spent = timings.reindex(list(ids))[["t_detect_s", "t_asr_s"]].apply(pd.to_numeric, errors="coerce")
    return pd.DataFrame({"id": list(ids), "front_end": "detector", "seconds": spent.sum(axis=1, min_count=1).values})


def summary(per_track: pd.DataFrame) -> pd.DataFrame:
    """Per set and front end: tracks, chunks, hallucinations (total, per track), texts on the instrumental tracks
    (where the set has lyrics), mean WER over the sung tracks and the Wilcoxon p of the per-track WER difference
    between the two front ends."""
    rows = []
    for (name, front_end), group in per_track.groupby(["set", "front_end"], sort=False):
        sung, instrumental = group[group["lyrics_words"] > 0], group[group["lyrics_words"] == 0]
        rows.append(
            {
                "set": name,
                "front_end": FRONT_ENDS[front_end],
                "tracks": len(group),
                "chunks": int(group["chunks"].sum()),
                "hallucinations": int(group["hallucinations"].sum()),
                "hallucinations_per_track": group["hallucinations"].mean(),
                "instrumental_tracks": len(instrumental),
                "texts_on_instrumental": int(instrumental["texts"].sum()),
                "WER": sung["wer"].mean() if len(sung) else np.nan,
                "sung_tracks": len(sung),
            }
        )
    table = pd.DataFrame(rows)
    table["WER_wilcoxon_p"] = table["set"].map(_wer_p(per_track))
    table["WER_wilcoxon_p"] = io.significant(table["WER_wilcoxon_p"])
    return table.round(dict.fromkeys(["hallucinations_per_track", "WER"], io.DECIMALS))


def seconds_table(seconds: pd.DataFrame) -> pd.DataFrame:
    """Wall-clock seconds per track (mean, std, total, tracks timed) per set and front end."""
    grouped = seconds.dropna(subset=["seconds"]).groupby(["set", "front_end"], sort=False)["seconds"]
    table = grouped.agg(["mean", "std", "sum", "count"]).reset_index()
    table["front_end"] = table["front_end"].map(FRONT_ENDS)
    return table.rename(columns={"mean": "s_per_track", "std": "s_std", "sum": "s_total", "count": "tracks"})


def _wer_p(per_track: pd.DataFrame) -> dict:
    """set → Wilcoxon p of detector vs windows WER on the tracks both scored."""
    values = {}
    for name, group in per_track.groupby("set", sort=False):
        wide = group.pivot(index="id", columns="front_end", values="wer").dropna()
        values[name] = significance.wilcoxon_p(wide["detector"], wide["windows"]) if len(wide) else np.nan
    return values
