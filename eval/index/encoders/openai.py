"""Remote encoders: an OpenAI-compatible `/v1/embeddings` endpoint, for corpora that outgrow this machine.

Text Embeddings Inference, vLLM, Xinference and Ollama serve one. `openai:MODEL@URL` (e.g.
`openai:bge-m3@http://127.0.0.1:8080/v1`) names it as an embedding model: the index manifest keeps the
spec, so the questions of a sweep are encoded by the same endpoint as the index. Texts go in batches
(`batch_size`), several batches at once (`concurrency`); a connection error, a 429 or a 5xx is retried
with backoff, anything else fails at once. Every response is checked: one vector per input, every vector
of the endpoint's dimension (the first response's), so a server that changes model mid-build fails the
build instead of mixing vector spaces.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from eval.errors import LabError
from eval.index.encoders.base import BatchedEmbeddings
from eval.settings import api_key, parse_openai_spec

RETRIED_STATUS = {408, 429, 500, 502, 503, 504}


class OpenAIEmbeddings(BatchedEmbeddings):
    """Vectors from an OpenAI-compatible embeddings endpoint (batched, concurrent, retried, checked)."""

    def __init__(
        self,
        model: str,
        base_url: str,
        batch_size: int = 32,
        concurrency: int = 4,
        retries: int = 3,
        timeout_s: float = 60.0,
        backoff_s: float = 0.5,
    ) -> None:
        super().__init__(batch_size)
        self.model, self.base_url = model, base_url
        self.name = f"openai:{model}@{base_url}"
        self.concurrency, self.retries, self.timeout_s, self.backoff_s = concurrency, retries, timeout_s, backoff_s
        self._dimension: int | None = None
        self._probe_lock = threading.Lock()

    @classmethod
    def from_spec(cls, spec: str) -> OpenAIEmbeddings:
        return cls(*parse_openai_spec(spec, "openai:bge-m3@http://127.0.0.1:8080/v1"))

    @property
    def identity(self) -> str:
        """The model name and URL: the cache trusts the endpoint to serve one revision under that name."""
        return self.name

    @property
    def dimension(self) -> int:
        """The first response's dimension (probed once, even when batches ask at the same time)."""
        with self._probe_lock:
            if self._dimension is None:
                self._dimension = int(self._request(["dimension probe"]).shape[1])
        return self._dimension

    def _encode(self, texts: list[str], is_query: bool) -> np.ndarray:
        expected = self.dimension
        vectors = self._request(texts)
        if vectors.shape[1] != expected:
            raise LabError(
                f"the embeddings endpoint {self.base_url} (model {self.model}) returned "
                f"{vectors.shape[1]}-dimensional vectors, but {expected}-dimensional ones before: "
                "did the server change model?"
            )
        return vectors

    def _encode_batches(self, batches: list[list[str]], is_query: bool) -> Iterator[np.ndarray]:
        if self.concurrency <= 1 or len(batches) <= 1:
            yield from super()._encode_batches(batches, is_query)
            return
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="embeddings") as pool:
            yield from pool.map(lambda batch: self._encode(batch, is_query), batches)

    def _request(self, texts: list[str]) -> np.ndarray:
        body = json.dumps({"model": self.model, "input": texts, "encoding_format": "float"}).encode()
        request = urllib.request.Request(
            f"{self.base_url.rstrip('/')}/embeddings",
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {api_key()}"},
        )
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                    return self._vectors(json.loads(response.read()), len(texts))
            except urllib.error.HTTPError as error:
                problem = f"HTTP {error.code}: {error.read()[:200].decode(errors='replace')}"
                if error.code not in RETRIED_STATUS:
                    raise LabError(
                        f"the embeddings endpoint {self.base_url} (model {self.model}) refused the request ({problem})"
                    ) from None
            except (urllib.error.URLError, OSError, TimeoutError) as error:
                problem = str(getattr(error, "reason", error))
            if attempt < self.retries:
                time.sleep(self.backoff_s * 2**attempt)
        raise LabError(
            f"the embeddings endpoint {self.base_url} (model {self.model}) failed {self.retries + 1} times ({problem})"
        )

    def _vectors(self, payload: dict, expected: int) -> np.ndarray:
        """The response's vectors in input order, checked: one per input, all of one dimension."""
        try:
            data = sorted(payload["data"], key=lambda item: item["index"])
            vectors = [item["embedding"] for item in data]
        except (KeyError, TypeError):
            raise LabError(
                f"the embeddings endpoint {self.base_url} did not answer in the OpenAI format "
                '({"data": [{"index", "embedding"}, ...]})'
            ) from None
        if len(vectors) != expected:
            raise LabError(
                f"the embeddings endpoint {self.base_url} returned {len(vectors)} vectors for {expected} texts"
            )
        sizes = sorted({len(v) for v in vectors})
        if len(sizes) > 1 or not sizes[0]:
            raise LabError(
                f"the embeddings endpoint {self.base_url} returned vectors of dimensions "
                f"{', '.join(map(str, sizes))} in one response"
            )
        return np.asarray(vectors, np.float32)
