"""Where the tests find the checkout, the real evaluation data beside it, and the caches that outlive a session."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
APP = str(ROOT / "streamlit_app.py")
SHARED_DATASETS = ROOT.parent / "shared" / "datasets"

# What does not change between test sessions, kept outside the checkout (shared by every checkout on the machine,
# never needed: a session without it builds it): $RETRIEVER_LAB_TEST_CACHE, else ~/.cache/retriever-lab-tests.
TEST_CACHE = Path(os.environ.get("RETRIEVER_LAB_TEST_CACHE") or Path.home() / ".cache" / "retriever-lab-tests")
# The session's shared indexes take their chunk vectors from an embedding cache that outlives the session
# (keyed by the encoder's identity, see eval/index/embedding_cache.py): every build is still a real Chroma build,
# but the sample's e5-small vectors are encoded once per machine, not once per session.
SESSION_EMBEDDING_CACHE = TEST_CACHE / "embeddings"
# numba's compiled ranx functions (it checks their source files itself)
NUMBA_CACHE = TEST_CACHE / "numba"


def onnx_exports_folder() -> Path:
    """The ONNX exports, in a folder per version of the export code: exports made by other code are not reused."""
    code = (ROOT / "eval" / "index" / "encoders" / "onnx.py").read_bytes()
    return TEST_CACHE / "onnx-models" / hashlib.sha256(code).hexdigest()[:16]


SHARED_DATA_TESTS: set[str] = set()  # ids of the tests that asked for ../shared/datasets (see tests/conftest.py)


def shared_dataset(*parts: str) -> Path:
    """A path under ../shared/datasets, or a skip (with the reason) where that folder is absent."""
    SHARED_DATA_TESTS.add(os.environ.get("PYTEST_CURRENT_TEST", "?").rsplit(" (", 1)[0])
    path = SHARED_DATASETS.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent (real evaluation data lives beside the checkout)")
    return path
