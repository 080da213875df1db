"""Retriever Lab engine: datasets, indexes, retriever configs, sweeps, metrics and reports.

Importable without Streamlit. The CLI lives in `eval.cli` (`python -m eval`).
"""
import os

# Nothing is ever fetched from a model hub or telemetry host at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
