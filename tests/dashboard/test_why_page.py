"""Compare's "Why missed" tab (misses per config by cause, what-ifs) and Inspect's cause of a miss, on a real run
of the tiny index (English and Chinese questions) driven through Streamlit's AppTest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.dashboard_lab import page_opener

from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

SPEC = {
    "configs": [
        {"search_type": "similarity", "k": 1},
        {"search_type": "mmr", "k": 1, "fetch_k": 5, "lambda_mult": 0.0},
    ]
}


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


@pytest.fixture(scope="module")
def why_lab(tmp_path_factory, tiny_index_store, tiny_dataset):
    home, data = tmp_path_factory.mktemp("why-home"), tmp_path_factory.mktemp("why-data")
    (home / "indexes").symlink_to(tiny_index_store.root)
    write_jsonl(data / "corpus.jsonl", [{"id": d.id, "text": d.text} for d in tiny_dataset.corpus])
    questions = [
        {"id": q.id, "question": q.question, "answers": list(q.answers), "relevant_ids": ["mmr", "k", "zh-kv"]}
        for q in tiny_dataset.questions
    ]
    write_jsonl(data / "questions.jsonl", questions)
    from eval.data.datasets import load_questions

    loaded = load_questions(data / "questions.jsonl", tiny_dataset.corpus)
    runs = RunStore(home / "runs")
    run_id = run_sweep(
        runs,
        tiny_index_store.open("tiny"),
        parse_sweep(SPEC),
        loaded,
        str(data / "questions.jsonl"),
        SweepOptions(latency_sample=0),
    )
    run = runs.load(run_id)
    relevant = {"mmr", "k", "zh-kv"}
    misses = {
        config_id: sum(len(relevant - set(docs)) for docs in group["doc_ids"])
        for config_id, group in run.rows.groupby("config_id")
    }
    return {"home": home, "run": run, "misses": misses}


def test_compare_tab_shows_misses_by_cause_and_inspect_names_the_cause(why_lab, monkeypatch):
    at = page_opener(why_lab["home"], monkeypatch, timeout=180)("dashboard/pages/compare.py")
    at.selectbox(key="compare-run").set_value(why_lab["run"].run_id).run()
    at.toggle(key="why-on").set_value(True).run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    counts = next(d.value for d in at.dataframe if "misses" in d.value.columns).set_index("config_id")
    assert counts["misses"].to_dict() == why_lab["misses"]
    causes = counts.drop(columns="misses")
    assert (causes.sum(axis=1) == counts["misses"]).all()
    assert "dropped by MMR" in causes.columns  # lambda_mult 0 drops near-duplicates of the first pick
    assert len(at.get("plotly_chart")) >= 1

    at.switch_page("dashboard/pages/inspect_question.py").run()
    at.selectbox(key="inspect-run").set_value(why_lab["run"].run_id).run()
    at.toggle(key="inspect-why").set_value(True).run()
    for question_id in ("q1", "q5"):  # English and Chinese
        at.selectbox(key="inspect-question").set_value(question_id).run()
        assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
        shown = [w.value for w in at.warning if w.value.startswith("Missed ")]
        rows = why_lab["run"].rows.set_index(["question_id", "config_id"])["doc_ids"]
        expected = sum(
            len({"mmr", "k", "zh-kv"} - set(rows[question_id, c])) for c in ("similarity-k1", "mmr-k1-f5-l0")
        )
        assert len(shown) == expected


def test_reports_page_reports_carry_the_why_section(why_lab, monkeypatch):
    at = page_opener(why_lab["home"], monkeypatch, timeout=180)("dashboard/pages/reports.py")
    at.selectbox(key="report-run").set_value(why_lab["run"].run_id).run()
    at.button(key="build-md").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    markdown = at.session_state["report-md"][1].decode()
    assert "## Why configs missed" in markdown
    for config_id, misses in why_lab["misses"].items():
        assert f"| {config_id} | {misses} |" in markdown
