"""Retrievers outside this process as sweep configs: RAG platforms over HTTP, and imported result files.

Kinds (`search_type` in a sweep spec), each speaking its platform's documented API:
- `chatchat`: Langchain-Chatchat `POST {url}/knowledge_base/search_docs` with `query`, `knowledge_base_name`,
  `top_k`, `score_threshold`; answers a list of documents (`page_content`, `metadata.source`, `id`, `score`).
- `ragflow`: RAGFlow `POST {url}/api/v1/retrieval` with a bearer key, `question`, `dataset_ids`, `top_k`,
  `page_size`, `similarity_threshold`, `vector_similarity_weight`, `rerank_id`, `keyword`; answers
  `{"code": 0, "data": {"chunks": [{"content", "document_keyword", "id", "similarity", ...}]}}` (a non-zero
  `code` is an error even with HTTP 200).
- `dify`: Dify's external knowledge API `POST {url}/retrieval` with a bearer key, `knowledge_id`, `query`,
  `retrieval_setting: {top_k, score_threshold}`; answers `{"records": [{"content", "score", "title", "metadata"}]}`.
- `http_json`: any JSON endpoint described in the spec: a request template and where the result list and each
  result's text, id and score sit in the response.
- `imported`: a TREC run file or a JSONL of retrieved ids per question, for systems nobody can call from here.

Each returned chunk is mapped to a corpus document (`eval.chunk_mapping`) so the run's labels and metrics apply.
Calls run `concurrency` at a time, are timed one by one, and are retried with exponential backoff on 429, 5xx,
timeouts and refused connections; a call that still fails is recorded on its row (`call_error`), its metrics
NaN, and the sweep goes on. Keys are read from environment variables named in the spec, sent only in the
`Authorization` header and scrubbed from every recorded message: they never reach a run, log or export.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from eval.chunk_mapping import MAP_BY, CorpusMapper, Mapped
from eval.datasets import iter_jsonl, read_text
from eval.errors import ConfigError, DatasetError
from eval.index import Index
from eval.runs import atomic_write_parquet

DEFAULT_CONCURRENCY = 4  # calls at once to a service: overlaps network waits, stays polite to a shared server
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5
MAX_WAIT_S = 30.0  # the longest pause before a retry, whatever Retry-After says
CALL_COLUMNS = ("call_ms", "call_attempts", "call_error", "unmapped")
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


# ---------------------------------------------------------------- kinds

@dataclass(frozen=True)
class Kind:
    """What a kind's spec entry takes and how its calls look."""

    required: tuple[str, ...]
    sweep: tuple[str, ...]  # keys whose list values are alternatives
    other: tuple[str, ...] = ()  # further keys, never swept
    key_env: str | None = None  # the default environment variable of the key; None: no key unless named
    map_by: str | None = None  # the default mapping of chunks to documents
    map_field: str | None = None


COMMON = ("search_type", "name", "api_key_env", "map_by", "map_field", "timeout", "retries", "backoff")
KINDS = {
    "chatchat": Kind(("url", "knowledge_base_name", "top_k"), ("top_k", "score_threshold"),
                     map_by="file_name", map_field="metadata.source"),
    "ragflow": Kind(("url", "dataset_ids"), ("top_k", "page_size", "similarity_threshold",
                                             "vector_similarity_weight", "rerank_id", "keyword"),
                    ("document_ids",), key_env="RAGFLOW_API_KEY", map_by="file_name", map_field="document_keyword"),
    "dify": Kind(("url", "knowledge_id", "top_k"), ("top_k", "score_threshold"), ("metadata_condition",),
                 key_env="DIFY_API_KEY", map_by="file_name", map_field="title"),
    "http_json": Kind(("url", "request", "results", "text", "map_by"), (), ("params", "id", "score", "headers")),
    "imported": Kind(("path",), ("k",), ("format",), map_by="doc_id"),
}
RAGFLOW_PAGE_SIZE = 30  # RAGFlow's default page_size: how many chunks a call returns when not given


def is_external(config: Any) -> bool:
    return isinstance(config, ExternalConfig)


def is_external_entry(entry: Any) -> bool:
    return isinstance(entry, dict) and isinstance(entry.get("search_type"), str) and entry["search_type"] in KINDS


@dataclass(frozen=True)
class ExternalConfig:
    """One external retriever configuration; its settings are canonical JSON so the config stays hashable."""

    search_type: str
    settings_json: str

    @property
    def settings(self) -> dict[str, Any]:
        return json.loads(self.settings_json)

    @property
    def k(self) -> int | None:
        """How many chunks a call asks for (RAGFlow: `page_size`)."""
        s = self.settings
        if self.search_type == "ragflow":
            return s.get("page_size", RAGFLOW_PAGE_SIZE)
        if self.search_type == "http_json":
            return s.get("params", {}).get("top_k", s.get("params", {}).get("k"))
        return s.get("top_k", s.get("k"))

    def params(self) -> dict[str, Any]:
        """Stored in runs and exports: the settings (a key's variable name, never its value) and `k`."""
        return {"search_type": self.search_type, **({"k": self.k} if self.k is not None else {}),
                **{k: v for k, v in self.settings.items() if k != "search_type"}}

    @property
    def config_id(self) -> str:
        """Readable and stable, e.g. `ragflow-k5-c1024-t0.2-w0.3` or `chatchat-k5-t0.5`."""
        s = self.settings
        parts = [s.get("name") or self.search_type]
        if self.search_type == "ragflow":
            parts.append(f"k{self.k}")
            for key, tag in (("top_k", "c"), ("similarity_threshold", "t"), ("vector_similarity_weight", "w")):
                if key in s:
                    parts.append(f"{tag}{s[key]:g}")
            if "rerank_id" in s:
                parts.append("r" + re.sub(r"[^A-Za-z0-9.]+", "_", s["rerank_id"])[:24])
            if s.get("keyword"):
                parts.append("kw")
        elif self.search_type == "http_json":
            parts += [f"{name}{value:g}" if isinstance(value, float) else f"{name}{value}"
                      for name, value in s.get("params", {}).items()]
        else:
            if "top_k" in s or "k" in s:
                parts.append(f"k{self.k}")
            if "score_threshold" in s:
                parts.append(f"t{s['score_threshold']:g}")
        return "-".join(str(p) for p in parts)


# ---------------------------------------------------------------- spec entries

def expand_entry(entry: dict[str, Any], where: str) -> list[ExternalConfig]:
    """One spec entry of an external kind: list values of its sweep keys (and of `params`) are alternatives."""
    kind_name = entry["search_type"]
    kind = KINDS[kind_name]
    allowed = {*COMMON, *kind.required, *kind.sweep, *kind.other}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' for search_type {kind_name} "
                          f"(allowed: {', '.join(sorted(allowed - {'search_type'}))})")
    missing = [key for key in kind.required if key not in entry]
    if missing:
        raise ConfigError(f"{where}: search_type {kind_name} needs '{missing[0]}'")
    axes = {key: entry[key] for key in kind.sweep if key in entry}
    axes.update({f"params.{key}": value for key, value in (entry.get("params") or {}).items()}
                if isinstance(entry.get("params"), dict) else {})
    names = list(axes)
    choices = [value if isinstance(value, list) else [value] for value in axes.values()]
    for name, values in zip(names, choices):
        if not values:
            raise ConfigError(f"{where}: '{name}' has an empty list")
    fixed = {key: value for key, value in entry.items() if key not in axes and key != "params"}
    configs = []
    for combination in itertools.product(*choices):
        settings = dict(fixed)
        for name, value in zip(names, combination):
            if name.startswith("params."):
                settings.setdefault("params", {})[name[7:]] = value
            else:
                settings[name] = value
        try:
            configs.append(create(kind_name, settings))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    return configs


def create(kind_name: str, settings: dict[str, Any]) -> ExternalConfig:
    """Validate one combination and fill the kind's defaults."""
    kind = KINDS[kind_name]
    settings = {key: value for key, value in settings.items() if key != "search_type"}
    _check_common(settings, kind)
    if "url" in kind.required and not (isinstance(settings["url"], str) and
                                       re.match(r"^https?://[^\s/]+", settings["url"])):
        raise ConfigError(f"url must be an http:// or https:// address, got {settings['url']!r}")
    _CHECKS[kind_name](settings)
    return ExternalConfig(kind_name, json.dumps(settings, ensure_ascii=False, sort_keys=True))


def _check_common(settings: dict[str, Any], kind: Kind) -> None:
    if "name" in settings and not (isinstance(settings["name"], str) and _NAME.match(settings["name"])):
        raise ConfigError(f"name must be 1-40 letters, digits, '.', '_' or '-', got {settings['name']!r}")
    if "api_key_env" in settings and not (isinstance(settings["api_key_env"], str)
                                          and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", settings["api_key_env"])):
        raise ConfigError("api_key_env must be the NAME of an environment variable (the key itself never goes "
                          f"in a spec), got {settings['api_key_env']!r}")
    settings.setdefault("map_by", kind.map_by)
    if settings["map_by"] not in MAP_BY:
        raise ConfigError(f"map_by must be one of {', '.join(MAP_BY)}, got {settings['map_by']!r}")
    if settings["map_by"] != "span":
        if kind.map_field and settings["map_by"] == kind.map_by:
            settings.setdefault("map_field", kind.map_field)
        if "map_field" not in settings and kind is not KINDS["imported"]:
            raise ConfigError(f"map_by {settings['map_by']} needs map_field: where in each result the "
                              f"{'document id' if settings['map_by'] == 'doc_id' else 'file name'} sits")
    if "timeout" in settings and _number(settings["timeout"], "timeout", 0.0, None) == 0:
        raise ConfigError("timeout must be more than 0 seconds")
    if "backoff" in settings:
        _number(settings["backoff"], "backoff", 0.0, None)
    if "retries" in settings:
        _whole(settings["retries"], "retries", 0)


def _number(value: Any, name: str, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ConfigError(f"{name} must be in [{low:g}, {high:g}], got {value}" if high is not None else
                          f"{name} must be at least {low:g}, got {value}")
    return float(value)


def _whole(value: Any, name: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ConfigError(f"{name} must be a whole number of at least {low}, got {value!r}")
    return value


def _strings(value: Any, name: str) -> None:
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{name} must be a non-empty list of ids, got {value!r}")


def _check_chatchat(s: dict[str, Any]) -> None:
    if not isinstance(s["knowledge_base_name"], str) or not s["knowledge_base_name"]:
        raise ConfigError("knowledge_base_name must be a name")
    _whole(s["top_k"], "top_k", 1)
    if "score_threshold" in s:  # Chatchat's score is a distance: lower is closer, 2 keeps everything
        s["score_threshold"] = _number(s["score_threshold"], "score_threshold", 0.0, 2.0)


def _check_ragflow(s: dict[str, Any]) -> None:
    _strings(s["dataset_ids"], "dataset_ids")
    if "document_ids" in s:
        _strings(s["document_ids"], "document_ids")
    for key in ("top_k", "page_size"):
        if key in s:
            _whole(s[key], key, 1)
    for key in ("similarity_threshold", "vector_similarity_weight"):
        if key in s:
            s[key] = _number(s[key], key, 0.0, 1.0)
    if "rerank_id" in s and not (isinstance(s["rerank_id"], str) and s["rerank_id"]):
        raise ConfigError(f"rerank_id must be a model id, got {s['rerank_id']!r}")
    if "keyword" in s and not isinstance(s["keyword"], bool):
        raise ConfigError(f"keyword must be true or false, got {s['keyword']!r}")


def _check_dify(s: dict[str, Any]) -> None:
    if not isinstance(s["knowledge_id"], str) or not s["knowledge_id"]:
        raise ConfigError("knowledge_id must be an id")
    _whole(s["top_k"], "top_k", 1)
    s["score_threshold"] = _number(s.get("score_threshold", 0.0), "score_threshold", 0.0, 1.0)  # required by Dify
    if "metadata_condition" in s and not isinstance(s["metadata_condition"], dict):
        raise ConfigError("metadata_condition must be a mapping (Dify's logical_operator and conditions)")


def _check_http_json(s: dict[str, Any]) -> None:
    if not isinstance(s["request"], (dict, list)):
        raise ConfigError("request must be a JSON template (a mapping), e.g. {query: '{question}', k: '{top_k}'}")
    for key in ("results", "text", "id", "score", "map_field"):
        if key in s and not (isinstance(s[key], str) and s[key]):
            raise ConfigError(f"{key} must be a dotted JSON path such as data.hits or meta.doc_id")
    params = s.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError("params must be a mapping of template parameters, e.g. {top_k: [3, 5]}")
    used = set(re.findall(r"\{(\w+)\}", json.dumps(s["request"])))
    for name in params:
        if name not in used:
            raise ConfigError(f"parameter '{name}' is not used in the request template")
    unknown = sorted(used - set(params) - {"question"})
    if unknown:
        raise ConfigError(f"the request template uses '{{{unknown[0]}}}', which params does not define")
    headers = s.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise ConfigError("headers must be a mapping of strings (keys come from api_key_env, never the spec)")
    if any(name.lower() == "authorization" for name in headers):
        raise ConfigError("headers must not hold Authorization: name the key's variable in api_key_env")


def _check_imported(s: dict[str, Any]) -> None:
    if "k" in s:
        _whole(s["k"], "k", 1)
    if s["map_by"] == "span":
        raise ConfigError("imported results map by doc_id or file_name (a file of ids has no chunk text)")
    if "map_field" in s:
        raise ConfigError("imported results need no map_field: the file holds the ids")
    fmt = s.setdefault("format", "jsonl" if str(s["path"]).endswith(".jsonl") else "trec")
    if fmt not in ("trec", "jsonl"):
        raise ConfigError(f"format must be trec or jsonl, got {fmt!r}")
    path = Path(s["path"])
    if not path.is_file():
        raise ConfigError(f"{path}: imported results file not found")
    s["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]  # a resume refuses a changed file
    read_imported(path, fmt)  # bad lines are reported now, with file and line, not mid-run


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "chatchat": _check_chatchat, "ragflow": _check_ragflow, "dify": _check_dify,
    "http_json": _check_http_json, "imported": _check_imported,
}


def api_key(config: ExternalConfig) -> str | None:
    """The key from the environment variable the config names (or its kind's default), or None."""
    name = config.settings.get("api_key_env") or KINDS[config.search_type].key_env
    return (os.environ.get(name) or None) if name else None


def check_ready(configs: list[Any]) -> None:
    """Before a run starts: every key a config needs is set."""
    for config in configs:
        if not is_external(config):
            continue
        name = config.settings.get("api_key_env") or KINDS[config.search_type].key_env
        if name and not os.environ.get(name):
            raise ConfigError(f"config {config.config_id} needs its key in the environment variable {name}, "
                              "which is not set")


# ---------------------------------------------------------------- imported results

def read_imported(path: Path, fmt: str) -> dict[str, list[dict[str, Any]]]:
    """question id -> ranked results `{"doc_id", "score"?, "chunk_id"?, "text"?}` from a TREC run or JSONL."""
    results: dict[str, list[dict[str, Any]]] = {}
    if fmt == "trec":
        ranked: dict[str, list[tuple[float, int, str]]] = {}
        for number, line in enumerate(read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 6:
                raise DatasetError(f"a TREC run line has 6 fields (qid Q0 docid rank score tag), got {len(fields)}",
                                   path, number)
            try:
                rank, score = int(fields[3]), float(fields[4])
            except ValueError:
                raise DatasetError(f"rank must be a whole number and score a number, got {fields[3]!r} and "
                                   f"{fields[4]!r}", path, number) from None
            ranked.setdefault(fields[0], []).append((-score, rank, fields[2]))
        for question_id, entries in ranked.items():
            results[question_id] = [{"doc_id": doc, "score": -neg} for neg, _, doc in sorted(entries)]
        return results
    for number, record in iter_jsonl(path):
        if not isinstance(record.get("question_id"), str):
            raise DatasetError("each line needs a string question_id", path, number, "question_id")
        results[record["question_id"]] = _imported_entries(record, path, number)
    return results


def _imported_entries(record: dict[str, Any], path: Path, number: int) -> list[dict[str, Any]]:
    if isinstance(record.get("doc_ids"), list):
        return [{"doc_id": str(d)} for d in record["doc_ids"]]
    retrieved = record.get("retrieved")
    if not isinstance(retrieved, list):
        raise DatasetError("give 'retrieved' (a list of {doc_id, score?, chunk_id?, text?}) or 'doc_ids'",
                           path, number, "retrieved")
    entries = []
    for item in retrieved:
        if not isinstance(item, dict) or not isinstance(item.get("doc_id"), str):
            raise DatasetError("each retrieved item needs a string doc_id", path, number, "retrieved")
        entries.append({key: item[key] for key in ("doc_id", "score", "chunk_id", "text") if key in item})
    return entries


# ---------------------------------------------------------------- calling a service

class CallError(Exception):
    """A call that failed for good; the message is recorded on the row (keys scrubbed)."""

    def __init__(self, message: str, attempts: int = 0) -> None:
        super().__init__(message)
        self.attempts = attempts


@dataclass
class Policy:
    timeout: float = DEFAULT_TIMEOUT_S
    retries: int = DEFAULT_RETRIES
    backoff: float = DEFAULT_BACKOFF_S

    @classmethod
    def of(cls, settings: dict[str, Any]) -> Policy:
        return cls(float(settings.get("timeout", DEFAULT_TIMEOUT_S)), int(settings.get("retries", DEFAULT_RETRIES)),
                   float(settings.get("backoff", DEFAULT_BACKOFF_S)))


def post_json(client: Any, url: str, body: Any, headers: dict[str, str], policy: Policy) -> tuple[Any, float, int]:
    """POST JSON; returns (parsed response, milliseconds of the answered attempt, attempts).

    429, 5xx, timeouts and failed connections are retried after backoff * 2^(attempt-1) seconds (or the
    server's Retry-After, at most MAX_WAIT_S); other 4xx answers and malformed JSON fail at once."""
    import httpx

    problem = ""
    for attempt in range(1, policy.retries + 2):
        wait = policy.backoff * 2 ** (attempt - 1)
        started = time.perf_counter()
        try:
            response = client.post(url, json=body, headers=headers, timeout=policy.timeout)
        except httpx.TimeoutException:
            problem = f"no answer within {policy.timeout:g} s"
        except httpx.TransportError as error:
            problem = f"cannot reach {url} ({type(error).__name__}: {error})"
        else:
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code == 429 or response.status_code >= 500:
                problem = f"HTTP {response.status_code}: {_snippet(response.text)}"
                wait = _retry_after(response, wait)
            elif response.status_code >= 400:
                raise CallError(f"HTTP {response.status_code}: {_snippet(response.text)}", attempt)
            else:
                try:
                    return response.json(), elapsed, attempt
                except ValueError:
                    raise CallError(f"malformed JSON in the answer: {_snippet(response.text)}", attempt) from None
        if attempt <= policy.retries:
            time.sleep(min(wait, MAX_WAIT_S))
    raise CallError(f"{problem} (after {policy.retries + 1} attempts)", policy.retries + 1)


def _retry_after(response: Any, default: float) -> float:
    try:
        return float(response.headers.get("Retry-After", default))
    except ValueError:
        return default


def _snippet(text: str) -> str:
    return " ".join(text.split())[:200] or "(empty body)"


def json_path(value: Any, path: str) -> Any:
    """`data.chunks` or `hits.0.text` in parsed JSON; a missing step raises KeyError naming the path."""
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            raise KeyError(path)
    return value


def _fill(template: Any, values: dict[str, Any]) -> Any:
    """The request template with `{name}` replaced; a string that is only `{name}` takes the value's type."""
    if isinstance(template, dict):
        return {key: _fill(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [_fill(value, values) for value in template]
    if isinstance(template, str):
        whole = re.fullmatch(r"\{(\w+)\}", template)
        if whole and whole.group(1) in values:
            return values[whole.group(1)]
        return re.sub(r"\{(\w+)\}", lambda m: str(values.get(m.group(1), m.group(0))), template)
    return template


@dataclass(frozen=True)
class Request:
    url: str
    body: Any
    results: str | None  # where the result list sits; None: the answer is the list
    text: str
    id: str | None
    score: str | None


def build_request(config: ExternalConfig, question: str) -> Request:
    """The documented request of the config's platform for one question."""
    s = config.settings
    base = s.get("url", "").rstrip("/")
    if config.search_type == "chatchat":
        body = {"query": question, "knowledge_base_name": s["knowledge_base_name"], "top_k": s["top_k"]}
        if "score_threshold" in s:
            body["score_threshold"] = s["score_threshold"]
        return Request(f"{base}/knowledge_base/search_docs", body, None, "page_content", "id", "score")
    if config.search_type == "ragflow":
        body = {"question": question, "dataset_ids": s["dataset_ids"], "page": 1}
        body.update({key: s[key] for key in ("document_ids", *KINDS["ragflow"].sweep) if key in s})
        return Request(f"{base}/api/v1/retrieval", body, "data.chunks", "content", "id", "similarity")
    if config.search_type == "dify":
        body = {"knowledge_id": s["knowledge_id"], "query": question,
                "retrieval_setting": {"top_k": s["top_k"], "score_threshold": s["score_threshold"]}}
        if "metadata_condition" in s:
            body["metadata_condition"] = s["metadata_condition"]
        return Request(f"{base}/retrieval", body, "records", "content", None, "score")
    body = _fill(s["request"], {"question": question, **s.get("params", {})})
    return Request(s["url"], body, s["results"], s["text"], s.get("id"), s.get("score"))


def parse_results(config: ExternalConfig, request: Request, payload: Any) -> list[dict[str, Any]]:
    """The answer's results as `{"id", "text", "score", "map_value"}` in the service's order."""
    if config.search_type == "ragflow" and isinstance(payload, dict) and payload.get("code", 0) != 0:
        raise CallError(f"RAGFlow error {payload.get('code')}: {_snippet(str(payload.get('message', '')))}")
    try:
        items = payload if request.results is None else json_path(payload, request.results)
    except KeyError:
        raise CallError(f"the answer has no '{request.results}' ({_snippet(json.dumps(payload))})") from None
    if not isinstance(items, list):
        raise CallError(f"'{request.results or 'the answer'}' is not a list of results")
    settings = config.settings
    results = []
    for position, item in enumerate(items):
        try:
            text = json_path(item, request.text)
        except KeyError:
            raise CallError(f"result {position + 1} has no text at '{request.text}'") from None
        results.append({"id": _optional(item, request.id), "text": str(text),
                        "score": _float(_optional(item, request.score)),
                        "map_value": _optional(item, settings.get("map_field"))})
    return results


def _optional(item: Any, path: str | None) -> Any:
    if path is None:
        return None
    try:
        return json_path(item, path)
    except KeyError:
        return None


def _float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


# ---------------------------------------------------------------- a block of questions

@dataclass
class ExternalResult:
    """What one config returned for one question: the fields of `eval.sweep.Retrieved` plus the call's record."""

    chunk_ids: list[str]
    doc_ids: list[str]
    scores: list[float]
    texts: list[str]
    embeddings: np.ndarray
    starts: list[int] = field(default_factory=list)
    call_ms: float = math.nan
    attempts: int = 0
    error: str | None = None
    unmapped: int = 0


class ExternalRetriever:
    """Runs the external configs of a sweep over blocks of questions (one instance per run)."""

    def __init__(self, index: Index, configs: list[ExternalConfig], concurrency: int = DEFAULT_CONCURRENCY) -> None:
        import httpx

        self.index, self.configs, self.concurrency = index, configs, max(1, concurrency)
        self.mapper = CorpusMapper(index)
        self.client = httpx.Client(follow_redirects=False)
        self._imported: dict[str, dict[str, list[dict[str, Any]]]] = {}
        self._vectors: dict[str, np.ndarray] = {}

    def close(self) -> None:
        self.client.close()

    def retrieve(self, questions: list[Any]) -> dict[tuple[str, str], ExternalResult]:
        """Every external config for a block of questions, `concurrency` calls at a time."""
        tasks = [(question, config) for question in questions for config in self.configs]
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(tasks)) or 1,
                                thread_name_prefix="external-retriever") as pool:
            found = list(pool.map(lambda task: self._one(*task), tasks))
        self._embed(found)
        return {(q.id, c.config_id): result for (q, c), result in zip(tasks, found)}

    def _one(self, question: Any, config: ExternalConfig) -> ExternalResult:
        if config.search_type == "imported":
            return self._from_file(question, config)
        key = api_key(config)
        headers = {**config.settings.get("headers", {}), **({"Authorization": f"Bearer {key}"} if key else {})}
        request = build_request(config, question.question)
        attempts = 0
        try:
            payload, elapsed, attempts = post_json(self.client, request.url, request.body, headers,
                                                   Policy.of(config.settings))
            results = parse_results(config, request, payload)
        except CallError as error:
            return _failed(_scrub(str(error), key), error.attempts or attempts)
        prefix = config.settings.get("name") or config.search_type
        return self._mapped(config, results, prefix, elapsed, attempts)

    def _mapped(self, config: ExternalConfig, results: list[dict[str, Any]], prefix: str,
                elapsed: float, attempts: int) -> ExternalResult:
        how = config.settings["map_by"]
        mapped: list[Mapped] = [self.mapper.map(how, r["map_value"], r["text"]) for r in results]
        chunk_ids = [f"{prefix}:{r['id']}" if r["id"] not in (None, "") else
                     f"{prefix}:#{hashlib.sha1(r['text'].encode()).hexdigest()[:12]}" for r in results]
        return ExternalResult(chunk_ids, [m.doc_id for m in mapped], [r["score"] for r in results],
                              [r["text"] for r in results], np.zeros((0, 0), np.float32),
                              [m.start for m in mapped], elapsed, attempts, None,
                              sum(1 for m in mapped if not m.doc_id))

    def _from_file(self, question: Any, config: ExternalConfig) -> ExternalResult:
        s = config.settings
        if s["path"] not in self._imported:
            self._imported[s["path"]] = read_imported(Path(s["path"]), s["format"])
        entries = self._imported[s["path"]].get(question.id)
        if entries is None:
            return _failed(f"question {question.id} is not in {Path(s['path']).name}", attempts=0)
        entries = entries[:s["k"]] if "k" in s else entries
        prefix = s.get("name") or "imported"
        results = []
        for entry in entries:
            value = entry["doc_id"]
            doc = self.mapper.map(s["map_by"], value, "")
            # the entry's own text, else its chunk's (an id of this index), else the whole document's
            text = entry.get("text") or self.mapper.chunk_texts.get(entry.get("chunk_id", "")) or \
                self.mapper.texts.get(doc.doc_id, "")
            results.append({"id": entry.get("chunk_id") or value, "text": text, "score": _float(entry.get("score")),
                            "map_value": value})
        return self._mapped(config, results, prefix, math.nan, 0)

    def _embed(self, results: list[ExternalResult]) -> None:
        """Chunk vectors for the diversity metrics, with the index's own embedding model (each text once; a text
        that is a chunk of the index takes that chunk's stored vector)."""
        new = list(dict.fromkeys(t for r in results for t in r.texts if t not in self._vectors))
        stored = [t for t in new if t in self.mapper.chunk_by_text]
        encoded = [t for t in new if t not in self.mapper.chunk_by_text]
        vectors = self.index.embeddings_of([self.mapper.chunk_by_text[t] for t in stored])
        for text, vector in zip(stored + encoded, [*vectors, *self.index.embeddings.embed_array(encoded)]):
            self._vectors[text] = vector
        dimension = self.index.manifest.dimension
        for result in results:
            result.embeddings = np.asarray([self._vectors[t] for t in result.texts], np.float32).reshape(
                len(result.texts), dimension)


def _failed(message: str, attempts: int) -> ExternalResult:
    return ExternalResult([], [], [], [], np.zeros((0, 0), np.float32), [], math.nan, attempts, message, 0)


def _scrub(message: str, key: str | None) -> str:
    return message.replace(key, "***") if key else message


# ---------------------------------------------------------------- rows, chunks and latency

def annotate_rows(rows: list[dict[str, Any]], results: dict[tuple[str, str], ExternalResult]) -> None:
    """Add the call's record to the rows of external configs; a failed call's metrics are NaN (not scored)."""
    for row in rows:
        result = results.get((row["question_id"], row["config_id"]))
        if result is None:
            continue
        row.update(call_ms=result.call_ms, call_attempts=result.attempts, call_error=result.error,
                   unmapped=result.unmapped)
        if result.error is not None:
            for name, value in row.items():
                if name not in ("question_id", "config_id", *CALL_COLUMNS) and isinstance(value, float):
                    row[name] = math.nan


def chunk_records(results: dict[tuple[str, str], ExternalResult]) -> pd.DataFrame:
    """The texts of every chunk the external configs returned (for the run's `chunks.parquet`)."""
    records = {}
    for result in results.values():
        for chunk_id, doc_id, start, text in zip(result.chunk_ids, result.doc_ids, result.starts, result.texts):
            records.setdefault(chunk_id, (chunk_id, doc_id, start, text))
    return pd.DataFrame(list(records.values()), columns=["chunk_id", "doc_id", "start", "text"])


def write_block_chunks(folder: Path, number: int, results: dict[tuple[str, str], ExternalResult]) -> None:
    """Keep a finished block's external chunk texts beside its rows, so a resumed run still has them."""
    atomic_write_parquet(folder / "parts" / f"external-chunks-{number:05d}.parquet", chunk_records(results))


def read_block_chunks(folder: Path) -> pd.DataFrame:
    frames = [pd.read_parquet(p) for p in sorted((folder / "parts").glob("external-chunks-*.parquet"))]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["chunk_id", "doc_id", "start",
                                                                                     "text"])


def latency_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Every answered call's time, as the run's retriever latency of the external configs."""
    if "call_ms" not in rows:
        return pd.DataFrame(columns=["config_id", "question_id", "retrieval_ms"])
    timed = rows[rows["call_ms"].notna()]
    return pd.DataFrame({"config_id": timed["config_id"], "question_id": timed["question_id"],
                         "retrieval_ms": timed["call_ms"].astype(float)}).reset_index(drop=True)


def failures(rows: pd.DataFrame) -> dict[str, tuple[int, str]]:
    """config id -> (failed calls, the first error), for configs with a failed call."""
    if "call_error" not in rows:
        return {}
    failed = rows[rows["call_error"].notna()]
    return {config_id: (len(group), str(group["call_error"].iloc[0]))
            for config_id, group in failed.groupby("config_id", sort=False)}
