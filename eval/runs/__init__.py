"""Runs on disk: the run store, exports and stored per-config summaries."""
