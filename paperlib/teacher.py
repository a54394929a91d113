"""Teacher pipeline (paper Sec. 3.1): audio → vocal 30 s chunks → Whisper transcripts →
clean-up → sentence embeddings → one lyrics vector per track (the training/eval targets).

Outputs in `out_dir` (each written atomically):
  manifest.csv                 id, path, status (ok | instrumental | error), reason,
                               mean_vocalness, n_chunks, duration_s — one row per input, input order
  chunks.csv                   id, chunk (0-based), start_s, end_s (exact sample times: samples / 16000),
                               text (cleaned; "" if dropped), raw_text, kept
  chunk_text_embeddings.npy    float32 [len(chunks.csv), dim]; row i ↔ chunks.csv row i; zero if not kept
  text_embeddings.npz          track id → [dim] track vector (status ok only)
  vocalness.npz                track id → per-segment vocalness [n_segments] (every loaded track)
  timings.csv                  id, status, t_decode_s, t_detect_s, t_asr_s, t_text_s: wall-clock
                               seconds per track (the only output that differs between runs)
  encoder_states.npy           only with keep_encoder_states: float16 [len(chunks.csv), 1500, d_model],
                               row i ↔ chunks.csv row i: the Whisper encoder states each chunk was
                               transcribed from (training reuses them when it trains on the same encoder)
  encoder_states.json          {"whisper": the Whisper model they come from}
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from paperlib import asr, audio, io, text, vocals

log = logging.getLogger(__name__)

MANIFEST_COLUMNS = ["id", "path", "status", "reason", "mean_vocalness", "n_chunks", "duration_s"]
TIMING_COLUMNS = ["t_decode_s", "t_detect_s", "t_asr_s", "t_text_s"]
CHUNK_COLUMNS = ["id", "chunk", "start_s", "end_s", "text", "raw_text", "kept"]


def run_teacher(
    tracks: Sequence[tuple[str, Path]],
    out_dir: Path,
    detector,
    transcriber: asr.Transcriber,
    embedder: text.TextEmbedder,
    hallucinations: Sequence[str] = asr.HALLUCINATIONS,
    min_words: int = 4,
    max_repeats: int = 3,
    keep_encoder_states: bool = False,
    **vocal_params,
) -> pd.DataFrame:
    """Run the teacher on (id, path) tracks with already-loaded models; write the outputs.

    vocal_params go to paperlib.vocals.vocal_chunks (threshold, min_mean_vocalness, chunk_s,
    max_pad_s). A vocal track whose chunks are all dropped by the clean-up becomes
    "instrumental" ("no lyrics transcribed"). keep_encoder_states: also write the encoder states
    (1.5 MB per chunk for Whisper base, 3.8 MB for large-v3: small corpora only). Returns the manifest.
    """
    out_dir = Path(out_dir)
    for stale in ("encoder_states.npy", "encoder_states.json"):  # never pair old states with new chunks
        (out_dir / stale).unlink(missing_ok=True)
    chunk_rows: list[dict] = []
    chunk_vectors: list[np.ndarray] = []
    chunk_states: list[np.ndarray] = []
    track_vectors: dict[str, np.ndarray] = {}
    vocalness: dict[str, np.ndarray] = {}
    detected: dict[str, vocals.VocalChunks] = {}  # vocal chunks of the current window, by id

    def detect(track_id: str, wave: np.ndarray) -> dict:
        start = time.perf_counter()
        found = vocals.vocal_chunks(wave, detector, **vocal_params)
        vocalness[track_id] = np.asarray(found.scores, dtype=np.float32)
        row = {"status": found.status, "reason": found.reason, "mean_vocalness": round(found.mean_vocalness, 4),
               "t_detect_s": time.perf_counter() - start}
        if found.status == "ok":
            detected[track_id] = found
        return row | {"n_chunks": 0}

    def finish(row: dict, found: vocals.VocalChunks, raw: list[str], states: np.ndarray | None) -> None:
        start = time.perf_counter()
        cleaned = [asr.clean_transcript(t, hallucinations, min_words, max_repeats) for t in raw]
        keep = np.array([t is not None for t in cleaned], dtype=bool)
        vectors = np.zeros((len(raw), embedder.dim), np.float32)
        vectors[keep] = embedder.embed([t for t in cleaned if t is not None])
        row["t_text_s"] = time.perf_counter() - start
        row["n_chunks"] = len(raw)
        if keep.any():
            track_vectors[row["id"]] = text.track_vector(vectors[keep])
        else:
            row |= {"status": "instrumental", "reason": "no lyrics transcribed"}
        # all steps done: only now record this track's chunks (an exception above records nothing)
        chunk_rows.extend(
            {"id": row["id"], "chunk": i, "start_s": lo, "end_s": hi,
             "text": t or "", "raw_text": r, "kept": t is not None}
            for i, (lo, hi, t, r) in enumerate(zip(found.starts_s, found.ends_s, cleaned, raw))
        )
        chunk_vectors.append(vectors)
        if states is not None:
            chunk_states.append(states)

    # Tracks go through in windows of batch_size: vocal detection per track, then one Whisper call
    # on all the window's chunks (batches mix tracks; a one-chunk track alone would decode at
    # batch 1), then clean-up and text embedding per track.
    rows: list[dict] = []
    window = max(1, transcriber.batch_size)
    with tqdm(total=len(tracks), desc="lyrics", unit="track") as bar:
        for lo in range(0, len(tracks), window):
            part = audio.run_per_track(list(tracks[lo : lo + window]), detect, desc="lyrics", progress=False)
            _transcribe_window([r for r in part if r["id"] in detected], detected, transcriber, finish,
                               keep_encoder_states)
            detected.clear()
            rows += part
            bar.update(len(part))

    timings = pd.DataFrame(rows).reindex(columns=["id", "status", *TIMING_COLUMNS])
    manifest = pd.DataFrame(rows).reindex(columns=MANIFEST_COLUMNS)
    manifest["n_chunks"] = manifest["n_chunks"].astype("Int64")
    chunks = pd.DataFrame(chunk_rows, columns=CHUNK_COLUMNS)
    matrix = np.concatenate(chunk_vectors) if chunk_vectors else np.zeros((0, embedder.dim), np.float32)

    io.write_csv(manifest, out_dir / "manifest.csv")
    io.write_csv(chunks, out_dir / "chunks.csv")
    with io.atomic_path(out_dir / "chunk_text_embeddings.npy") as tmp, open(tmp, "wb") as handle:
        np.save(handle, matrix.astype(np.float32))
    ok_ids = manifest.loc[manifest.status == "ok", "id"]
    io.save_npz(out_dir / "text_embeddings.npz", {i: track_vectors[i] for i in ok_ids})
    io.save_npz(out_dir / "vocalness.npz", {i: vocalness[i] for i in manifest["id"] if i in vocalness})
    io.write_csv(timings, out_dir / "timings.csv")
    if keep_encoder_states:
        _write_states(chunk_states, len(chunks), transcriber, out_dir)
    return manifest


def _transcribe_window(rows: list[dict], detected: dict, transcriber: asr.Transcriber, finish,
                       keep_states: bool = False) -> None:
    """Transcribe the chunks of `rows` (tracks with vocals) in one call and finish each track.

    Wall-clock ASR time is shared among the tracks by chunk count. If the joint call fails, each
    track is retried alone so that only the track that fails gets status "error".
    """
    if not rows:
        return
    counts = [len(detected[r["id"]].chunks) for r in rows]
    start = time.perf_counter()
    try:
        chunks = np.concatenate([detected[r["id"]].chunks for r in rows])
        if keep_states:
            raw, states = transcriber.transcribe(chunks, progress=False, encoder_states=True)
        else:
            raw, states = transcriber.transcribe(chunks, progress=False), None
    except Exception as exc:  # isolate the culprit
        if len(rows) > 1:
            log.warning("lyrics: a batch of %d tracks failed (%s: %s); retrying track by track",
                        len(rows), type(exc).__name__, exc)
            for row in rows:
                _transcribe_window([row], detected, transcriber, finish, keep_states)
            return
        _fail(rows[0], exc)
        return
    seconds = time.perf_counter() - start
    offset = 0
    for row, n in zip(rows, counts):
        row["t_asr_s"] = seconds * n / sum(counts)
        try:
            finish(row, detected[row["id"]], raw[offset : offset + n],
                   None if states is None else states[offset : offset + n])
        except Exception as exc:  # one track must never stop the stage
            _fail(row, exc)
        offset += n


def _write_states(parts: list[np.ndarray], rows: int, transcriber: asr.Transcriber, out_dir: Path) -> None:
    """encoder_states.npy, written part by part (never held twice in memory), and its model."""
    config = transcriber.model.config
    shape = (rows, config.max_source_positions, config.d_model)
    if sum(len(part) for part in parts) != rows:
        raise RuntimeError(f"encoder states for {sum(len(p) for p in parts)} chunks, but {rows} chunk rows")
    with io.atomic_path(out_dir / "encoder_states.npy") as tmp:
        array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=shape)
        offset = 0
        for part in parts:
            array[offset : offset + len(part)] = part
            offset += len(part)
        array.flush()
        del array
    io.write_json({"whisper": transcriber.source}, out_dir / "encoder_states.json")


def _fail(row: dict, exc: Exception) -> None:
    row.pop("n_chunks", None)  # as for tracks that failed before vocal detection
    audio.record_failure(row, exc, "lyrics")


# --------------------------------------------------------------------------- teacher quality
SNR_BANDS = ((0, 5), (5, 10), (10, 15))


def corpus_quality(tracks: pd.DataFrame, out_dir: str | Path, threshold: float = 0.5,
                   segment_s: float = 1.0) -> tuple[dict, pd.DataFrame]:
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
    manifest = pd.read_csv(out_dir / "manifest.csv", dtype={"id": str}, keep_default_na=False).set_index("id")
    chunks = pd.read_csv(out_dir / "chunks.csv", dtype={"id": str}, keep_default_na=False)
    chunks = chunks[chunks["kept"].astype(str).str.lower() == "true"].sort_values(["id", "start_s"], kind="stable")
    hypotheses = chunks.groupby("id", sort=False)["text"].agg(" ".join)
    sung = tracks[tracks["kind"] != "instrumental"].copy()
    sung["wer"] = [asr.word_error_rate(ref, hypotheses.get(i, "")) for i, ref in zip(sung["id"], sung["lyrics"])]
    sung["snr_band"] = pd.cut(sung["snr_db"], [b[0] for b in SNR_BANDS] + [SNR_BANDS[-1][1]], include_lowest=True,
                              labels=[f"{lo}–{hi}" for lo, hi in SNR_BANDS])
    by_band = (sung.groupby("snr_band", observed=False)["wer"].agg(["size", "mean"]).reset_index()
               .rename(columns={"size": "tracks", "mean": "wer"}))
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
