"""The Labels page and the label-source choice on Compare, driven with AppTest against a real tiny index and run,
with the rule-following stub LLM behind an OpenAI-compatible endpoint."""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest
from support.dashboard_lab import home_with_a_run, page_opener, run_on_a_coarser_index
from support.lab_llm_responder import respond
from support.openai_stub_server import OpenAIStubServer

from eval.data.datasets import load_question_set
from eval.data.labels import label_path, load_labels
from eval.index.store import IndexStore
from eval.jobs.store import JobStore
from eval.labels.agreement import agreement
from eval.labels.pooled_judging import blind_order, chunk_judgements, judge_run, pool
from eval.labels.rescore import LABEL_METRICS, rescore
from eval.runs.store import RunStore
from eval.runs.summary import quality_metrics, summarize

SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [3]},
        {"search_type": "mmr", "k": [3], "fetch_k": [6], "lambda_mult": [0.5]},
    ]
}


@pytest.fixture(scope="module")
def labels_page_lab(tmp_path_factory, tiny_dataset):
    made = home_with_a_run(tmp_path_factory, tiny_dataset, SWEEP, latency_sample=0, source_is_file=True)
    home, run = made["home"], RunStore(made["home"] / "runs").load(made["run_id"])
    with OpenAIStubServer(responder=respond) as server:
        yield {"home": home, "data": made["data"], "run": run, "llm": f"openai:lab@{server.base_url}"}


@pytest.fixture
def page(labels_page_lab, monkeypatch):
    return page_opener(labels_page_lab["home"], monkeypatch)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def finished_job(labels_page_lab):
    """The newest job of the lab, once it has ended."""
    store = JobStore(labels_page_lab["home"])
    return store.wait(store.list()[0].job_id, timeout=600), store


@pytest.fixture(scope="module")
def llm_labels(labels_page_lab):
    """The run's pool (depth 3) judged by the stub, through the engine."""
    from eval.generation.generators import load_generator

    report = judge_run(
        labels_page_lab["run"],
        load_generator(labels_page_lab["llm"]),
        labels_page_lab["home"],
        depth=3,
        labels_file=label_path(labels_page_lab["data"] / "questions.jsonl"),
    )
    return report.source


def test_judging_from_the_page_runs_a_job_that_saves_the_pool_as_llm_labels(page, labels_page_lab):
    at = page("dashboard/pages/labels.py")
    at.text_input(key="judge-llm").input(labels_page_lab["llm"])
    at.number_input(key="judge-depth").set_value(2)
    button(at, "Judge the pool").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("runs in the background" in s.value for s in at.success)
    job, store = finished_job(labels_page_lab)
    assert job.status == "done" and job.kind == "judge", store.log_tail(job.job_id)
    run = labels_page_lab["run"]  # its pool, from the rows: every config's top 2 chunks per question, each pair once
    chunks = pd.read_parquet(run.folder / "chunks.parquet").set_index("chunk_id")
    expected = {
        (
            question_id,
            chunks.loc[c, "doc_id"],
            int(chunks.loc[c, "start"]),
            int(chunks.loc[c, "start"]) + len(chunks.loc[c, "text"]),
        )
        for question_id, chunk_ids in zip(run.rows["question_id"], run.rows["chunk_ids"])
        for c in list(chunk_ids)[:2]
    }
    assert any(f"pool of {len(expected)} (question, chunk) pairs" in line for line in store.log_tail(job.job_id))
    labels_file = label_path(labels_page_lab["data"] / "questions.jsonl")
    assert "llm:lab@judge-v1" in load_labels(labels_file).sources
    saved = chunk_judgements(labels_file, "llm:lab@judge-v1")  # the first judging of this lab (tests run in order)
    assert {key[:4] for key in saved} == expected and len(saved) == len(expected)


def test_labelling_by_hand_saves_undoes_and_skips(page, labels_page_lab):
    at = page("dashboard/pages/labels.py")
    at.text_input(key="label-name").input("ann").run()
    at.number_input(key="label-depth").set_value(2).run()
    labels_file = label_path(labels_page_lab["data"] / "questions.jsonl")
    items = blind_order(pool(labels_page_lab["run"], 2))
    question = labels_page_lab["run"].questions_by_id[items[0].question_id].question
    assert question in [h.value for h in at.subheader]
    assert items[0].text in [t.value for t in at.text]
    assert any(f"0 of {len(items)} chunks" in p.proto.text for p in at.get("progress"))  # nothing judged yet

    at.button(key="grade-2").click().run()
    judged = chunk_judgements(labels_file, "human:ann")
    assert judged == {(items[0].question_id, items[0].doc_id, items[0].start, items[0].end, "human:ann"): 2}
    assert items[1].text in [t.value for t in at.text]  # the next pooled chunk
    assert any(f"1 of {len(items)} chunks" in p.proto.text for p in at.get("progress"))

    at.button(key="label-undo-button").click().run()
    assert chunk_judgements(labels_file, "human:ann") == {}
    assert items[0].text in [t.value for t in at.text]

    at.button(key="label-skip").click().run()
    assert items[1].text in [t.value for t in at.text] and items[0].text not in [t.value for t in at.text]
    at.button(key="grade-0").click().run()
    assert chunk_judgements(labels_file, "human:ann") == {
        (items[1].question_id, items[1].doc_id, items[1].start, items[1].end, "human:ann"): 0
    }


def test_agreement_tab_shows_the_engines_kappa(page, labels_page_lab, llm_labels):
    at = page("dashboard/pages/labels.py")
    at.selectbox(key="agree-a").set_value("gold").run()
    at.selectbox(key="agree-b").set_value("llm:lab@judge-v1").run()
    labels = load_labels(label_path(labels_page_lab["data"] / "questions.jsonl"))
    expected = agreement(labels, "gold", "llm:lab@judge-v1", pool(labels_page_lab["run"], 10))
    assert at.metric[0].value == f"{expected.kappa:.3f}"
    assert len(at.dataframe[-1].value) == len(expected.disagreements)


def test_compare_shows_the_leaderboard_under_the_chosen_label_source(page, labels_page_lab, llm_labels):
    at = page("dashboard/pages/compare.py")
    at.selectbox(key="compare-labels").set_value("llm:lab@judge-v1").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = at.dataframe[0].value
    assert "Judged" in " ".join(map(str, shown.columns))
    run = labels_page_lab["run"]
    rows = rescore(
        run,
        load_labels(label_path(labels_page_lab["data"] / "questions.jsonl")),
        "llm:lab@judge-v1",
        list(LABEL_METRICS),
    )
    expected = summarize(replace(run, rows=rows), None, quality_metrics(rows)).set_index("config_id")
    judged_column = next(c for c in shown.columns if str(c).startswith("Judged"))
    for config_id, cell in zip(shown["config_id"], shown[judged_column]):
        assert str(cell).startswith(f"{expected.loc[config_id, 'judged_mean']:.3f}")


@pytest.mark.slow
def test_compare_against_another_run_scores_both_under_the_chosen_label_source(
    page, labels_page_lab, llm_labels, tiny_dataset
):
    """Run b: the same sweep over a coarser index of the same corpus and questions. Under the LLM's labels the
    paired change is that of both runs rescored with those labels, not their gold scores."""
    from support.dashboard_lab import comparison_table

    from eval.analysis.leaderboard import compare_runs
    from eval.report.render import comparison_frame

    home = labels_page_lab["home"]
    other = run_on_a_coarser_index(home, tiny_dataset, SWEEP, str(labels_page_lab["data"] / "questions.jsonl"))
    runs = RunStore(home / "runs")
    try:
        at = page("dashboard/pages/compare.py")
        at.selectbox(key="compare-run").set_value(labels_page_lab["run"].run_id).run()
        at.selectbox(key="compare-labels").set_value(llm_labels).run()
        at.selectbox(key="compare-other-run").set_value(other).run()
        assert not at.exception, [e.value for e in at.exception]
        labels = load_labels(label_path(labels_page_lab["data"] / "questions.jsonl"))
        rescored = [
            replace(run, rows=rescore(run, labels, llm_labels, list(LABEL_METRICS)))
            for run in (labels_page_lab["run"], runs.load(other))
        ]
        at.selectbox(key="compare-other-metric").set_value("judged").run()  # only the LLM's labels have it
        expected = compare_runs(*rescored, ["judged"])
        assert comparison_table(at).to_dict("records") == comparison_frame(expected, ["judged"]).to_dict("records")
        metric = "ndcg"
        at.selectbox(key="compare-other-metric").set_value(metric).run()
        expected = compare_runs(*rescored, [metric])
        gold = compare_runs(labels_page_lab["run"], runs.load(other), [metric])
        assert not expected[f"{metric}_delta"].equals(gold[f"{metric}_delta"])  # the labels change the answer
        assert comparison_table(at).to_dict("records") == comparison_frame(expected, [metric]).to_dict("records")
    finally:
        runs.delete(other)
        IndexStore(home / "indexes").delete("coarse")


def test_generating_questions_from_the_page(page, labels_page_lab, tmp_path):
    at = page("dashboard/pages/labels.py")
    at.text_input(key="gen-llm").input(labels_page_lab["llm"])
    at.number_input(key="gen-n").set_value(3)
    at.text_input(key="gen-out").input(str(tmp_path / "generated"))
    button(at, "Generate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job, store = finished_job(labels_page_lab)
    assert job.status == "done" and job.kind == "questions", store.log_tail(job.job_id)
    kept = len(load_question_set(tmp_path / "generated"))
    assert any(line.startswith(f"{kept} questions kept") for line in store.log_tail(job.job_id)) and kept > 0
    assert load_labels(tmp_path / "generated").sources == ["generated"]
