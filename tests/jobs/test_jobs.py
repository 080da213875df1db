"""Background jobs (`eval.jobs`) with real job processes: kill -9, interrupted, resume, cancel, the queue, the CLI."""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from support.jobs_lab import comparable, parts_of, sweep_command, uninterrupted_rows, wait_for
from support.openai_stub_server import OpenAIStubServer
from support.paths import ROOT

from eval.cli.jobs import submit_job
from eval.index.store import IndexStore
from eval.jobs.store import Job, JobProgress, JobStore, now_text, process_start, progress_text
from eval.runs.store import RunStore


@pytest.mark.slow
def test_killed_job_is_interrupted_and_resumes_to_the_uninterrupted_rows(jobs_lab, monkeypatch):
    """SIGKILL a sweep job with generation mid-run: the store shows it (and its run) interrupted; Resume
    continues from the finished blocks and ends with the rows of an uninterrupted run."""
    monkeypatch.setenv("RETRIEVER_LAB_BLOCK_SIZE", "1")  # reaches the job processes
    store = JobStore(jobs_lab["home"])
    runs = RunStore(jobs_lab["home"] / "runs")
    with OpenAIStubServer(delay_s=0.15) as server:
        command = sweep_command(jobs_lab, server.base_url)
        job = submit_job(store, command)
        assert job.status == "running" and job.kind == "sweep" and process_start(job.pid)
        wait_for(
            lambda: store.get(job.job_id).run_id and parts_of(jobs_lab, store.get(job.job_id).run_id) >= 1,
            what="the first finished block",
        )
        run_id = store.get(job.job_id).run_id
        os.kill(job.pid, signal.SIGKILL)
        wait_for(
            lambda: next(j for j in store.list() if j.job_id == job.job_id).status == "interrupted", what="interrupted"
        )
        assert runs.manifest(run_id)["status"] == "interrupted"
        done_before = parts_of(jobs_lab, run_id)
        assert 1 <= done_before < 5

        resumed = store.resume(job.job_id)
        assert resumed.status == "running" and resumed.attempts == 2 and resumed.command()[-2:] == ["--resume", run_id]
        finished = store.wait(job.job_id, timeout=300)
        assert finished.status == "done" and finished.run_id == run_id, finished.error
        progress = store.progress(job.job_id)
        assert progress["done"] == progress["total"]
        straight = uninterrupted_rows(jobs_lab, command)
    job_rows = runs.load(run_id).rows
    assert len(job_rows) == 5 * 3 and job_rows["answer"].str.startswith("Answer: ").all()
    pd.testing.assert_frame_equal(comparable(job_rows), comparable(straight))
    assert "--- job done" in store.log_tail(job.job_id)[-1]
    assert sum(line.startswith("--- attempt") for line in store.log_tail(job.job_id, 200)) == 2


@pytest.mark.slow
def test_the_queue_runs_one_job_at_a_time_and_cancels(jobs_lab, tmp_path):
    """With one slot a second job waits; a queued job cancels at once; a running sweep stops at its next step
    (its run is cancelled, the streamed answer is on disk); the next job starts when the first ends."""
    store = JobStore(jobs_lab["home"], max_running=1)
    with OpenAIStubServer(delay_s=0.3) as server:
        first = submit_job(store, sweep_command(jobs_lab, server.base_url))
        second = submit_job(store, ["run", "--index", "tiny", "--questions", str(jobs_lab["data"]), "--limit", "2"])
        third = submit_job(store, ["run", "--index", "missing", "--questions", str(jobs_lab["data"])])
        assert (first.status, second.status, third.status) == ("running", "queued", "queued")
        assert store.cancel(second.job_id).status == "cancelled"
        wait_for(lambda: store.answer(first.job_id), what="a streamed answer")
        assert store.get(third.job_id).status == "queued"  # still waiting for the slot
        store.cancel(first.job_id)
        assert store.cancel_requested(first.job_id)
        cancelled = store.wait(first.job_id, timeout=120)
    assert cancelled.status == "cancelled"
    assert RunStore(jobs_lab["home"] / "runs").manifest(cancelled.run_id)["status"] == "cancelled"
    answer = store.answer(first.job_id)
    assert answer["text"].startswith("Answer: ") and answer["question_id"] in {"q1", "q2", "q3", "q4", "q5"}
    failed = store.wait(third.job_id, timeout=120)  # started by the first job as it ended
    assert failed.status == "failed" and failed.attempts == 1
    assert failed.error.startswith("no index named 'missing'")
    assert store.get(second.job_id).attempts == 0  # never started


@pytest.mark.slow
def test_an_index_family_and_its_sweep_run_as_jobs(jobs_lab, tmp_path):
    """`index family` and `run-family` as background jobs, as the CLI's `jobs start` queues them: one after the
    other, the sweep job records its runs, and a stopped one resumes its family from the run it reached."""
    store = JobStore(tmp_path, max_running=1)
    build = submit_job(
        store,
        [
            "index",
            "family",
            "--corpus",
            str(jobs_lab["data"]),
            "--name",
            "fam",
            "--chunk-size",
            "80",
            "160",
            "--chunk-overlap",
            "0",
            "--embedding",
            "minilm",
        ],
    )
    names = [f"fam--minilm-recursive-{size}-0" for size in (80, 160)]
    sweep = submit_job(
        store,
        ["run-family", "--index", *names, "--questions", str(jobs_lab["data"]), "--sweep", str(jobs_lab["sweep"])],
    )
    assert (build.kind, build.title, sweep.kind, sweep.title) == (
        "index",
        "index family 'fam'",
        "family",
        "family sweep on 2 indexes",
    )
    assert store.get(sweep.job_id).status == "queued"  # one slot: it waits for the build
    assert store.wait(build.job_id, timeout=300).status == "done", store.log_tail(build.job_id)
    assert [m.name for m in IndexStore(tmp_path / "indexes").list()] == sorted(names)
    done = store.wait(sweep.job_id, timeout=300)
    assert done.status == "done", store.log_tail(sweep.job_id)
    runs = RunStore(tmp_path / "runs")
    last = runs.manifest(done.run_id)
    assert last["status"] == "complete" and last["family"]["variant"] == names[-1]  # the run it reached
    progress = store.progress(sweep.job_id)
    assert (progress["stage"], progress["done"], progress["total"]) == ("summary", 1, 1)  # the last run's summary
    # a stopped family job resumes its family from the run it reached: that run loses its finished blocks and
    # is marked interrupted, the stopped job's command (with --resume) runs as a job and redoes only that run
    first_run = next(r["run_id"] for r in runs.list() if r["run_id"] != done.run_id)
    before = {r: runs.load(r).rows for r in (first_run, done.run_id)}
    for part in (runs.root / done.run_id / "parts").glob("part-*.parquet"):
        part.unlink()
    runs.update(done.run_id, status="interrupted")
    stopped = Job(
        "20261127-000002-dddddd", "family", "t", sweep.argv, "interrupted", now_text(), now_text(), run_id=done.run_id
    )
    assert stopped.command()[-2:] == ["--resume", done.run_id]
    resumed = store.wait(submit_job(store, stopped.command()).job_id, timeout=300)
    assert resumed.status == "done", store.log_tail(resumed.job_id)
    assert sorted(r["run_id"] for r in runs.list()) == sorted(before)  # no new run: the family was continued
    assert runs.manifest(done.run_id)["status"] == "complete"
    assert runs.manifest(first_run)["status"] == "complete"
    for run_id, rows in before.items():
        pd.testing.assert_frame_equal(runs.load(run_id).rows, rows)


def test_a_lost_process_makes_a_running_job_interrupted(tmp_path):
    """A job recorded as running whose process is gone, or whose pid now belongs to another process."""
    store = JobStore(tmp_path)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        for job_id, pid, started in (
            ("20261127-000000-aaaaaa", gone.pid, "1"),
            ("20261127-000001-bbbbbb", alive.pid, "reused"),
            ("20261127-000002-cccccc", alive.pid, process_start(alive.pid)),
        ):
            store._write(
                Job(job_id, "sweep", "t", ["run"], "running", now_text(), now_text(), pid=pid, pid_started=started)
            )
        statuses = {j.job_id: j.status for j in store.list()}
        assert statuses == {
            "20261127-000000-aaaaaa": "interrupted",
            "20261127-000001-bbbbbb": "interrupted",
            "20261127-000002-cccccc": "running",
        }
    finally:
        alive.kill()
        alive.wait()


def test_a_zombie_is_not_alive():
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(lambda: Path(f"/proc/{child.pid}/stat").read_text().split(") ")[1][0] == "Z", 30, "a zombie")
    assert process_start(child.pid) is None  # not yet reaped, yet not running
    child.wait()
    assert process_start(os.getpid())


def test_progress_has_rate_and_eta(tmp_path, monkeypatch):
    store = JobStore(tmp_path)
    job = Job("20261127-000000-aaaaaa", "index", "t", ["index", "build"], "running", now_text(), now_text())
    store._write(job)
    clock = iter([100.0, 110.0, 110.1, 120.0])
    monkeypatch.setattr("eval.jobs.store.time.monotonic", lambda: next(clock))
    import threading

    progress = JobProgress(store, job, threading.Event(), "building")
    progress("embedding", 0, 100)
    progress("embedding", 20, 100)  # 20 items in 10 s
    first = store.progress(job.job_id)
    assert (first["done"], first["rate"], first["eta_seconds"]) == (20, 2.0, 40.0)
    progress("embedding", 21, 100)  # within 0.5 s of the last write: not written
    assert store.progress(job.job_id)["done"] == 20
    progress("embedding", 40, 100)
    assert store.progress(job.job_id)["eta_seconds"] == pytest.approx(60 / 2.0)
    assert progress_text(store.progress(job.job_id)) == "embedding 40/100 · 2/s · ETA 30 s"


def test_status_rules_and_bad_commands(tmp_path):
    store = JobStore(tmp_path)
    for argv, message in (
        (["runs", "list"], "`questions generate ...` and `judge ...` run as jobs"),
        (["run", "--index"], "not a valid command for a job"),
        (["--home", "/elsewhere", "run", "--index", "a", "--questions", "q"], "leave --home out"),
    ):
        with pytest.raises(Exception, match=message.replace("(", r"\(")):
            submit_job(store, argv)
    done = Job("20261127-000000-aaaaaa", "index", "t", ["index", "build"], "done", now_text(), now_text())
    store._write(done)
    with pytest.raises(Exception, match="only queued or running jobs can be cancelled"):
        store.cancel(done.job_id)
    with pytest.raises(Exception, match="only failed, cancelled or interrupted jobs resume"):
        store.resume(done.job_id)
    with pytest.raises(Exception, match="is not a job id"):
        store.get("../x")
    busy = Job(
        "20261127-000001-bbbbbb",
        "sweep",
        "t",
        ["run"],
        "queued",
        now_text(),
        now_text(),
        run_id="20261127-000000-cccccc",
    )
    store._write(busy)
    with pytest.raises(Exception, match="already being resumed by job 20261127-000001-bbbbbb"):
        submit_job(store, ["run", "--index", "a", "--questions", "q", "--resume", "20261127-000000-cccccc"])
    assert len(store._read_all()) == 2  # nothing was queued


@pytest.mark.slow
def test_jobs_cli(jobs_lab, tmp_path):
    """`python -m eval jobs start | wait | list | show | resume | cancel`, with exit codes and messages."""

    def cli(*args):
        return subprocess.run(
            [sys.executable, "-m", "eval", "--home", str(tmp_path), "jobs", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )

    started = cli("start", "run", "--index", "nowhere", "--questions", str(jobs_lab["data"]))
    assert started.returncode == 0, started.stderr
    job_id, status, title = started.stdout.strip().split("\t")
    assert status == "running" and title == "sweep on 'nowhere'"
    waited = cli("wait", job_id)
    assert waited.returncode == 1 and f"job {job_id} failed: " in waited.stdout and "nowhere" in waited.stdout
    listed = cli("list")
    assert listed.stdout.startswith(f"{job_id}\tfailed\tsweep on 'nowhere'")
    shown = json.loads(cli("show", job_id).stdout)
    assert shown["status"] == "failed" and shown["argv"][:3] == ["run", "--index", "nowhere"]
    assert shown["log_tail"][-1].startswith("--- job failed")
    assert cli("resume", job_id).stdout.strip() == f"job {job_id} running"
    assert cli("wait", job_id).returncode == 1 and json.loads(cli("show", job_id).stdout)["attempts"] == 2
    refused = cli("cancel", job_id)
    assert refused.returncode == 2 and refused.stderr.strip() == (
        f"error: job {job_id} is failed: only queued or running jobs can be cancelled"
    )
    bad = cli("start", "runs", "list")
    assert bad.returncode == 2
    assert "`run-family ...`, `questions generate ...` and `judge ...` run as jobs" in bad.stderr
