"""Training the LIVI head (paper §3.2): align audio embeddings with frozen lyrics-text targets.

Loss: α·mean(1 − cos(aᵢ, tᵢ)) + (1 − α)·MSE(A·Aᵀ, T·Tᵀ) on L2-normalised batches. Only the head
learns; the Whisper encoder is frozen (mixed precision on CUDA, the head in fp32).
Schedule: AdamW, lr linearly warmed up from lr/warmup_steps to lr over `warmup_steps` optimizer
steps, then constant. Validation (epoch 0 = the untrained head, then after every epoch, and every
`eval_every` steps if > 0): mean cosine of each val chunk's audio embedding with its own text target,
HR@1 audio→text per chunk (ties count as hits: versions of a work share lyrics), and the loss.
`monitor` selects the kept checkpoint and drives early stopping after `patience` evaluations in a
row without improvement (≤ 0: never).

Outputs in `out_dir` besides the checkpoint (paperlib.model.checkpoint):
  train_log.csv   per step: epoch, step, loss, alignment, geometry, lr
  epochs.csv      per evaluation: epoch, step, train_loss, val_loss, val_cosine, val_hr1, improved
  summary.json    what `train` returns
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from paperlib.model.calibration import calibrate_checkpoint
from paperlib.model.checkpoint import save_checkpoint
from paperlib.model.livi import LiviHead, LiviModel, load_whisper_encoder
from paperlib.model.pairs import Pairs, build_pairs
from paperlib.runtime.config import MONITORS, Config, HeadConfig, Train
from paperlib.runtime.io import write_csv, write_json
from paperlib.runtime.schema import read_tracks, teacher_settings
from paperlib.weights.packaged import resolve_model, unavailable

STEP_COLUMNS = ["epoch", "step", "loss", "alignment", "geometry", "lr"]


def livi_loss(audio: torch.Tensor, text: torch.Tensor, alpha: float = 0.5) -> tuple[torch.Tensor, dict]:
    """α·mean(1 − cos(aᵢ, tᵢ)) + (1 − α)·MSE(A·Aᵀ, T·Tᵀ) on L2-normalised batches [B, d].

    The first term aligns each audio embedding with its own text target; the second preserves the
    geometry of the batch. Returns (loss, {"alignment", "geometry"} as floats).
    """
    a = F.normalize(audio, dim=-1)
    t = F.normalize(text, dim=-1)
    alignment = (1.0 - (a * t).sum(dim=-1)).mean()
    geometry = F.mse_loss(a @ a.T, t @ t.T)
    loss = alpha * alignment + (1.0 - alpha) * geometry
    return loss, {"alignment": float(alignment.detach()), "geometry": float(geometry.detach())}


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


def _batches(loader: DataLoader, desc: str):
    """The loader's batches behind a progress bar that is only told counts: a bar that takes the loader itself
    may call iter() on it again (tqdm.auto's asyncio variant does), and every DataLoader iterator draws from the
    loader's generator, which would change the shuffles."""
    with tqdm(total=len(loader), desc=desc, unit="batch") as bar:
        for batch in loader:
            yield batch
            bar.update()


@torch.no_grad()
def encode_frames(
    model: LiviModel, features, batch_size: int, device, num_workers: int = 0, desc: str = "frames"
) -> torch.Tensor:
    """Frozen encoder states of all features, float16 on the CPU: [n, 1500, width]."""
    loader = DataLoader(features, batch_size=batch_size, num_workers=num_workers)
    parts = [model.frames(batch.to(device)).to("cpu", torch.float16) for batch in _batches(loader, desc)]
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


class _Split(NamedTuple):
    """One split as the loop sees it: inputs (encoder states when `cached`, else log-mel) and targets."""

    inputs: object
    text: torch.Tensor
    cached: bool


@torch.no_grad()
def validate(model: LiviModel, split: _Split, batch_size: int, alpha: float, device, num_workers: int = 0) -> dict:
    """val_loss (mean over batches of `batch_size`, weighted by size), val_cosine, val_hr1."""
    was_training = model.training
    model.eval()
    outputs, loss_sum = [], 0.0
    for inputs, targets in DataLoader(
        _Zipped(split.inputs, split.text), batch_size=batch_size, num_workers=num_workers
    ):
        inputs, targets = inputs.to(device), targets.to(device)
        audio = model.head(inputs.float() if split.cached else model.frames(inputs))
        loss_sum += float(livi_loss(audio, targets, alpha)[0]) * len(targets)
        outputs.append(audio.cpu())
    model.train(was_training)
    return {"val_loss": loss_sum / len(split.text)} | retrieval_metrics(torch.cat(outputs), split.text)


def _splits(model: LiviModel, pairs: dict[str, Pairs], cfg: Train, device) -> tuple[_Split, _Split]:
    """Train and val inputs: the teacher's encoder states, frames encoded once now, or log-mel per batch."""
    train_set, val_set = pairs.get("train"), pairs.get("val")
    counts = [0 if part is None else len(part.text) for part in (train_set, val_set)]
    if 0 in counts:
        raise ValueError(
            f"need training and validation pairs (splits 'train' and 'val'), got {counts[0]} and {counts[1]}"
        )
    if train_set.encoded != val_set.encoded:
        raise ValueError("train and val pairs must both carry encoder states or both log-mel")
    if cfg.cache_frames and not train_set.encoded:
        return tuple(
            _Split(
                encode_frames(model, part.features, cfg.batch_size, device, cfg.num_workers, f"frames {name}"),
                part.text,
                True,
            )
            for name, part in (("train", train_set), ("val", val_set))
        )
    cached = cfg.cache_frames or train_set.encoded
    return _Split(train_set.features, train_set.text, cached), _Split(val_set.features, val_set.text, cached)


def _evaluation(
    model, val: _Split, cfg: Train, device, epoch: int, step: int, losses: list[float], history: list[dict]
) -> dict:
    """One row of epochs.csv; `improved` compares the monitored metric with every earlier row."""
    metrics = validate(model, val, cfg.batch_size, cfg.alpha, device, cfg.num_workers)
    train_loss = float(np.mean(losses)) if losses else float("nan")
    sign = MONITORS[cfg.monitor]
    best = max((sign * row[cfg.monitor] for row in history), default=-np.inf)
    row = {"epoch": epoch, "step": step, "train_loss": train_loss} | metrics
    return row | {"improved": bool(sign * metrics[cfg.monitor] > best)}


def _should_stop(history: list[dict], patience: int) -> bool:
    """patience > 0 evaluations in a row without improvement."""
    if patience <= 0:
        return False
    streak = next((i for i, row in enumerate(reversed(history)) if row["improved"]), len(history))
    return streak >= patience


def _step(model, optimizer, schedule, inputs, targets, cached: bool, alpha: float) -> dict:
    """One optimizer step; returns its loss parts and the lr it used."""
    frames = inputs.float() if cached else model.frames(inputs)
    loss, parts = livi_loss(model.head(frames), targets, alpha)
    lr = optimizer.param_groups[0]["lr"]
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    return {"loss": float(loss.detach())} | parts | {"lr": lr}


def train(
    cfg: Train,
    pairs: dict[str, Pairs],
    encoder,
    out_dir: str | Path,
    device: str = "cpu",
    head_config: HeadConfig | None = None,
    encoder_name: str | None = None,
    feature_extractor=None,
    extra: dict | None = None,
    seed: int = 0,
) -> dict:
    """Train a LiviHead on pairs["train"], select on pairs["val"]; write the checkpoint folder.

    encoder: frozen Whisper encoder (load_whisper_encoder); encoder_name: how load_checkpoint finds it
    again (None: its weights are saved in the checkpoint). head_config: default HeadConfig(width =
    encoder d_model, target_dim = text dim, the head settings of cfg). extra: more config.json entries.
    Deterministic on CPU (torch.use_deterministic_algorithms). Returns the summary (summary.json).
    """
    device, out_dir = torch.device(device), Path(out_dir)
    text_dim = pairs["train"].text.shape[1] if pairs.get("train") is not None else 0
    head_config = head_config or HeadConfig(
        width=encoder.config.d_model,
        target_dim=text_dim,
        hidden=cfg.hidden,
        num_heads=cfg.num_heads,
        layer_scale_init=cfg.layer_scale_init,
    )
    if pairs.get("train") is not None and head_config.target_dim != text_dim:
        raise ValueError(f"head target_dim {head_config.target_dim} != text embedding dim {text_dim}")
    with _deterministic(device.type == "cpu"):
        torch.manual_seed(seed)
        model = LiviModel(encoder, LiviHead(head_config)).to(device).train()
        train_split, val_split = _splits(model, pairs, cfg, device)
        history, steps, stopped = _fit(
            model,
            train_split,
            val_split,
            cfg,
            device,
            seed,
            _Saver(out_dir, feature_extractor, encoder_name, extra or {}, pairs),
        )
    summary = _summary(history, steps, stopped, train_split, val_split)
    write_json(summary, out_dir / "summary.json")
    return summary


class _Saver(NamedTuple):
    """Writes the checkpoint of an improved evaluation and the logs after every evaluation."""

    out_dir: Path
    feature_extractor: object
    encoder_name: str | None
    extra: dict
    pairs: dict

    def __call__(self, model, history: list[dict], steps: list[dict]) -> None:
        row = history[-1]
        if row["improved"]:
            counts = {"pairs": {name: len(self.pairs[name].text) for name in ("train", "val")}}
            best = {"best": {k: row[k] for k in ("epoch", "step", "val_cosine", "val_hr1", "val_loss")}}
            save_checkpoint(self.out_dir, model, self.feature_extractor, self.encoder_name, self.extra | counts | best)
        write_csv(pd.DataFrame(steps, columns=STEP_COLUMNS), self.out_dir / "train_log.csv")
        write_csv(pd.DataFrame(history), self.out_dir / "epochs.csv")
        tqdm.write(
            f"epoch {row['epoch']} step {row['step']}: "
            + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float))
            + (" (best)" if row["improved"] else ""),
            file=sys.stderr,
        )


class _Run(NamedTuple):
    """What every evaluation of one training run needs."""

    model: LiviModel
    val: _Split
    cfg: Train
    device: torch.device
    save: _Saver

    def evaluate(
        self, epoch: int, step: int, losses: list[float], history: list[dict], steps: list[dict]
    ) -> tuple[list[dict], bool]:
        """(history with this evaluation appended, stop now); the checkpoint and logs are written."""
        history = [*history, _evaluation(self.model, self.val, self.cfg, self.device, epoch, step, losses, history)]
        self.save(self.model, history, steps)
        return history, _should_stop(history, self.cfg.patience)


def _fit(
    model, train_split: _Split, val_split: _Split, cfg: Train, device, seed: int, save: _Saver
) -> tuple[list[dict], list[dict], bool]:
    """The loop: (evaluation rows, step rows, stopped early)."""
    optimizer = torch.optim.AdamW(
        model.head.parameters(), lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay
    )
    warmup = max(int(cfg.warmup_steps), 1)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / warmup))
    loader = DataLoader(
        _Zipped(train_split.inputs, train_split.text),
        batch_size=cfg.batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(seed),
        num_workers=cfg.num_workers,
        pin_memory=device.type == "cuda",
    )
    run, steps, losses, step = _Run(model, val_split, cfg, device, save), [], [], 0
    history, stop = run.evaluate(0, 0, [], [], steps)
    for epoch in range(1, cfg.epochs + 1):
        if stop:
            break
        for inputs, targets in _batches(loader, f"epoch {epoch}"):
            inputs, targets = inputs.to(device, non_blocking=True), targets.to(device, non_blocking=True)
            record = _step(model, optimizer, schedule, inputs, targets, train_split.cached, cfg.alpha)
            step += 1
            losses.append(record["loss"])
            steps.append({"epoch": epoch, "step": step} | record)
            if cfg.eval_every > 0 and step % cfg.eval_every == 0:
                (history, stop), losses = run.evaluate(epoch, step, losses, history, steps), []
                if stop:
                    break
        if not stop and history[-1]["step"] != step:
            (history, stop), losses = run.evaluate(epoch, step, losses, history, steps), []
    return history, steps, stop and step < cfg.epochs * len(loader)


def _summary(history: list[dict], steps: list[dict], stopped: bool, train_split: _Split, val_split: _Split) -> dict:
    best = [row for row in history if row["improved"]][-1]
    return {
        "best_epoch": best["epoch"],
        "best_step": best["step"],
        "best_val_cosine": best["val_cosine"],
        "best_val_hr1": best["val_hr1"],
        "best_val_loss": best["val_loss"],
        "initial_val_cosine": history[0]["val_cosine"],
        "epochs_run": history[-1]["epoch"],
        "steps": steps[-1]["step"] if steps else 0,
        "stopped_early": bool(stopped),
        "train_pairs": len(train_split.text),
        "val_pairs": len(val_split.text),
    }


TRAINED_WITH = ("seed", "models", "vocals", "asr", "train")
"""Sections of the settings a checkpoint records: the training's, and the teacher output's own record of its vocals
and asr settings (schema.teacher_settings; the settings' when the folder has none)."""


def train_head(cfg: Config) -> dict:
    """The `train` stage: pairs of cfg.train.data's tracks from the teacher at cfg.paths.teacher, the frozen
    cfg.models.whisper encoder, the checkpoint at cfg.paths.checkpoint; then, when the track table names works,
    the same-work threshold calibrated on the validation split's audio (paperlib.model.calibration) is stored in the
    checkpoint. Returns the summary."""
    from transformers import WhisperFeatureExtractor

    tracks = read_tracks(cfg.train.data, cfg.paths.corpus)
    whisper = resolve_model(cfg.models.whisper, cfg.paths.models)
    try:
        encoder, feature_extractor = load_whisper_encoder(whisper), WhisperFeatureExtractor.from_pretrained(whisper)
    except OSError as exc:
        raise unavailable(whisper, exc) from exc
    # the teacher ran the same frozen encoder on these chunks: its states are reused when it kept them
    pairs = build_pairs(
        cfg.paths.teacher,
        tracks,
        feature_extractor,
        splits=["train", "val"],
        lazy=not cfg.train.cache_frames,
        whisper=whisper,
    )
    settings = cfg.to_dict()
    recorded = teacher_settings(cfg.paths.teacher)
    settings |= {key: recorded[key] for key in ("vocals", "asr") if key in recorded}
    summary = train(
        cfg.train,
        pairs,
        encoder,
        cfg.paths.checkpoint,
        device=cfg.device,
        encoder_name=cfg.models.whisper,
        feature_extractor=feature_extractor,
        extra={"config": {k: settings[k] for k in TRAINED_WITH}},
        seed=cfg.seed,
    )

    calibrate_checkpoint(cfg, tracks)  # the same-work threshold of `paperlib compare`, when the tracks name works
    return summary
