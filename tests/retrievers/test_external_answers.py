"""What external services answer that a score alone would hide, against the retriever stub server (a real HTTP
server on 127.0.0.1 answering from the real sample index): unusable Retry-After headers, more results than
asked for, chunks of no document, missing scores, repeated chunks, empty answers; and header secrets."""

import json

import pandas as pd
import pytest
from support.lab_cli import run_cli, write_questions
from support.retriever_stub_server import RetrieverStubServer, search_entry

from eval.analysis.diagnostics import run_warnings
from eval.errors import ConfigError
from eval.report.render import write_report
from eval.retrievers.external.config import check_ready
from eval.retrievers.registry import parse_sweep
from eval.runs.export import export_run
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

QUESTIONS = 4


def rows_of(run, config_id: str) -> pd.DataFrame:
    return run.rows[run.rows["config_id"] == config_id].set_index("question_id").sort_index()


def sweep_run(index, dataset, configs: list[dict], folder) -> object:
    store = RunStore(folder)
    run_id = run_sweep(
        store,
        index,
        parse_sweep({"configs": configs}),
        dataset.questions[:QUESTIONS],
        "sample",
        SweepOptions(latency_sample=0, external_concurrency=2),
    )
    return store.load(run_id)


def chatchat(name: str, url: str, **settings) -> dict:
    return {
        "search_type": "chatchat",
        "name": name,
        "url": url,
        "knowledge_base_name": "samples",
        "top_k": 3,
        "backoff": 0.01,
        **settings,
    }


# ---------------------------------------------------------------- Retry-After


@pytest.mark.parametrize("retry_after", ["-1", "nan", "inf", "soon", "Wed, 21 Oct 2015 07:28:00 GMT"])
def test_an_unusable_or_past_retry_after_is_retried_and_the_run_completes(
    retry_after, sample_index, sample_dataset, tmp_path
):
    """503 with a Retry-After `time.sleep` cannot take (or a date long past): the default backoff, then an answer."""
    with RetrieverStubServer(sample_index, mode="503", failures=2, retry_after=retry_after) as busy:
        run = sweep_run(
            sample_index, sample_dataset, [{"search_type": "similarity", "k": 3}, chatchat("busy", busy.url)], tmp_path
        )
    rows = rows_of(run, "busy-k3")
    assert run.status == "complete" and rows["call_error"].isna().all()
    assert rows["call_attempts"].sum() == QUESTIONS + 2  # two calls were told 503 once each
    assert rows["hit_rate"].tolist() == rows_of(run, "similarity-k3")["hit_rate"].tolist()


def test_a_service_that_stays_busy_with_a_bad_retry_after_is_a_call_error_on_its_rows(
    sample_index, sample_dataset, tmp_path
):
    with RetrieverStubServer(sample_index, mode="503", failures=10_000, retry_after="nan") as busy:
        run = sweep_run(
            sample_index,
            sample_dataset,
            [{"search_type": "similarity", "k": 3}, chatchat("busy", busy.url, retries=2)],
            tmp_path,
        )
    rows = rows_of(run, "busy-k3")
    assert run.status == "complete" and len(rows) == QUESTIONS
    assert (rows["call_error"] == 'HTTP 503: {"detail": "Busy"} (after 3 attempts)').all()
    assert (rows["call_attempts"] == 3).all() and rows["ndcg"].isna().all()
    assert rows_of(run, "similarity-k3")["ndcg"].notna().all()


# ---------------------------------------------------------------- answers the scores cannot show


@pytest.fixture(scope="module")
def odd_answers(sample_index, sample_dataset, tmp_path_factory):
    """One run of services that each answer oddly: every chunk of the index for top_k 5; a map_field that names
    nothing; a score path that names nothing; chunk ids read from the document field (so two chunks of one
    document share an id); a knowledge base the service does not have (an empty answer)."""
    with RetrieverStubServer(sample_index, mode="all") as flood, RetrieverStubServer(sample_index) as stub:
        run = sweep_run(
            sample_index,
            sample_dataset,
            [
                {"search_type": "similarity", "k": 5},
                chatchat("flood", flood.url, top_k=5),
                search_entry(stub.url, name="nomap", map_field="meta.nope"),
                search_entry(stub.url, name="noscore", score="meta.nope"),
                search_entry(stub.url, name="docids", id="meta.doc"),
                chatchat("empty", stub.url, knowledge_base_name="absent"),
            ],
            tmp_path_factory.mktemp("odd-answers"),
        )
    return run


def test_results_beyond_k_are_dropped_before_scoring(odd_answers, sample_index):
    flood, local = rows_of(odd_answers, "flood-k5"), rows_of(odd_answers, "similarity-k5")
    assert (flood["n_retrieved"] == 5).all() and flood["chunk_ids"].map(len).eq(5).all()
    assert (
        flood["chunk_ids"].map(lambda ids: [i.removeprefix("flood:") for i in ids]).tolist()
        == local["chunk_ids"].map(list).tolist()
    )  # the service's first five: what similarity-k5 retrieves
    for metric in ("hit_rate", "recall", "mrr", "ndcg", "precision"):
        assert flood[metric].tolist() == local[metric].tolist(), metric
    assert (flood["dropped"] == sample_index.manifest.chunks - 5).all()


def test_each_odd_answer_is_one_warning_for_its_config(odd_answers, sample_index):
    extra = sample_index.manifest.chunks - 5
    expected = [
        f"flood-k5: the service returned more than the k of 5 it was asked for on {QUESTIONS} of {QUESTIONS} "
        f"questions; the {QUESTIONS * extra} results beyond k were dropped (each question is scored on its "
        "first k)",
        f"nomap-top_k5: {QUESTIONS * 5} returned chunks on {QUESTIONS} of {QUESTIONS} questions match no document "
        "of the index and count as not relevant: check map_by and map_field",
        f"noscore-top_k5: {QUESTIONS * 5} returned chunks on {QUESTIONS} of {QUESTIONS} questions have no numeric "
        "score (kept in the service's order, score NaN): check the score path",
        f"empty-k3: the service returned nothing for any of the {QUESTIONS} questions it answered",
    ]
    warnings = run_warnings(odd_answers)
    for warning in expected:
        assert warnings.count(warning) == 1, (warning, warnings)
    repeated = [w for w in warnings if w.startswith("docids-top_k5: the service returned the same chunk twice in ")]
    assert len(repeated) == 1, warnings
    docids = rows_of(odd_answers, "docids-top_k5")
    repeats = docids["chunk_ids"].map(lambda ids: len(ids) - len(set(ids)))
    assert repeats.sum() > 0 and docids["repeated"].tolist() == repeats.tolist()
    assert repeated[0] == (
        f"docids-top_k5: the service returned the same chunk twice in {(repeats > 0).sum()} of "
        f"{QUESTIONS} answers ({repeats.sum()} repeats); they are scored as returned"
    )
    assert not [w for w in warnings if w.startswith("similarity-k5")]


def test_a_well_behaved_service_gets_no_warning(odd_answers):
    assert rows_of(odd_answers, "nomap-top_k5")[["dropped", "unscored", "repeated"]].eq(0).all().all()
    assert rows_of(odd_answers, "flood-k5")[["unmapped", "unscored", "repeated"]].eq(0).all().all()


def test_cli_run_prints_each_warning_once_on_stderr(tiny_index_store, tiny_dataset, tmp_path, capsys):
    index = tiny_index_store.open("tiny")
    with RetrieverStubServer(index, mode="all") as flood:
        spec = tmp_path / "sweep.yaml"
        spec.write_text(
            f"configs:\n  - {{search_type: similarity, k: 2}}\n"
            f"  - {{search_type: chatchat, name: flood, url: '{flood.url}', knowledge_base_name: samples,"
            f" top_k: 2}}\n",
            encoding="utf-8",
        )
        code = run_cli(
            tmp_path / "home",
            tiny_index_store,
            "tiny",
            write_questions(tiny_dataset, tmp_path / "q.jsonl"),
            spec,
            "--latency-sample",
            "0",
        )
    out, err = capsys.readouterr()
    assert code == 0, err
    questions, extra = len(tiny_dataset.questions), index.manifest.chunks - 2
    assert [line for line in err.splitlines() if line.startswith("warning: ")] == [
        f"warning: flood-k2: the service returned more than the k of 2 it was asked for on {questions} of "
        f"{questions} questions; the {questions * extra} results beyond k were dropped (each question is scored "
        "on its first k)"
    ]
    board = {line.split()[0]: line.split()[1:] for line in out.splitlines()[2:]}
    assert board["flood-k2"][:4] == board["similarity-k2"][:4]  # scored on the same two chunks


# ---------------------------------------------------------------- header secrets

SECRET = "hdr-secret-4c9e1f7a2b"  # a recognisable value: it must never appear in anything written or printed


def test_header_values_are_secrets_unless_declared(monkeypatch):
    base = {
        "search_type": "http_json",
        "url": "http://127.0.0.1:9/search",
        "request": {"q": "{question}"},
        "results": "hits",
        "text": "t",
        "map_by": "span",
    }
    for headers, message in (
        (
            {"X-Api-Key": SECRET},
            "header X-Api-Key: a header value is a secret unless declared otherwise: write "
            "{env: VARIABLE} (read from the environment, never stored) or {value: ...}",
        ),
        ({"X-Api-Key": {"env": SECRET}}, "header X-Api-Key: a header value is a secret unless declared otherwise"),
        ({"Authorization": {"value": SECRET}}, "header Authorization is a secret: write {env: VARIABLE}"),
    ):
        with pytest.raises(ConfigError) as error:
            parse_sweep({"configs": [{**base, "headers": headers}]})
        assert message in str(error.value) and SECRET not in str(error.value)
    with pytest.raises(ConfigError) as error:
        parse_sweep({"configs": [{**base, "api_key_env": "sk_live_" + SECRET.replace("-", "_") + "!"}]})
    assert "api_key_env must be the NAME of an environment variable" in str(error.value)
    assert SECRET.replace("-", "_") not in str(error.value)
    monkeypatch.delenv("SEARCH_KEY", raising=False)
    configs = parse_sweep({"configs": [{**base, "headers": {"X-Api-Key": {"env": "SEARCH_KEY"}}}]})
    with pytest.raises(ConfigError, match="needs header X-Api-Key in the environment variable SEARCH_KEY"):
        check_ready(configs)


def test_an_env_header_is_sent_but_never_stored_printed_or_exported(
    tiny_index_store, tiny_dataset, tmp_path, capsys, monkeypatch
):
    questions = write_questions(tiny_dataset, tmp_path / "questions.jsonl")
    index = tiny_index_store.open("tiny")
    headers = {"X-Api-Key": {"env": "SEARCH_KEY"}, "X-Tenant": {"value": "team-a"}}
    with RetrieverStubServer(index) as stub, RetrieverStubServer(index, mode="500") as down:
        entries = [
            search_entry(server.url, name=name, params={"top_k": 2}, retries=0, headers=headers)
            for server, name in ((stub, "search"), (down, "down"))
        ]
        spec = tmp_path / "sweep.yaml"
        spec.write_text(json.dumps({"configs": entries}), encoding="utf-8")  # JSON is YAML
        monkeypatch.setenv("SEARCH_KEY", SECRET)
        home = tmp_path / "home"
        code = run_cli(home, tiny_index_store, "tiny", questions, spec, "--latency-sample", "0")
    out, err = capsys.readouterr()
    assert code == 0, err
    run_store = RunStore(home / "runs")
    run = run_store.load(run_store.list()[0]["run_id"])
    down_errors = rows_of(run, "down-top_k2")["call_error"]
    # the down server echoed both X- headers: the secret was sent, and scrubbed; the declared value was kept
    assert down_errors.str.contains("(None, ***, team-a)", regex=False).all(), down_errors.tolist()
    assert rows_of(run, "search-top_k2")["call_error"].isna().all()
    stored = {c["config_id"]: c["headers"] for c in run.manifest["sweep"]["configs"]}
    assert stored["search-top_k2"] == {"X-Api-Key": {"env": "SEARCH_KEY"}, "X-Tenant": {"value": "team-a"}}
    for fmt in ("csv", "jsonl", "parquet", "trec"):
        export_run(run, fmt, tmp_path / "exports" / f"export.{fmt}")
    for fmt in ("html", "md"):
        write_report(run, tmp_path / "exports" / f"report.{fmt}", fmt)
    written = [p for folder in (home, tmp_path / "exports") for p in folder.rglob("*") if p.is_file()]
    assert len(written) > 8 and SECRET not in out + err
    for path in written:
        assert SECRET.encode() not in path.read_bytes(), path
