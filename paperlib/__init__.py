"""LIVI — Lyrics-Informed Version Identification (ECIR 2026), reproducible artifact.

One subpackage per concern, each `__init__` stating its job and what it may import (pyproject.toml's
import-linter contracts check the layers); `paperlib.load_checkpoint(DIR)` gives the LIVI
model of a checkpoint folder (trained, or imported from the authors' livi.pth).
Conventions: audio is mono float32 at 16 kHz; chunks are 30 s (480,000 samples);
embeddings are L2-normalised float32 rows; a track id is a string.
"""

import importlib
import logging

from paperlib.runtime import kernels

if kernels.pin() and kernels.loaded_before():  # before numpy, torch or faiss load in this process
    logging.getLogger(__name__).warning(
        "%s loaded before paperlib: their kernels follow this CPU, not paperlib.runtime.kernels (import it first)",
        ", ".join(kernels.loaded_before()),
    )

SAMPLE_RATE = 16_000
CHUNK_SECONDS = 30.0
CHUNK_SAMPLES = int(SAMPLE_RATE * CHUNK_SECONDS)

__version__ = "0.1.0"


_LAZY = {"load_checkpoint": "paperlib.model.checkpoint"}
"""Package-level names imported on first use (the model stack imports torch); stages import their modules."""


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'paperlib' has no attribute {name!r}")
