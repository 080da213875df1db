"""A local OpenAI-compatible `/v1/embeddings` server for tests that serves a real bundled model (MiniLM).

Knobs for the failure tests: `fail_first` requests answer 503 (retried by the client), `fail_after` N
requests every later one answers 500, `shrink_after` N requests the vectors lose their last dimension.
`delay_s` holds each request, so concurrent requests overlap; `most_at_once` records how many did.
"""

from __future__ import annotations

import threading
import time

from support.loopback_server import JSONHandler, LoopbackServer

from eval.index.encoders import get_embeddings


class EmbeddingsStubServer(LoopbackServer):
    def __init__(
        self, delay_s: float = 0.0, fail_first: int = 0, fail_after: int | None = None, shrink_after: int | None = None
    ) -> None:
        super().__init__(_Handler)
        self.delay_s, self.fail_first, self.fail_after, self.shrink_after = (
            delay_s,
            fail_first,
            fail_after,
            shrink_after,
        )
        self.model = get_embeddings("minilm")
        self.lock = threading.Lock()
        self.at_once = self.most_at_once = 0


class _Handler(JSONHandler):
    server: EmbeddingsStubServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.read_json()
        served = len(self.server.requests)
        if self.path != "/v1/embeddings":
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        if served <= self.server.fail_first or (self.server.fail_after is not None and served > self.server.fail_after):
            self._send_json(503 if served <= self.server.fail_first else 500, {"error": {"message": "overloaded"}})
            return
        with self.server.lock:
            self.server.at_once += 1
            self.server.most_at_once = max(self.server.most_at_once, self.server.at_once)
        time.sleep(self.server.delay_s)
        vectors = self.server.model.embed_array(body["input"])
        with self.server.lock:
            self.server.at_once -= 1
        if self.server.shrink_after is not None and served > self.server.shrink_after:
            vectors = vectors[:, :-1]
        data = [{"object": "embedding", "index": i, "embedding": v.tolist()} for i, v in enumerate(vectors)]
        self._send_json(
            200,
            {
                "object": "list",
                "data": list(reversed(data)),
                "model": body["model"],
                "usage": {"prompt_tokens": 0, "total_tokens": 0},
            },
        )
