"""Honest label jobs, through the real path: `python -m eval jobs start questions generate|judge ...` runs the CLI
command in a job process against an OpenAI-compatible stub that fails (or half fails), and the job store, the
progress file, the log and the jobs panel (AppTest) say what happened: kept and failed counts, the last reason,
a job that stops as failed after N failures in a row, nothing saved and no "saved" in the log when nothing was
produced, and the model in the job's title."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest
from support.dashboard_lab import home_with_a_run
from support.lab_llm_responder import respond
from support.openai_stub_server import OpenAIStubServer
from support.paths import APP

from eval.cli.jobs import submit_job
from eval.data.labels import label_path, load_labels
from eval.jobs.store import JobStore, progress_text
from eval.labels.pooled_judging import pool
from eval.runs.store import RunStore

pytestmark = pytest.mark.slow  # each job is a fresh Python process
SWEEP = {"configs": [{"search_type": "similarity", "k": [3]}, {"search_type": "similarity", "k": [2]}]}
NOT_A_GRADE = "The passage is not"


def judge_every_other(prompt: str) -> str:
    """A judge that grades pairs whose passage has an even length and rambles on the others."""
    found = re.search(r"(?:Passage: |段落：)(.*)\n\n(?:Digit:|数字：)$", prompt, re.S)
    if found is None:
        return respond(prompt)
    passage = found[1]
    return respond(prompt) if len(passage) % 2 == 0 else NOT_A_GRADE


@pytest.fixture(scope="module")
def lab(tmp_path_factory, tiny_dataset):
    """A home with the tiny index, a finished two-config run and a copy of its question set (for labels)."""
    made = home_with_a_run(tmp_path_factory, tiny_dataset, SWEEP, latency_sample=0, source_is_file=True)
    with (
        OpenAIStubServer(responder=lambda prompt: "Question: what is it?\nAnswer:") as rambling,
        OpenAIStubServer(responder=judge_every_other) as half,
    ):
        yield {
            "home": made["home"],
            "data": made["data"],
            "run": RunStore(made["home"] / "runs").load(made["run_id"]),
            "jobs": JobStore(made["home"]),
            "rambling": f"openai:rambler@{rambling.base_url}",
            "half": f"openai:halfjudge@{half.base_url}",
        }


def run_job(lab, argv: list[str]):
    jobs = lab["jobs"]
    job = submit_job(jobs, argv)
    return jobs.wait(job.job_id, timeout=300), jobs


def generate_job(lab, n: int, out: Path, max_failures: int):
    """`questions generate` of n questions from the tiny index by the rambling model, as a job run to its end."""
    argv = ["questions", "generate", "--index", "tiny", "--n", str(n), "--llm", lab["rambling"], "--out", str(out)]
    return run_job(lab, [*argv, "--max-failures", str(max_failures)])


def judge_job(lab, llm: str, depth: int, labels_file: Path):
    """`judge` of the lab's run to `depth` by `llm`, with no limit on failures in a row, as a job run to its end."""
    argv = ["judge", lab["run"].run_id, "--llm", llm, "--depth", str(depth), "--labels", str(labels_file)]
    return run_job(lab, [*argv, "--max-failures", "0"])


def test_a_generation_whose_every_reply_fails_stops_as_failed_after_n_in_a_row(lab, tmp_path):
    out = tmp_path / "generated"
    job, jobs = generate_job(lab, 20, out, max_failures=4)
    assert job.title == "questions from 'tiny' by openai:rambler"
    assert job.status == "failed"
    assert job.error.startswith("question generation stopped after 4 failures in a row with openai:rambler")
    assert "unparsable" in job.error and "--max-failures" in job.error and "\n" not in job.error
    progress = jobs.progress(job.job_id)
    assert (progress["done"], progress["total"], progress["failed"]) == (0, 20, 4)
    assert progress_text(progress).startswith("generate questions 0/20 kept · 4 failed · last failure: unparsable")
    log = "\n".join(jobs.log_tail(job.job_id, 50))
    assert "generate questions: failure 1: unparsable" in log and "question set written" not in log
    assert not (out / "questions.jsonl").exists()


def test_a_judge_that_grades_nothing_fails_and_saves_nothing(lab):
    labels_file = label_path(lab["data"] / "questions.jsonl")
    job, jobs = judge_job(lab, lab["rambling"], 2, labels_file)
    size = len(pool(lab["run"], 2))
    assert job.title == f"judge run {lab['run'].run_id} by openai:rambler"
    assert job.status == "failed"
    assert job.error.startswith(f"judging with openai:rambler produced nothing: {size} tried, every one failed")
    assert "nothing was saved" in job.error
    progress = jobs.progress(job.job_id)
    assert (progress["done"], progress["failed"]) == (0, size)  # failures are not progress
    log = "\n".join(jobs.log_tail(job.job_id, 200))
    assert "saved as" not in log and "--- job failed" in log
    assert not labels_file.exists()


def test_a_half_failing_judge_counts_grades_as_progress_and_saves_only_them(lab):
    labels_file = label_path(lab["data"] / "questions.jsonl")
    items = pool(lab["run"], 3)
    graded = sum(len(item.text) % 2 == 0 for item in items)
    assert 0 < graded < len(items)
    job, jobs = judge_job(lab, lab["half"], 3, labels_file)
    assert job.status == "done", jobs.log_tail(job.job_id)
    progress = jobs.progress(job.job_id)
    assert (progress["done"], progress["total"], progress["failed"]) == (graded, len(items), len(items) - graded)
    assert progress["last_failure"] == f"the reply is not a grade: {NOT_A_GRADE!r}"
    assert "llm:halfjudge@judge-v1" in load_labels(labels_file).sources


def test_the_jobs_panel_shows_a_failed_label_job_with_its_reason_and_its_log(lab, monkeypatch):
    job, _ = generate_job(lab, 5, lab["home"] / "panel-generated", max_failures=2)
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(lab["home"]))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert job.title in [t.value for t in at.sidebar.text]
    assert any(job.error in c.value for c in at.sidebar.caption)
    logs = [c.value for c in at.sidebar.code]
    assert any(
        "generate questions: failure 2: unparsable" in text and f"--- job failed: {job.error}" in text for text in logs
    )
