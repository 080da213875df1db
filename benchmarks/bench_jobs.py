"""The overhead of running as a background job (each ratio measured in one run).

    .venv/bin/python benchmarks/bench_jobs.py [--home DIR] [--repeats 2] [--limit 0] [--latency-sample 20]
        [--generate]

1. A sweep started as a job (`JobStore.submit`, until the job is done) vs the same command through the CLI
   (`python -m eval run ...`, until the process exits), on the bundled sample; both pay one process start.
   The two alternate, and the medians are compared. Target: job / CLI at most 1.1x.
2. The sidebar's refresh tick: the `jobs_sidebar` fragment rendered by AppTest with 1 running and 19 finished
   jobs in the store, minus the same AppTest run of an empty script. Target: under 50 ms.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval import SAMPLE_DIR
from eval.cli.jobs import submit_job
from eval.data.datasets import load_dataset
from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.jobs.store import Job, JobStore, now_text


def sweep_overhead(home: Path, repeats: int, limit: int, latency_sample: int, generate: bool) -> None:
    if not (home / "indexes").is_dir():
        IndexStore(home / "indexes").build(load_dataset(SAMPLE_DIR), "sample", "e5-small", ChunkingParams(400, 40))
    command = ["run", "--index", "sample", "--questions", str(SAMPLE_DIR), "--latency-sample", str(latency_sample)]
    command += ["--limit", str(limit)] if limit else []
    command += ["--generate", "--max-new-tokens", "32"] if generate else []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    store = JobStore(home)
    cli_seconds, job_seconds = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "eval", "--home", str(home), *command], env=env, check=True, capture_output=True
        )
        cli_seconds.append(time.perf_counter() - started)
        started = time.perf_counter()
        job = store.wait(submit_job(store, command).job_id, poll=0.02)
        job_seconds.append(time.perf_counter() - started)
        assert job.status == "done", job.error
    cli, job = statistics.median(cli_seconds), statistics.median(job_seconds)
    print(
        f"sweep of the sample ({'with' if generate else 'without'} generation, {limit or 'all'} questions, "
        f"latency sample {latency_sample}), "
        f"median of {repeats}: CLI {cli:.2f} s {[round(s, 2) for s in cli_seconds]}, job {job:.2f} s "
        f"{[round(s, 2) for s in job_seconds]}; job / CLI = {job / cli:.3f}x (target <= 1.1x)"
    )


def sidebar_tick(home: Path, ticks: int = 30) -> None:
    from streamlit.testing.v1 import AppTest

    store = JobStore(home / "sidebar")
    for number in range(20):
        job = Job(
            f"20261127-0000{number:02d}-aaaaaa",
            "sweep",
            "sweep on 'sample'",
            ["run"],
            "running" if number == 19 else "done",
            now_text(),
            now_text(),
            pid=os.getpid(),
            run_id="20261127-000000-bbbbbb",
        )
        store._write(job)
    store._write_json(
        store.root / job.job_id / "progress.json",
        {"stage": "answers", "done": 30, "total": 120, "rate": 1.5, "eta_seconds": 60.0},
    )
    os.environ["RETRIEVER_LAB_HOME"] = str(home / "sidebar")

    def with_sidebar():
        import streamlit as st

        from dashboard.jobs_panel import jobs_sidebar

        with st.sidebar:
            jobs_sidebar()

    def empty():
        import streamlit  # noqa: F401

    timings = {}
    for name, script in (("empty", empty), ("sidebar", with_sidebar)):
        app = AppTest.from_function(script)
        app.run()  # imports and caches warm
        runs = []
        for _ in range(ticks):
            started = time.perf_counter()
            app.run()
            runs.append(time.perf_counter() - started)
        assert not app.exception, app.exception
        timings[name] = statistics.median(runs)
    cost = (timings["sidebar"] - timings["empty"]) * 1000
    print(
        f"sidebar tick with 20 jobs (1 running), median of {ticks}: {cost:.1f} ms "
        f"(AppTest run {timings['sidebar'] * 1000:.1f} ms minus an empty script's {timings['empty'] * 1000:.1f} ms; "
        f"target < 50 ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, help="data folder (default: a temporary one)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--limit", type=int, default=0, help="only the first N sample questions")
    parser.add_argument("--latency-sample", type=int, default=20, help="questions timed per config")
    parser.add_argument("--generate", action="store_true", help="with answers from the bundled model")
    args = parser.parse_args()
    home = args.home or Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    sidebar_tick(home)
    sweep_overhead(home, args.repeats, args.limit, args.latency_sample, args.generate)


if __name__ == "__main__":
    main()
