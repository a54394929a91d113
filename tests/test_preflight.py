"""paperlib.cli.preflight.check: what a profile needs is checked up front, every missing piece named at once."""

import numpy as np
import pytest
import soundfile as sf

from paperlib import SAMPLE_RATE
from paperlib.cli import preflight
from paperlib.runtime import config
from paperlib.weights.packaged import ModelUnavailableError


def settings(models_dir, *overrides):
    """The paper's defaults with Silero, the demo set, no Table 1 models, no harmonic checkpoints and the models named
    by `overrides`."""
    defaults = [f"paths.models={models_dir}", "vocals.detector=silero", "evaluate.sets=[demo]", "text.models=[]"]
    defaults.append("harmonic.checkpoints=[]")
    return config.load(None, [*defaults, *overrides])


def test_offline_models_pass(models_dir, whisper_tiny_en, minilm):
    """Offline names found under paths.models resolve to their folders; Silero needs nothing."""
    cfg = settings(
        models_dir, "models.whisper=whisper-tiny.en", "models.text=all-MiniLM-L6-v2", "text.models=[all-MiniLM-L6-v2]"
    )
    found = preflight.check(cfg)
    assert found == {
        "whisper": str(whisper_tiny_en),
        "text model": str(minilm),
        "Table 1 model all-MiniLM-L6-v2": str(minilm),
        "detector": "silero",
    }


def test_every_missing_piece_is_named_at_once(tmp_path):
    """Hub models offline (HF_HUB_OFFLINE, conftest), a missing training table, a missing harmonic checkpoint and
    missing benchmark audio: one error lists them all."""
    cfg = settings(
        tmp_path,
        "models.whisper=openai/whisper-large-v3",
        "models.text=nobody/no-model",
        "text.models=[nobody/table-one-model]",
        f"train.data={tmp_path / 'missing.csv'}",
        "evaluate.sets=[demo, covers80]",
        f"evaluate.audio_root={tmp_path / 'audio'}",
        f"harmonic.checkpoints=[{tmp_path / 'dvi-clews/checkpoint_best.ckpt'}]",
    )
    with pytest.raises(ModelUnavailableError) as info:
        preflight.check(cfg)
    message = str(info.value)
    assert message.startswith("the profile cannot run here:") and message.count("\n  - ") == 6
    for piece in (
        "model 'openai/whisper-large-v3'",
        "model 'nobody/no-model'",
        "model 'nobody/table-one-model'",
        "missing.csv",
        "no audio for evaluation set 'covers80'",
        "dvi-clews/checkpoint_best.ckpt: no such checkpoint file",
    ):
        assert piece in message


def test_training_table_paths_are_checked_relative_to_the_table(tmp_path, models_dir, whisper_tiny_en, minilm):
    """train.data: audio paths relative to the CSV's folder; counted when present, an error when a split has none."""
    (tmp_path / "audio").mkdir()
    sf.write(tmp_path / "audio" / "a.wav", np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    (tmp_path / "tracks.csv").write_text("id,path,split\na,audio/a.wav,train\nb,audio/a.wav,val\nc,audio/c.wav,val\n")
    models = ["models.whisper=whisper-tiny.en", "models.text=all-MiniLM-L6-v2"]
    found = preflight.check(settings(models_dir, *models, f"train.data={tmp_path / 'tracks.csv'}"))
    assert found["train_data"] == "2/3 audio files present"
    (tmp_path / "tracks.csv").write_text("id,path,split\na,audio/a.wav,train\nc,audio/c.wav,val\n")
    with pytest.raises(ModelUnavailableError, match="no audio file found for split\\(s\\) val"):
        preflight.check(settings(models_dir, *models, f"train.data={tmp_path / 'tracks.csv'}"))
