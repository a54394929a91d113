"""The teacher (paper §3.1): vocal detection and 30 s chunks, Whisper transcription, sentence embeddings of the
transcripts, and the evaluation sets' transcript systems (t_global, t_local).

May import: paperlib.data, paperlib.weights, paperlib.runtime."""
