"""Sweeps: a question set through a grid of retriever configs, scored, timed and stored as a run."""
