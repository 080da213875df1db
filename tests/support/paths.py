"""Where the tests find the checkout, the real evaluation data beside it, and the caches that outlive a session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# The session's shared indexes take their chunk vectors from an embedding cache that outlives the session
# (keyed by the encoder's identity, see eval/index/embedding_cache.py): every build is still a real Chroma build,
# but the sample's e5-small vectors are encoded once per checkout, not once per session.
SESSION_EMBEDDING_CACHE = ROOT / ".retriever_lab" / "test-embedding-cache"

SHARED_DATA_TESTS: dict[str, str] = {}  # test id -> outcome, for the summary at the end of the session


def shared_dataset(*parts: str) -> Path:
    """A path under ../shared/datasets, or a skip (with the reason) where that folder is absent."""
    SHARED_DATA_TESTS.setdefault(os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0], "not reported")
    path = SHARED_DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (real evaluation data lives beside the checkout)")
    return path
