"""LIVI itself (paper §3): Whisper features, the frozen encoder with its pooling head, checkpoints (trained or the
authors' release), training pairs and training, inference on audio, the audio systems of each evaluation set and the
cover threshold a checkpoint carries.

May import: paperlib.lyrics, paperlib.harmonic, paperlib.data, paperlib.weights, paperlib.runtime."""
