"""LIVI — Lyrics-Informed Version Identification (ECIR 2026), reproducible artifact.

One module per concern: audio, corpus, benchmarks, vocals, asr (Whisper), text (targets),
model, training, retrieval, metrics, reporting, cli.
Conventions: audio is mono float32 at 16 kHz; chunks are 30 s (480,000 samples);
embeddings are L2-normalised float32 rows; a track id is a string.
"""

SAMPLE_RATE = 16_000
CHUNK_SECONDS = 30.0
CHUNK_SAMPLES = int(SAMPLE_RATE * CHUNK_SECONDS)

__version__ = "0.1.0"
