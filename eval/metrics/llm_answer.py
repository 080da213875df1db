"""Optional LLM-judged answer metrics (ragas): faithfulness, context precision, answer relevancy.

Off by default: nothing here runs unless a judge is given. The judge is any OpenAI-compatible chat endpoint,
spec `openai:MODEL@URL` (e.g. `openai:qwen2.5-7b-instruct@http://127.0.0.1:8000/v1`); the API key comes from
`OPENAI_API_KEY`, else `RETRIEVER_LAB_API_KEY`, else "EMPTY", and never leaves the client.

ragas 0.4.3 facts used here: the legacy `ragas.metrics` classes (`Faithfulness`,
`LLMContextPrecisionWithReference`, `ResponseRelevancy`) go through `ragas.evaluate` with a
`LangchainLLMWrapper(ChatOpenAI)`; with `raise_exceptions=False` a failed job becomes NaN and ragas only
*logs* its exception ("Exception raised in Job[i]: Name(message)"), so the reasons are collected from that
log record, job i being sample * len(metrics) + metric. A judge reply that is not ragas' JSON raises
`RagasOutputParserException` (after ragas' own fix-the-format re-prompts), an unreachable endpoint an
`APIConnectionError`, a slow one a `TimeoutError`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

import pandas as pd

from eval.errors import LabError
from eval.metrics.judge import JUDGE_COLUMNS
from eval.metrics.scorer import Need, ScoringContext
from eval.settings import API_KEY_ENVS, api_key

_SPEC_RE = re.compile(r"^openai:(?P<model>[^\s]+?)@(?P<url>https?://\S+)$")
_JOB_RE = re.compile(r"^Exception raised in Job\[(\d+)\]: (.*)$", re.S)
_REASON_CHARS = 160


@dataclass(frozen=True)
class JudgeSpec:
    """An OpenAI-compatible judge endpoint. Holds no key."""

    model: str
    base_url: str
    provider: str = "openai"

    @property
    def spec(self) -> str:
        return f"{self.provider}:{self.model}@{self.base_url}"


def parse_judge_spec(spec: JudgeSpec | str) -> JudgeSpec:
    """`openai:MODEL@URL` -> JudgeSpec; anything else raises LabError with an example."""
    if isinstance(spec, JudgeSpec):
        candidate = spec.spec
    elif isinstance(spec, str):
        candidate = spec.strip()
    else:
        raise LabError(
            f"bad judge spec {spec!r}: write openai:MODEL@URL, e.g. openai:qwen2.5-7b-instruct@http://127.0.0.1:8000/v1"
        )
    match = _SPEC_RE.match(candidate)
    if match is None or not urlsplit(match["url"]).hostname:
        raise LabError(
            f"bad judge spec {candidate!r}: write openai:MODEL@URL, "
            "e.g. openai:qwen2.5-7b-instruct@http://127.0.0.1:8000/v1"
        )
    return JudgeSpec(model=match["model"], base_url=match["url"].rstrip("/"))


def _public_url(url: str) -> str:
    """The URL without any user:password@ part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def describe_judge(spec: JudgeSpec | str) -> dict[str, str]:
    """For the run manifest: provider, model and base URL (no key, no URL credentials)."""
    judge = parse_judge_spec(spec)
    return {"provider": judge.provider, "model": judge.model, "base_url": _public_url(judge.base_url)}


def _secrets() -> list[str]:
    """Strings that must never appear in a returned reason."""
    return [os.environ[env] for env in API_KEY_ENVS if os.environ.get(env) and os.environ[env] != "EMPTY"]


def _short_reason(text: str, timeout_s: float) -> str:
    """ragas' "Name(message)" -> a short, user-facing reason."""
    name, _, message = text.partition("(")
    message = message[:-1] if message.endswith(")") else message
    if "OutputParser" in name:
        return "the judge's reply is not the JSON ragas asked for"
    if "Timeout" in name:
        return f"no judge reply within {timeout_s:g} s"
    if "Connection" in name:
        return f"judge unreachable ({message or name})"
    return text


def _clean_reason(text: str) -> str:
    for secret in _secrets():
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 3] + "..."


class _JobErrors(logging.Handler):
    """Collects ragas executor's "Exception raised in Job[i]: ..." records of the calling thread."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.thread = threading.get_ident()
        self.errors: dict[int, str] = {}

    def emit(self, record: logging.LogRecord) -> None:
        if record.thread != self.thread:
            return
        try:
            match = _JOB_RE.match(record.getMessage())
        except Exception:  # a malformed record must not break the run
            return
        if match:
            self.errors[int(match[1])] = match[2]


def _ragas_evaluate(
    samples: list, metrics: list, llm: Any, embeddings: Any, timeout_s: float
) -> tuple[pd.DataFrame, dict[int, str]]:
    """ragas.evaluate with telemetry off, no progress bar, no raising; returns scores and job errors."""
    from ragas import EvaluationDataset, RunConfig, evaluate
    from ragas._analytics import do_not_track

    os.environ["RAGAS_DO_NOT_TRACK"] = "true"
    do_not_track.cache_clear()  # ragas caches the flag at its first call
    run_config = RunConfig(timeout=max(1, math.ceil(timeout_s)), max_retries=1, max_wait=1)
    llm.set_run_config(run_config)
    handler = _JobErrors()
    executor_log = logging.getLogger("ragas.executor")
    executor_log.addHandler(handler)
    try:
        result = evaluate(
            EvaluationDataset(samples=samples),
            metrics=metrics,
            llm=llm,
            embeddings=embeddings,
            run_config=run_config,
            show_progress=False,
            raise_exceptions=False,
        )
    finally:
        executor_log.removeHandler(handler)
    return pd.DataFrame(result.scores), handler.errors


def _score(value: Any) -> float:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return math.nan
    return value if math.isfinite(value) else math.nan


def judge_rows(
    rows: Sequence[dict], judge: JudgeSpec | str, embeddings: Any | None = None, timeout_s: float = 60
) -> pd.DataFrame:
    """ragas LLM-judged metrics per row, one output row per input row, in order.

    Each row has `question`, `answer`, `contexts` (retrieved chunk texts, in rank order) and `reference`
    (gold answer or None). Columns: `judge_faithfulness` (ragas Faithfulness: share of the answer's
    statements the contexts support), `judge_context_precision` (LLMContextPrecisionWithReference: average
    precision of the contexts judged useful for the reference), `judge_answer_relevancy` (ResponseRelevancy:
    cosine of questions generated from the answer to the question; needs `embeddings`, a LangChain
    Embeddings) and `judge_error` ("" or "metric: reason; ..."). A metric that cannot be computed (no
    answer, no contexts, no reference, no embeddings, or a judge failure: unreachable, invalid JSON,
    timeout) is NaN with its reason; only a malformed judge spec raises (LabError), before any call.
    """
    spec = parse_judge_spec(judge)
    try:
        timeout_s = float(timeout_s)
    except (TypeError, ValueError):
        raise LabError(f"bad judge timeout {timeout_s!r}: give seconds > 0") from None
    if not timeout_s > 0:
        raise LabError(f"bad judge timeout {timeout_s!r}: give seconds > 0")
    n = len(rows)
    scores = {col: [math.nan] * n for col in JUDGE_COLUMNS[:3]}
    errors: list[list[str]] = [[] for _ in range(n)]
    if n == 0:
        return pd.DataFrame({**scores, "judge_error": []}, columns=list(JUDGE_COLUMNS))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_openai import ChatOpenAI
        from ragas import SingleTurnSample
        from ragas.embeddings import LangchainEmbeddingsWrapper
        from ragas.llms import LangchainLLMWrapper
        from ragas.metrics import Faithfulness, LLMContextPrecisionWithReference, ResponseRelevancy

        chat = ChatOpenAI(model=spec.model, base_url=spec.base_url, api_key=api_key(), timeout=timeout_s, max_retries=0)
        # bypass_n: ask n separate completions; servers that ignore `n` (llama.cpp, Ollama) still work
        llm = LangchainLLMWrapper(chat, bypass_n=True)
        ragas_embeddings = LangchainEmbeddingsWrapper(embeddings) if embeddings is not None else None

        # (output column, metric factory, rows it applies to); rows left out get NaN + reason
        answer_rows, precision_rows = [], []
        for i, row in enumerate(rows):
            answer = str(row.get("answer") or "").strip()
            contexts = [str(c) for c in (row.get("contexts") or [])]
            reference = row.get("reference")
            if not answer:
                errors[i].append("faithfulness: no answer")
                if ragas_embeddings is not None:
                    errors[i].append("answer_relevancy: no answer")
            else:
                answer_rows.append(i)
            if not contexts:
                errors[i].append("context_precision: no retrieved contexts")
            elif reference is None or not str(reference).strip():
                errors[i].append("context_precision: no reference answer")
            else:
                precision_rows.append(i)
            if ragas_embeddings is None:
                errors[i].append("answer_relevancy: no embeddings given")

        def sample(i: int, with_reference: bool) -> Any:
            row = rows[i]
            fields = {
                "user_input": str(row.get("question") or ""),
                "response": str(row.get("answer") or ""),
                "retrieved_contexts": [str(c) for c in (row.get("contexts") or [])],
            }
            if with_reference:
                fields["reference"] = str(row["reference"])
            return SingleTurnSample(**fields)

        answer_metrics: list[tuple[str, str, Any]] = [("judge_faithfulness", "faithfulness", Faithfulness())]
        if ragas_embeddings is not None:
            answer_metrics.append(("judge_answer_relevancy", "answer_relevancy", ResponseRelevancy()))
        groups = [
            (answer_rows, False, answer_metrics),
            (
                precision_rows,
                True,
                [("judge_context_precision", "context_precision", LLMContextPrecisionWithReference())],
            ),
        ]
        for row_ids, with_reference, metric_list in groups:
            if not row_ids:
                continue
            metrics = [m for _, _, m in metric_list]
            samples = [sample(i, with_reference) for i in row_ids]
            try:
                frame, job_errors = _ragas_evaluate(samples, metrics, llm, ragas_embeddings, timeout_s)
            except Exception as error:  # ragas itself failed: every metric of the group is NaN
                reason = _clean_reason(f"{type(error).__name__}({error})")
                for i in row_ids:
                    errors[i].extend(f"{label}: {reason}" for _, label, _ in metric_list)
                continue
            for k, i in enumerate(row_ids):
                for j, (column, label, metric) in enumerate(metric_list):
                    value = _score(frame[metric.name].iloc[k]) if metric.name in frame else math.nan
                    scores[column][i] = value
                    if math.isnan(value):
                        reason = job_errors.get(k * len(metrics) + j, "the judge gave no usable score")
                        errors[i].append(f"{label}: {_clean_reason(_short_reason(reason, timeout_s))}")
    out = pd.DataFrame(scores, columns=list(JUDGE_COLUMNS[:3]))
    out["judge_error"] = ["; ".join(e) for e in errors]
    return out


@dataclass(frozen=True)
class JudgeScorer:
    """A run scorer: `judge_rows` once per distinct (question, retrieved chunks), on the first row's answer
    (identical prompts share their answer when decoding is deterministic); failures are NaN + reason.

    `embeddings` (LangChain, e.g. the index's model) enables answer relevancy. A malformed spec raises
    LabError here, before any sweep starts."""

    judge: JudgeSpec | str
    embeddings: Any = None
    timeout_s: float = 60

    needs: ClassVar[frozenset[Need]] = frozenset({"answers", "chunk_texts"})
    columns: ClassVar[tuple[str, ...]] = JUDGE_COLUMNS

    def __post_init__(self) -> None:
        parse_judge_spec(self.judge)

    def describe(self) -> dict[str, Any]:
        return {"name": "judge", **describe_judge(self.judge)}

    def score(self, rows: pd.DataFrame, context: ScoringContext) -> pd.DataFrame:
        questions, texts = context.questions, context.chunk_texts
        keys = list(zip(rows["question_id"], rows["chunk_ids"].map(tuple)))
        unique = list(dict.fromkeys(keys))
        first_answer = dict(zip(keys[::-1], rows["answer"].tolist()[::-1]))
        if context.progress:
            context.progress("judge", 0, len(unique))
        judged = judge_rows(
            [
                {
                    "question": questions[q].question,
                    "answer": first_answer[q, ids],
                    "contexts": [texts[i] for i in ids],
                    "reference": questions[q].answer,
                }
                for q, ids in unique
            ],
            self.judge,
            self.embeddings,
            self.timeout_s,
        )
        by_key = dict(zip(unique, judged.to_dict("records")))
        if context.progress:
            context.progress("judge", len(unique), len(unique))
        return pd.DataFrame([by_key[key] for key in keys], columns=list(self.columns))
