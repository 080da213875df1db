"""Rerankers behind an endpoint: a rerank config whose `model` names a served cross-encoder, so reranking scales
past one machine. Two request shapes, both `POST {URL}/rerank`:

- `tei:URL`: Hugging Face Text Embeddings Inference. Request `{"query", "texts", "raw_scores": false, "truncate":
  true}`; answer a list of `{"index", "score"}`. `raw_scores: false` is TEI's default (the sigmoid of a one-label
  model's logit, which is what a local sentence-transformers CrossEncoder returns); `truncate: true` cuts a long
  chunk to the model's length, as the local CrossEncoder does (TEI's default, false, refuses it).
- `cohere:MODEL@URL`: the rerank API Cohere defined and Infinity and Jina follow. Request `{"model", "query",
  "documents", "top_n", "return_documents": false}` with `top_n` the number of documents (every score is
  needed); answer `{"results": [{"index", "relevance_score", ...}], ...}`. URL is the API's base: Infinity's
  server (`http://host:7997`), `https://api.jina.ai/v1`, `https://api.cohere.com/v1`.

Checked, not guessed (2026-12-06): TEI's docs/openapi.json (v1.9.3): RerankRequest {query, texts, raw_scores
(default false), return_text, truncate (default false), truncation_direction}, response an array of Rank {index
(>= 0), score, text?}, and its `--max-client-batch-size` (default 32: a request holds at most 32 texts, hence
`batch_size` 32). Infinity's fastapi_schemas/pymodels.py: RerankInput {query, documents, return_documents=False,
raw_scores=False, model, top_n > 0} and ReRankResult {object "rerank", results [{relevance_score, index,
document?}], model, usage, id, created}, served at `{url_prefix}/rerank` (prefix "" by default). cohere-python:
`v1/rerank` takes {model, query, documents, top_n, rank_fields, return_documents, max_chunks_per_doc}, `v2/rerank`
{model, query, documents, top_n, max_tokens_per_doc, priority} (no return_documents), results items {index,
relevance_score}. Jina `https://api.jina.ai/v1/rerank`: {model, query, documents, top_n, return_documents} ->
{model, usage, results [{index, relevance_score, document?}]} (its API description, and LangChain's JinaRerank).

Every answer is checked: the shape, one finite score for each document sent, no index out of range or twice.
Calls go through the external retrievers' client (`post_json`: retries on 429, 5xx, timeouts and refused
connections, honouring Retry-After; keys from the environment, scrubbed from every message). A call that fails
for good stops the sweep with one line (the run is kept as failed and can be resumed): a missing score cannot
be replaced without changing the ranking.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any
from urllib.parse import urlsplit

from langchain_community.cross_encoders.base import BaseCrossEncoder

from eval.errors import ConfigError, LabError
from eval.retrievers.base import whole_number
from eval.retrievers.external.client import DEFAULT_CONCURRENCY, CallError, Policy, post_json, scrub
from eval.retrievers.external.config import check_calls, headers_of

APIS = ("tei", "cohere")
EXAMPLES = {"tei": "tei:http://127.0.0.1:8080", "cohere": "cohere:BAAI/bge-reranker-v2-m3@http://127.0.0.1:7997"}
CALL_KEYS = ("api_key_env", "headers", "timeout", "retries", "backoff", "concurrency", "batch_size")
DEFAULT_BATCH_SIZE = 32  # TEI's default --max-client-batch-size: the most texts one request may hold
PROBE = ("Is this reranker up?", ["A first passage.", "A second passage."])


def is_endpoint(model: Any) -> bool:
    return isinstance(model, str) and model.partition(":")[0] in APIS


def parse(model: str) -> tuple[str, str, str]:
    """`tei:URL` or `cohere:MODEL@URL` -> (api, model name or "", URL without a trailing slash); a ConfigError
    showing an example otherwise."""
    api, _, rest = model.partition(":")
    name, _, url = rest.partition("@") if api == "cohere" else ("", "", rest)
    if api not in APIS or not re.match(r"^https?://[^\s/]+", url) or (api == "cohere" and not name.strip()):
        shape = "tei:URL" if api == "tei" else "cohere:MODEL@URL"
        raise ConfigError(f"bad reranker endpoint {model!r}: write {shape}, e.g. {EXAMPLES.get(api, EXAMPLES['tei'])}")
    return api, name.strip(), url.rstrip("/")


def label(model: str) -> str:
    """The reranker's part of a config id: `tei-<host>-<port>` or `cohere-<model>`."""
    api, name, url = parse(model)
    if api == "tei":
        address = urlsplit(url)
        return "-".join(str(part) for part in ("tei", address.hostname, address.port) if part)
    return "cohere-" + re.sub(r"[/:@\s]+", "-", name)


def check_settings(entry: dict[str, Any], where: str) -> str | None:
    """The entry's call settings (`CALL_KEYS`) as canonical JSON, validated, or None when it gives none."""
    settings = {key: entry[key] for key in CALL_KEYS if key in entry}
    if not settings:
        return None
    try:
        check_calls(settings)
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None
    for key in ("concurrency", "batch_size"):
        if key in settings:
            settings[key] = whole_number(settings[key], key, where)
    return json.dumps(settings, ensure_ascii=False, sort_keys=True)


class RerankEndpoint(BaseCrossEncoder):
    """A served reranker as a LangChain cross-encoder: `score(pairs)` sends each question's texts in requests of
    at most `batch_size`, and gives each pair the score its endpoint answered for it. Made ready by `probe`."""

    def __init__(self, model: str, settings_json: str | None) -> None:
        import httpx

        self.spec = model
        self.api, self.name, self.url = parse(model)
        settings = json.loads(settings_json or "{}")
        self.policy = Policy.of(settings)
        self.concurrency = settings.get("concurrency", DEFAULT_CONCURRENCY)
        self.batch_size = settings.get("batch_size", DEFAULT_BATCH_SIZE)
        self.headers, self.secrets = headers_of(settings)
        self.client = httpx.Client(follow_redirects=False)

    def probe(self) -> None:
        """One small request, so an endpoint that is down, refuses the key or answers in another shape stops the
        run before it starts."""
        self.score([(PROBE[0], text) for text in PROBE[1]])

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        scores: list[float] = [math.nan] * len(text_pairs)
        by_question: dict[str, list[int]] = {}
        for position, (question, _) in enumerate(text_pairs):
            by_question.setdefault(question, []).append(position)
        for question, positions in by_question.items():
            for start in range(0, len(positions), self.batch_size):
                batch = positions[start : start + self.batch_size]
                for position, value in zip(batch, self._call(question, [text_pairs[p][1] for p in batch])):
                    scores[position] = value
        return scores

    def _call(self, question: str, texts: list[str]) -> list[float]:
        """One request: the score of each text, in the order sent."""
        if self.api == "tei":
            body: dict[str, Any] = {"query": question, "texts": texts, "raw_scores": False, "truncate": True}
        else:
            body = {
                "model": self.name,
                "query": question,
                "documents": texts,
                "top_n": len(texts),
                "return_documents": False,
            }
        try:
            payload, _, _ = post_json(self.client, f"{self.url}/rerank", body, self.headers, self.policy)
            return read_scores(self.api, payload, len(texts))
        except CallError as error:
            raise LabError(f"reranker {self.spec}: {scrub(str(error), self.secrets)}") from None


def read_scores(api: str, payload: Any, sent: int) -> list[float]:
    """The score of each of the `sent` texts, in the order sent, from an answer in the `api`'s shape; a CallError
    saying what is wrong otherwise."""
    if api == "tei":
        if isinstance(payload, dict) and "results" in payload:
            raise CallError('answered in the /v1/rerank shape ({"results": ...}), not a list: use cohere:MODEL@URL')
        if not isinstance(payload, list):
            raise CallError(f"answered {_shape(payload)}, not TEI's list of {{index, score}}")
        items, score_key = payload, "score"
    else:
        if isinstance(payload, list):
            raise CallError('answered a list (TEI\'s /rerank shape), not {"results": [...]}: use tei:URL')
        if not isinstance(payload, dict) or not isinstance(payload.get("results"), list):
            raise CallError(f'answered {_shape(payload)}, not {{"results": [{{index, relevance_score}}, ...]}}')
        items, score_key = payload["results"], "relevance_score"
    scores: list[float | None] = [None] * sent
    for item in items:
        index, value = (item.get("index"), item.get(score_key)) if isinstance(item, dict) else (None, None)
        if isinstance(index, bool) or not isinstance(index, int) or not _finite(value):
            raise CallError(f"a result is not {{index, {score_key}}} (whole index, finite score): {_shape(item)}")
        if not 0 <= index < sent:
            raise CallError(f"index {index} is out of range for the {sent} documents sent")
        if scores[index] is not None:
            raise CallError(f"index {index} is answered twice")
        scores[index] = float(value)
    missing = sum(score is None for score in scores)
    if missing:
        raise CallError(f"answered {sent - missing} of the {sent} scores asked for (one per document sent)")
    return [float(score) for score in scores if score is not None]


def _finite(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)


def _shape(value: Any) -> str:
    return " ".join(json.dumps(value, ensure_ascii=False).split())[:120]
