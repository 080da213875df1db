"""eval.metrics.judge: ragas LLM-judged metrics against a real local OpenAI-compatible stub
(tests/support/judge_stub_server.py)."""

from __future__ import annotations

import math
import socket
import time

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from support.judge_stub_server import JudgeStubServer

from eval.errors import LabError
from eval.metrics.judge import JUDGE_COLUMNS
from eval.metrics.llm_answer import JudgeSpec, describe_judge, judge_rows, parse_judge_spec

SECRET = "sk-test-SECRET-judge-key-123"

ROWS = [
    {
        "question": "What is the capital of France?",
        "answer": "Paris is the capital of France. It is large.",
        "contexts": ["Bananas are yellow.", "Paris is the capital and largest city of France."],
        "reference": "Paris",
    },
    {
        "question": "Where is Berlin?",
        "answer": "Berlin is in Germany. The moon is made of cheese.",
        "contexts": ["Berlin is the capital of Germany."],
        "reference": "In Germany",
    },
]


class CharEmbeddings(Embeddings):
    """Deterministic test double: character bigrams hashed (by code point) into a normalized vector."""

    dim = 64

    def _embed(self, text: str) -> list[float]:
        vec = np.zeros(self.dim)
        text = text.lower()
        for a, b in zip(text, text[1:]):
            vec[(ord(a) * 31 + ord(b)) % self.dim] += 1.0
        norm = np.linalg.norm(vec)
        return (vec / norm if norm else vec).tolist()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [self._embed(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._embed(text)


def _cosine(a: str, b: str) -> float:
    e = CharEmbeddings()
    return float(np.dot(e.embed_query(a), e.embed_query(b)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(autouse=True)
def _env(monkeypatch):
    monkeypatch.setenv("RAGAS_DO_NOT_TRACK", "true")
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)


def test_valid_judge_scores_match_canned_verdicts():
    with JudgeStubServer() as server:
        out = judge_rows(ROWS, f"openai:judge-model@{server.base_url}", embeddings=CharEmbeddings(), timeout_s=20)
    assert list(out.columns) == list(JUDGE_COLUMNS)
    assert len(out) == 2
    assert out["judge_error"].tolist() == ["", ""]
    # all statements supported -> 1.0; one of two mentions "cheese" -> 0.5
    assert out["judge_faithfulness"].tolist() == pytest.approx([1.0, 0.5])
    # row 0: useful context ranked 2nd -> AP 0.5; row 1: its only context judged useless -> 0
    assert out["judge_context_precision"].tolist() == pytest.approx([0.5, 0.0], abs=1e-6)
    # the stub always "generates" row 0's question -> cosine 1 for row 0, the fake-embedding cosine for row 1
    relevancy = out["judge_answer_relevancy"].tolist()
    assert relevancy == pytest.approx([1.0, _cosine(ROWS[0]["question"], ROWS[1]["question"])], abs=1e-6)
    values = out[list(JUDGE_COLUMNS[:3])].to_numpy(dtype=float)
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1 + 1e-9).all()
    # the judge really was called over HTTP, with the key from the env and ragas' n-completions asked as
    # separate requests (bypass_n)
    assert server.requests and all(r["authorization"] == f"Bearer {SECRET}" for r in server.requests)
    assert all(r["body"]["model"] == "judge-model" for r in server.requests)
    assert SECRET not in out.to_csv()


def test_missing_inputs_give_nan_with_reasons_without_calls():
    rows = [{"question": "q?", "answer": "", "contexts": [], "reference": None}]
    with JudgeStubServer() as server:
        out = judge_rows(rows, JudgeSpec(model="m", base_url=server.base_url), embeddings=None, timeout_s=5)
    assert server.requests == []
    assert out[list(JUDGE_COLUMNS[:3])].isna().all(axis=None)
    err = out.loc[0, "judge_error"]
    assert "no answer" in err and "no retrieved contexts" in err and "no embeddings" in err
    assert judge_rows([], "openai:m@http://127.0.0.1:1/v1").columns.tolist() == list(JUDGE_COLUMNS)


def test_garbage_judge_gives_nan_and_reason_quickly():
    start = time.monotonic()
    with JudgeStubServer(mode="garbage") as server:
        out = judge_rows(ROWS, f"openai:judge-model@{server.base_url}", embeddings=CharEmbeddings(), timeout_s=10)
    assert time.monotonic() - start < 20
    assert server.requests  # it did ask
    assert out[list(JUDGE_COLUMNS[:3])].isna().all(axis=None)
    for err in out["judge_error"]:
        assert "faithfulness:" in err and "context_precision:" in err and "answer_relevancy:" in err
        assert "not the JSON ragas asked for" in err


def test_unreachable_judge_gives_nan_and_reason_quickly():
    start = time.monotonic()
    out = judge_rows(
        ROWS, f"openai:judge-model@http://127.0.0.1:{_free_port()}/v1", embeddings=CharEmbeddings(), timeout_s=5
    )
    assert time.monotonic() - start < 20
    assert out[list(JUDGE_COLUMNS[:3])].isna().all(axis=None)
    assert all("judge unreachable" in err for err in out["judge_error"])
    assert SECRET not in out.to_csv()


def test_slow_judge_times_out_into_nan():
    start = time.monotonic()
    with JudgeStubServer(delay_s=3) as server:
        out = judge_rows(ROWS[:1], f"openai:judge-model@{server.base_url}", embeddings=None, timeout_s=1)
    assert time.monotonic() - start < 20
    assert math.isnan(out.loc[0, "judge_faithfulness"]) and math.isnan(out.loc[0, "judge_context_precision"])
    assert "faithfulness:" in out.loc[0, "judge_error"]
    assert "no judge reply within 1 s" in out.loc[0, "judge_error"]


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "gpt-4o",
        "openai:gpt-4o",
        "openai:@http://x/v1",
        "openai:m@ftp://x/v1",
        "openai:m@localhost:8000",
        "ollama:m@http://127.0.0.1:11434/v1",
        None,
        3,
    ],
)
def test_malformed_spec_raises_lab_error(spec):
    with pytest.raises(LabError, match="openai:MODEL@URL"):
        judge_rows(ROWS, spec)
    with pytest.raises(LabError):
        describe_judge(spec)


def test_bad_timeout_raises_lab_error():
    with pytest.raises(LabError, match="timeout"):
        judge_rows(ROWS, "openai:m@http://127.0.0.1:1/v1", timeout_s=0)


def test_describe_judge_has_model_and_url_never_the_key(monkeypatch):
    monkeypatch.setenv("RETRIEVER_LAB_API_KEY", SECRET + "-2")
    described = describe_judge("openai:qwen2.5-7b@http://127.0.0.1:8000/v1/")
    assert described == {"provider": "openai", "model": "qwen2.5-7b", "base_url": "http://127.0.0.1:8000/v1"}
    assert describe_judge(JudgeSpec("m", "http://127.0.0.1:9/v1"))["model"] == "m"
    assert "SECRET" not in repr(described)
    assert "pw" not in repr(describe_judge("openai:m@http://user:pw@127.0.0.1:8000/v1"))
    assert parse_judge_spec("openai:org/model@v2@https://h.example/v1").model == "org/model@v2"


def test_stub_streams_when_asked():
    """The stub's stream=true path (SSE) works with ChatOpenAI(streaming=True) and ragas' prompt text."""
    import json

    from langchain_openai import ChatOpenAI

    with JudgeStubServer() as server:
        chat = ChatOpenAI(
            model="m", base_url=server.base_url, api_key="EMPTY", streaming=True, max_retries=0, timeout=5
        )
        reply = chat.invoke('Generate a question for the given answer\ninput: {"response": "x"}\nOutput: ')
    assert server.requests[-1]["body"]["stream"] is True
    assert json.loads(reply.content) == {"question": "What is the capital of France?", "noncommittal": 0}


def test_judge_scorer_judges_each_distinct_prompt_once_on_its_first_answer():
    """Rows that share a question and retrieved chunks (configs that retrieved the same list) are one judge
    job; the scorer returns one row per row, in order, and describes the judge without its key."""
    import pandas as pd

    from eval.metrics.llm_answer import JudgeScorer
    from eval.metrics.scorer import ScoringContext
    from eval.schema import Question

    questions = {f"q{i}": Question(f"q{i}", row["question"], (row["reference"],)) for i, row in enumerate(ROWS)}
    texts = {f"c{i}{j}": text for i, row in enumerate(ROWS) for j, text in enumerate(row["contexts"])}
    ids = {q: [c for c in texts if c.startswith(f"c{q[1:]}")] for q in questions}
    rows = pd.DataFrame(
        {
            "question_id": ["q0", "q1", "q0"],
            "config_id": ["a", "a", "b"],
            "chunk_ids": [ids["q0"], ids["q1"], ids["q0"]],
            "answer": [ROWS[0]["answer"], ROWS[1]["answer"], "a reused row's answer is not judged"],
        }
    )
    progress = []
    context = ScoringContext(questions, texts, index=None, progress=lambda *a: progress.append(a))
    with JudgeStubServer() as server:
        scorer = JudgeScorer(f"openai:judge-model@{server.base_url}", CharEmbeddings(), timeout_s=20)
        scored = scorer.score(rows, context)
        scorer_requests = len(server.requests)
        distinct = judge_rows(ROWS, f"openai:judge-model@{server.base_url}", embeddings=CharEmbeddings(), timeout_s=20)
    assert list(scored.columns) == list(scorer.columns) == list(JUDGE_COLUMNS) and "answers" in scorer.needs
    pd.testing.assert_frame_equal(scored, distinct.iloc[[0, 1, 0]].reset_index(drop=True))
    assert progress == [("judge", 0, 2), ("judge", 2, 2)]
    assert scorer_requests == len(server.requests) - scorer_requests  # as many as judging the two distinct rows
    assert scorer.describe() == {
        "name": "judge",
        "provider": "openai",
        "model": "judge-model",
        "base_url": server.base_url,
    }
    with pytest.raises(LabError, match="openai:MODEL@URL"):
        JudgeScorer("gpt-4o")
