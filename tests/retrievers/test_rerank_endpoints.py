"""Rerank configs whose model is a served reranker (`tei:URL`, `cohere:MODEL@URL`), against a local stub server
speaking each shape (tests/retriever_stub_server.py) and scoring with the tiny cross-encoder the local path
loads (tests/tiny_cross_encoder.py): the same scores give the same ranked chunks as the local rerank path, on the
fast path and through LangChain's retriever; busy servers are retried, calls run `concurrency` at a time, and a
server that answers in another shape, with an index out of range, too few scores or not in time is refused in
one line."""

from __future__ import annotations

import json
import math
import time

import pytest
from support.lab_cli import run_cli, write_questions
from support.retriever_stub_server import RetrieverStubServer
from support.tiny_cross_encoder import build_cross_encoder

from eval.cli.main import main
from eval.errors import ConfigError, LabError
from eval.retrievers.registry import (
    check_ready,
    config_from_params,
    fast_retrieve_mixed,
    parse_sweep,
    reference_retrieve,
)
from eval.retrievers.rerank import reranker
from eval.retrievers.rerank_endpoint import PROBE, RerankEndpoint, read_scores
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

BASE = {"search_type": "similarity", "k": 6}


@pytest.fixture(scope="module")
def cross_encoder(tmp_path_factory) -> str:
    return str(build_cross_encoder(tmp_path_factory.mktemp("cross-encoder") / "tiny-ce"))


@pytest.fixture(scope="module")
def local_scores(cross_encoder):
    """The local cross-encoder's own scores, as a served copy of it would answer them."""
    model = reranker(cross_encoder).model
    return lambda query, texts: list(model.score([(query, text) for text in texts]))


def spec(model: str, **calls) -> dict:
    return {"configs": [{"search_type": "rerank", "model": model, "top_n": 3, "base": BASE, **calls}]}


def endpoint_model(shape: str, server: RetrieverStubServer) -> str:
    return f"tei:{server.url}" if shape == "tei" else f"cohere:BAAI/bge-reranker-v2-m3@{server.url}/v1"


@pytest.mark.parametrize("shape", ["tei", "cohere"])
def test_served_scores_rank_as_the_local_cross_encoder(
    shape, cross_encoder, local_scores, tiny_index_store, tiny_dataset
):
    index = tiny_index_store.open("tiny")
    questions = tiny_dataset.questions
    vectors = index.embeddings.embed_queries([q.question for q in questions])
    (local,) = parse_sweep(spec(cross_encoder))
    with RetrieverStubServer(index, rerank_scores=local_scores, rerank_shape=shape) as server:
        (served,) = parse_sweep(spec(endpoint_model(shape, server)))
        check_ready([served])  # the probe: one small request in the endpoint's shape
        fast = fast_retrieve_mixed(index, [local, served], questions, vectors)
        bodies = [r["body"] for r in server.requests]  # the probe's and the fast path's
        reference = reference_retrieve(index, [served], questions)  # LangChain's CrossEncoderReranker over it
    reordered = 0
    for question in questions:
        want = fast[question.id, local.config_id]
        assert fast[question.id, served.config_id].chunk_ids == want.chunk_ids, (shape, question.id)
        assert fast[question.id, served.config_id].scores == want.scores  # the served floats are the local ones
        assert reference[question.id, served.config_id].chunk_ids == want.chunk_ids, (shape, question.id)
        reordered += want.chunk_ids != fast[question.id, local.base.config_id].chunk_ids[:3]
    assert reordered  # the reranker does reorder the base's candidates: the equality above means something
    if shape == "tei":
        assert set(bodies[-1]) == {"query", "texts", "raw_scores", "truncate"}
        assert bodies[-1]["raw_scores"] is False and bodies[-1]["truncate"] is True
    else:
        assert set(bodies[-1]) == {"model", "query", "documents", "top_n", "return_documents"}
        assert bodies[-1]["model"] == "BAAI/bge-reranker-v2-m3" and bodies[-1]["return_documents"] is False
        assert bodies[-1]["top_n"] == len(bodies[-1]["documents"]) == 6


def test_tied_scores_keep_the_base_order(tiny_index_store, tiny_dataset):
    """Equal scores keep the first stage's order, as the local CrossEncoderReranker's stable sort does."""
    index = tiny_index_store.open("tiny")
    question = tiny_dataset.questions[0]
    with RetrieverStubServer(index, rerank_scores=lambda query, texts: [0.5] * len(texts)) as server:
        (config,) = parse_sweep(spec(f"tei:{server.url}"))
        got = fast_retrieve_mixed(index, [config], [question], index.embeddings.embed_queries([question.question]))
    base = got[question.id, config.base.config_id]
    assert got[question.id, config.config_id].chunk_ids == base.chunk_ids[:3]


def test_answers_are_read_by_index_not_by_position():
    answer = [{"index": 2, "score": 0.9}, {"index": 0, "score": 0.1}, {"index": 1, "score": 0.5}]
    assert read_scores("tei", answer, 3) == [0.1, 0.5, 0.9]
    cohere = {
        "results": [
            {"index": 1, "relevance_score": 0.7, "document": {"text": "b"}},
            {"index": 0, "relevance_score": 0.2},
        ]
    }
    assert read_scores("cohere", cohere, 2) == [0.2, 0.7]


@pytest.mark.parametrize("mode", ["429", "503"])
def test_a_busy_server_is_retried_after_its_retry_after(mode, tiny_index_store):
    with RetrieverStubServer(
        tiny_index_store.open("tiny"),
        mode=mode,
        failures=2,
        retry_after="0.4",
        rerank_scores=lambda query, texts: [1.0, 0.0],
    ) as server:
        endpoint = RerankEndpoint(f"tei:{server.url}", json.dumps({"backoff": 0.0}))
        started = time.perf_counter()
        assert endpoint.score([("q", "a"), ("q", "b")]) == [1.0, 0.0]
        elapsed = time.perf_counter() - started
        assert len(server.requests) == 3
    assert elapsed > 0.8  # two waits of the server's 0.4 s, not the 0 s backoff


@pytest.mark.parametrize("concurrency", [1, 3])
def test_questions_are_scored_concurrency_at_a_time(concurrency, tiny_index_store):
    with RetrieverStubServer(
        tiny_index_store.open("tiny"), mode="slow", delay_s=0.2, rerank_scores=lambda query, texts: [0.5] * len(texts)
    ) as server:
        (config,) = parse_sweep(spec(f"tei:{server.url}", concurrency=concurrency))
        model = reranker(config.model, config.calls_json)
        model.scores_of([(f"question {n}", ["a", "b", "c"]) for n in range(6)])
        assert server.most_in_flight == concurrency
        assert len(server.requests) == 6


def test_long_candidate_lists_go_in_requests_of_batch_size(tiny_index_store):
    with RetrieverStubServer(
        tiny_index_store.open("tiny"), rerank_scores=lambda query, texts: [float(t) for t in texts]
    ) as server:
        endpoint = RerankEndpoint(f"tei:{server.url}", json.dumps({"batch_size": 4}))
        texts = [str(n) for n in range(10)]
        assert endpoint.score([("q", t) for t in texts]) == [float(t) for t in texts]
        assert [len(r["body"]["texts"]) for r in server.requests] == [4, 4, 2]


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ("tei", 'answered in the /v1/rerank shape ({"results": ...}), not a list: use cohere:MODEL@URL'),
        ("cohere", 'answered a list (TEI\'s /rerank shape), not {"results": [...]}: use tei:URL'),
    ],
)
def test_a_server_answering_in_the_other_shape_is_refused_before_the_run_in_one_line(
    shape, message, tiny_index_store, tiny_dataset, tmp_path, capsys
):
    with RetrieverStubServer(
        tiny_index_store.open("tiny"),
        rerank_shape=shape,
        rerank_mode="other",
        rerank_scores=lambda query, texts: [0.5] * len(texts),
    ) as server:
        model = endpoint_model(shape, server)
        sweep = tmp_path / "sweep.yaml"
        sweep.write_text(json.dumps(spec(model)), encoding="utf-8")  # JSON is YAML
        code = run_cli(
            tmp_path / "home", tiny_index_store, "tiny", write_questions(tiny_dataset, tmp_path / "q.jsonl"), sweep
        )
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err == f"error: reranker {model}: {message}\n"
    assert main(["--home", str(tmp_path / "home"), "runs", "list"]) == 0
    assert capsys.readouterr().out.startswith("no runs yet")


def test_a_tei_server_named_as_cohere_refuses_the_request_in_one_line(tiny_index_store):
    with RetrieverStubServer(
        tiny_index_store.open("tiny"), rerank_scores=lambda query, texts: [0.5] * len(texts)
    ) as server:
        (config,) = parse_sweep(spec(f"cohere:m@{server.url}"))
        with pytest.raises(LabError) as error:
            check_ready([config])
    assert str(error.value) == (
        f'reranker cohere:m@{server.url}: HTTP 422: {{"error": "Failed to deserialize the '
        'JSON body: missing field `texts`"}'
    )
    assert len(server.requests) == 1  # a 4xx is not retried


@pytest.mark.parametrize(
    ("rerank_mode", "message"),
    [
        ("out-of-range", "index 2 is out of range for the 2 documents sent"),
        ("few", "answered 1 of the 2 scores asked for (one per document sent)"),
    ],
)
def test_indices_out_of_range_and_missing_scores_are_refused(rerank_mode, message, tiny_index_store):
    with RetrieverStubServer(
        tiny_index_store.open("tiny"),
        rerank_mode=rerank_mode,
        rerank_shape="cohere",
        rerank_scores=lambda query, texts: [0.1 * n for n in range(len(texts))],
    ) as server:
        (config,) = parse_sweep(spec(f"cohere:m@{server.url}"))
        with pytest.raises(LabError) as error:
            check_ready([config])
    assert str(error.value) == f"reranker cohere:m@{server.url}: {message}"


def test_a_server_that_does_not_answer_in_time_fails_in_one_line(tiny_index_store):
    with RetrieverStubServer(
        tiny_index_store.open("tiny"), mode="slow", delay_s=2.0, rerank_scores=lambda query, texts: [0.5] * len(texts)
    ) as server:
        (config,) = parse_sweep(spec(f"tei:{server.url}", timeout=0.3, retries=1, backoff=0.0))
        started = time.perf_counter()
        with pytest.raises(LabError) as error:
            check_ready([config])
        assert time.perf_counter() - started < 1.5  # two attempts of 0.3 s, not the server's 2 s each
    assert str(error.value) == f"reranker tei:{server.url}: no answer within 0.3 s (after 2 attempts)"


def test_the_key_is_sent_as_bearer_and_scrubbed_from_errors(tiny_index_store, monkeypatch):
    monkeypatch.setenv("RERANK_KEY", "secret-rerank-key")
    with RetrieverStubServer(
        tiny_index_store.open("tiny"), rerank_scores=lambda query, texts: [0.5] * len(texts), rerank_shape="cohere"
    ) as server:
        (config,) = parse_sweep(spec(f"cohere:m@{server.url}", api_key_env="RERANK_KEY"))
        check_ready([config])
        assert {r["authorization"] for r in server.requests} == {"Bearer secret-rerank-key"}
    with RetrieverStubServer(tiny_index_store.open("tiny"), mode="500") as server:  # echoes Authorization
        (config,) = parse_sweep(spec(f"cohere:m@{server.url}", api_key_env="RERANK_KEY", retries=0))
        with pytest.raises(LabError) as error:
            check_ready([config])
    assert "secret-rerank-key" not in str(error.value) and "Bearer ***" in str(error.value)
    monkeypatch.delenv("RERANK_KEY")
    with pytest.raises(ConfigError) as error:
        check_ready([config])
    assert str(error.value) == (
        f"config {config.config_id} needs its key in the environment variable RERANK_KEY, which is not set"
    )


def test_a_failure_mid_run_stops_the_sweep_in_one_line_and_keeps_the_run_as_failed(
    cross_encoder, local_scores, tiny_index_store, tiny_dataset, tmp_path
):
    index = tiny_index_store.open("tiny")
    store = RunStore(tmp_path / "runs")

    def scores(query: str, texts: list[str]) -> list[float]:  # answers the probe, then a score JSON cannot hold
        return local_scores(query, texts) if query == PROBE[0] else [math.nan] * len(texts)

    with RetrieverStubServer(index, rerank_scores=scores) as server:
        configs = parse_sweep(spec(f"tei:{server.url}", retries=0))
        with pytest.raises(LabError) as error:
            run_sweep(store, index, configs, tiny_dataset.questions, "tiny", SweepOptions())
    assert str(error.value).startswith(
        f"reranker tei:{server.url}: a result is not {{index, score}} (whole index, finite score): "
    ) and "\n" not in str(error.value)
    (run,) = store.list()
    assert run["status"] == "failed" and run["error"].startswith("LabError: reranker tei:")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (
            {"model": "tei:127.0.0.1:8080"},
            "bad reranker endpoint 'tei:127.0.0.1:8080': write tei:URL, e.g. tei:http://127.0.0.1:8080",
        ),
        (
            {"model": "cohere:http://127.0.0.1:7997"},
            "bad reranker endpoint 'cohere:http://127.0.0.1:7997': write "
            "cohere:MODEL@URL, e.g. cohere:BAAI/bge-reranker-v2-m3@http://127.0.0.1:7997",
        ),
        ({"model": "tei:http://h:1", "concurrency": 0}, "concurrency must be a whole number of at least 1, got 0"),
        ({"model": "tei:http://h:1", "batch_size": 2.5}, "batch_size must be a whole number of at least 1, got 2.5"),
        ({"model": "tei:http://h:1", "timeout": 0}, "timeout must be more than 0 seconds"),
        (
            {"model": "tei:http://h:1", "api_key_env": "sk-123"},
            "api_key_env must be the NAME of an environment variable",
        ),
    ],
)
def test_bad_endpoint_entries_are_named_with_their_entry(entry, message):
    with pytest.raises(ConfigError) as error:
        parse_sweep({"configs": [{"search_type": "rerank", "top_n": 3, "base": BASE, **entry}]})
    assert str(error.value).startswith(f"sweep spec, configs entry 1: {message}")


def test_call_settings_are_refused_on_a_local_model(cross_encoder):
    with pytest.raises(ConfigError) as error:
        parse_sweep(spec(cross_encoder, timeout=5))
    assert str(error.value) == (
        "sweep spec, configs entry 1: call settings (timeout) are for a reranker endpoint "
        f"(tei:URL or cohere:MODEL@URL), not for {cross_encoder!r}"
    )


def test_config_ids_name_the_endpoint_and_stored_params_give_the_config_back():
    (tei,) = parse_sweep(spec("tei:http://127.0.0.1:8080/", timeout=5))
    (cohere,) = parse_sweep(spec("cohere:jina-reranker-v2-base-multilingual@https://api.jina.ai/v1"))
    assert tei.config_id == "rerank-n3-tei-127.0.0.1-8080-similarity-k6"
    assert cohere.config_id == "rerank-n3-cohere-jina-reranker-v2-base-multilingual-similarity-k6"
    assert tei.params()["timeout"] == 5 and "timeout" not in cohere.params()
    for config in (tei, cohere):
        assert config_from_params({"config_id": config.config_id, **config.params()}, "run") == config


def test_env_headers_are_sent_and_their_variable_must_be_set(tiny_index_store, monkeypatch):
    headers = {"X-Api-Key": {"env": "RERANK_HEADER"}, "X-Team": {"value": "lab"}}
    with RetrieverStubServer(
        tiny_index_store.open("tiny"), rerank_scores=lambda query, texts: [0.5] * len(texts)
    ) as server:
        (config,) = parse_sweep(spec(f"tei:{server.url}", headers=headers))
        with pytest.raises(ConfigError) as error:
            check_ready([config])
        assert str(error.value) == (
            f"config {config.config_id} needs header X-Api-Key in the environment variable RERANK_HEADER, "
            "which is not set"
        )
        monkeypatch.setenv("RERANK_HEADER", "header-secret")
        endpoint = RerankEndpoint(config.model, config.calls_json)
        assert endpoint.headers == {"X-Api-Key": "header-secret", "X-Team": "lab"}
        assert endpoint.score([("q", "a")]) == [0.5]
    assert config.params()["headers"] == headers  # the variable's name is stored, never its value
