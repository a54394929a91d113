"""Audio and metadata the pipeline reads: the generated demo corpora (English; multilingual, with its voices, bands,
line banks and stored speech), the public benchmarks' clique tables and the evaluation sets built from either.

May import: paperlib.runtime, paperlib.weights."""
