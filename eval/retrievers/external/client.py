"""Calls to external retrievers: each platform's documented request and response, retries, concurrency
and timing, imported result files, and the rows and chunks they add to a run.

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
- `imported`: a TREC run file or a JSONL of retrieved ids per question (`eval.retrievers.external.imported`).

Each returned chunk is mapped to a corpus document (`eval.retrievers.external.mapping`) so the run's labels and
metrics apply. Calls run `concurrency` at a time, are timed one by one, and are retried with exponential backoff
on 429, 5xx, timeouts and refused connections; a call that still fails is recorded on its row (`call_error`), its
metrics NaN, and the sweep goes on. A service's results are cut to the config's k before they are mapped, and
what the scores cannot show (results beyond k, chunks of no document, no scores, repeats) is counted per row and
warned of per config (`answer_warnings`). Secrets (keys, `{env: ...}` headers) are read from the environment,
sent only in request headers and scrubbed from every recorded message: they never reach a run, log or export.
"""

from __future__ import annotations

import email.utils
import hashlib
import json
import math
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from eval.errors import DatasetError
from eval.index.store import Index
from eval.io import atomic_write_parquet
from eval.retrievers.external.config import PLATFORMS, ExternalConfig, request_headers
from eval.retrievers.external.imported import entries_of, id_forms, read_imported_once
from eval.retrievers.external.mapping import CorpusMapper, Mapped

DEFAULT_CONCURRENCY = 4  # calls at once to a service: overlaps network waits, stays polite to a shared server
DEFAULT_TIMEOUT_S = 30.0
DEFAULT_RETRIES = 3
DEFAULT_BACKOFF_S = 0.5
MAX_WAIT_S = 30.0  # the longest pause before a retry, whatever Retry-After says
# per row: the call's time, attempts and error; how many returned chunks mapped to no document, came beyond
# the config's k (dropped), had no numeric score, or repeated a chunk of the same answer
CALL_COLUMNS = ("call_ms", "call_attempts", "call_error", "unmapped", "dropped", "unscored", "repeated")


# ---------------------------------------------------------------- kinds


# ---------------------------------------------------------------- spec entries


# ---------------------------------------------------------------- imported results


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
        return cls(
            float(settings.get("timeout", DEFAULT_TIMEOUT_S)),
            int(settings.get("retries", DEFAULT_RETRIES)),
            float(settings.get("backoff", DEFAULT_BACKOFF_S)),
        )


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
    """The server's Retry-After in seconds: delay-seconds, or an HTTP-date (a past date: 0). An unusable value
    (negative, NaN, infinite, neither a number nor a date) gives the default backoff: a service's bad header
    must not stop the run."""
    value = response.headers.get("Retry-After")
    if value is None:
        return default
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return default
        when = when if when.tzinfo else when.replace(tzinfo=UTC)  # an HTTP-date is in GMT
        seconds = max((when - datetime.now(UTC)).total_seconds(), 0.0)
    return seconds if math.isfinite(seconds) and seconds >= 0 else default


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
        body.update({key: s[key] for key in ("document_ids", *PLATFORMS["ragflow"].sweep) if key in s})
        return Request(f"{base}/api/v1/retrieval", body, "data.chunks", "content", "id", "similarity")
    if config.search_type == "dify":
        body = {
            "knowledge_id": s["knowledge_id"],
            "query": question,
            "retrieval_setting": {"top_k": s["top_k"], "score_threshold": s["score_threshold"]},
        }
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
        results.append(
            {
                "id": _optional(item, request.id),
                "text": str(text),
                "score": _float(_optional(item, request.score)),
                "map_value": _optional(item, settings.get("map_field")),
            }
        )
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
    dropped: int = 0
    unscored: int = 0
    repeated: int = 0


class ExternalRetriever:
    """Runs the external configs of a sweep over blocks of questions (one instance per run)."""

    def __init__(self, index: Index, configs: list[ExternalConfig], concurrency: int = DEFAULT_CONCURRENCY) -> None:
        import httpx

        self.index, self.configs, self.concurrency = index, configs, max(1, concurrency)
        self.mapper = CorpusMapper.of(index)
        self.client = httpx.Client(follow_redirects=False)
        self._vectors: dict[str, np.ndarray] = {}

    def close(self) -> None:
        self.client.close()

    def retrieve(self, questions: list[Any]) -> dict[tuple[str, str], ExternalResult]:
        """Every external config for a block of questions, `concurrency` calls at a time."""
        tasks = [(question, config) for question in questions for config in self.configs]
        with ThreadPoolExecutor(
            max_workers=min(self.concurrency, len(tasks)) or 1, thread_name_prefix="external-retriever"
        ) as pool:
            found = list(pool.map(lambda task: self._one(*task), tasks))
        self._embed(found)
        return {(q.id, c.config_id): result for (q, c), result in zip(tasks, found)}

    def _one(self, question: Any, config: ExternalConfig) -> ExternalResult:
        if config.search_type == "imported":
            return self._from_file(question, config)
        headers, secrets = request_headers(config)
        request = build_request(config, question.question)
        attempts = 0
        try:
            payload, elapsed, attempts = post_json(
                self.client, request.url, request.body, headers, Policy.of(config.settings)
            )
            results = parse_results(config, request, payload)
        except CallError as error:
            return _failed(scrub(str(error), secrets), error.attempts or attempts)
        kept = results[: config.k] if config.k else results  # a service may return more than it was asked
        result = self._mapped(config, kept, config.settings.get("name") or config.search_type, elapsed, attempts)
        result.dropped = len(results) - len(kept)
        result.unscored = sum(math.isnan(r["score"]) for r in kept) if request.score else 0
        return result

    def _mapped(
        self, config: ExternalConfig, results: list[dict[str, Any]], prefix: str, elapsed: float, attempts: int
    ) -> ExternalResult:
        """The results mapped to corpus documents; `unmapped` and `repeated` counted."""
        how = config.settings["map_by"]
        mapped: list[Mapped] = [self.mapper.map(how, r["map_value"], r["text"]) for r in results]
        chunk_ids = [
            f"{prefix}:{r['id']}"
            if r["id"] not in (None, "")
            else f"{prefix}:#{hashlib.sha1(r['text'].encode()).hexdigest()[:12]}"
            for r in results
        ]
        return ExternalResult(
            chunk_ids,
            [m.doc_id for m in mapped],
            [r["score"] for r in results],
            [r["text"] for r in results],
            np.zeros((0, 0), np.float32),
            [m.start for m in mapped],
            elapsed,
            attempts,
            None,
            sum(1 for m in mapped if not m.doc_id),
            repeated=len(chunk_ids) - len(set(chunk_ids)),
        )

    def _from_file(self, question: Any, config: ExternalConfig) -> ExternalResult:
        s = config.settings
        entries = entries_of(read_imported_once(s["path"], s["format"], s["sha256"]), question.id)
        if entries is None:
            return _failed(f"question {question.id} is not in {Path(s['path']).name}", attempts=0)
        results = []
        for entry in entries[: s.get("k")]:
            value, doc = imported_document(self.mapper, s, entry["doc_id"])
            # the entry's own text, else its chunk's (an id of this index), else the whole document's
            text = (
                entry.get("text")
                or self.mapper.chunk_texts.get(entry.get("chunk_id", ""))
                or self.mapper.texts.get(doc.doc_id, "")
            )
            results.append(
                {
                    "id": entry.get("chunk_id") or value,
                    "text": text,
                    "score": _float(entry.get("score")),
                    "map_value": value,
                }
            )
        return self._mapped(config, results, s.get("name") or "imported", math.nan, 0)

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
                len(result.texts), dimension
            )


def imported_document(mapper: CorpusMapper, settings: dict[str, Any], value: str) -> tuple[str, Mapped]:
    """An imported file's id, in the form that names a corpus document (`id_forms`), and that document (""
    when none does)."""
    forms = id_forms(value, settings["format"])
    for form in forms:
        doc = mapper.map(settings["map_by"], form, "")
        if doc.doc_id:
            return form, doc
    return forms[-1], Mapped("", -1)


def check_imported(index: Index, configs: list[Any], questions: list[Any]) -> None:
    """Before a run starts: each imported file holds some of the run's questions, and every result the run
    will score names a document of the index's corpus (a `DatasetError` with the file and line otherwise;
    the empty id, or `TREC_NO_DOCUMENT`, is how this tool's exports write a chunk of no document)."""
    imported = [c for c in configs if c.search_type == "imported"]
    mapper = CorpusMapper.of(index) if imported else None
    for config in imported:
        s = config.settings
        results = read_imported_once(s["path"], s["format"], s["sha256"])
        lists = [entries for q in questions if (entries := entries_of(results, q.id)) is not None]
        if not lists:
            raise DatasetError(
                f"none of the run's {len(questions)} questions is in the file (it has questions "
                f"{_first(list(results))}; the run asks {_first([q.id for q in questions])})",
                s["path"],
            )
        for entry in (entry for entries in lists for entry in entries[: s.get("k")]):
            value, doc = imported_document(mapper, s, entry["doc_id"])
            if not doc.doc_id and value:  # "" (TREC: TREC_NO_DOCUMENT) is how exports write a chunk of no document
                raise DatasetError(
                    f"{entry['doc_id']!r} matches no document of index '{index.manifest.name}' (map_by "
                    f"{s['map_by']}): import results retrieved from this corpus, or change map_by",
                    s["path"],
                    entry["line"],
                )


def _first(ids: list[str]) -> str:
    return ", ".join(ids[:3]) + (", ..." if len(ids) > 3 else "")


def _failed(message: str, attempts: int) -> ExternalResult:
    return ExternalResult([], [], [], [], np.zeros((0, 0), np.float32), [], math.nan, attempts, message, 0)


def scrub(message: str, secrets: list[str]) -> str:
    """The message with every secret replaced by `***`."""
    for secret in sorted(secrets, key=len, reverse=True):  # the longest first: a secret may hold another
        message = message.replace(secret, "***")
    return message


# ---------------------------------------------------------------- rows, chunks and latency


def annotate_rows(rows: list[dict[str, Any]], results: dict[tuple[str, str], ExternalResult]) -> None:
    """Add the call's record to the rows of external configs; a failed call's metrics are NaN (not scored)."""
    for row in rows:
        result = results.get((row["question_id"], row["config_id"]))
        if result is None:
            continue
        row.update(
            call_ms=result.call_ms,
            call_attempts=result.attempts,
            call_error=result.error,
            unmapped=result.unmapped,
            dropped=result.dropped,
            unscored=result.unscored,
            repeated=result.repeated,
        )
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
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=["chunk_id", "doc_id", "start", "text"])
    )


def latency_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Every answered call's time, as the run's retriever latency of the external configs."""
    if "call_ms" not in rows:
        return pd.DataFrame(columns=["config_id", "question_id", "retrieval_ms"])
    timed = rows[rows["call_ms"].notna()]
    return pd.DataFrame(
        {
            "config_id": timed["config_id"],
            "question_id": timed["question_id"],
            "retrieval_ms": timed["call_ms"].astype(float),
        }
    ).reset_index(drop=True)


def failures(rows: pd.DataFrame) -> dict[str, tuple[int, str]]:
    """config id -> (failed calls, the first error), for configs with a failed call."""
    if "call_error" not in rows:
        return {}
    failed = rows[rows["call_error"].notna()]
    return {
        config_id: (len(group), str(group["call_error"].iloc[0]))
        for config_id, group in failed.groupby("config_id", sort=False)
    }


def answer_warnings(rows: pd.DataFrame, configs: list[dict[str, Any]]) -> list[str]:
    """One warning per external config whose answered calls returned something a score cannot show: results
    beyond its k (dropped), chunks that map to no document, results without a numeric score, the same chunk
    twice in one answer, or nothing for any question. `configs` are the run's stored configs."""
    if "call_error" not in rows:
        return []
    answered = rows[rows["call_error"].isna() & rows["call_attempts"].notna()]  # external rows, answered
    warnings = []
    for config in configs:
        group = answered[answered["config_id"] == config["config_id"]]
        if len(group):
            warnings += _config_warnings(config, group)
    return warnings


def _config_warnings(config: dict[str, Any], rows: pd.DataFrame) -> list[str]:
    name, questions = config["config_id"], len(rows)

    def count(column: str) -> tuple[int, int]:  # (total, questions with any)
        values = rows[column].fillna(0) if column in rows else pd.Series(0, index=rows.index)
        return int(values.sum()), int((values > 0).sum())

    returned = int(rows["n_retrieved"].sum()) if "n_retrieved" in rows else None
    notes = []
    dropped, dropped_in = count("dropped")
    if dropped:
        notes.append(
            f"{name}: the service returned more than the k of {config.get('k')} it was asked for on {dropped_in} "
            f"of {questions} questions; the {dropped} results beyond k were dropped (each question is scored on "
            "its first k)"
        )
    for column, what in (
        ("unmapped", "match no document of the index and count as not relevant: check map_by and map_field"),
        ("unscored", "have no numeric score (kept in the service's order, score NaN): check the score path"),
    ):
        total, where = count(column)
        if total:
            notes.append(f"{name}: {total} returned chunks on {where} of {questions} questions {what}")
    repeated, repeated_in = count("repeated")
    if repeated:
        notes.append(
            f"{name}: the service returned the same chunk twice in {repeated_in} of {questions} answers "
            f"({repeated} repeats); they are scored as returned"
        )
    if returned == 0:
        notes.append(f"{name}: the service returned nothing for any of the {questions} questions it answered")
    return notes
