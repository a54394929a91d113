"""Cover search in a catalogue: the faiss index of track vectors and search by audio or by id.

May import: paperlib.model and every layer below it."""
