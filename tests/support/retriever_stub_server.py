"""A stand-in for four retrieval services, answering from a real Chroma index with each platform's documented
request and response shapes:

- Langchain-Chatchat `POST /knowledge_base/search_docs` (`query`, `knowledge_base_name`, `top_k`,
  `score_threshold` on a distance where lower is closer): a list of `{"page_content", "metadata": {"source"},
  "type": "Document", "id", "score"}`; an unknown knowledge base answers `[]` as Chatchat does.
- RAGFlow `POST /api/v1/retrieval` (bearer key; `question`, `dataset_ids`, `top_k` candidates, `page_size`,
  `similarity_threshold`, `vector_similarity_weight` mixing vector and term similarity): `{"code": 0, "data":
  {"chunks": [...], "doc_aggs": [...], "total"}}`; a wrong key gets HTTP 200 with `{"code": 109, "message"}`.
- Dify external knowledge `POST /dify/retrieval` (bearer key; `knowledge_id`, `query`, `retrieval_setting`):
  `{"records": [{"content", "score", "title", "metadata"}]}`; a wrong key gets 403 `{"error_code": 1002, ...}`.
- a generic JSON search `POST /search` (`{"q", "size"}`): `{"data": {"hits": [{"pid", "passage", "relevance",
  "meta": {"doc"}}]}}`;
- a reranker `POST /rerank` (and `/v1/rerank`) scoring with `rerank_scores(query, texts)`, in `rerank_shape`:
  "tei" (Text Embeddings Inference: `{"query", "texts", ...}` -> `[{"index", "score"}]`) or "cohere" (Cohere,
  Infinity, Jina: `{"model", "query", "documents", "top_n", ...}` -> `{"results": [{"index", "relevance_score"}],
  "model", "usage"}`), best first as those servers answer, 422 to a request without its texts; `rerank_mode` makes
  it answer wrongly: "other" (the other shape), "out-of-range" (an index past the texts sent), "few" (one result fewer).

`mode` makes it misbehave: "500" always (echoing the request's Authorization and X- headers), "429" or "503"
for the first `failures` requests (with `Retry-After: {retry_after}`), "slow" (sleeps `delay_s` before
answering), "garbage" (malformed JSON), "all" (every chunk of the index, whatever was asked for). Every
request's body and Authorization header are kept in `requests`.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from typing import Any

from support.loopback_server import JSONHandler, LoopbackServer


class RetrieverStubServer(LoopbackServer):
    def __init__(
        self,
        index,
        key: str = "stub-key",
        mode: str | None = None,
        failures: int = 0,
        delay_s: float = 2.0,
        retry_after: str = "0",
        rerank_scores=None,
        rerank_shape: str = "tei",
        rerank_mode: str | None = None,
    ) -> None:
        super().__init__(_Handler)
        self.index, self.key, self.mode, self.failures, self.delay_s = index, key, mode, failures, delay_s
        self.retry_after = retry_after
        self.rerank_scores, self.rerank_shape, self.rerank_mode = rerank_scores, rerank_shape, rerank_mode
        self.lock = threading.Lock()
        self.in_flight = self.most_in_flight = 0
        self.vectors: dict[str, list[float]] = {}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def search(self, question: str, n: int) -> list[dict[str, Any]]:
        """The n nearest chunks of the real index, with LangChain's cosine relevance (1 - distance)."""
        if question not in self.vectors:  # one encoding per question, however many configs ask it
            self.vectors[question] = self.index.embeddings.embed_query(question)
        vector = self.vectors[question]
        n = self.index.manifest.chunks if self.mode == "all" else min(n, self.index.manifest.chunks)
        got = self.index.collection.query(
            query_embeddings=[vector], n_results=n, include=["documents", "metadatas", "distances"]
        )
        return [
            {
                "id": chunk_id,
                "text": text,
                "doc_id": meta["doc_id"],
                "title": meta.get("title", ""),
                "distance": distance,
                "relevance": 1 - distance,
            }
            for chunk_id, text, meta, distance in zip(
                got["ids"][0], got["documents"][0], got["metadatas"][0], got["distances"][0]
            )
        ]


def term_similarity(question: str, text: str) -> float:
    words = set(re.findall(r"\w+", question.lower()))
    return len(words & set(re.findall(r"\w+", text.lower()))) / len(words) if words else 0.0


class _Handler(JSONHandler):
    server: RetrieverStubServer

    def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
        body = self.read_json()
        with self.server.lock:
            self.server.in_flight += 1
            self.server.most_in_flight = max(self.server.most_in_flight, self.server.in_flight)
            count = len(self.server.requests)
        self.answering = True
        try:
            self._answer(body, count)
        finally:
            self._call_done()

    def send_response(self, code: int, message: str | None = None) -> None:
        """A call ends, for `most_in_flight`, when its answer starts: the client may send its next call as soon as
        it has the answer, before this thread gets back from writing it."""
        self._call_done()
        super().send_response(code, message)

    def _call_done(self) -> None:
        if getattr(self, "answering", False):
            self.answering = False
            with self.server.lock:
                self.server.in_flight -= 1

    def _answer(self, body: dict[str, Any], count: int) -> None:
        mode = self.server.mode
        time.sleep(0.02)  # a service takes a moment: lets concurrent calls overlap
        if mode == "500":
            # echoes the request's credentials, as careless servers do: the client must scrub them
            echoed = [value for name, value in self.headers.items() if name.lower().startswith("x-")]
            return self._send_json(
                500,
                {
                    "detail": f"Internal Server Error ({self.headers.get('Authorization')}"
                    f"{''.join(f', {value}' for value in echoed)})"
                },
            )
        if mode in ("429", "503") and count <= self.server.failures:
            return self._send_raw(int(mode), b'{"detail": "Busy"}', {"Retry-After": self.server.retry_after})
        if mode == "slow":
            time.sleep(self.server.delay_s)
        if mode == "garbage":
            return self._send_raw(200, b'{"code": 0, "data": {"chunks": [', {})
        routes = {
            "/knowledge_base/search_docs": self._chatchat,
            "/api/v1/retrieval": self._ragflow,
            "/dify/retrieval": self._dify,
            "/search": self._generic,
            "/rerank": self._rerank,
            "/v1/rerank": self._rerank,
        }
        if self.path not in routes:
            return self._send_json(404, {"detail": "Not Found"})
        routes[self.path](body)

    def _send_raw(self, status: int, data: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _bearer_ok(self) -> bool:
        return self.headers.get("Authorization") == f"Bearer {self.server.key}"

    def _chatchat(self, body: dict[str, Any]) -> None:
        if body["knowledge_base_name"] != "samples":
            return self._send_json(200, [])  # Chatchat answers an unknown knowledge base with no documents
        threshold = body.get("score_threshold", 2.0)
        hits = [h for h in self.server.search(body["query"], body["top_k"]) if h["distance"] <= threshold]
        self._send_json(
            200,
            [
                {
                    "page_content": h["text"],
                    "metadata": {"source": f"{h['doc_id']}.md"},
                    "type": "Document",
                    "id": h["id"],
                    "score": h["distance"],
                }
                for h in hits
            ],
        )

    def _ragflow(self, body: dict[str, Any]) -> None:
        if not self._bearer_ok():
            return self._send_json(
                200, {"code": 109, "message": "Authentication error: API key is invalid!", "data": False}
            )
        if not body.get("dataset_ids"):
            return self._send_json(200, {"code": 102, "message": "`datasets` is required."})
        weight = body.get("vector_similarity_weight", 0.3)
        chunks = []
        for hit in self.server.search(body["question"], body.get("top_k", 1024)):
            term = term_similarity(body["question"], hit["text"])
            similarity = weight * hit["relevance"] + (1 - weight) * term
            if similarity >= body.get("similarity_threshold", 0.2):
                chunks.append(
                    {
                        "content": hit["text"],
                        "content_ltks": hit["text"],
                        "document_id": hashlib.md5(hit["doc_id"].encode()).hexdigest(),
                        "document_keyword": f"{hit['doc_id']}.txt",
                        "highlight": hit["text"],
                        "id": hashlib.md5(hit["id"].encode()).hexdigest(),
                        "image_id": "",
                        "important_keywords": [""],
                        "kb_id": body["dataset_ids"][0],
                        "positions": [""],
                        "similarity": similarity,
                        "term_similarity": term,
                        "vector_similarity": hit["relevance"],
                    }
                )
        chunks.sort(key=lambda c: -c["similarity"])
        page = chunks[: body.get("page_size", 30)]
        self._send_json(200, {"code": 0, "data": {"chunks": page, "doc_aggs": [], "total": len(chunks)}})

    def _dify(self, body: dict[str, Any]) -> None:
        if not self._bearer_ok():
            return self._send_json(403, {"error_code": 1002, "error_msg": "Authorization failed"})
        if body["knowledge_id"] != "sample":
            return self._send_json(404, {"error_code": 2001, "error_msg": "The knowledge does not exist"})
        setting = body["retrieval_setting"]
        hits = [
            h
            for h in self.server.search(body["query"], setting["top_k"])
            if h["relevance"] >= setting["score_threshold"]
        ]
        self._send_json(
            200,
            {
                "records": [
                    {
                        "content": h["text"],
                        "score": h["relevance"],
                        "title": h["title"],
                        "metadata": {"path": f"s3://bucket/{h['id']}", "description": ""},
                    }
                    for h in hits
                ]
            },
        )

    def _rerank(self, body: dict[str, Any]) -> None:
        shape, mode = self.server.rerank_shape, self.server.rerank_mode
        field = "texts" if shape == "tei" else "documents"
        if field not in body:  # as TEI (axum) and Infinity (FastAPI) refuse a body without their field
            return self._send_json(422, {"error": f"Failed to deserialize the JSON body: missing field `{field}`"})
        texts = body[field]
        scores = [float(s) for s in self.server.rerank_scores(body["query"], texts)]
        ranked = sorted(range(len(texts)), key=lambda i: -scores[i])[: body.get("top_n") or len(texts)]
        results = [{"index": i, "score": scores[i]} for i in ranked]
        if mode == "out-of-range":
            results[-1]["index"] = len(texts)
        if mode == "few":
            results = results[:-1]
        if (shape == "tei") == (mode != "other"):
            return self._send_json(200, results)
        self._send_json(
            200,
            {
                "object": "rerank",
                "model": body.get("model", "stub"),
                "usage": {"total_tokens": 0},
                "results": [{"index": r["index"], "relevance_score": r["score"]} for r in results],
            },
        )

    def _generic(self, body: dict[str, Any]) -> None:
        hits = self.server.search(body["q"], body["size"])
        self._send_json(
            200,
            {
                "data": {
                    "hits": [
                        {
                            "pid": h["id"],
                            "passage": h["text"],
                            "relevance": h["relevance"],
                            "meta": {"doc": h["doc_id"]},
                        }
                        for h in hits
                    ]
                }
            },
        )


def search_entry(url: str, **settings) -> dict[str, Any]:
    """An `http_json` sweep spec entry for the stub's generic search at `url` (the server's address), top_k 5."""
    return {
        "search_type": "http_json",
        "url": f"{url}/search",
        "request": {"q": "{question}", "size": "{top_k}"},
        "params": {"top_k": 5},
        "results": "data.hits",
        "text": "passage",
        "id": "pid",
        "score": "relevance",
        "map_by": "doc_id",
        "map_field": "meta.doc",
        **settings,
    }
