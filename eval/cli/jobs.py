"""The CLI side of background jobs (`eval.jobs.store`): which commands may run as jobs, the body of a job's
process (its CLI command with progress to the job's folder), and the `jobs ...` commands.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import signal
import threading
import traceback
from functools import partial
from pathlib import Path

from eval.cli.common import job_store_from
from eval.cli.main import raise_terminated
from eval.cli.parser import build_parser, handler_of
from eval.errors import LabError
from eval.jobs.store import CANCEL_POLL, Job, JobProgress, JobStore, progress_text
from eval.settings import short_name


def describe_command(argv: list[str], home: Path) -> tuple[str, str, str]:
    """(kind, title, index name) of a CLI command that may run as a job, checked with the CLI's own parser."""

    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors):
            args = build_parser().parse_args(["--home", str(home), *argv])
    except SystemExit:
        message = errors.getvalue().strip().splitlines()
        raise LabError(f"not a valid command for a job: {message[-1] if message else ' '.join(argv)}") from None
    if Path(args.home) != Path(home):
        raise LabError("a job runs in its job store's data folder: leave --home out of its command")
    if args.command == "index" and args.index_command == "build":
        return "index", f"index build '{args.name}'", args.name
    if args.command == "index" and args.index_command == "family":
        return "index", f"index family '{args.name}'", args.name
    if args.command == "run":
        return "sweep", f"sweep on '{args.index}'", args.index
    if args.command == "run-family":
        return "family", f"family sweep on {len(args.index)} indexes", args.index[0]
    if args.command == "questions" and args.questions_command == "generate":
        return "questions", f"questions from '{args.index}' by {short_name(args.llm)}", args.index
    if args.command == "judge":
        return "judge", f"judge run {args.run_id} by {short_name(args.llm)}", ""
    raise LabError(
        "only `index build ...`, `index family ...`, `run ...`, `run-family ...`, `questions generate ...` "
        "and `judge ...` run as jobs"
    )


def submit_job(store: JobStore, argv: list[str]) -> Job:
    """Queue a CLI command (`["run", "--index", ...]`) as a job, checked with the CLI's own parser first."""
    kind, title, index = describe_command(list(argv), store.home)
    return store.submit(list(argv), kind, title, index)


def _watch_for_cancel(path: Path, cancel: threading.Event, stop: threading.Event) -> None:
    while not stop.wait(CANCEL_POLL):
        if path.exists():
            cancel.set()
            return


def run_job(home: str, job_id: str) -> int:
    """The body of a job's process: run its CLI command with progress going to the job's folder, then record
    how it ended and start the next queued job."""
    store = JobStore(home)
    with store._locked():  # wait until the launcher has recorded this process
        job = store.get(job_id)
    if job.status != "running" or job.pid != os.getpid():
        return 0
    signal.signal(signal.SIGTERM, raise_terminated)  # `kill PID` ends the job like Ctrl-C: its run records it
    cancel, stop = threading.Event(), threading.Event()
    threading.Thread(target=_watch_for_cancel, args=(store.root / job_id / "cancel", cancel, stop), daemon=True).start()
    status, error = "done", None
    try:
        args = build_parser().parse_args(["--home", home, *job.command()])
        args.progress_bar = partial(JobProgress, store, job, cancel)
        handler_of(args)(args)
    except LabError as failure:
        status, error = ("cancelled" if cancel.is_set() else "failed"), str(failure)
    except Exception as failure:  # an unexpected error: the traceback goes to the log
        traceback.print_exc()
        status, error = "failed", f"{type(failure).__name__}: {failure}"
    except SystemExit:  # argparse refused the command (checked at submit, so only a hand-edited job.json)
        status, error = "failed", "the job's command is not a valid CLI command (see its log)"
    except BaseException:  # SIGINT/SIGTERM turned into an exception: resumable, like a killed job
        status, error = "interrupted", "the job's process was stopped"
    finally:
        stop.set()
        print(f"--- job {status}" + (f": {error}" if error else ""), flush=True)
        store._finish(job_id, status, error)
    return 0 if status == "done" else 1


def cmd_jobs_start(args: argparse.Namespace) -> None:
    command = args.job_command[1:] if args.job_command[:1] == ["--"] else args.job_command
    job = submit_job(job_store_from(args), command)
    print(f"{job.job_id}\t{job.status}\t{job.title}")


def cmd_jobs_list(args: argparse.Namespace) -> None:
    store = job_store_from(args)
    jobs = store.list()
    if not jobs:
        print("no jobs yet: the dashboard starts them, or `python -m eval jobs start run --index NAME ...`")
    for job in jobs:
        shown = progress_text(store.progress(job.job_id)) if job.status == "running" else (job.error or "")
        print(f"{job.job_id}\t{job.status}\t{job.title}\trun {job.run_id or '-'}\t{shown}")


def cmd_jobs_show(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    store = job_store_from(args)
    store.list()  # notices a lost process first
    job = store.get(args.job_id)
    print(
        json.dumps(
            {
                **asdict(job),
                "cancel_requested": store.cancel_requested(job.job_id),
                "progress": store.progress(job.job_id),
                "answer": store.answer(job.job_id),
                "log_tail": store.log_tail(job.job_id),
            },
            ensure_ascii=False,
            indent=2,
        )
    )


def cmd_jobs_cancel(args: argparse.Namespace) -> None:
    job = job_store_from(args).cancel(args.job_id)
    print(
        f"job {job.job_id} cancelled"
        if job.status == "cancelled"
        else f"job {job.job_id}: cancel requested; it stops after its current step"
    )


def cmd_jobs_resume(args: argparse.Namespace) -> None:
    job = job_store_from(args).resume(args.job_id)
    print(f"job {job.job_id} {job.status}")


def cmd_jobs_wait(args: argparse.Namespace) -> int:
    """Block until the job is no longer queued or running; exit 0 when it is done, else 1."""
    job = job_store_from(args).wait(args.job_id)
    print(f"job {job.job_id} {job.status}" + (f": {job.error}" if job.error else ""))
    return 0 if job.status == "done" else 1
