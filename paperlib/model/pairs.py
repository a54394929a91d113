"""Training pairs (paper §3.2): each chunk the teacher kept ↔ its lyrics text embedding.

Audio side, per chunk: the Whisper log-mel of the chunk re-cut from its track exactly as the teacher cut
it ([n, n_mels, 3000] float32, or computed lazily per item), or, when the teacher kept them and its
Whisper is the training encoder, the encoder states it transcribed the chunk from ([n, 1500, width]
float16). Text side: the chunk's text embedding [n, d] float32. Order: track table order, then chunks.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from paperlib.model.features import cut_chunk, log_mel
from paperlib.runtime.audio import AudioError, load_audio
from paperlib.runtime.schema import read_table

log = logging.getLogger(__name__)


class ChunkFeatures(Dataset):
    """Lazy log-mel of teacher chunks: item i decodes its track, cuts the chunk, computes features."""

    def __init__(self, items: list[tuple[str, float, float]], feature_extractor):
        self.items, self.feature_extractor = items, feature_extractor  # (path, start_s, end_s)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        path, start_s, end_s = self.items[index]
        return log_mel(self.feature_extractor, [cut_chunk(load_audio(path), start_s, end_s)])[0]


class Pairs(NamedTuple):
    """Training pairs of one split; row i of each field belongs together."""

    features: torch.Tensor | ChunkFeatures  # log-mel (tensor or lazy), or encoder states when `encoded`
    text: torch.Tensor  # chunk text embeddings [n, d] float32
    keys: pd.DataFrame  # id, chunk, start_s, end_s
    encoded: bool = False  # features are the frozen encoder's states [n, 1500, width] float16 (the teacher's)


def read_teacher(teacher_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(manifest, chunks, chunk text embeddings) of a `paperlib lyrics` output folder."""
    teacher_dir = Path(teacher_dir)
    manifest, chunks = read_table(teacher_dir / "manifest.csv"), read_table(teacher_dir / "chunks.csv")
    vectors = np.load(teacher_dir / "chunk_text_embeddings.npy")
    if len(vectors) != len(chunks):
        raise ValueError(f"{teacher_dir}: {len(chunks)} chunks but {len(vectors)} chunk embeddings")
    chunks["kept"] = chunks["kept"].astype(str).str.lower() == "true"
    return manifest, chunks, vectors.astype(np.float32, copy=False)


def teacher_states(teacher_dir: str | Path, whisper: str | None) -> np.ndarray | None:
    """The teacher's encoder states (float16 [len(chunks.csv), 1500, width], memory-mapped) when it kept
    them and its Whisper is `whisper` (the training encoder's name or folder); otherwise None."""
    info = Path(teacher_dir) / "encoder_states.json"
    if whisper is None or not info.is_file():
        return None
    source = json.loads(info.read_text()).get("whisper")
    if source != str(whisper):
        log.info(
            "pairs: the teacher's encoder states come from %s, not %s: computing the encoder's own", source, whisper
        )
        return None
    return np.load(Path(teacher_dir) / "encoder_states.npy", mmap_mode="r")


def build_pairs(
    teacher_dir: str | Path,
    tracks: pd.DataFrame,
    feature_extractor,
    splits: list[str] | None = None,
    lazy: bool = False,
    whisper: str | None = None,
) -> dict[str, Pairs]:
    """Audio/text pairs per split from the teacher's output.

    tracks: columns id, path (usable from the working directory), split. Only the kept chunks of
    tracks whose teacher status is "ok" are used; the others are counted and logged. lazy: features
    computed on access. whisper: the training encoder's name or folder (see teacher_states).
    """
    manifest, chunks, vectors = read_teacher(teacher_dir)
    states = teacher_states(teacher_dir, whisper)
    if states is not None and len(states) != len(chunks):
        raise ValueError(f"{teacher_dir}: {len(chunks)} chunks but encoder states for {len(states)}")
    status = dict(zip(manifest["id"], manifest["status"]))
    chunks["row"] = np.arange(len(chunks))
    by_track = dict(list(chunks[chunks["kept"]].groupby("id", sort=False)))
    tracks = tracks.assign(id=tracks["id"].astype(str))
    source = _Source(status, by_track, states, lazy, feature_extractor)
    return {
        split: source.pairs(split, tracks[tracks["split"] == split], chunks, vectors)
        for split in splits or list(dict.fromkeys(tracks["split"]))
    }


class _Source(NamedTuple):
    """Where one split's audio features come from (teacher statuses, kept chunks, states or audio)."""

    status: dict
    by_track: dict
    states: np.ndarray | None
    lazy: bool
    feature_extractor: object

    def pairs(self, split: str, tracks: pd.DataFrame, chunks: pd.DataFrame, vectors: np.ndarray) -> Pairs:
        selected, features, skipped = [], [], Counter()
        for track_id, path in tqdm(tracks[["id", "path"]].itertuples(index=False), desc=f"pairs {split}", unit="track"):
            group, found, why = self.by_track.get(track_id), None, self.unusable(track_id)
            if why is None:
                found, why = self.track_features(track_id, str(path), group)
            if why is not None:
                skipped[why] += 1
                continue
            features.append(found)
            selected.append(group)
        keys = pd.concat(selected) if selected else chunks.iloc[:0]
        _log_split(split, len(selected), len(keys), self.states is not None, skipped)
        return Pairs(
            self.stack(features),
            torch.from_numpy(vectors[keys["row"].to_numpy()]),
            keys[["id", "chunk", "start_s", "end_s"]].reset_index(drop=True),
            self.states is not None,
        )

    def unusable(self, track_id: str) -> str | None:
        if self.status.get(track_id) != "ok":
            return (
                f"teacher status {self.status[track_id]}" if track_id in self.status else "not in the teacher manifest"
            )
        return None if track_id in self.by_track else "no kept chunk"

    def track_features(self, track_id: str, path: str, group: pd.DataFrame):
        """(features of the track's kept chunks, None) or (None, why it was skipped)."""
        spans = list(zip(group["start_s"].astype(float), group["end_s"].astype(float)))
        if self.states is not None:
            return torch.from_numpy(np.ascontiguousarray(self.states[group["row"].to_numpy()])), None
        if self.lazy:
            return [(path, start, end) for start, end in spans], None
        try:
            wave = load_audio(path)
        except AudioError as exc:
            log.warning("pairs: %s: %s", track_id, exc)
            return None, "unreadable audio"
        return log_mel(self.feature_extractor, [cut_chunk(wave, s, e) for s, e in spans]), None

    def stack(self, features: list):
        if self.states is not None:
            return torch.cat(features) if features else torch.zeros((0, *self.states.shape[1:]), dtype=torch.float16)
        if self.lazy:
            return ChunkFeatures([item for items in features for item in items], self.feature_extractor)
        return torch.cat(features) if features else log_mel(self.feature_extractor, [])


def _log_split(split: str, tracks: int, chunks: int, encoded: bool, skipped: Counter) -> None:
    message = f"pairs {split}: {tracks} tracks, {chunks} chunks" + (
        " (the teacher's encoder states)" if encoded else ""
    )
    if skipped:
        log.warning("%s; skipped %s", message, ", ".join(f"{n} ({why})" for why, n in sorted(skipped.items())))
    else:
        log.info(message)
