"""Settings read from the environment, in one place: the data folder and the API key of endpoints."""
from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "RETRIEVER_LAB_HOME"
API_KEY_ENVS = ("OPENAI_API_KEY", "RETRIEVER_LAB_API_KEY")


def lab_home(home: Path | None = None) -> Path:
    """Where the lab keeps its files: `home`, else $RETRIEVER_LAB_HOME, else `.retriever_lab` in the cwd."""
    return Path(home or os.environ.get(HOME_ENV) or ".retriever_lab")


def api_key() -> str:
    """The key for OpenAI-compatible endpoints; "EMPTY" (what local servers accept) when none is set."""
    return next((os.environ[env] for env in API_KEY_ENVS if os.environ.get(env)), "EMPTY")
