"""The dashboard driven offline with streamlit.testing.v1.AppTest, against a temporary data folder."""

import io
import json
import shutil
import zipfile
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.dashboard_lab import SWEEP

from eval import SAMPLE_DIR
from eval.analysis.recommend import ranking_metric
from eval.data.datasets import load_question_set
from eval.index.store import IndexStore
from eval.jobs.store import JobStore
from eval.metrics import METRICS
from eval.report.render import leaderboard_frame
from eval.retrievers.grid import grid_configs
from eval.retrievers.registry import parse_sweep
from eval.retrievers.vector import SEARCH_TYPES
from eval.runs.store import RunStore
from eval.runs.summary import quality_metrics, summarize
from eval.sweep.engine import SweepOptions, run_sweep
from eval.text import cjk_share

PAGES = {
    "dashboard/pages/indexes.py": "Indexes",
    "dashboard/pages/questions.py": "Question sets",
    "dashboard/pages/sweep.py": "Run a sweep",
    "dashboard/pages/compare.py": "Compare configurations",
    "dashboard/pages/inspect_question.py": "Inspect a question",
    "dashboard/pages/reports.py": "Reports and exports",
    "dashboard/pages/labels.py": "Labels",
}


def finish_job(at: AppTest, home: Path) -> None:
    """Wait for the job the page just started (the newest), then rerun the page."""
    newest = JobStore(home).list()[0]
    assert JobStore(home).wait(newest.job_id, timeout=300).status in ("done", "failed")
    at.run()


def problems(at: AppTest) -> list:
    return [(e.value, e.stack_trace) for e in at.exception]


def shown_leaderboard(at: AppTest) -> list[dict]:
    return at.dataframe[0].value.to_dict("records")  # the first table on the page


def expected_leaderboard(at: AppTest, run, baseline: str | None = None) -> list[dict]:
    """The leaderboard the engine makes for the metrics the page has selected (computed here, not stored)."""
    metrics = at.multiselect(key="compare-metrics").value
    summary = summarize(run, baseline, quality_metrics(run.rows))
    return leaderboard_frame(summary, metrics, sort_by=ranking_metric(quality_metrics(run.rows))).to_dict("records")


def page_shows_the_lab(at: AppTest, page: str, dashboard_lab: dict) -> None:
    """What each page shows first, against the lab's data folder."""
    runs = RunStore(dashboard_lab["home"] / "runs")
    if page == "dashboard/pages/indexes.py":
        (index,) = IndexStore(dashboard_lab["home"] / "indexes").list()
        table = at.dataframe[0].value
        assert table[["name", "chunks"]].values.tolist() == [[index.name, index.chunks]]
    elif page == "dashboard/pages/questions.py":  # the bundled sample is the default choice
        assert at.metric[0].value == str(len(load_question_set(SAMPLE_DIR)))
    elif page == "dashboard/pages/sweep.py":  # the default grid
        values = {
            key: [float(v) for v in at.text_input(key=key).value.split(",")]
            for key in ("grid-k", "grid-fetch", "grid-lambda", "grid-threshold")
        }
        configs = grid_configs(
            SEARCH_TYPES,
            [int(k) for k in values["grid-k"]],
            [int(f) for f in values["grid-fetch"]],
            values["grid-lambda"],
            values["grid-threshold"],
        )
        # the tiny index is not the sample's documents: no question set is offered until one is chosen
        assert f"**{len(configs)} configurations** × **0 questions**" in at.info[0].value
    elif page == "dashboard/pages/compare.py":
        run = runs.load(at.selectbox(key="compare-run").value)
        assert shown_leaderboard(at) == expected_leaderboard(at, run)
    elif page == "dashboard/pages/inspect_question.py":
        run = runs.load(at.selectbox(key="inspect-run").value)
        assert [s.value for s in at.subheader] == [c["config_id"] for c in run.configs[:2]]
    elif page == "dashboard/pages/labels.py":  # each tab on the newest run, whose question set has no label file yet
        expected = f"Labels file: `{dashboard_lab['data'] / 'questions.labels.jsonl'}`"
        assert [c.value for c in at.caption].count(expected) == 3  # the decide, judge and agreement tabs
        assert any("Only gold labels so far" in i.value for i in at.info)
    else:
        assert sorted(at.dataframe[-1].value["run_id"]) == sorted(m["run_id"] for m in runs.list())


@pytest.mark.parametrize("page", list(PAGES))
def test_every_page_loads(app, dashboard_lab, page):
    at = app(page)
    assert at.title[0].value == PAGES[page]
    assert not at.error
    page_shows_the_lab(at, page, dashboard_lab)


def test_indexes_build_browse_calibrate_delete(app, dashboard_lab):
    at = app("dashboard/pages/indexes.py")
    at.radio(key="index-source").set_value("Folder or file path").run()
    at.text_input(key="index-path").set_value(str(dashboard_lab["data"]))
    at.text_input(key="index-name").set_value("built")
    at.selectbox(key="embedding-model").set_value("onnx:minilm")  # minilm's vectors, faster (the default is e5's)
    at.number_input(key="chunk-size").set_value(150)
    at.number_input(key="chunk-overlap").set_value(10)
    at.button(key="build").click().run()
    assert not problems(at) and not at.error, [e.value for e in at.error]
    assert "Building index 'built' in the background" in at.success[0].value
    finish_job(at, dashboard_lab["home"])
    assert "built" in at.dataframe[0].value["name"].tolist()
    at.selectbox(key="browse-index").set_value("built").run()
    chunks = at.dataframe[1].value
    assert len(chunks) > 0 and set(chunks["doc_id"]) <= {d for d in json_ids(dashboard_lab["data"])}

    built = IndexStore(dashboard_lab["home"] / "indexes").manifest("built")
    assert built.source == str(dashboard_lab["data"].absolute()) and built.embedding_model == "onnx:minilm"
    at.selectbox(key="cal-index").set_value("built").run()  # its own question set is the default
    assert at.radio(key="cal-source").value == "Folder or file path"
    assert at.text_input(key="cal-path").value == str(dashboard_lab["data"].absolute())
    at.number_input(key="cal-top").set_value(5)
    at.button(key="calibrate").click().run()
    assert not problems(at) and not at.error, [e.value for e in at.error]
    assert "Suggested score_threshold range" in at.success[0].value
    assert at.get("plotly_chart")

    at.selectbox(key="delete-index").set_value("built").run()
    assert at.button(key="delete").disabled
    at.checkbox(key="delete-confirm").check().run()
    at.button(key="delete").click().run()
    assert not problems(at)
    assert "built" not in [m.name for m in IndexStore(dashboard_lab["home"] / "indexes").list()]


def json_ids(folder: Path) -> list[str]:
    return [json.loads(line)["id"] for line in (folder / "corpus.jsonl").read_text(encoding="utf-8").splitlines()]


def test_indexes_bad_inputs_show_errors(app, dashboard_lab, tmp_path):
    at = app("dashboard/pages/indexes.py")
    at.radio(key="index-source").set_value("Folder or file path").run()
    at.text_input(key="index-path").set_value(str(tmp_path / "missing")).run()
    at.button(key="build").click().run()
    assert not problems(at)
    assert "no such file or folder" in at.error[0].value
    # an upload with a bad line is reported with its file and line
    at.radio(key="index-source").set_value("Upload files").run()
    at.file_uploader(key="index-upload").set_value(
        ("corpus.jsonl", b'{"id": "a", "text": "fine"}\n{oops\n', "application/json")
    ).run()
    at.button(key="build").click().run()
    assert not problems(at)
    assert any("corpus.jsonl" in e.value and "line 2" in e.value for e in at.error), [e.value for e in at.error]


def test_questions_page_preview_and_errors(app, dashboard_lab, tmp_path):
    at = app("dashboard/pages/questions.py")
    at.radio(key="questions-source").set_value("Folder or file path").run()
    at.text_input(key="questions-path").set_value(str(dashboard_lab["data"] / "questions.jsonl")).run()
    assert not at.error and not problems(at)
    questions = load_question_set(dashboard_lab["data"] / "questions.jsonl")
    assert at.metric[0].value == str(len(questions))
    # one question in five is Chinese: a CJK share between the "mixed" floor (5%) and the Chinese one
    share = cjk_share(" ".join(q.question for q in questions))
    assert 0.05 <= share < 0.25 and at.metric[1].value == "mixed"
    assert len(at.dataframe[0].value) == 5
    bad = tmp_path / "questions.jsonl"
    bad.write_text('{"id": "q1", "question": "ok"}\n{"id": "q2"}\n', encoding="utf-8")
    at.text_input(key="questions-path").set_value(str(bad)).run()
    assert "questions.jsonl" in at.error[0].value and "line 2" in at.error[0].value


def test_sweep_page_runs_a_grid(app, dashboard_lab, tiny_dataset):
    at = app("dashboard/pages/sweep.py")
    at.selectbox(key="sweep-index").set_value("tiny")
    at.radio(key="sweep-questions-source").set_value("Folder or file path").run()
    at.text_input(key="sweep-questions-path").set_value(str(dashboard_lab["data"]))
    at.multiselect(key="grid-types").set_value(["similarity", "mmr"])
    at.text_input(key="grid-k").set_value("2, 3")
    at.text_input(key="grid-fetch").set_value("4")
    at.text_input(key="grid-lambda").set_value("0.5")
    at.number_input(key="grid-latency").set_value(1)
    at.text_area(key="grid-filter").set_value("{not json").run()
    assert "not valid JSON" in at.error[0].value
    at.text_area(key="grid-filter").set_value('{"lang": "en"}').run()
    assert not at.error
    assert "**4 configurations** × **5 questions** = **20 rows**" in at.info[0].value
    before = {m["run_id"] for m in RunStore(dashboard_lab["home"] / "runs").list()}
    at.button(key="start").click().run()
    assert not problems(at) and not at.error, [e.value for e in at.error]
    assert "it runs in the background" in at.success[0].value
    finish_job(at, dashboard_lab["home"])
    new = [m for m in RunStore(dashboard_lab["home"] / "runs").list() if m["run_id"] not in before]
    assert len(new) == 1 and new[0]["status"] == "complete" and len(new[0]["sweep"]["configs"]) == 4
    # the filter reached every configuration and every retrieved chunk
    assert all(c["filter"] == {"lang": "en"} for c in new[0]["sweep"]["configs"])
    rows = RunStore(dashboard_lab["home"] / "runs").load(new[0]["run_id"]).rows
    english = {d.id for d in tiny_dataset.corpus if d.metadata["lang"] == "en"}
    assert rows.doc_ids.map(len).sum() > 0 and set().union(*rows.doc_ids.map(set)) <= english


def test_compare_shows_leaderboard_and_filters(app, dashboard_lab):
    at = app("dashboard/pages/compare.py")
    at.selectbox(key="compare-run").set_value(dashboard_lab["run_id"]).run()
    run = RunStore(dashboard_lab["home"] / "runs").load(dashboard_lab["run_id"])
    board = at.dataframe[0].value
    summary = summarize(run)
    assert sorted(board["config_id"]) == sorted(summary["config_id"])
    for row in board.itertuples():
        expected = summary.set_index("config_id").loc[row.config_id, "ndcg_mean"]
        assert row.nDCG.startswith(f"{expected:.3f}")
    assert shown_leaderboard(at) == expected_leaderboard(at, run)
    assert set(board.loc[board.search_type == "similarity", "fetch_k"]) == {""}  # not "nan", "None" or "-"
    # on screen: the config id, the chosen metrics, latency; the parameter columns only on request
    labels = [METRICS[m].label for m in at.multiselect(key="compare-metrics").value]
    assert list(at.dataframe[0].proto.column_order) == ["config_id", *labels, "retrieval_ms_p50", "retrieval_ms_p95"]
    at.toggle(key="leaderboard-parameters").set_value(True).run()
    assert {"search_type", "k", "fetch_k", "lambda_mult"} <= set(at.dataframe[0].proto.column_order)
    at.toggle(key="leaderboard-parameters").set_value(False).run()
    assert len(at.get("plotly_chart")) >= 4
    at.selectbox(key="compare-baseline").set_value("similarity-k2").run()
    assert not problems(at)
    assert shown_leaderboard(at) == expected_leaderboard(at, run, "similarity-k2")
    assert any("significantly different from similarity-k2" in c.value for c in at.caption)
    at.multiselect(key="compare-types").set_value(["mmr"]).run()
    assert set(at.dataframe[0].value["search_type"]) == {"mmr"}


def test_inspect_shows_chunks_side_by_side(app, dashboard_lab):
    at = app("dashboard/pages/inspect_question.py")
    at.selectbox(key="inspect-run").set_value(dashboard_lab["run_id"]).run()
    at.selectbox(key="inspect-question").set_value("q3").run()
    at.multiselect(key="inspect-configs").set_value(["similarity-k2", "mmr-k2-f6-l0.5"]).run()
    assert not problems(at)
    assert [s.value for s in at.subheader][:2] == ["similarity-k2", "mmr-k2-f6-l0.5"]
    text = "\n".join(m.value for m in [*at.markdown, *at.get("html")])
    assert "Which distance space keeps scores between zero and one?" in text
    assert "<mark>cosine</mark>" in text  # the gold answer is highlighted inside the chunk text
    assert "● relevant" in text and "✅" not in text


def test_reports_download_and_history(app, dashboard_lab, tiny_dataset):
    at = app("dashboard/pages/reports.py")
    at.selectbox(key="report-run").set_value(dashboard_lab["run_id"]).run()
    at.button(key="build-html").click().run()
    assert not problems(at)
    assert at.download_button(key="dl-html").label == "Download HTML report"
    run_id, data = at.session_state["report-html"]
    assert run_id == dashboard_lab["run_id"] and data.startswith(b"<!DOCTYPE html>") and b"Plotly.newPlot" in data
    at.button(key="build-md").click().run()
    assert at.session_state["report-md"][1].startswith(b"# Retriever Lab report")
    at.selectbox(key="export-format").set_value("jsonl").run()
    at.button(key="export").click().run()
    assert not problems(at)
    records = at.session_state["export-data"][2].decode().splitlines()
    assert len(records) == 5 * len(parse_sweep(SWEEP))
    at.selectbox(key="export-format").set_value("trec").run()
    at.button(key="export").click().run()
    assert not problems(at)
    _, _, data, file_name = at.session_state["export-data"]
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        qrels = archive.read("qrels.txt").decode().splitlines()
    assert file_name == f"{dashboard_lab['run_id']}-trec.zip"
    assert qrels and sorted(qrels) == sorted(f"{q.id} 0 {d} 1" for q in tiny_dataset.questions for d in q.relevant_ids)
    assert dashboard_lab["run_id"] in at.dataframe[-1].value["run_id"].tolist()


def test_sweep_page_resumes_a_cancelled_run(app, dashboard_lab, tiny_dataset):
    import threading

    from eval.sweep.engine import SweepCancelled

    runs = RunStore(dashboard_lab["home"] / "runs")
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(SweepCancelled):
        run_sweep(
            runs,
            IndexStore(dashboard_lab["home"] / "indexes").open("tiny"),
            parse_sweep(SWEEP)[:2],
            tiny_dataset.questions,
            str(dashboard_lab["data"]),
            SweepOptions(latency_sample=1, cancel=cancel),
        )
    cancelled = next(m["run_id"] for m in runs.list() if m["status"] == "cancelled")
    at = app("dashboard/pages/sweep.py")
    at.button(key=f"resume-{cancelled}").click().run()
    assert not problems(at) and not at.error, [e.value for e in at.error]
    finish_job(at, dashboard_lab["home"])
    assert runs.manifest(cancelled)["status"] == "complete"
    assert len(runs.load(cancelled).rows) == 2 * len(tiny_dataset.questions)


@pytest.mark.slow  # two sweep jobs, each a process of its own
def test_sweep_page_streams_answers(app, dashboard_lab):
    from support.openai_stub_server import OpenAIStubServer

    at = app("dashboard/pages/sweep.py")
    at.selectbox(key="sweep-index").set_value("tiny")
    at.radio(key="sweep-questions-source").set_value("Folder or file path").run()
    at.text_input(key="sweep-questions-path").set_value(str(dashboard_lab["data"]))
    at.multiselect(key="grid-types").set_value(["similarity"])
    at.text_input(key="grid-k").set_value("2")
    at.number_input(key="grid-latency").set_value(0)
    at.toggle(key="gen-on").set_value(True).run()
    with OpenAIStubServer() as server:
        at.text_input(key="gen-llm").set_value(f"openai:stub@{server.base_url}")
        before = {m["run_id"] for m in RunStore(dashboard_lab["home"] / "runs").list()}
        at.button(key="start").click().run()
        assert not problems(at) and not at.error, [e.value for e in at.error]
        finish_job(at, dashboard_lab["home"])
    (new,) = [m for m in RunStore(dashboard_lab["home"] / "runs").list() if m["run_id"] not in before]
    run = RunStore(dashboard_lab["home"] / "runs").load(new["run_id"])
    rows = run.rows
    assert rows.answer.str.startswith("Answer: ").all() and len(server.requests) == len(rows)
    # the stub echoes the prompt: each row's retrieved chunk texts reached it, in rank order
    texts = run.chunk_texts
    for row in rows.itertuples():
        places = [row.answer.find(texts[chunk_id].strip()) for chunk_id in row.chunk_ids]
        assert places and -1 not in places and places == sorted(places), (row.question_id, row.config_id)
    assert any(t.value.startswith("Answer: ") for t in at.text)  # the last answer, streamed into the page
    at.text_input(key="gen-llm").set_value("openai:stub@not-a-url")
    at.button(key="start").click().run()
    finish_job(at, dashboard_lab["home"])  # the job fails, and the page says why
    assert "bad model spec" in at.error[0].value


def test_compare_page_handles_a_run_without_latency(app, dashboard_lab, tiny_index_store, tiny_dataset):
    store = RunStore(dashboard_lab["home"] / "runs")
    run_id = run_sweep(
        store,
        IndexStore(dashboard_lab["home"] / "indexes").open("tiny"),
        parse_sweep(SWEEP),
        tiny_dataset.questions,
        "tiny",
        SweepOptions(latency_sample=0),
    )
    at = app("dashboard/pages/compare.py")
    at.selectbox(key="compare-run").set_value(run_id).run()
    assert not problems(at)
    board = shown_leaderboard(at)
    assert board == expected_leaderboard(at, store.load(run_id))
    assert not any(column.startswith("retrieval_ms") for column in board[0])
    assert "This run has no latency samples (latency sample 0)." in [i.value for i in at.info]


def test_sidebar_shows_jobs_with_progress_cancel_resume_and_a_link_to_compare(app, dashboard_lab, tmp_path):
    """The sidebar of every page lists the jobs from the store: a running one with its progress and ETA and a
    working Cancel, an interrupted one with a working Resume, a finished sweep with a link to its run."""
    import subprocess
    import sys

    from eval.jobs.store import Job, now_text, process_start

    store = JobStore(dashboard_lab["home"])
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running = Job(
            "20261127-100000-aaaaaa",
            "sweep",
            "sweep on 'tiny'",
            ["run"],
            "running",
            now_text(),
            now_text(),
            pid=sleeper.pid,
            pid_started=process_start(sleeper.pid),
        )
        lost = Job(
            "20261127-100001-bbbbbb",
            "sweep",
            "sweep on 'gone'",
            ["run", "--index", "gone", "--questions", str(dashboard_lab["data"])],
            "interrupted",
            now_text(),
            now_text(),
            attempts=1,
        )
        done = Job(
            "20261127-100002-cccccc",
            "sweep",
            "sweep on 'tiny'",
            ["run"],
            "done",
            now_text(),
            now_text(),
            run_id=dashboard_lab["run_id"],
        )
        for job in (running, lost, done):
            store._write(job)
        store._write_json(
            store.root / running.job_id / "progress.json",
            {"stage": "answers", "done": 30, "total": 120, "rate": 1.5, "eta_seconds": 60.0},
        )
        for page in ("dashboard/pages/inspect_question.py", "dashboard/pages/indexes.py"):  # any page
            at = app(page)
            bars = [p for p in at.sidebar.get("progress") if "answers 30/120" in p.proto.text]
            assert len(bars) == 1 and bars[0].proto.text == "answers 30/120 · 1.5/s · ETA 1 min 0 s"
            assert bars[0].proto.value == 25
        at.sidebar.button(key=f"job-cancel-side-{running.job_id}").click().run()
        assert store.cancel_requested(running.job_id)
        assert any("Cancelling" in c.value for c in at.sidebar.caption)

        at.sidebar.button(key=f"job-resume-side-{lost.job_id}").click().run()
        assert store.get(lost.job_id).status == "queued"  # the running job holds the only slot
        sleeper.kill()  # the running job's process dies: it is interrupted, and the queued one starts
        sleeper.wait()
        resumed = store.wait(lost.job_id, timeout=300)
        assert resumed.attempts == 2 and resumed.error.startswith("no index named 'gone'")
        assert store.get(running.job_id).status == "interrupted"

        at.sidebar.button(key=f"job-open-side-{done.job_id}").click().run()
        assert at.title[0].value == "Compare configurations"
        assert at.selectbox(key="compare-run").value == dashboard_lab["run_id"]
    finally:
        sleeper.kill()
        sleeper.wait()
        for job in (running, lost, done):
            shutil.rmtree(store.root / job.job_id, ignore_errors=True)


def test_the_sweep_page_keeps_the_picked_question_set_across_pages(app, dashboard_lab):
    at = app("dashboard/pages/sweep.py")
    at.radio(key="sweep-questions-source").set_value("Folder or file path").run()
    at.text_input(key="sweep-questions-path").set_value(str(dashboard_lab["data"])).run()
    at.switch_page("dashboard/pages/compare.py").run()
    at.switch_page("dashboard/pages/reports.py").run()
    at.switch_page("dashboard/pages/sweep.py").run()
    assert not problems(at)
    assert at.radio(key="sweep-questions-source").value == "Folder or file path"
    assert at.text_input(key="sweep-questions-path").value == str(dashboard_lab["data"])
