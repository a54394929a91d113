"""Table 2's harmonic half: the CLEWS release's four CQT architectures and their checkpoints, the training-free
2DFTM chroma baseline, and the harmonic systems of each evaluation set.

May import: paperlib.data, paperlib.weights, paperlib.runtime (not paperlib.lyrics)."""
