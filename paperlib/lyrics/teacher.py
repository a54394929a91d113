"""Teacher pipeline (paper Sec. 3.1): audio → vocal 30 s chunks → Whisper transcripts →
clean-up → sentence embeddings → one lyrics vector per track (the training/eval targets).

Outputs in `out_dir` (each written atomically):
  manifest.csv                 id, path, status (ok | instrumental | error), reason,
                               mean_vocalness, n_chunks, duration_s — one row per input, input order
  chunks.csv                   id, chunk (0-based), start_s, end_s (exact sample times: samples / 16000),
                               text (cleaned; "" if dropped), raw_text, kept, language (the code Whisper
                               decoded the chunk in: asr.language, or detected per chunk when it is empty),
                               language_prob (Whisper's probability of that language, 4 decimals)
  chunk_text_embeddings.npy    float32 [len(chunks.csv), dim]; row i ↔ chunks.csv row i; zero if not kept
  text_embeddings.npz          track id → [dim] track vector (status ok only)
  vocalness.npz                track id → per-segment vocalness [n_segments] (every loaded track)
  timings.csv                  id, status, t_decode_s, t_detect_s, t_asr_s, t_text_s: wall-clock
                               seconds per track (or at timings_path; the only output that differs
                               between runs)
  encoder_states.npy           only with keep_encoder_states: float16 [len(chunks.csv), 1500, d_model],
                               row i ↔ chunks.csv row i: the Whisper encoder states each chunk was
                               transcribed from (training reuses them when it trains on the same encoder)
  encoder_states.json          {"whisper": the Whisper model they come from}
  settings.json                the seed, models, vocals and asr settings of the run (runs of `run`)
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from paperlib.lyrics import asr, text_embedding, vocals
from paperlib.runtime import audio, engine, io, shards
from paperlib.runtime.config import Asr, Config, Vocals, to_dict
from paperlib.runtime.schema import CHUNK_COLUMNS, MANIFEST_COLUMNS, TEACHER_SETTINGS, read_table, read_tracks
from paperlib.weights.packaged import resolve_model

log = logging.getLogger(__name__)

TIMING_COLUMNS = ["t_decode_s", "t_detect_s", "t_asr_s", "t_text_s"]


class TrackText(NamedTuple):
    """What the teacher keeps of one transcribed track."""

    chunks: list[dict]  # chunks.csv rows, chunk order
    vectors: np.ndarray  # chunk text embeddings [n, dim] (zero rows for dropped chunks)
    states: np.ndarray | None  # encoder states [n, 1500, width] float16 when kept
    track_vector: np.ndarray | None  # mean of the kept chunks' vectors; None: no lyrics transcribed


def training_tracks(cfg: Config) -> pd.DataFrame:
    """The tracks the teacher transcribes: those of train.data — none when a given checkpoint is evaluated
    (train.checkpoint) and no set needs the corpus' transcripts (the demo set reuses them as its baseline)."""

    tracks = read_tracks(cfg.train.data, cfg.paths.corpus)
    if cfg.train.checkpoint and "demo" not in cfg.evaluate.sets:
        log.info("train.checkpoint is set: no training to transcribe for")
        return tracks.iloc[:0]
    return tracks


def load_teacher(cfg: Config, vocal_settings: Vocals | None = None):
    """(vocal detector, Whisper transcriber, sentence encoder) of the settings, on cfg.device."""
    detector = vocals.detector_for(vocal_settings or cfg.vocals, device=cfg.device)
    return (detector, *load_asr(cfg))


def load_asr(cfg: Config) -> tuple[asr.Transcriber, text_embedding.TextEmbedder]:
    """(Whisper transcriber, sentence encoder) of the settings, on cfg.device."""
    return load_transcriber(cfg), text_embedding.load_embedder(cfg.models.text, cfg.paths.models, cfg.device)


def load_transcriber(cfg: Config, no_speech_threshold: float | None = None) -> asr.Transcriber:
    """The teacher's Whisper with the `asr:` decoding settings; no_speech_threshold: Whisper's gating (off)."""

    return asr.Transcriber(
        resolve_model(cfg.models.whisper, cfg.paths.models),
        device=cfg.device,
        batch_size=cfg.asr.batch_size,
        language=cfg.asr.language or None,
        compression_ratio_threshold=cfg.asr.compression_ratio_threshold,
        logprob_threshold=cfg.asr.logprob_threshold,
        no_speech_threshold=no_speech_threshold,
        seed=cfg.seed,
    )


def run_teacher(
    tracks: Sequence[tuple[str, Path]],
    out_dir: Path,
    detector,
    transcriber: asr.Transcriber,
    embedder: text_embedding.TextEmbedder,
    vocal_settings: Vocals,
    asr_settings: Asr,
    keep_encoder_states: bool = False,
    timings_path: Path | None = None,
    hallucinations: Sequence[str] = asr.HALLUCINATIONS,
) -> pd.DataFrame:
    """Run the teacher here on (id, path) tracks with already-loaded models; write the outputs; return the manifest.

    Tracks go through in windows of transcriber.batch_size: vocal detection per track, then one Whisper
    call on all the window's chunks (batches mix tracks), then clean-up and text embedding per track.
    A vocal track whose chunks are all dropped by the clean-up becomes "instrumental". timings_path:
    where the wall-clock seconds go (default out_dir/timings.csv). keep_encoder_states: also write the
    encoder states (1.5 MB per chunk for Whisper base, 3.8 MB for large-v3: small corpora only).
    """
    prepare = _detect_step(detector, vocal_settings)
    process = functools.partial(
        transcribe_tracks,
        transcriber=transcriber,
        embedder=embedder,
        settings=asr_settings,
        keep_states=keep_encoder_states,
        hallucinations=tuple(hallucinations),
    )
    window = max(1, transcriber.batch_size)
    rows = list(tqdm(engine.local_rows(list(tracks), prepare, process, window, "lyrics"), "lyrics", len(tracks)))
    return write_rows(rows, out_dir, timings_path, transcriber.source if keep_encoder_states else None)


@dataclass(frozen=True)
class LyricsJob:
    """The teacher as an engine job (paperlib.runtime.engine): prepare = vocal detection and 30 s chunks (CPU);
    process =
    Whisper on the chunks of a batch of tracks, clean-up, sentence embedding. cfg: models.*, asr.*, seed and
    paths.models (absolute); detector: a picklable callable building the vocal detector (None: the settings' own).
    keep_states: the rows carry the encoder states (held in memory: small corpora only)."""

    cfg: Config
    vocals: Vocals
    keep_states: bool = False
    detector: Callable[[], object] | None = None
    name: str = "lyrics"

    @classmethod
    def of(cls, cfg: Config, vocal_settings: Vocals | None = None, keep_states=False, detector=None) -> LyricsJob:
        """The job of cfg (its paths.models made absolute) chunking with `vocal_settings` (default: cfg.vocals)."""
        paths = replace(cfg.paths, models=str(Path(cfg.paths.models).absolute()))
        return cls(replace(cfg, paths=paths), vocal_settings or cfg.vocals, keep_states, detector)

    def signature(self) -> dict:
        """The seed, models, vocals and asr settings (what settings.json records), and the detector."""
        sections = {"models": self.cfg.models, "vocals": self.vocals, "asr": self.cfg.asr}
        return (
            {"seed": self.cfg.seed}
            | {key: to_dict(value) for key, value in sections.items()}
            | {"detector": engine.callable_name(self.detector)}
        )

    def prepare_step(self, device: str):
        detector = self.detector() if self.detector else vocals.detector_for(self.vocals, device=device)
        return _detect_step(detector, self.vocals)

    def process_step(self, device: str):
        transcriber, embedder = load_asr(replace(self.cfg, device=device))
        return functools.partial(
            transcribe_tracks,
            transcriber=transcriber,
            embedder=embedder,
            settings=self.cfg.asr,
            keep_states=self.keep_states,
        )


def run(job: LyricsJob, tracks: Sequence[tuple[str, Path]], out_dir, cfg: Config, timings_path=None, steps=None):
    """The teacher on cfg's engine; writes its outputs in out_dir and returns the manifest. Without encoder states
    the finished tracks first go to OUT/shards/ (a rerun skips the ids there); with them the run is held in memory
    (the states do not fit a shard). steps: engine.local_steps(job, cfg), when already built."""
    out_dir = Path(out_dir)
    if job.keep_states:
        rows = engine.run(job, tracks, cfg, steps)
    else:
        engine.run_to_shards(job, tracks, cfg, out_dir / "shards", keep=_shard_row, steps=steps)
        rows = _shard_rows(out_dir / "shards", [track_id for track_id, _ in tracks])
    manifest = write_rows(rows, out_dir, timings_path, _whisper_source(cfg) if job.keep_states else None)
    io.write_json({k: v for k, v in job.signature().items() if k != "detector"}, out_dir / TEACHER_SETTINGS)
    return manifest


def _whisper_source(cfg: Config) -> str:
    """The Whisper model of cfg as its paths name it (Transcriber.source of load_transcriber(cfg))."""

    return str(resolve_model(cfg.models.whisper, cfg.paths.models))


def _detect_step(detector, settings: Vocals):
    return lambda _, wave: detect_step(wave, detector, settings)


def detect_step(wave: np.ndarray, detector, settings: Vocals) -> tuple[dict, vocals.VocalChunks]:
    """Vocal detection and 30 s chunking of one 16 kHz wave: (manifest fields with t_detect_s, the chunks)."""
    start = time.perf_counter()
    found = vocals.vocal_chunks(wave, detector, **settings.chunking())
    return {
        "status": found.status,
        "reason": found.reason,
        "mean_vocalness": round(found.mean_vocalness, 4),
        "t_detect_s": time.perf_counter() - start,
        "n_chunks": 0,
    }, found


def transcribe_step(
    items: list[tuple[dict, vocals.VocalChunks]], transcriber: asr.Transcriber, keep_states: bool
) -> list[tuple[dict, vocals.VocalChunks, asr.Transcription | None]]:
    """Transcribe the chunks of the tracks in one call: (row with t_asr_s, chunks, the track's transcription).

    Wall-clock ASR time is shared among the tracks by chunk count. If the joint call fails, each
    track is retried alone, so that only a track that fails by itself gets status "error" (raw None).
    """
    if not items:
        return []
    counts = [len(found.chunks) for _, found in items]
    start = time.perf_counter()
    try:
        chunks = np.concatenate([found.chunks for _, found in items])
        found = transcriber.run(chunks, progress=False, encoder_states=keep_states)
    except Exception as exc:  # isolate the culprit
        if len(items) == 1:
            return [(_failed(items[0][0], exc), items[0][1], None)]
        log.warning(
            "lyrics: a batch of %d tracks failed (%s: %s); retrying track by track", len(items), type(exc).__name__, exc
        )
        return [result for item in items for result in transcribe_step([item], transcriber, keep_states)]
    seconds, offsets = time.perf_counter() - start, np.cumsum([0, *counts])
    return [
        (row | {"t_asr_s": seconds * n / sum(counts)}, chunks, _part(found, lo, hi))
        for (row, chunks), n, lo, hi in zip(items, counts, offsets[:-1], offsets[1:])
    ]


def _part(found: asr.Transcription, lo: int, hi: int) -> asr.Transcription:
    """Chunks lo:hi of a transcription."""
    return asr.Transcription(*(None if field is None else field[lo:hi] for field in found))


def finish_step(
    row: dict,
    found: vocals.VocalChunks,
    heard: asr.Transcription | None,
    embedder: text_embedding.TextEmbedder,
    settings: Asr,
    hallucinations,
) -> tuple[dict, TrackText | None]:
    """Clean-up and text embedding of one transcribed track: (manifest row, its texts or None on failure)."""
    if heard is None:
        return row, None
    raw = heard.texts
    try:
        start = time.perf_counter()
        cleaned = [asr.clean_transcript(t, hallucinations, settings.min_words, settings.max_repeats) for t in raw]
        keep = np.array([t is not None for t in cleaned], dtype=bool)
        vectors = np.zeros((len(raw), embedder.dim), np.float32)
        vectors[keep] = embedder.embed([t for t in cleaned if t is not None])
    except Exception as exc:  # one track must never stop the stage
        return _failed(row, exc), None
    row = row | {"t_text_s": time.perf_counter() - start, "n_chunks": len(raw)}
    if not keep.any():
        row |= {"status": "instrumental", "reason": "no lyrics transcribed"}
    chunks = [
        {"id": row["id"], "chunk": i, "start_s": lo, "end_s": hi, "text": t or "", "raw_text": r, "kept": t is not None}
        | {"language": code, "language_prob": round(float(p), io.VALUE_DECIMALS)}
        for i, (lo, hi, t, r, code, p) in enumerate(
            zip(found.starts_s, found.ends_s, cleaned, raw, heard.languages, heard.language_probs)
        )
    ]
    vector = text_embedding.track_vector(vectors[keep]) if keep.any() else None
    return row, TrackText(chunks, vectors, heard.states, vector)


def _failed(row: dict, exc: Exception) -> dict:
    row = {k: v for k, v in row.items() if k != "n_chunks"}  # as for tracks that failed before vocal detection
    audio.record_failure(row, exc, "lyrics")
    return row


LYRICS_ARRAYS = ("vector", "chunk_vectors", "scores", "states")
"""Array fields of a lyrics track row: track vector [dim], chunk text vectors [n, dim], vocalness [segments],
encoder states [n, 1500, width] float16 (only when kept). A row also carries `text_dim` and json `chunks`
(chunks.csv rows; null when no text was kept or made)."""


def transcribe_tracks(
    items: list[tuple[dict, vocals.VocalChunks | None]],
    transcriber: asr.Transcriber,
    embedder: text_embedding.TextEmbedder,
    settings: Asr,
    keep_states: bool = False,
    hallucinations: Sequence[str] = asr.HALLUCINATIONS,
) -> list[dict]:
    """The process step: lyrics track rows of detected tracks, the chunks of all "ok" ones in one Whisper call."""
    ready = [(row, found) for row, found in items if found is not None and row["status"] == "ok"]
    finished = {
        row["id"]: finish_step(row, found, heard, embedder, settings, hallucinations)
        for row, found, heard in transcribe_step(ready, transcriber, keep_states)
    }
    return [_track_row(*finished.get(row["id"], (row, None)), found, embedder.dim) for row, found in items]


def _track_row(row: dict, track: TrackText | None, found: vocals.VocalChunks | None, dim: int) -> dict:
    return row | {
        "text_dim": dim,
        "scores": None if found is None else np.asarray(found.scores, dtype=np.float32),
        "vector": None if track is None else track.track_vector,
        "chunk_vectors": None if track is None else track.vectors,
        "chunks": None if track is None else json.dumps(track.chunks),
        "states": None if track is None else track.states,
    }


def _shard_row(row: dict) -> dict:
    """What a shard keeps of a lyrics row: all but the encoder states."""
    return {k: v for k, v in row.items() if k != "states"}


def _shard_rows(folder: Path, order: list[str]) -> list[dict]:
    """The lyrics rows of a shard folder, in `order` (ids never written are left out; none for no shard)."""
    if not shards.shard_files(folder):
        return []
    rows = shards.read_rows(folder, arrays=True)
    rows = rows.set_index("id", drop=False).loc[[i for i in order if i in set(rows["id"])]]
    return rows.to_dict("records")


def _results(rows: list[dict]) -> tuple[list[tuple[dict, TrackText | None]], dict, int]:
    """(results [(manifest row, TrackText | None)], vocalness scores by id, text dimension) of lyrics rows (held in
    memory or read back from shards: arrays as numpy or as lists, a missing field absent, None or NaN)."""
    results, scores, dims = [], {}, set()
    for record in rows:
        fields = {k: v for k, v in record.items() if not _missing(v)}
        arrays = {name: fields.pop(name, None) for name in (*LYRICS_ARRAYS, "chunks", "text_dim")}
        if arrays["text_dim"] is not None:
            dims.add(int(arrays["text_dim"]))
        if arrays["scores"] is not None:
            scores[fields["id"]] = shards.as_array(arrays["scores"])
        track = None
        if isinstance(arrays["chunks"], str):
            vector = None if arrays["vector"] is None else shards.as_array(arrays["vector"])
            chunk_vectors = shards.as_array(arrays["chunk_vectors"])
            track = TrackText(json.loads(arrays["chunks"]), chunk_vectors, arrays["states"], vector)
        results.append((fields, track))
    return results, scores, dims.pop() if dims else 0


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and np.isnan(value))


def manifest_of(results: list[tuple[dict, TrackText | None]]) -> pd.DataFrame:
    manifest = pd.DataFrame([row for row, _ in results]).reindex(columns=MANIFEST_COLUMNS)
    manifest["n_chunks"] = manifest["n_chunks"].astype("Int64")
    return manifest


def write_rows(rows: list[dict], out_dir: str | Path, timings_path=None, states_source: str | None = None):
    """The teacher's files of lyrics rows (input order) in out_dir; returns the manifest. states_source: the Whisper
    the rows' encoder states come from (None: no states kept; stale ones are removed)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in ("encoder_states.npy", "encoder_states.json"):  # never pair old states with new chunks
        (out_dir / stale).unlink(missing_ok=True)
    results, scores, dim = _results(rows)
    write_outputs(results, scores, out_dir, dim, Path(timings_path or out_dir / "timings.csv"))
    if states_source is not None:
        _write_states([t.states for _, t in results if t is not None], out_dir, states_source)
    return manifest_of(results)


def write_outputs(
    results: list[tuple[dict, TrackText | None]], scores: dict, out_dir: Path, dim: int, timings_path: Path
) -> None:
    """manifest.csv, chunks.csv, chunk_text_embeddings.npy, text_embeddings.npz, vocalness.npz, timings."""
    texts = [t for _, t in results if t is not None]
    manifest = manifest_of(results)
    io.write_csv(manifest, out_dir / "manifest.csv")
    io.write_csv(pd.DataFrame([c for t in texts for c in t.chunks], columns=CHUNK_COLUMNS), out_dir / "chunks.csv")
    matrix = np.concatenate([t.vectors for t in texts]) if texts else np.zeros((0, dim), np.float32)
    with io.atomic_path(out_dir / "chunk_text_embeddings.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, matrix.astype(np.float32))
    track_vectors = {row["id"]: t.track_vector for row, t in results if t is not None}
    ok_ids = manifest.loc[manifest.status == "ok", "id"]
    io.save_npz(out_dir / "text_embeddings.npz", {i: track_vectors[i] for i in ok_ids})
    io.save_npz(
        out_dir / "vocalness.npz", {i: np.asarray(scores[i], dtype=np.float32) for i in manifest["id"] if i in scores}
    )
    timings = pd.DataFrame([row for row, _ in results]).reindex(columns=["id", "status", *TIMING_COLUMNS])
    io.write_csv(timings, timings_path)


def _write_states(parts: list[np.ndarray], out_dir: Path, source: str) -> None:
    """encoder_states.npy (row i ↔ chunks.csv row i), written part by part, and the model they come from."""
    rows = sum(len(part) for part in parts)
    shape = (rows, *parts[0].shape[1:]) if parts else (0, 0, 0)
    with io.atomic_path(out_dir / "encoder_states.npy") as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
        offset = 0
        for part in parts:
            array[offset : offset + len(part)] = part
            offset += len(part)
        array.flush()
        del array
    io.write_json({"whisper": source}, out_dir / "encoder_states.json")


# --------------------------------------------------------------------------- teacher quality
SNR_BANDS = ((0, 5), (5, 10), (10, 15))


def corpus_quality(
    tracks: pd.DataFrame, out_dir: str | Path, threshold: float = 0.5, segment_s: float = 1.0
) -> tuple[dict, pd.DataFrame]:
    """Teacher quality against the generated corpus' ground truth.

    tracks: the corpus table (id, kind, lyrics, vocal_segments, snr_db). Returns (summary, WER by
    vocal-to-accompaniment band). WER per sung track = reference lyrics vs the kept chunk
    transcripts joined in time order ("" when the track was rejected: WER 1). Vocal detection is
    scored per `segment_s` segment: predicted vocal when vocalness > threshold, truly vocal when
    at least half of the segment lies inside a sung line; plus the track-level decision
    (a sung track accepted, an instrumental one rejected).
    """
    import json

    out_dir = Path(out_dir)
    manifest = read_table(out_dir / "manifest.csv").set_index("id")
    chunks = read_table(out_dir / "chunks.csv")
    chunks = chunks[chunks["kept"].astype(str).str.lower() == "true"].sort_values(["id", "start_s"], kind="stable")
    hypotheses = chunks.groupby("id", sort=False)["text"].agg(" ".join)
    sung = tracks[tracks["kind"] != "instrumental"].copy()
    sung["wer"] = [asr.word_error_rate(ref, hypotheses.get(i, "")) for i, ref in zip(sung["id"], sung["lyrics"])]
    sung["snr_band"] = pd.cut(
        sung["snr_db"],
        [b[0] for b in SNR_BANDS] + [SNR_BANDS[-1][1]],
        include_lowest=True,
        labels=[f"{lo}–{hi}" for lo, hi in SNR_BANDS],
    )
    by_band = (
        sung.groupby("snr_band", observed=False)["wer"]
        .agg(["size", "mean"])
        .reset_index()
        .rename(columns={"size": "tracks", "mean": "wer"})
    )
    by_band["snr_band"] = by_band["snr_band"].astype(str)

    tp = fp = fn = 0
    with np.load(out_dir / "vocalness.npz") as archive:
        for track_id, segments in zip(tracks["id"], tracks["vocal_segments"]):
            if track_id not in archive.files:
                continue
            predicted = archive[track_id] > threshold
            starts = np.arange(len(predicted)) * segment_s
            covered = np.zeros(len(predicted))
            for lo, hi in json.loads(segments or "[]"):
                covered += np.clip(np.minimum(starts + segment_s, hi) - np.maximum(starts, lo), 0, None)
            truth = covered >= segment_s / 2
            tp += int((predicted & truth).sum())
            fp += int((predicted & ~truth).sum())
            fn += int((~predicted & truth).sum())
    status = manifest["status"].reindex(tracks["id"]).fillna("error").to_numpy()
    is_sung = (tracks["kind"] != "instrumental").to_numpy()
    summary = {
        "wer": round(float(sung["wer"].mean()), 4),
        "wer_by_snr": {band: round(float(w), 4) for band, w in zip(by_band["snr_band"], by_band["wer"])},
        "vocal_segments": {"precision": round(tp / max(tp + fp, 1), 4), "recall": round(tp / max(tp + fn, 1), 4)},
        "sung_tracks_accepted": f"{int(((status == 'ok') & is_sung).sum())}/{int(is_sung.sum())}",
        "instrumental_tracks_rejected": f"{int(((status == 'instrumental') & ~is_sung).sum())}/{int((~is_sung).sum())}",
    }
    by_band["wer"] = by_band["wer"].round(4)
    return summary, by_band
