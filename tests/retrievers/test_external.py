"""External retrievers as configs: each platform's stub answers from the real sample index, so the metrics of
an external config must equal those of the local config that retrieves the same chunks."""

import json
import math
import urllib.request

import numpy as np
import pandas as pd
import pytest
from support.lab_cli import run_cli, write_questions
from support.paths import APP
from support.retriever_stub_server import RetrieverStubServer, search_entry, term_similarity

from eval.errors import ConfigError, LabError
from eval.report.render import write_report
from eval.retrievers.external.client import failures
from eval.retrievers.external.config import check_ready
from eval.retrievers.registry import parse_sweep
from eval.runs.export import export_run
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

KEY = "sk-test-7f3c2a9e1b5d"  # a recognisable secret: it must never appear in anything written
DOC_METRICS = ["hit_rate", "precision", "recall", "mrr", "ndcg", "map", "answer_hit_rate", "answer_mrr"]
QUESTIONS = 10


@pytest.fixture(scope="module")
def stub(sample_index):
    with RetrieverStubServer(sample_index, key=KEY) as server:
        yield server


def service_sweep(url: str) -> dict:
    """The four kinds against one stub, each set up to return what a local config returns."""
    return {
        "configs": [
            {"search_type": "similarity", "k": 5},
            {"search_type": "similarity_score_threshold", "k": 5, "score_threshold": 0.85},
            {"search_type": "chatchat", "url": url, "knowledge_base_name": "samples", "top_k": 5, "score_threshold": 2},
            {
                "search_type": "ragflow",
                "url": url,
                "dataset_ids": ["ds1"],
                "top_k": 5,
                "page_size": 5,
                "similarity_threshold": 0.0,
                "vector_similarity_weight": [1.0, 0.3],
                "rerank_id": "bge-reranker",
            },
            {
                "search_type": "dify",
                "url": f"{url}/dify",
                "knowledge_id": "sample",
                "top_k": 5,
                "score_threshold": [0.0, 0.85],
            },
            {
                "search_type": "dify",
                "name": "dify-span",
                "url": f"{url}/dify",
                "knowledge_id": "sample",
                "top_k": 5,
                "map_by": "span",
            },
            search_entry(url, name="search"),
        ]
    }


@pytest.fixture(scope="module")
def service_run(stub, sample_index, sample_dataset, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("RAGFLOW_API_KEY", KEY)
        patch.setenv("DIFY_API_KEY", KEY)
        store = RunStore(tmp_path_factory.mktemp("external-runs"))
        run_id = run_sweep(
            store,
            sample_index,
            parse_sweep(service_sweep(stub.url)),
            sample_dataset.questions[:QUESTIONS],
            "sample",
            SweepOptions(latency_sample=1, external_concurrency=3),
        )
    return store.load(run_id)


def rows_of(run, config_id: str) -> pd.DataFrame:
    return run.rows[run.rows["config_id"] == config_id].set_index("question_id").sort_index()


@pytest.mark.parametrize(
    "external, local",
    [
        ("chatchat-k5-t2", "similarity-k5"),
        ("ragflow-k5-c5-t0-w1-rbge_reranker", "similarity-k5"),
        ("dify-k5-t0", "similarity-k5"),
        ("dify-k5-t0.85", "threshold-k5-t0.85"),
        ("dify-span-k5-t0", "similarity-k5"),
        ("search-top_k5", "similarity-k5"),
    ],
)
def test_each_kind_maps_to_the_documents_and_metrics_of_the_same_local_retrieval(service_run, external, local):
    got, expected = rows_of(service_run, external), rows_of(service_run, local)
    assert len(got) == QUESTIONS and got["call_error"].isna().all()
    assert got["unmapped"].eq(0).all()
    assert got["doc_ids"].map(list).tolist() == expected["doc_ids"].map(list).tolist()
    assert got["n_retrieved"].sum() > QUESTIONS  # not vacuous: most questions retrieve several chunks
    for metric in DOC_METRICS:
        np.testing.assert_allclose(got[metric], expected[metric], err_msg=metric)
    # the diversity metrics use the index's own model on the returned texts: the same chunks, the same ILD
    np.testing.assert_allclose(got["ild"], expected["ild"], atol=1e-5)


def test_span_mapping_finds_each_chunk_at_its_offset(service_run, sample_index):
    rows = rows_of(service_run, "dify-span-k5-t0")
    chunks = pd.read_parquet(service_run.folder / "chunks.parquet").set_index("chunk_id")
    by_text = {c.text: c for c in sample_index.chunks()}
    checked = 0
    for chunk_ids in rows["chunk_ids"]:
        for chunk_id in chunk_ids:
            stored = chunks.loc[chunk_id]
            original = by_text[stored["text"]]
            assert (stored["doc_id"], stored["start"]) == (original.doc_id, original.start)
            checked += 1
    assert checked == rows["n_retrieved"].sum() > 0


def test_the_platforms_get_their_documented_requests(service_run, stub):
    bodies = {
        path: [r for r in stub.requests if set(r["body"]) >= keys]
        for path, keys in {
            "chatchat": {"query", "knowledge_base_name", "top_k", "score_threshold"},
            "ragflow": {
                "question",
                "dataset_ids",
                "top_k",
                "page_size",
                "similarity_threshold",
                "vector_similarity_weight",
                "rerank_id",
            },
            "dify": {"knowledge_id", "query", "retrieval_setting"},
        }.items()
    }
    assert len(bodies["chatchat"]) == QUESTIONS and len(bodies["ragflow"]) == 2 * QUESTIONS
    assert len(bodies["dify"]) == 3 * QUESTIONS
    assert {r["body"]["vector_similarity_weight"] for r in bodies["ragflow"]} == {1.0, 0.3}
    assert {r["body"]["retrieval_setting"]["score_threshold"] for r in bodies["dify"]} == {0.0, 0.85}
    assert all(r["authorization"] == f"Bearer {KEY}" for r in bodies["ragflow"] + bodies["dify"])
    assert all(r["authorization"] is None for r in bodies["chatchat"])  # Chatchat takes no key
    assert 1 < stub.most_in_flight <= 3  # --concurrency 3: parallel, and never more


def test_external_latency_is_every_call_and_sits_beside_local_configs(service_run):
    latency = service_run.latency
    external = [
        c["config_id"]
        for c in service_run.configs
        if c["search_type"] not in ("similarity", "similarity_score_threshold")
    ]
    assert len(external) == 7
    for config_id in external:
        calls = latency[latency["config_id"] == config_id]
        assert len(calls) == QUESTIONS and (calls["retrieval_ms"] > 0).all()
        np.testing.assert_allclose(
            calls.set_index("question_id").sort_index()["retrieval_ms"], rows_of(service_run, config_id)["call_ms"]
        )
    assert len(latency[latency["config_id"] == "similarity-k5"]) == 1  # the local latency sample
    from eval.runs.summary import summarize

    summary = summarize(service_run).set_index("config_id")
    assert summary["retrieval_ms_p50"].notna().all()
    assert summary.loc["ragflow-k5-c5-t0-w0.3-rbge_reranker", "search_type"] == "ragflow"


def test_a_ragflow_weight_changes_what_it_returns(service_run, sample_dataset):
    """The hybrid weight reaches the service: with weight 0.3 the five chunks of a plain similarity search come
    back ordered by 0.3 x vector relevance + 0.7 x term overlap (the stub's rule), not by relevance alone."""
    local = rows_of(service_run, "similarity-k5")
    hybrid = rows_of(service_run, "ragflow-k5-c5-t0-w0.3-rbge_reranker")
    texts = pd.read_parquet(service_run.folder / "chunks.parquet").set_index("chunk_id")["text"]
    questions = {q.id: q.question for q in sample_dataset.questions}
    for question_id, row in local.iterrows():
        mixed = {
            (c, doc): 0.3 * score + 0.7 * term_similarity(questions[question_id], texts[c])
            for c, doc, score in zip(row.chunk_ids, row.doc_ids, row.scores)
        }
        expected = [doc for _, doc in sorted(mixed, key=lambda key: -mixed[key])]
        assert list(hybrid.loc[question_id, "doc_ids"]) == expected, question_id
    vector_only = rows_of(service_run, "ragflow-k5-c5-t0-w1-rbge_reranker")["chunk_ids"].map(list)
    assert (vector_only != hybrid["chunk_ids"].map(list)).any()  # not vacuous: the weight reorders some question


# ---------------------------------------------------------------- failures


@pytest.fixture(scope="module")
def failing_run(sample_index, sample_dataset, tmp_path_factory):
    servers = {
        name: RetrieverStubServer(sample_index, key=KEY, **options)
        for name, options in {
            "down": {"mode": "500"},
            "slow": {"mode": "slow", "delay_s": 1.0},
            "garbage": {"mode": "garbage"},
            "busy": {"mode": "429", "failures": 2},
            "wrongkey": {},
        }.items()
    }
    for server in servers.values():
        server.__enter__()
    url = {name: server.url for name, server in servers.items()}
    sweep = {
        "configs": [
            {"search_type": "similarity", "k": 3},
            {
                "search_type": "chatchat",
                "name": "down",
                "url": url["down"],
                "knowledge_base_name": "samples",
                "top_k": 3,
                "retries": 1,
                "backoff": 0.01,
                "api_key_env": "RAGFLOW_API_KEY",
            },
            {
                "search_type": "chatchat",
                "name": "slow",
                "url": url["slow"],
                "knowledge_base_name": "samples",
                "top_k": 3,
                "timeout": 0.25,
                "retries": 1,
                "backoff": 0.01,
            },
            {"search_type": "ragflow", "name": "garbage", "url": url["garbage"], "dataset_ids": ["d"], "page_size": 3},
            {
                "search_type": "ragflow",
                "name": "busy",
                "url": url["busy"],
                "dataset_ids": ["d"],
                "page_size": 3,
                "backoff": 0.01,
            },
            {
                "search_type": "ragflow",
                "name": "rf-wrongkey",
                "url": url["wrongkey"],
                "dataset_ids": ["d"],
                "api_key_env": "WRONG_KEY",
            },
            {
                "search_type": "dify",
                "name": "dify-wrongkey",
                "url": f"{url['wrongkey']}/dify",
                "knowledge_id": "sample",
                "top_k": 3,
                "api_key_env": "WRONG_KEY",
            },
            {
                "search_type": "dify",
                "name": "dify-nokb",
                "url": f"{url['wrongkey']}/dify",
                "knowledge_id": "absent",
                "top_k": 3,
            },
        ]
    }
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("RAGFLOW_API_KEY", KEY)
            patch.setenv("DIFY_API_KEY", KEY)
            patch.setenv("WRONG_KEY", "sk-wrong-0000")
            store = RunStore(tmp_path_factory.mktemp("failing-runs"))
            run_id = run_sweep(
                store,
                sample_index,
                parse_sweep(sweep),
                sample_dataset.questions[:3],
                "sample",
                SweepOptions(latency_sample=1, external_concurrency=2),
            )
    finally:
        for server in servers.values():
            server.__exit__(None, None, None)
    return store.load(run_id), servers


@pytest.mark.parametrize(
    "config_id, message, attempts",
    [
        ("down-k3", "HTTP 500: ", 2),
        ("slow-k3", "no answer within 0.25 s (after 2 attempts)", 2),
        ("garbage-k3", "malformed JSON in the answer", 1),
        ("rf-wrongkey-k30", "RAGFlow error 109: Authentication error: API key is invalid!", 1),
        ("dify-wrongkey-k3-t0", "HTTP 403: ", 1),
        ("dify-nokb-k3-t0", "The knowledge does not exist", 1),
    ],
)
def test_a_failed_call_is_recorded_on_its_row_and_the_run_completes(failing_run, config_id, message, attempts):
    run, _ = failing_run
    rows = rows_of(run, config_id)
    assert run.status == "complete" and len(rows) == 3
    assert rows["call_error"].str.contains(message, regex=False).all(), rows["call_error"].tolist()
    assert (rows["call_attempts"] == attempts).all()
    assert rows[["ndcg", "recall", "hit_rate", "n_retrieved"]].isna().all().all()  # not scored, not 0
    assert rows["call_ms"].isna().all()
    assert failures(run.rows)[config_id][0] == 3


def test_retries_after_429_end_in_an_answer(failing_run, sample_index):
    run, servers = failing_run
    rows = rows_of(run, "busy-k3")
    assert rows["call_error"].isna().all() and rows["ndcg"].notna().all()
    assert rows["call_attempts"].sum() == 3 + 2  # three questions, two of the calls were told 429 once
    # the answer is the service's, once it lets the call in: each question's last request, asked again of a stub
    # that never refuses
    questions = {q.id: q.question for q in run.questions}
    last = {r["body"]["question"]: r for r in servers["busy"].requests}
    with RetrieverStubServer(sample_index, key=KEY) as willing:
        for question_id, row in rows.iterrows():
            assert list(row.doc_ids) == stub_answer(willing.url, last[questions[question_id]]), question_id


def stub_answer(url: str, request: dict) -> list[str]:
    """The documents RAGFlow's stub answers a recorded request with (its chunks' file names, without `.txt`)."""
    call = urllib.request.Request(
        f"{url}/api/v1/retrieval",
        data=json.dumps(request["body"]).encode(),
        headers={"Authorization": request["authorization"], "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(call, timeout=30) as response:
        return [c["document_keyword"].removesuffix(".txt") for c in json.load(response)["data"]["chunks"]]


def test_the_key_is_sent_but_never_written_and_scrubbed_from_errors(failing_run, tmp_path):
    run, servers = failing_run
    assert any(r["authorization"] == f"Bearer {KEY}" for r in servers["busy"].requests)
    down = rows_of(run, "down-k3")["call_error"]
    assert down.str.contains("***", regex=False).all()  # the stub echoed the Authorization header back
    for fmt in ("csv", "jsonl", "parquet", "trec"):
        export_run(run, fmt, tmp_path / f"export.{fmt}")
    for fmt in ("html", "md"):
        write_report(run, tmp_path / f"report.{fmt}", fmt)
    assert "rf-wrongkey-k30" in (tmp_path / "report.md").read_text()  # external configs are in the report
    written = [p for folder in (run.folder, tmp_path) for p in folder.rglob("*") if p.is_file()]
    assert len(written) > 8
    for path in written:
        data = path.read_bytes()
        assert KEY.encode() not in data and b"sk-wrong-0000" not in data, path


# ---------------------------------------------------------------- imported results


def test_imported_trec_and_jsonl_score_like_the_run_they_came_from(service_run, sample_index, sample_dataset, tmp_path):
    """The run's own exports, imported as configs: the JSONL (chunk ids) gives back every metric, the TREC run
    (documents) every document metric; a question missing from the file is a recorded failure."""
    questions = sample_dataset.questions[:6]
    export_run(service_run, "trec", tmp_path / "trec")
    export_run(service_run, "jsonl", tmp_path / "run.jsonl")
    lines = [json.loads(line) for line in (tmp_path / "run.jsonl").read_text().splitlines()]
    kept = [line for line in lines if line["config_id"] == "similarity-k5" and line["question_id"] != questions[2].id]
    (tmp_path / "similarity.jsonl").write_text("".join(json.dumps(line) + "\n" for line in kept))
    trec = str(tmp_path / "trec" / "similarity-k5.run")
    sweep = {
        "configs": [
            {"search_type": "imported", "name": "trec", "path": trec},
            {"search_type": "imported", "name": "trec-cut", "path": trec, "k": [1]},
            {"search_type": "imported", "name": "jsonl", "path": str(tmp_path / "similarity.jsonl")},
        ]
    }
    store = RunStore(tmp_path / "runs")
    run = store.load(
        run_sweep(store, sample_index, parse_sweep(sweep), questions, "sample", SweepOptions(latency_sample=0))
    )
    original = rows_of(service_run, "similarity-k5").loc[[q.id for q in questions]].sort_index()
    trec_rows = rows_of(run, "trec")
    assert trec_rows["call_error"].isna().all()
    for metric in ("hit_rate", "recall", "mrr", "ndcg", "map"):
        np.testing.assert_allclose(trec_rows[metric], original[metric], err_msg=metric)
    jsonl_rows = rows_of(run, "jsonl")
    assert jsonl_rows["call_error"].notna().tolist() == [q == questions[2].id for q in jsonl_rows.index]
    assert "is not in similarity.jsonl" in jsonl_rows.loc[questions[2].id, "call_error"]
    scored = jsonl_rows.drop(index=questions[2].id)
    for metric in (*DOC_METRICS, "ild", "n_retrieved", "distinct_doc_ratio"):
        np.testing.assert_allclose(scored[metric], original.loc[scored.index, metric], err_msg=metric, atol=1e-6)
    relevant = {q.id: set(q.relevant_ids) for q in questions}
    first_hit = [float(len(docs) > 0 and docs[0] in relevant[qid]) for qid, docs in original["doc_ids"].items()]
    assert rows_of(run, "trec-cut-k1")["hit_rate"].tolist() == first_hit
    assert run.latency.empty  # nothing was called, nothing timed


# ---------------------------------------------------------------- bad specs


@pytest.mark.parametrize(
    "entry, message",
    [
        ({"search_type": "ragflow", "dataset_ids": ["d"]}, "configs entry 1: search_type ragflow needs 'url'"),
        ({"search_type": "ragflow", "url": "ftp://x", "dataset_ids": ["d"]}, "url must be an http:// or https://"),
        ({"search_type": "ragflow", "url": "http://x", "dataset_ids": []}, "dataset_ids must be a non-empty list"),
        (
            {"search_type": "ragflow", "url": "http://x", "dataset_ids": ["d"], "vector_similarity_weight": 1.5},
            "vector_similarity_weight must be in [0, 1], got 1.5",
        ),
        (
            {"search_type": "ragflow", "url": "http://x", "dataset_ids": ["d"], "api_key": "sk"},
            "unknown key 'api_key' for search_type ragflow",
        ),
        (
            {"search_type": "chatchat", "url": "http://x", "knowledge_base_name": "kb", "top_k": 0},
            "top_k must be a whole number of at least 1",
        ),
        (
            {
                "search_type": "chatchat",
                "url": "http://x",
                "knowledge_base_name": "kb",
                "top_k": 3,
                "score_threshold": 3,
            },
            "score_threshold must be in [0, 2]",
        ),
        (
            {"search_type": "dify", "url": "http://x", "knowledge_id": "k", "top_k": [3, 5], "map_by": "doc_id"},
            "map_by doc_id needs map_field",
        ),
        (
            {"search_type": "dify", "url": "http://x", "knowledge_id": "k", "top_k": 3, "map_by": "vibes"},
            "map_by must be one of doc_id, file_name, span",
        ),
        (
            {
                "search_type": "http_json",
                "url": "http://x",
                "request": {"q": "{question}", "n": "{k}"},
                "results": "hits",
                "text": "t",
                "map_by": "span",
            },
            "uses '{k}', which params does not define",
        ),
        (
            {
                "search_type": "http_json",
                "url": "http://x",
                "request": {"q": "{question}"},
                "results": "hits",
                "text": "t",
                "map_by": "span",
                "headers": {"Authorization": "Bearer sk"},
            },
            "header Authorization: a header value is a secret",
        ),
        (
            {"search_type": "ragflow", "url": "http://x", "dataset_ids": ["d"], "api_key_env": "sk-123"},
            "api_key_env must be the NAME of an environment variable",
        ),
        ({"search_type": "imported", "path": "/nonexistent/run.trec"}, "run.trec: imported results file not found"),
    ],
)
def test_bad_external_entries_get_a_clear_message(entry, message):
    with pytest.raises(ConfigError) as error:
        parse_sweep({"configs": [entry]})
    assert message in str(error.value)


def test_bad_imported_files_name_file_and_line(tmp_path):
    (tmp_path / "bad.run").write_text("q1 Q0 d1 1 0.9 sys\nq1 Q0 d2 two 0.8 sys\n")
    (tmp_path / "bad.jsonl").write_text('{"question_id": "q1", "doc_ids": ["a"]}\n{"question_id": 3}\n')
    for name, message in (
        ("bad.run", "bad.run, line 2: rank must be a whole number"),
        ("bad.jsonl", "bad.jsonl, line 2, field 'question_id': each line needs a string"),
    ):
        with pytest.raises(LabError, match=message):
            parse_sweep({"configs": [{"search_type": "imported", "path": str(tmp_path / name)}]})


def test_two_services_of_one_kind_need_names_and_keys_must_be_set(monkeypatch):
    entry = {"search_type": "chatchat", "knowledge_base_name": "kb", "top_k": 3}
    with pytest.raises(ConfigError, match="two configs have the id 'chatchat-k3'"):
        parse_sweep({"configs": [{**entry, "url": "http://a"}, {**entry, "url": "http://b"}]})
    monkeypatch.delenv("RAGFLOW_API_KEY", raising=False)
    configs = parse_sweep({"configs": [{"search_type": "ragflow", "url": "http://x", "dataset_ids": ["d"]}]})
    with pytest.raises(ConfigError, match="needs its key in the environment variable RAGFLOW_API_KEY"):
        check_ready(configs)
    assert math.isclose(configs[0].params()["k"], 30)  # RAGFlow's default page_size


# ---------------------------------------------------------------- the CLI


def test_cli_run_mixes_local_and_external_configs_and_never_prints_a_key(
    tiny_index_store, tiny_dataset, tmp_path, capsys, monkeypatch
):
    questions = write_questions(tiny_dataset, tmp_path / "questions.jsonl")
    with RetrieverStubServer(tiny_index_store.open("tiny"), key=KEY) as server:
        spec = tmp_path / "sweep.yaml"
        spec.write_text(
            f"""configs:
  - {{search_type: similarity, k: 2}}
  - {{search_type: chatchat, url: "{server.url}", knowledge_base_name: samples, top_k: [2]}}
  - {{search_type: ragflow, url: "{server.url}", dataset_ids: [d], page_size: 2, similarity_threshold: 0.0,
      vector_similarity_weight: 1.0}}
  - {{search_type: ragflow, name: locked, url: "{server.url}", dataset_ids: [d], api_key_env: OTHER_KEY}}
""",
            encoding="utf-8",
        )
        monkeypatch.setenv("RAGFLOW_API_KEY", KEY)
        monkeypatch.setenv("OTHER_KEY", KEY[::-1])
        code = run_cli(
            tmp_path / "home", tiny_index_store, "tiny", questions, spec, "--concurrency", "2", "--latency-sample", "1"
        )
        assert server.most_in_flight <= 2
    out, err = capsys.readouterr()
    assert code == 0, err
    board = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert board["chatchat-k2"][:6] == board["similarity-k2"][:6]  # same chunks: same metrics (latency aside)
    assert board["ragflow-k2-t0-w1"][:6] == board["similarity-k2"][:6]
    assert "warning: locked-k30: 5 of 5 calls failed (not scored), e.g. RAGFlow error 109" in err
    written = [p.read_bytes() for p in (tmp_path / "home").rglob("*") if p.is_file()]
    for secret in (KEY, KEY[::-1]):
        assert secret not in out + err and not any(secret.encode() in data for data in written)


# ---------------------------------------------------------------- the dashboard


def test_compare_shows_external_and_local_configs_side_by_side(sample_index, sample_dataset, tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from eval.runs.summary import summarize

    monkeypatch.setenv("RAGFLOW_API_KEY", KEY)
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(tmp_path))
    store = RunStore(tmp_path / "runs")
    with RetrieverStubServer(sample_index, key=KEY) as stub:
        sweep = {
            "configs": [
                {"search_type": "similarity", "k": 5},
                {"search_type": "mmr", "k": 5, "fetch_k": 20, "lambda_mult": 0.5},
                {"search_type": "chatchat", "url": stub.url, "knowledge_base_name": "samples", "top_k": 5},
                {
                    "search_type": "ragflow",
                    "url": stub.url,
                    "dataset_ids": ["d"],
                    "page_size": 5,
                    "vector_similarity_weight": [1.0, 0.3],
                    "similarity_threshold": 0.0,
                },
                {
                    "search_type": "chatchat",
                    "name": "gone",
                    "url": "http://127.0.0.1:9",
                    "knowledge_base_name": "samples",
                    "top_k": 5,
                    "retries": 0,
                },
            ]
        }
        run_id = run_sweep(
            store,
            sample_index,
            parse_sweep(sweep),
            sample_dataset.questions[:8],
            "sample",
            SweepOptions(latency_sample=1),
        )
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.selectbox(key="compare-run").set_value(run_id).run()
    assert not at.exception, [e.value for e in at.exception]
    board = at.dataframe[0].value.set_index("config_id")
    summary = summarize(store.load(run_id)).set_index("config_id")
    assert (
        sorted(board.index)
        == sorted(summary.index)
        == sorted(
            ["similarity-k5", "mmr-k5-f20-l0.5", "chatchat-k5", "ragflow-k5-t0-w1", "ragflow-k5-t0-w0.3", "gone-k5"]
        )
    )
    for config_id in board.index:
        if config_id != "gone-k5":
            assert board.loc[config_id, "nDCG"].startswith(f"{summary.loc[config_id, 'ndcg_mean']:.3f}")
    assert board.loc["chatchat-k5", "nDCG"] == board.loc["similarity-k5", "nDCG"]  # the same chunks
    assert set(board["search_type"]) == {"similarity", "mmr", "chatchat", "ragflow"}
    assert set(at.multiselect(key="compare-types").options) == {"similarity", "mmr", "chatchat", "ragflow"}
    recorded = rows_of(store.load(run_id), "gone-k5")["call_error"].iloc[0]
    assert "cannot reach http://127.0.0.1:9" in recorded
    failed_call_warnings = [w.value for w in at.warning if "calls failed" in w.value]
    assert failed_call_warnings == [f"gone-k5: 8 calls failed and are not scored, e.g. {recorded}"]
    assert len(at.get("plotly_chart")) >= 4  # the charts draw external configs beside local ones
    at.multiselect(key="compare-types").set_value(["ragflow", "similarity"]).run()
    assert set(at.dataframe[0].value["config_id"]) == {"similarity-k5", "ragflow-k5-t0-w1", "ragflow-k5-t0-w0.3"}
    inspect = AppTest.from_file(APP, default_timeout=120)
    inspect.run()
    inspect.switch_page("dashboard/pages/inspect_question.py").run()
    inspect.selectbox(key="inspect-run").set_value(run_id).run()
    inspect.multiselect(key="inspect-configs").set_value(["chatchat-k5", "gone-k5"]).run()
    assert not inspect.exception, [e.value for e in inspect.exception]
    first = rows_of(store.load(run_id), "chatchat-k5").loc[inspect.selectbox(key="inspect-question").value]
    assert any(first["chunk_ids"][0] in c.value for c in inspect.code)  # the service's chunk, with its text
    text = (
        pd.read_parquet(store.folder(run_id) / "chunks.parquet")
        .set_index("chunk_id")
        .loc[first["chunk_ids"][0], "text"]
    )
    assert any(text.split()[0] in h.proto.body for h in inspect.get("html"))
    assert [w.value for w in inspect.warning if "call failed" in w.value] == [
        f"The call failed (not scored): {recorded}"
    ]


def test_a_failed_call_gets_no_generated_answer(sample_index, sample_dataset, tmp_path):
    class Recorder:
        deterministic = False

        def __init__(self):
            self.contexts = []

        def answer(self, question, chunk_texts, on_text):
            self.contexts.append(list(chunk_texts))
            return {"answer": f"from {len(chunk_texts)} chunks", "f1": 0.5}

        def describe(self):
            return {"model": "recorder"}

    answerer = Recorder()
    sweep = {
        "configs": [
            {"search_type": "similarity", "k": 2},
            {
                "search_type": "chatchat",
                "url": "http://127.0.0.1:9",
                "knowledge_base_name": "kb",
                "top_k": 2,
                "retries": 0,
            },
        ]
    }
    store = RunStore(tmp_path)
    run = store.load(
        run_sweep(
            store,
            sample_index,
            parse_sweep(sweep),
            sample_dataset.questions[:3],
            "sample",
            SweepOptions(latency_sample=0, answerer=answerer),
        )
    )
    assert len(answerer.contexts) == 3 and all(len(c) == 2 for c in answerer.contexts)
    failed = rows_of(run, "chatchat-k2")
    assert failed["call_error"].notna().all() and failed["answer"].isna().all() and failed["f1"].isna().all()
    assert rows_of(run, "similarity-k2")["answer"].eq("from 2 chunks").all()
