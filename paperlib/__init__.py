"""LIVI — Lyrics-Informed Version Identification (ECIR 2026), reproducible artifact.

One module per concern: audio, corpus, benchmarks, vocals, asr (Whisper), text (targets),
model, training, retrieval, metrics, reporting, cli.
Conventions: audio is mono float32 at 16 kHz; chunks are 30 s (480,000 samples);
embeddings are L2-normalised float32 rows; a track id is a string.
"""

import os

# Idle OpenMP threads sleep instead of spinning (must be set before torch starts OpenMP): on a busy
# or oversubscribed CPU, spinning made small torch ops in Whisper decoding up to 100x slower.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

SAMPLE_RATE = 16_000
CHUNK_SECONDS = 30.0
CHUNK_SAMPLES = int(SAMPLE_RATE * CHUNK_SECONDS)

__version__ = "0.1.0"
