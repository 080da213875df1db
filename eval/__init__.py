"""Retriever Lab engine: datasets, indexes, retriever configs, sweeps, metrics and reports.

Importable without Streamlit. The CLI lives in `eval.cli` (`python -m eval`). The public API is importable
from the package itself (`from eval import IndexStore, run_sweep, summarize, ...`); each name is loaded on
first use, so `import eval` stays cheap and nothing imports torch before a model is needed.
"""

import importlib
import os
from pathlib import Path
from typing import Any

# Nothing is ever fetched from a model hub or telemetry host at run time.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")

# The bundled sample (48 documents, 64 questions) in the checkout's data folder.
SAMPLE_DIR = Path(__file__).resolve().parent.parent / "datasets" / "sample"

_PUBLIC = {
    "load_dataset": "eval.data.datasets",
    "load_question_set": "eval.data.datasets",
    "ChunkingParams": "eval.index.chunking",
    "IndexStore": "eval.index.store",
    "RetrieverConfig": "eval.retrievers.vector",
    "parse_sweep": "eval.retrievers.registry",
    "load_sweep": "eval.retrievers.registry",
    "SweepOptions": "eval.sweep.engine",
    "run_sweep": "eval.sweep.engine",
    "Run": "eval.runs.store",
    "RunManifest": "eval.runs.store",
    "RunStore": "eval.runs.store",
    "summarize": "eval.runs.summary",
    "compare_runs": "eval.analysis.leaderboard",
    "export_run": "eval.runs.export",
    "write_report": "eval.report.render",
}
__all__ = ["SAMPLE_DIR", *_PUBLIC]


def __getattr__(name: str) -> Any:
    """Import the module behind a public name on first access (PEP 562)."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'eval' has no attribute '{name}'")
    value = getattr(importlib.import_module(_PUBLIC[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
