"""The packaged offline weights: model names, their pip packages and sha256 sums, and their conversion into the
formats transformers and sentence-transformers load (CTranslate2 Whisper, 4-bit multilingual-e5).

May import: paperlib.runtime."""
