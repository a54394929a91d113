"""Training the LIVI head (paper §3.2): align audio embeddings with frozen lyrics-text targets.

Pairs: every chunk the teacher kept is re-cut from its track exactly as the teacher cut it
(samples [start_s, end_s) at 16 kHz, zero-padded to 30 s) → Whisper log-mel [n_mels, 3000] ↔ the
chunk's text embedding [d]. Only the head learns; the Whisper encoder is frozen (mixed precision
on CUDA, the head in fp32), so small corpora can compute its frames once (`cache_frames`, stored
float16) instead of once per batch — or take them from the teacher, which ran the same encoder on
the same chunks to transcribe them (`paperlib lyrics` with keep_encoder_states; build_pairs uses
them when the teacher's Whisper is the training encoder).

Schedule: AdamW, lr linearly warmed up from lr/warmup_steps to lr over `warmup_steps` optimizer
steps, then constant. Validation (after every epoch, and every `eval_every` steps if > 0):
mean cosine between each val chunk's audio embedding and its own text target, HR@1 audio→text
per chunk (its own text is the nearest among all val chunk texts; ties count as hits, since
versions of a work share lyrics), and the loss. `monitor` picks the metric that selects the kept
checkpoint and drives early stopping: "val_cosine" (the paper's; higher is better) or "val_loss"
(lower is better; the mean cosine also rewards a head that outputs the mean target for every
input, which small runs pass through). Early stopping: stop after `patience` evaluations in a
row without improvement (patience ≤ 0: never). The initial (untrained) head is evaluated first
(epoch 0), so the best checkpoint is never worse than it.

Checkpoint folder (`out_dir`, each file written atomically):
  head.safetensors           best head state dict
  encoder.safetensors        only for an encoder without a name (random weights: tests, benchmarks)
  config.json                head config, encoder name + WhisperConfig, n_mels, text_dim, TrainConfig,
                             best epoch/step/metrics, vocal-chunking parameters ("vocals")
  preprocessor_config.json   the WhisperFeatureExtractor
  train_log.csv              per step: epoch, step, loss, alignment, geometry, lr
  epochs.csv                 per evaluation: epoch, step, train_loss, val_loss, val_cosine, val_hr1, improved
  summary.json               what `train` returns
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from paperlib import CHUNK_SAMPLES, SAMPLE_RATE
from paperlib.io import atomic_path, write_csv, write_json
from paperlib.model import HeadConfig, LiviHead, LiviModel, load_whisper_encoder

log = logging.getLogger(__name__)

FORMAT = "livi-checkpoint/1"


def livi_loss(audio: torch.Tensor, text: torch.Tensor, alpha: float = 0.5) -> tuple[torch.Tensor, dict]:
    """α·mean(1 − cos(aᵢ, tᵢ)) + (1 − α)·MSE(A·Aᵀ, T·Tᵀ) on L2-normalised batches [B, d].

    The first term aligns each audio embedding with its own text target; the second preserves
    the geometry of the batch (in-batch cosine similarity matrices). Returns (loss, parts) with
    parts = {"alignment", "geometry"} as floats.
    """
    a = F.normalize(audio, dim=-1)
    t = F.normalize(text, dim=-1)
    alignment = (1.0 - (a * t).sum(dim=-1)).mean()
    geometry = F.mse_loss(a @ a.T, t @ t.T)
    loss = alpha * alignment + (1.0 - alpha) * geometry
    return loss, {"alignment": float(alignment.detach()), "geometry": float(geometry.detach())}


# --------------------------------------------------------------------------- configuration
MONITORS = {"val_cosine": 1.0, "val_loss": -1.0}
"""Metrics that can select the checkpoint, with the sign that makes larger better."""


@dataclass
class TrainConfig:
    """Training hyper-parameters (params.yaml `train:`). Paper: 3 epochs, batch 128, warmup 10k steps."""

    epochs: int = 3
    batch_size: int = 128
    lr: float = 1e-4
    warmup_steps: int = 10_000  # linear warmup (optimizer steps), then constant
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.98)
    alpha: float = 0.5  # weight of the alignment term of livi_loss
    patience: int = 2  # evaluations without a better monitored metric before stopping; ≤ 0: never stop
    monitor: str = "val_cosine"  # checkpoint selection and early stopping: val_cosine (paper) | val_loss
    seed: int = 0
    cache_frames: bool = True  # compute the frozen encoder's frames once (float16) instead of per batch
    eval_every: int = 0  # also validate every N optimizer steps (0: once per epoch)
    num_workers: int = 0  # DataLoader workers (features / lazy decoding)

    def __post_init__(self):
        if self.monitor not in MONITORS:
            raise ValueError(f"monitor must be one of {', '.join(MONITORS)}, got {self.monitor!r}")

    def to_dict(self) -> dict:
        return asdict(self) | {"betas": list(self.betas)}

    @classmethod
    def from_dict(cls, values: dict) -> "TrainConfig":
        values = dict(values)
        if "betas" in values:
            values["betas"] = tuple(values["betas"])
        return cls(**values)


# --------------------------------------------------------------------------- pairs
def cut_chunk(wave: np.ndarray, start_s: float, end_s: float) -> np.ndarray:
    """The teacher's chunk: wave[round(start_s·16k) : round(end_s·16k)] zero-padded to 480,000 samples."""
    begin = int(round(start_s * SAMPLE_RATE))
    stop = min(int(round(end_s * SAMPLE_RATE)), len(wave), begin + CHUNK_SAMPLES)
    chunk = np.zeros(CHUNK_SAMPLES, np.float32)
    if stop > begin:
        chunk[: stop - begin] = wave[begin:stop]
    return chunk


def log_mel(feature_extractor, chunks) -> torch.Tensor:
    """30 s chunks (sequence of float32 [480000]) → Whisper log-mel float32 [n, n_mels, 3000]."""
    if len(chunks) == 0:
        return torch.zeros(0, feature_extractor.feature_size, feature_extractor.nb_max_frames)
    features = feature_extractor(list(chunks), sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
    return torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))


class ChunkFeatures(Dataset):
    """Lazy log-mel of teacher chunks: item i decodes its track, cuts the chunk, computes features.

    For corpora too large to hold their features in memory (use DataLoader workers).
    """

    def __init__(self, items: list[tuple[str, float, float]], feature_extractor):
        self.items, self.feature_extractor = items, feature_extractor  # (path, start_s, end_s)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> torch.Tensor:
        from paperlib.audio import load_audio

        path, start_s, end_s = self.items[index]
        return log_mel(self.feature_extractor, [cut_chunk(load_audio(path), start_s, end_s)])[0]


class Pairs(NamedTuple):
    """Training pairs of one split; row i of each field belongs together."""

    features: torch.Tensor | ChunkFeatures  # log-mel [n, n_mels, 3000] float32 (tensor or lazy) unless encoded
    text: torch.Tensor  # chunk text embeddings [n, d] float32
    keys: pd.DataFrame  # id, chunk, start_s, end_s
    encoded: bool = False  # features are the frozen encoder's states [n, 1500, width] float16 (the teacher's)


def read_teacher(teacher_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """(manifest, chunks, chunk text embeddings) of a `paperlib lyrics` output folder; ids as str."""
    teacher_dir = Path(teacher_dir)
    read = dict(dtype={"id": str}, keep_default_na=False)
    manifest = pd.read_csv(teacher_dir / "manifest.csv", **read)
    chunks = pd.read_csv(teacher_dir / "chunks.csv", **read)
    vectors = np.load(teacher_dir / "chunk_text_embeddings.npy")
    if len(vectors) != len(chunks):
        raise ValueError(f"{teacher_dir}: {len(chunks)} chunks but {len(vectors)} chunk embeddings")
    chunks["kept"] = chunks["kept"].astype(str).str.lower() == "true"
    return manifest, chunks, vectors.astype(np.float32, copy=False)


def teacher_states(teacher_dir: str | Path, whisper: str | None) -> np.ndarray | None:
    """The teacher's encoder states (float16 [len(chunks.csv), 1500, width], memory-mapped) when it kept
    them and its Whisper is `whisper` (the training encoder's name or folder); otherwise None."""
    teacher_dir = Path(teacher_dir)
    info = teacher_dir / "encoder_states.json"
    if whisper is None or not info.is_file():
        return None
    source = json.loads(info.read_text()).get("whisper")
    if source != str(whisper):
        log.info("pairs: the teacher's encoder states come from %s, not %s: computing the encoder's own", source,
                 whisper)
        return None
    return np.load(teacher_dir / "encoder_states.npy", mmap_mode="r")


def build_pairs(teacher_dir: str | Path, tracks: pd.DataFrame, feature_extractor,
                splits: list[str] | None = None, lazy: bool = False, whisper: str | None = None) -> dict[str, Pairs]:
    """Audio/text pairs per split from the teacher's output.

    tracks: columns id, path (absolute or relative to the working directory), split. Only the
    kept chunks of tracks whose teacher status is "ok" are used; other tracks are counted and
    logged (not ok, missing from the teacher's manifest, unreadable now). Order: tracks order,
    then chunk order. lazy: features computed on access (ChunkFeatures) instead of now.
    whisper: the training encoder's name or folder; when the teacher kept the encoder states of
    that model (see teacher_states), the pairs carry them (encoded=True) and no audio is decoded.
    """
    from paperlib.audio import AudioError, load_audio

    manifest, chunks, vectors = read_teacher(teacher_dir)
    states = teacher_states(teacher_dir, whisper)
    if states is not None and len(states) != len(chunks):
        raise ValueError(f"{teacher_dir}: {len(chunks)} chunks but encoder states for {len(states)}")
    status = dict(zip(manifest["id"], manifest["status"]))
    chunks["row"] = np.arange(len(chunks))
    by_track = {track_id: group for track_id, group in chunks[chunks["kept"]].groupby("id", sort=False)}
    tracks = tracks.assign(id=tracks["id"].astype(str))
    result = {}
    for split in splits or list(dict.fromkeys(tracks["split"])):
        selected, features, skipped = [], [], Counter()
        for track_id, path in tqdm(tracks.loc[tracks["split"] == split, ["id", "path"]].itertuples(index=False),
                                   desc=f"pairs {split}", unit="track"):
            if status.get(track_id) != "ok":
                skipped[f"teacher status {status[track_id]}" if track_id in status else "not in the teacher manifest"] += 1
                continue
            if track_id not in by_track:
                skipped["no kept chunk"] += 1
                continue
            group = by_track[track_id]
            spans = list(zip(group["start_s"].astype(float), group["end_s"].astype(float)))
            if states is not None:
                features.append(torch.from_numpy(np.ascontiguousarray(states[group["row"].to_numpy()])))
            elif lazy:
                features += [(str(path), start, end) for start, end in spans]
            else:
                try:
                    wave = load_audio(path)
                except AudioError as exc:
                    skipped["unreadable audio"] += 1
                    log.warning("pairs: %s: %s", track_id, exc)
                    continue
                features.append(log_mel(feature_extractor, [cut_chunk(wave, s, e) for s, e in spans]))
            selected.append(group)
        keys = pd.concat(selected) if selected else chunks.iloc[:0]
        text = torch.from_numpy(vectors[keys["row"].to_numpy()])
        if states is not None:
            features = torch.cat(features) if features else torch.zeros((0, *states.shape[1:]), dtype=torch.float16)
        elif lazy:
            features = ChunkFeatures(features, feature_extractor)
        else:
            features = torch.cat(features) if features else log_mel(feature_extractor, [])
        result[split] = Pairs(features, text, keys[["id", "chunk", "start_s", "end_s"]].reset_index(drop=True),
                              encoded=states is not None)
        message = f"pairs {split}: {len(selected)} tracks, {len(keys)} chunks" + (
            " (the teacher's encoder states)" if states is not None else "")
        if skipped:
            log.warning("%s; skipped %s", message, ", ".join(f"{n} ({why})" for why, n in sorted(skipped.items())))
        else:
            log.info(message)
    return result


# --------------------------------------------------------------------------- checkpoint
def save_checkpoint(out_dir: str | Path, model: LiviModel, feature_extractor=None,
                    encoder_name: str | None = None, extra: dict | None = None) -> Path:
    """Write head.safetensors, config.json, preprocessor_config.json (and encoder.safetensors when
    the encoder has no name) into out_dir. extra: more config.json entries (best, train, vocals...)."""
    from safetensors.torch import save_file
    from transformers import WhisperFeatureExtractor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    encoder_config = model.encoder.config
    if feature_extractor is None:
        feature_extractor = WhisperFeatureExtractor(feature_size=encoder_config.num_mel_bins)

    def tensors(module):
        return {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in module.state_dict().items()}

    with atomic_path(out_dir / "head.safetensors") as tmp:
        save_file(tensors(model.head), str(tmp))
    if encoder_name is None:
        with atomic_path(out_dir / "encoder.safetensors") as tmp:
            save_file(tensors(model.encoder), str(tmp))
    with atomic_path(out_dir / "preprocessor_config.json") as tmp:
        feature_extractor.to_json_file(tmp)
    config = {
        "format": FORMAT,
        "head": model.head.config.to_dict(),
        "encoder": {"name": encoder_name, "config": encoder_config.to_dict()},
        "n_mels": int(encoder_config.num_mel_bins),
        "text_dim": int(model.head.config.target_dim),
    } | (extra or {})
    write_json(config, out_dir / "config.json")
    return out_dir


def read_checkpoint_config(checkpoint: str | Path) -> dict:
    path = Path(checkpoint) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint}: not a LIVI checkpoint (no config.json)")
    config = json.loads(path.read_text())
    if config.get("format") != FORMAT:
        raise ValueError(f"{path}: format {config.get('format')!r}, expected {FORMAT!r}")
    return config


def load_checkpoint(checkpoint: str | Path, models_dir: str | Path | None = None) -> LiviModel:
    """Rebuild the LiviModel of a checkpoint folder (eval mode, CPU): the named Whisper encoder
    (resolved with paperlib.models.resolve_model) or the saved random one, and the trained head."""
    from safetensors.torch import load_file
    from transformers import WhisperConfig

    from paperlib.models import resolve_model, unavailable

    checkpoint = Path(checkpoint)
    config = read_checkpoint_config(checkpoint)
    name = config["encoder"]["name"]
    if name is None:
        encoder = load_whisper_encoder(config=WhisperConfig.from_dict(config["encoder"]["config"]))
        encoder.load_state_dict(load_file(str(checkpoint / "encoder.safetensors")), strict=True)
    else:
        source = resolve_model(name, models_dir)
        try:
            encoder = load_whisper_encoder(source)
        except OSError as exc:
            raise unavailable(source, exc) from exc
    head = LiviHead(HeadConfig.from_dict(config["head"]))
    head.load_state_dict(load_file(str(checkpoint / "head.safetensors")), strict=True)
    return LiviModel(encoder, head).eval()


def load_feature_extractor(checkpoint: str | Path):
    """The WhisperFeatureExtractor saved with a checkpoint."""
    from transformers import WhisperFeatureExtractor

    return WhisperFeatureExtractor.from_json_file(str(Path(checkpoint) / "preprocessor_config.json"))


# --------------------------------------------------------------------------- training
class _Zipped(Dataset):
    def __init__(self, source, text):
        self.source, self.text = source, text

    def __len__(self) -> int:
        return len(self.text)

    def __getitem__(self, index):
        return self.source[index], self.text[index]


@contextlib.contextmanager
def _deterministic(enabled: bool):
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(enabled or previous)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


@torch.no_grad()
def encode_frames(model: LiviModel, features, batch_size: int, device, num_workers: int = 0,
                  desc: str = "frames") -> torch.Tensor:
    """Frozen encoder states of all features, float16 on the CPU: [n, 1500, width]."""
    loader = DataLoader(features, batch_size=batch_size, num_workers=num_workers)
    parts = [model.frames(batch.to(device)).to("cpu", torch.float16) for batch in tqdm(loader, desc=desc, unit="batch")]
    if parts:
        return torch.cat(parts)
    return torch.zeros(0, model.encoder.config.max_source_positions, model.encoder.config.d_model, dtype=torch.float16)


def retrieval_metrics(audio: torch.Tensor, text: torch.Tensor) -> dict:
    """val_cosine = mean cos(aᵢ, tᵢ); val_hr1 = fraction of rows i whose own text tᵢ is (one of)
    the most similar among all text rows (ties count as hits). Rows [n, d], any norm."""
    a, t = F.normalize(audio.float(), dim=-1), F.normalize(text.float(), dim=-1)
    sims = a @ t.T
    own = sims.diagonal()
    return {"val_cosine": float(own.mean()), "val_hr1": float((own >= sims.max(dim=1).values).float().mean())}


@torch.no_grad()
def validate(model: LiviModel, source, text: torch.Tensor, cached: bool, batch_size: int, alpha: float,
             device, num_workers: int = 0) -> dict:
    """val_loss (mean over batches of `batch_size`, weighted by size), val_cosine, val_hr1."""
    was_training = model.training
    model.eval()
    outputs, loss_sum = [], 0.0
    for inputs, targets in DataLoader(_Zipped(source, text), batch_size=batch_size, num_workers=num_workers):
        inputs, targets = inputs.to(device), targets.to(device)
        audio = model.head(inputs.float() if cached else model.frames(inputs))
        loss_sum += float(livi_loss(audio, targets, alpha)[0]) * len(targets)
        outputs.append(audio.cpu())
    model.train(was_training)
    return {"val_loss": loss_sum / len(text)} | retrieval_metrics(torch.cat(outputs), text)


def train(config: TrainConfig, pairs: dict[str, Pairs], encoder, out_dir: str | Path, device: str = "cpu",
          head_config: HeadConfig | None = None, encoder_name: str | None = None, feature_extractor=None,
          extra: dict | None = None) -> dict:
    """Train a LiviHead on pairs["train"], early-stop on pairs["val"]; write the checkpoint folder.

    encoder: frozen Whisper encoder (load_whisper_encoder); encoder_name: how load_checkpoint finds it
    again (None: its weights are saved in the checkpoint). head_config: default HeadConfig(width =
    encoder d_model, target_dim = text dim). extra: more config.json entries (e.g. "vocals").
    Deterministic on CPU (torch.use_deterministic_algorithms). Returns the summary (summary.json).
    """
    device = torch.device(device)
    out_dir = Path(out_dir)
    train_set, val_set = pairs.get("train"), pairs.get("val")
    counts = [0 if part is None else len(part.text) for part in (train_set, val_set)]
    if 0 in counts:
        raise ValueError(f"need training and validation pairs (splits 'train' and 'val'), got {counts[0]} and {counts[1]}")
    with _deterministic(device.type == "cpu"):
        torch.manual_seed(config.seed)
        head_config = head_config or HeadConfig(width=encoder.config.d_model, target_dim=train_set.text.shape[1])
        if head_config.target_dim != train_set.text.shape[1]:
            raise ValueError(f"head target_dim {head_config.target_dim} != text embedding dim {train_set.text.shape[1]}")
        model = LiviModel(encoder, LiviHead(head_config)).to(device).train()
        workers = config.num_workers
        if train_set.encoded != val_set.encoded:
            raise ValueError("train and val pairs must both carry encoder states or both log-mel")
        cached = config.cache_frames or train_set.encoded  # inputs are encoder states, not log-mel
        if config.cache_frames and not train_set.encoded:
            train_source = encode_frames(model, train_set.features, config.batch_size, device, workers, "frames train")
            val_source = encode_frames(model, val_set.features, config.batch_size, device, workers, "frames val")
        else:
            train_source, val_source = train_set.features, val_set.features

        optimizer = torch.optim.AdamW(model.head.parameters(), lr=config.lr, betas=tuple(config.betas),
                                      weight_decay=config.weight_decay)
        warmup = max(int(config.warmup_steps), 1)
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
        loader = DataLoader(_Zipped(train_source, train_set.text), batch_size=config.batch_size, shuffle=True,
                            generator=torch.Generator().manual_seed(config.seed), num_workers=workers,
                            pin_memory=device.type == "cuda")

        steps, evaluations = [], []
        state = {"best": -math.inf, "bad": 0, "best_row": None, "losses": []}
        run_info = {"train": config.to_dict(), "pairs": {"train": len(train_set.text), "val": len(val_set.text)}}

        def evaluate(epoch: int, step: int) -> bool:
            """Validate, keep the checkpoint if better, write the logs; True → stop."""
            metrics = validate(model, val_source, val_set.text, cached, config.batch_size,
                               config.alpha, device, workers)
            train_loss = float(np.mean(state["losses"])) if state["losses"] else float("nan")
            score = MONITORS[config.monitor] * metrics[config.monitor]
            improved = score > state["best"]
            row = {"epoch": epoch, "step": step, "train_loss": train_loss} | metrics | {"improved": improved}
            evaluations.append(row)
            state["losses"] = []
            if improved:
                state.update(best=score, bad=0, best_row=row)
                best = {"best": {k: row[k] for k in ("epoch", "step", "val_cosine", "val_hr1", "val_loss")}}
                save_checkpoint(out_dir, model, feature_extractor, encoder_name, (extra or {}) | run_info | best)
            else:
                state["bad"] += 1
            write_csv(pd.DataFrame(steps, columns=["epoch", "step", "loss", "alignment", "geometry", "lr"]),
                      out_dir / "train_log.csv")
            write_csv(pd.DataFrame(evaluations), out_dir / "epochs.csv")
            tqdm.write(f"epoch {epoch} step {step}: " + ", ".join(
                f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)) + (" (best)" if improved else ""),
                file=sys.stderr)
            return config.patience > 0 and state["bad"] >= config.patience

        step, stop, epoch = 0, evaluate(0, 0), 0
        for epoch in range(1, config.epochs + 1):
            if stop:
                break
            evaluated_at = -1
            for inputs, targets in tqdm(loader, desc=f"epoch {epoch}", unit="batch"):
                inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
                frames = inputs.float() if cached else model.frames(inputs)
                loss, parts = livi_loss(model.head(frames), targets, config.alpha)
                lr = optimizer.param_groups[0]["lr"]
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                step += 1
                state["losses"].append(float(loss.detach()))
                steps.append({"epoch": epoch, "step": step, "loss": state["losses"][-1]} | parts | {"lr": lr})
                if config.eval_every > 0 and step % config.eval_every == 0:
                    evaluated_at = step
                    if stop := evaluate(epoch, step):
                        break
            if not stop and evaluated_at != step:
                stop = evaluate(epoch, step)

    best = state["best_row"]
    summary = {
        "best_epoch": best["epoch"], "best_step": best["step"], "best_val_cosine": best["val_cosine"],
        "best_val_hr1": best["val_hr1"], "best_val_loss": best["val_loss"], "initial_val_cosine": evaluations[0]["val_cosine"],
        "epochs_run": evaluations[-1]["epoch"], "steps": step,
        "stopped_early": bool(stop) and step < config.epochs * len(loader), "train_pairs": len(train_set.text), "val_pairs": len(val_set.text),
    }
    write_json(summary, out_dir / "summary.json")
    return summary


__all__ = [
    "livi_loss", "TrainConfig", "Pairs", "ChunkFeatures", "cut_chunk", "log_mel", "read_teacher", "teacher_states",
    "build_pairs",
    "save_checkpoint", "load_checkpoint", "load_feature_extractor", "read_checkpoint_config", "encode_frames",
    "retrieval_metrics", "validate", "train",
]
