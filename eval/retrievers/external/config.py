"""Retrievers outside this process as sweep configs (RAG platforms over HTTP, imported result files): their spec
entries, validated, as configs. The calls are made by `eval.retrievers.external.client`.

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

Each returned chunk is mapped to a corpus document (`eval.retrievers.external.mapping`) so the run's labels
and metrics apply.
Calls run `concurrency` at a time, are timed one by one, and are retried with exponential backoff on 429, 5xx,
timeouts and refused connections; a call that still fails is recorded on its row (`call_error`), its metrics
NaN, and the sweep goes on. Keys, and every header value not declared `{value: ...}`, are read from environment
variables named in the spec (`api_key_env`, `headers: {X-Api-Key: {env: NAME}}`), sent only in request headers
and scrubbed from every recorded message: they never reach a run, log or export.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.errors import ConfigError
from eval.retrievers.base import Expand, Kind, finite_json
from eval.retrievers.external.imported import read_imported_once
from eval.retrievers.external.mapping import MAP_BY

_NAME = re.compile(r"^[A-Za-z0-9._-]{1,40}$")


@dataclass(frozen=True)
class Platform:
    """What an external kind's spec entry takes and how its calls look."""

    required: tuple[str, ...]
    sweep: tuple[str, ...]  # keys whose list values are alternatives
    other: tuple[str, ...] = ()  # further keys, never swept
    key_env: str | None = None  # the default environment variable of the key; None: no key unless named
    map_by: str | None = None  # the default mapping of chunks to documents
    map_field: str | None = None


COMMON = ("search_type", "name", "api_key_env", "map_by", "map_field", "timeout", "retries", "backoff")


PLATFORMS = {
    "chatchat": Platform(
        ("url", "knowledge_base_name", "top_k"),
        ("top_k", "score_threshold"),
        map_by="file_name",
        map_field="metadata.source",
    ),
    "ragflow": Platform(
        ("url", "dataset_ids"),
        ("top_k", "page_size", "similarity_threshold", "vector_similarity_weight", "rerank_id", "keyword"),
        ("document_ids",),
        key_env="RAGFLOW_API_KEY",
        map_by="file_name",
        map_field="document_keyword",
    ),
    "dify": Platform(
        ("url", "knowledge_id", "top_k"),
        ("top_k", "score_threshold"),
        ("metadata_condition",),
        key_env="DIFY_API_KEY",
        map_by="file_name",
        map_field="title",
    ),
    "http_json": Platform(("url", "request", "results", "text", "map_by"), (), ("params", "id", "score", "headers")),
    "imported": Platform(("path",), ("k",), ("format",), map_by="doc_id"),
}


RAGFLOW_PAGE_SIZE = 30  # RAGFlow's default page_size: how many chunks a call returns when not given


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
        return {
            "search_type": self.search_type,
            **({"k": self.k} if self.k is not None else {}),
            **{k: v for k, v in self.settings.items() if k != "search_type"},
        }

    def dependencies(self) -> tuple[()]:
        return ()

    def most_returned(self) -> int:
        return self.k or 0

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
            parts += [
                f"{name}{value:g}" if isinstance(value, float) else f"{name}{value}"
                for name, value in s.get("params", {}).items()
            ]
        else:
            if "top_k" in s or "k" in s:
                parts.append(f"k{self.k}")
            if "score_threshold" in s:
                parts.append(f"t{s['score_threshold']:g}")
        return "-".join(str(p) for p in parts)


def expand(entry: dict[str, Any], where: str, expand_entry: Expand) -> list[ExternalConfig]:
    """One spec entry of an external kind: list values of its sweep keys (and of `params`) are alternatives."""
    kind_name = entry["search_type"]
    platform = PLATFORMS[kind_name]
    allowed = {*COMMON, *platform.required, *platform.sweep, *platform.other}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{unknown[0]}' for search_type {kind_name} "
            f"(allowed: {', '.join(sorted(allowed - {'search_type'}))})"
        )
    missing = [key for key in platform.required if key not in entry]
    if missing:
        raise ConfigError(f"{where}: search_type {kind_name} needs '{missing[0]}'")
    axes = {key: entry[key] for key in platform.sweep if key in entry}
    axes.update(
        {f"params.{key}": value for key, value in (entry.get("params") or {}).items()}
        if isinstance(entry.get("params"), dict)
        else {}
    )
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
    platform = PLATFORMS[kind_name]
    settings = {key: value for key, value in settings.items() if key != "search_type"}
    _check_common(settings, platform)
    if "url" in platform.required and not (
        isinstance(settings["url"], str) and re.match(r"^https?://[^\s/]+", settings["url"])
    ):
        raise ConfigError(f"url must be an http:// or https:// address, got {settings['url']!r}")
    _CHECKS[kind_name](settings)
    return ExternalConfig(kind_name, json.dumps(settings, ensure_ascii=False, sort_keys=True))


def _check_common(settings: dict[str, Any], platform: Platform) -> None:
    if "name" in settings and not (isinstance(settings["name"], str) and _NAME.match(settings["name"])):
        raise ConfigError(f"name must be 1-40 letters, digits, '.', '_' or '-', got {settings['name']!r}")
    settings.setdefault("map_by", platform.map_by)
    if settings["map_by"] not in MAP_BY:
        raise ConfigError(f"map_by must be one of {', '.join(MAP_BY)}, got {settings['map_by']!r}")
    if settings["map_by"] != "span":
        if platform.map_field and settings["map_by"] == platform.map_by:
            settings.setdefault("map_field", platform.map_field)
        if "map_field" not in settings and platform is not PLATFORMS["imported"]:
            raise ConfigError(
                f"map_by {settings['map_by']} needs map_field: where in each result the "
                f"{'document id' if settings['map_by'] == 'doc_id' else 'file name'} sits"
            )
    check_calls(settings)


def check_calls(settings: dict[str, Any]) -> None:
    """The call settings any entry that calls a service may give: `api_key_env`, `timeout`, `backoff`, `retries`
    (and, for the kinds that take them, `headers`; see `_check_headers`)."""
    if "api_key_env" in settings and not _is_variable(settings["api_key_env"]):
        raise ConfigError(  # the value is not repeated: it may be the key itself
            "api_key_env must be the NAME of an environment variable (letters, digits and '_'; the key itself "
            "never goes in a spec)"
        )
    if "timeout" in settings and _number(settings["timeout"], "timeout", 0.0, None) == 0:
        raise ConfigError("timeout must be more than 0 seconds")
    if "backoff" in settings:
        _number(settings["backoff"], "backoff", 0.0, None)
    if "retries" in settings:
        _whole(settings["retries"], "retries", 0)
    if "headers" in settings:
        _check_headers(settings)


def _number(value: Any, name: str, low: float, high: float | None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {value!r}")
    if value < low or (high is not None and value > high):
        raise ConfigError(
            f"{name} must be in [{low:g}, {high:g}], got {value}"
            if high is not None
            else f"{name} must be at least {low:g}, got {value}"
        )
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
    if "metadata_condition" in s:
        if not isinstance(s["metadata_condition"], dict):
            raise ConfigError("metadata_condition must be a mapping (Dify's logical_operator and conditions)")
        finite_json(s["metadata_condition"], "metadata_condition")


def _check_http_json(s: dict[str, Any]) -> None:
    if not isinstance(s["request"], (dict, list)):
        raise ConfigError("request must be a JSON template (a mapping), e.g. {query: '{question}', k: '{top_k}'}")
    for key in ("results", "text", "id", "score", "map_field"):
        if key in s and not (isinstance(s[key], str) and s[key]):
            raise ConfigError(f"{key} must be a dotted JSON path such as data.hits or meta.doc_id")
    params = s.get("params", {})
    if not isinstance(params, dict):
        raise ConfigError("params must be a mapping of template parameters, e.g. {top_k: [3, 5]}")
    for key in ("top_k", "k"):  # the config's k: its results are cut to it
        if key in params:
            _whole(params[key], f"params.{key}", 1)
    finite_json(s["request"], "request")
    finite_json(params, "params")
    used = set(re.findall(r"\{(\w+)\}", json.dumps(s["request"])))
    for name in params:
        if name not in used:
            raise ConfigError(f"parameter '{name}' is not used in the request template")
    unknown = sorted(used - set(params) - {"question"})
    if unknown:
        raise ConfigError(f"the request template uses '{{{unknown[0]}}}', which params does not define")


def _check_headers(s: dict[str, Any]) -> None:
    """Every header value is a secret unless declared otherwise: `{env: VARIABLE}` is read from the environment
    at call time and never stored; `{value: ...}` declares a value that is not secret (stored in the run as
    written). A bare value is refused, and no message repeats it."""
    headers = s.get("headers", {})
    if not isinstance(headers, dict):
        raise ConfigError("headers must be a mapping of header names to {env: VARIABLE} or {value: ...}")
    for name, value in headers.items():
        if isinstance(value, dict) and set(value) == {"env"} and _is_variable(value["env"]):
            continue
        if isinstance(value, dict) and set(value) == {"value"} and isinstance(value["value"], str):
            if str(name).lower() == "authorization":
                raise ConfigError("header Authorization is a secret: write {env: VARIABLE}, or use api_key_env")
            continue
        raise ConfigError(
            f"header {name}: a header value is a secret unless declared otherwise: write {{env: VARIABLE}} "
            "(read from the environment, never stored) or {value: ...} for a value that is not secret"
        )
    if "api_key_env" in s and any(str(name).lower() == "authorization" for name in headers):
        raise ConfigError("give the key once: api_key_env (sent as Bearer) or an Authorization header, not both")


def _is_variable(name: Any) -> bool:
    return isinstance(name, str) and re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name) is not None


def _check_imported(s: dict[str, Any]) -> None:
    if "k" in s:
        _whole(s["k"], "k", 1)
    if s["map_by"] == "span":
        raise ConfigError("imported results map by doc_id or file_name (a file of ids has no chunk text)")
    if "map_field" in s:
        raise ConfigError("imported results need no map_field: the file holds the ids")
    if not isinstance(s["path"], str) or not s["path"]:
        raise ConfigError(f"path must be the path of a TREC run or JSONL file, got {s['path']!r}")
    fmt = s.setdefault("format", "jsonl" if s["path"].endswith(".jsonl") else "trec")
    if fmt not in ("trec", "jsonl"):
        raise ConfigError(f"format must be trec or jsonl, got {fmt!r}")
    path = Path(s["path"])
    if not path.is_file():
        raise ConfigError(f"{path}: imported results file not found")
    s["sha256"] = hashlib.sha256(path.read_bytes()).hexdigest()[:16]  # a resume refuses a changed file
    read_imported_once(s["path"], fmt, s["sha256"])  # bad lines are reported now, with file and line, not mid-run


def request_headers(config: ExternalConfig) -> tuple[dict[str, str], list[str]]:
    """The headers of a call (`{env: ...}` values read now; the key as a bearer token) and the secrets among
    them, which every recorded message must have scrubbed."""
    return headers_of(config.settings, PLATFORMS[config.search_type].key_env)


def headers_of(settings: dict[str, Any], key_env: str | None = None) -> tuple[dict[str, str], list[str]]:
    """`request_headers` for any entry that calls a service: its `headers` and the key in `api_key_env` (else in
    `key_env`), and the secrets among them."""
    headers, secrets = {}, []
    for name, value in settings.get("headers", {}).items():
        headers[name] = value["value"] if "value" in value else os.environ.get(value["env"], "")
        secrets += [headers[name]] if "env" in value and headers[name] else []
    variable = settings.get("api_key_env") or key_env
    key = (os.environ.get(variable) or None) if variable else None
    if key:
        headers["Authorization"] = f"Bearer {key}"
        secrets.append(key)
    return headers, secrets


def check_ready(configs: list[ExternalConfig]) -> None:
    """Before a run starts: every key and `{env: ...}` header a config needs is set (and fits in a header)."""
    for config in configs:
        check_environment(config.config_id, config.settings, PLATFORMS[config.search_type].key_env)


def check_environment(config_id: str, settings: dict[str, Any], key_env: str | None = None) -> None:
    """The key (`api_key_env`, else `key_env`) and every `{env: ...}` header of an entry are set, without line
    breaks; a ConfigError naming the config and the variable otherwise."""
    needed = [("its key", settings.get("api_key_env") or key_env)]
    needed += [(f"header {h}", v["env"]) for h, v in settings.get("headers", {}).items() if "env" in v]
    for what, name in needed:
        if name and not os.environ.get(name):
            raise ConfigError(f"config {config_id} needs {what} in the environment variable {name}, which is not set")
        if name and re.search(r"[\r\n]", os.environ[name]):
            raise ConfigError(f"config {config_id}: the environment variable {name} holds a line break")


_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "chatchat": _check_chatchat,
    "ragflow": _check_ragflow,
    "dify": _check_dify,
    "http_json": _check_http_json,
    "imported": _check_imported,
}

KINDS = [Kind((name,), expand, "external", check=check_ready) for name in PLATFORMS]
