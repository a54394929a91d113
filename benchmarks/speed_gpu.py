"""GPU throughput at the paper's shapes: LIVI training samples/s and inference chunks/s.

Random weights of the paper's shapes: Whisper large-v3-turbo encoder (d_model 1280, 32 layers,
20 heads, ffn 5120, 128 mel bins), head hidden [3072, 2048, 2048, 1536] → 768. The frozen encoder
runs in fp16 (autocast, or fp16 weights with --half), the head in fp32 (AdamW, livi_loss).

Training: a DataLoader makes each batch from synthetic 30 s waveforms (seeded noise + tones); the
log-mel comes from the real WhisperFeatureExtractor(feature_size=128), on the CPU in the loader's
workers (--features cpu) or batched on the GPU (--features gpu: the loader only makes waveforms).
Reported: end-to-end samples/s (data + encoder + head step) and model-only samples/s (features
already on the GPU). Inference: chunks/s of encoder + head, model-only and with data.

    python benchmarks/speed_gpu.py [--batch-size 128] [--workers 8] [--features cpu|gpu]
        [--half] [--attn sdpa|eager] [--compile] [--steps 10]
    python benchmarks/speed_gpu.py --smoke      # tiny sizes on the CPU: checks the script runs

Prints the measurements as JSON and writes them to --out (default results/benchmarks/speed_gpu.json; with --smoke
results/benchmarks/speed_gpu_smoke.json, so that a check of the script keeps a measurement).
"""

import argparse
import json
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import WhisperConfig, WhisperFeatureExtractor

from paperlib import CHUNK_SAMPLES, SAMPLE_RATE
from paperlib.model.livi import HeadConfig, LiviHead, LiviModel, autocast_for, load_whisper_encoder
from paperlib.model.training import livi_loss
from paperlib.runtime.io import write_json

PAPER_ENCODER = dict(
    d_model=1280, encoder_layers=32, encoder_attention_heads=20, encoder_ffn_dim=5120, num_mel_bins=128
)
SMOKE_ENCODER = dict(d_model=64, encoder_layers=2, encoder_attention_heads=4, encoder_ffn_dim=128, num_mel_bins=128)


class SyntheticChunks(Dataset):
    """Item i: a seeded 30 s waveform (noise + 3 tones) → log-mel [128, 3000] (or the waveform), target [dim]."""

    def __init__(self, n: int, dim: int, feature_extractor=None):
        self.n, self.dim, self.feature_extractor = n, dim, feature_extractor

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, index):
        rng = np.random.default_rng(index)
        t = np.arange(CHUNK_SAMPLES, dtype=np.float32) / SAMPLE_RATE
        wave = 0.05 * rng.standard_normal(CHUNK_SAMPLES, dtype=np.float32)
        for freq in rng.uniform(100, 2000, 3):
            wave += np.float32(0.1) * np.sin(2 * np.pi * np.float32(freq) * t)
        target = torch.from_numpy(rng.standard_normal(self.dim, dtype=np.float32))
        if self.feature_extractor is None:
            return torch.from_numpy(wave), target
        features = self.feature_extractor(wave, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features[0]
        return torch.from_numpy(features), target


def synchronize(device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on the CPU")
    parser.add_argument("--device", default=None, help="default: cuda if available, else cpu")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (smoke: 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per measurement (default 10; smoke 2)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    parser.add_argument("--workers", type=int, default=None, help="DataLoader workers (default 8; smoke 0)")
    parser.add_argument("--features", choices=["cpu", "gpu"], default="cpu", help="where the log-mel is computed")
    parser.add_argument("--half", action="store_true", help="fp16 encoder weights instead of fp32 weights + autocast")
    parser.add_argument("--attn", choices=["sdpa", "eager"], default="sdpa", help="Whisper attention implementation")
    parser.add_argument("--compile", action="store_true", help="torch.compile the encoder and the head")
    parser.add_argument("--out", default=None, help="JSON file (default results/benchmarks/speed_gpu[_smoke].json)")
    args = parser.parse_args()
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() and not args.smoke else "cpu"))
    batch = args.batch_size or (2 if args.smoke else 128)
    steps = args.steps or (2 if args.smoke else 10)
    workers = args.workers if args.workers is not None else 0 if args.smoke else 8
    if args.half and device.type != "cuda":
        parser.error("--half needs a CUDA device")

    config = WhisperConfig(**(SMOKE_ENCODER if args.smoke else PAPER_ENCODER), decoder_layers=1)
    config._attn_implementation = args.attn
    head_config = (
        HeadConfig(width=64, target_dim=32, hidden=(64,), num_heads=4)
        if args.smoke
        else HeadConfig(width=1280, target_dim=768)
    )
    torch.manual_seed(0)
    with torch.device(device):
        encoder = load_whisper_encoder(config=config)
        model = LiviModel(encoder, LiviHead(head_config))
    if args.half:
        model.encoder.half()
    encoder_forward, head_forward = model.encoder.forward, model.head.forward
    if args.compile:
        model.encoder.forward = torch.compile(encoder_forward)
        model.head.forward = torch.compile(head_forward)
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=1e-4, betas=(0.9, 0.98), weight_decay=0.01)
    extractor = WhisperFeatureExtractor(feature_size=128)
    on_gpu = args.features == "gpu"  # batched log-mel on the model's device, in the main process
    dataset = SyntheticChunks(batch * (steps + args.warmup), head_config.target_dim, None if on_gpu else extractor)

    def features_of(inputs):
        if not on_gpu:
            return inputs.to(device, non_blocking=True)
        mel = extractor(inputs.numpy(), sampling_rate=SAMPLE_RATE, return_tensors="pt", device=str(device))
        return mel.input_features.to(device, non_blocking=True)

    def train_step(features, targets):
        frames = model.frames(features)
        loss, _ = livi_loss(model.head(frames), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    @torch.inference_mode()
    def infer(features, _targets=None):
        with autocast_for(device):
            states = model.encoder(features).last_hidden_state
        return model.head(states.float())

    def timed(run, batches) -> float:
        """Samples/s over `steps` batches after `warmup` untimed ones."""
        iterator = iter(batches)
        for _ in range(args.warmup):
            run(*next(iterator))
        synchronize(device)
        start = time.perf_counter()
        for _ in range(steps):
            run(*next(iterator))
        synchronize(device)
        return steps * batch / (time.perf_counter() - start)

    def loader():
        return DataLoader(
            dataset,
            batch_size=batch,
            num_workers=workers,
            pin_memory=device.type == "cuda",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )

    def with_data(step):
        return lambda inputs, targets: step(features_of(inputs), targets.to(device, non_blocking=True))

    fixed_inputs, fixed_targets = next(iter(DataLoader(dataset, batch_size=batch)))
    fixed = (features_of(fixed_inputs), fixed_targets.to(device))
    repeat = [fixed] * (steps + args.warmup)
    results = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "smoke": args.smoke,
        "batch_size": batch,
        "steps": steps,
        "workers": workers,
        "features": args.features,
        "encoder": "fp16 weights" if args.half else "fp32 weights + fp16 autocast" if device.type == "cuda" else "fp32",
        "attn": args.attn,
        "compile": args.compile,
        "train_samples_per_s_model_only": timed(train_step, repeat),
        "train_samples_per_s_with_data": timed(with_data(train_step), loader()),
        "infer_chunks_per_s_model_only": timed(infer, repeat),
        "infer_chunks_per_s_with_data": timed(with_data(infer), loader()),
    }
    if device.type == "cuda":
        results["peak_gpu_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    print(json.dumps(results, indent=2))
    write_json(results, args.out or f"results/benchmarks/speed_gpu{'_smoke' if args.smoke else ''}.json")


if __name__ == "__main__":
    main()
