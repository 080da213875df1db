"""Background jobs: long work (an index build, a sweep with or without answers) runs in a process of its own,
detached from whoever started it, and reports to files beside the runs.

A job is a CLI command (`index build ...` or `run ...`) run by the CLI's own code (`eval.cli`) in a new
session (`start_new_session`), so a reload, a closed tab or a restarted Streamlit server does not stop it.
Its folder `<home>/jobs/<job_id>/` holds:

- `job.json`: the command (kind, title, argv) and its status: queued, running, done, failed, cancelled or
  interrupted, with the process id, times, the error and the run a sweep produces;
- `progress.json`: stage, done/total, rate and ETA, written by the job at most twice a second;
- `answer.json`: the answer being streamed (question, config, text so far);
- `log.txt`: the command's output; `cancel`: present once a cancel was asked for.

JSON files are written atomically (`eval.runs.atomic_write_bytes`) and status changes happen under a file
lock. There is no broker: every reader of the store (the dashboard's sidebar, `python -m eval jobs list`)
marks a running job whose process is gone as interrupted and starts queued jobs, oldest first, while fewer
than `max_running` run; a finishing job starts the next one itself. Resuming a sweep job continues its run
from the finished blocks (the CLI's `--resume RUN_ID`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime
from functools import partial
from hashlib import sha256
from pathlib import Path
from typing import Any

from eval.errors import LabError
from eval.io import atomic_write_bytes
from eval.runs.store import RunStore

JOB_ID_PATTERN = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
ACTIVE = ("queued", "running")
RESUMABLE = ("failed", "cancelled", "interrupted")
RESUMING_KINDS = ("sweep", "family")  # jobs that write runs: they stop at safe points and resume their run
MAX_JOBS_ENV = "RETRIEVER_LAB_MAX_JOBS"
WRITE_EVERY = 0.5  # seconds between progress writes of a job
ANSWER_EVERY = 0.25  # seconds between writes of the streamed answer
CANCEL_POLL = 0.3  # seconds between looks for the cancel file
# The job's process runs the CLI's own job runner (a command-line program, named here, not imported).
RUNNER = "import sys; from eval.cli.jobs import run_job; sys.exit(run_job(sys.argv[1], sys.argv[2]))"
PACKAGE_PARENT = Path(__file__).resolve().parent.parent  # put first on the job's PYTHONPATH: this `eval`

_children: list[subprocess.Popen] = []  # processes this process started, reaped by `JobStore.list`


class JobCancelled(LabError):
    """Raised in a cancelled index build (a sweep stops through `SweepOptions.cancel` instead)."""


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass
class Job:
    """One job as stored in its `job.json`."""

    job_id: str
    kind: str  # "index" (index build or family), "sweep" (run), "family" (run-family), "questions" or "judge"
    title: str
    argv: list[str]  # the CLI command, without the global options
    status: str
    created_at: str
    queued_at: str
    started_at: str | None = None
    finished_at: str | None = None
    pid: int | None = None
    pid_started: str | None = None  # the process's start time, so a reused pid is not taken for the job
    attempts: int = 0
    error: str | None = None
    run_id: str | None = None  # the run a sweep job writes (known once the run exists; a family's latest)
    index: str | None = None  # the index an index job builds, or a sweep job searches

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def command(self) -> list[str]:
        """The CLI command of the next attempt: a sweep whose run exists resumes it (a family sweep resumes its
        family from the run it had reached)."""
        if self.kind in RESUMING_KINDS and self.run_id and "--resume" not in self.argv:
            return [*self.argv, "--resume", self.run_id]
        return list(self.argv)


def process_start(pid: int) -> str | None:
    """When process `pid` started (clock ticks after boot, from /proc), "" where /proc is absent and the
    process exists, or None when it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        if Path("/proc/self/stat").exists():
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            pass
        return ""
    state, *rest = stat[stat.rindex(")") + 2 :].split()
    return None if state in ("Z", "X") else rest[18]


def _reap_children() -> None:
    """Collect the exit status of finished job processes this process started, so none stays a zombie."""
    _children[:] = [child for child in _children if child.poll() is None]


class JobStore:
    """The jobs under `<home>/jobs`: submit, list, cancel, resume; see the module docstring."""

    def __init__(self, home: str | Path, max_running: int | None = None) -> None:
        self.home = Path(home)
        self.root = self.home / "jobs"
        self.max_running = max(1, max_running or int(os.environ.get(MAX_JOBS_ENV) or 1))

    # ------------------------------------------------------------ files

    def folder(self, job_id: str) -> Path:
        if not isinstance(job_id, str) or not JOB_ID_PATTERN.match(job_id):
            raise LabError(f"'{job_id}' is not a job id (job ids look like 20261127-141502-a1b2c3)")
        folder = self.root / job_id
        if not (folder / "job.json").is_file():
            raise LabError(f"no job '{job_id}' in {self.root} (list them with `python -m eval jobs list`)")
        return folder

    def get(self, job_id: str) -> Job:
        return Job.from_dict(json.loads((self.folder(job_id) / "job.json").read_text(encoding="utf-8")))

    def _write(self, job: Job) -> None:
        self._write_json(self.root / job.job_id / "job.json", asdict(job))

    @staticmethod
    def _write_json(path: Path, data: dict[str, Any]) -> None:
        atomic_write_bytes(path, json.dumps(data, ensure_ascii=False, indent=1).encode())

    @staticmethod
    def _read_json(path: Path) -> dict[str, Any] | None:
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return None

    def progress(self, job_id: str) -> dict[str, Any] | None:
        """The job's last progress: stage, done, total, rate (items/s), eta_seconds, updated_at."""
        return self._read_json(self.root / job_id / "progress.json")

    def answer(self, job_id: str) -> dict[str, Any] | None:
        """The answer the job streams now (or streamed last): question_id, config_id, text."""
        return self._read_json(self.root / job_id / "answer.json")

    def log_tail(self, job_id: str, lines: int = 20) -> list[str]:
        path = self.root / job_id / "log.txt"
        if not path.is_file():
            return []
        with open(path, "rb") as handle:
            handle.seek(max(0, path.stat().st_size - 200 * lines))
            return handle.read().decode("utf-8", "replace").splitlines()[-lines:]

    def cancel_requested(self, job_id: str) -> bool:
        return (self.root / job_id / "cancel").exists()

    def save_input(self, name: str, data: bytes) -> Path:
        """Keep an input file of a job (e.g. a sweep spec) under `jobs/inputs`, named by its content."""
        path = self.root / "inputs" / f"{sha256(data).hexdigest()[:16]}-{name}"
        if not path.is_file():
            atomic_write_bytes(path, data)
        return path

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Status changes of any job happen under one file lock (across processes)."""
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            yield

    def _read_all(self) -> list[Job]:
        jobs = []
        if self.root.is_dir():
            for folder in self.root.iterdir():
                data = self._read_json(folder / "job.json")
                if data is not None and JOB_ID_PATTERN.match(folder.name):
                    jobs.append(Job.from_dict(data))
        return sorted(jobs, key=lambda j: (j.created_at, j.job_id), reverse=True)

    # ------------------------------------------------------------ the queue

    def submit(self, argv: list[str], kind: str, title: str, index: str = "") -> Job:
        """Queue a CLI command (`["run", "--index", ...]`, checked by `eval.cli.jobs.submit_job`) as a job of
        `kind` under `title`; it starts at once when a slot is free."""
        created = now_text()
        job_id = datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]
        job = Job(job_id, kind, title, list(argv), "queued", created, created, index=index)
        resumed = argv[argv.index("--resume") + 1] if "--resume" in argv[:-1] else None
        with self._locked():
            self._refuse_a_busy_run(resumed)
            self._write(job)
            self._schedule()
        return self.get(job_id)

    def list(self) -> list[Job]:
        """Every job, newest first, after noticing lost processes and starting queued jobs."""
        _reap_children()
        jobs = self._read_all()
        if any(j.status == "queued" or (j.status == "running" and not self._alive(j)) for j in jobs):
            with self._locked():
                self._mark_lost()
                self._schedule()
            jobs = self._read_all()
        return jobs

    def cancel(self, job_id: str) -> Job:
        """A queued job is cancelled at once; a running one is asked to stop after its current step."""
        with self._locked():
            job = self.get(job_id)
            if job.status == "queued":
                job.status, job.finished_at = "cancelled", now_text()
                self._write(job)
            elif job.status == "running":
                (self.root / job_id / "cancel").touch()
            else:
                raise LabError(f"job {job_id} is {job.status}: only queued or running jobs can be cancelled")
        return job

    def resume(self, job_id: str) -> Job:
        """Queue a failed, cancelled or interrupted job again; a sweep continues its run's finished blocks."""
        with self._locked():
            job = self.get(job_id)
            if job.status not in RESUMABLE:
                raise LabError(f"job {job_id} is {job.status}: only failed, cancelled or interrupted jobs resume")
            self._refuse_a_busy_run(job.run_id)
            (self.root / job_id / "cancel").unlink(missing_ok=True)
            job.status, job.queued_at, job.error, job.finished_at = "queued", now_text(), None, None
            self._write(job)
            self._schedule()
        return self.get(job_id)

    def _refuse_a_busy_run(self, run_id: str | None) -> None:
        """Two processes must never write one run: refuse a second active job on it (under the lock)."""
        busy = next(
            (
                j
                for j in self._read_all()
                if j.status in ACTIVE and run_id is not None and run_id in (j.run_id, *j.command()[-1:])
            ),
            None,
        )
        if busy is not None:
            raise LabError(f"run {run_id} is already being resumed by job {busy.job_id} ({busy.status})")

    def wait(self, job_id: str, timeout: float | None = None, poll: float = 0.2) -> Job:
        """Block until the job is neither queued nor running (or `timeout` seconds passed); the job then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        self.get(job_id)  # an unknown id fails at once
        while True:
            job = next(j for j in self.list() if j.job_id == job_id)
            if job.status not in ACTIVE or (deadline is not None and time.monotonic() > deadline):
                return job
            time.sleep(poll)

    def _alive(self, job: Job) -> bool:
        started = process_start(job.pid) if job.pid else None
        return started is not None and (not started or not job.pid_started or started == job.pid_started)

    def _mark_lost(self) -> None:
        """Running jobs whose process is gone (SIGKILL, a crash, a reboot) become interrupted (under the lock)."""
        for job in self._read_all():
            if job.status == "running" and not self._alive(job):
                job.status, job.finished_at = "interrupted", now_text()
                job.error = "the job's process ended without recording a result (killed?)"
                self._write(job)
                self._mark_run_interrupted(job)

    def _mark_run_interrupted(self, job: Job) -> None:
        if job.run_id is None:
            return

        runs = RunStore(self.home / "runs")
        with contextlib.suppress(LabError):
            if runs.manifest(job.run_id)["status"] == "running":
                runs.mark_stopped(job.run_id, "interrupted")

    def _schedule(self) -> None:
        """Start queued jobs, oldest first, while fewer than `max_running` run (under the lock)."""
        jobs = self._read_all()
        running = sum(j.status == "running" for j in jobs)
        for job in sorted((j for j in jobs if j.status == "queued"), key=lambda j: (j.queued_at, j.job_id)):
            if running >= self.max_running:
                break
            self._launch(job)
            running += 1

    def _launch(self, job: Job) -> None:
        """Start the job's process in a session of its own, so it outlives whoever started it."""
        paths = [str(PACKAGE_PARENT), *filter(None, [os.environ.get("PYTHONPATH")])]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": os.pathsep.join(paths)}
        with open(self.root / job.job_id / "log.txt", "ab") as log:
            log.write(f"--- attempt {job.attempts + 1}: {' '.join(job.command())}\n".encode())
            log.flush()
            child = subprocess.Popen(
                [sys.executable, "-c", RUNNER, str(self.home.absolute()), job.job_id],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        _children.append(child)
        job.status, job.started_at, job.attempts = "running", now_text(), job.attempts + 1
        job.pid, job.pid_started = child.pid, process_start(child.pid)
        self._write(job)

    # ------------------------------------------------------------ inside the job's process

    def _record_run(self, job_id: str, run_id: str) -> None:
        with self._locked():
            job = self.get(job_id)
            job.run_id = run_id
            self._write(job)

    def _finish(self, job_id: str, status: str, error: str | None) -> None:
        with self._locked():
            job = self.get(job_id)
            job.status, job.error, job.finished_at = status, error, now_text()
            self._write(job)
            self._schedule()


class JobProgress:
    """The CLI's progress interface (`eval.cli.ProgressBar`) for a command that runs as a job: progress with
    rate and ETA, the streamed answer and the run id go to the job's folder; `cancel` is the job's event."""

    def __init__(self, store: JobStore, job: Job, cancel: threading.Event, description: str) -> None:
        self.store, self.folder, self.cancel, self.description = store, store.root / job.job_id, cancel, description
        self.raise_on_cancel = job.kind not in RESUMING_KINDS  # a sweep stops at its own safe points
        self.on_start = partial(store._record_run, job.job_id)
        self.stage: str | None = None
        self.stage_started = self.last_write = self.last_answer = 0.0
        self.stage_done = self.failed = 0
        self.pending_answer: dict[str, str] | None = None
        self.pending_progress: tuple[str, int, int, int, str | None] | None = None

    def __call__(self, stage: str, done: int, total: int, failed: int = 0, last_failure: str | None = None) -> None:
        """`done` counts outputs; a label job also tells how many items failed and the last reason, which goes
        to the log at once and to the progress file with the next write (or `close`)."""
        if self.raise_on_cancel and self.cancel.is_set():
            raise JobCancelled(f"{self.description} was cancelled")
        now = time.monotonic()
        new_failure = failed > self.failed
        if new_failure:
            print(f"{stage}: failure {failed}: {last_failure}", flush=True)
            self.failed = failed
        if stage != self.stage:
            self.stage, self.stage_started, self.stage_done = stage, now, done
        self.pending_progress = (stage, done, total, failed, last_failure)
        if now - self.last_write >= WRITE_EVERY or done >= total or new_failure or done == self.stage_done:
            self._flush_progress(now)

    def _flush_progress(self, now: float) -> None:
        if self.pending_progress is None:
            return
        stage, done, total, failed, last_failure = self.pending_progress
        elapsed = now - self.stage_started
        rate = (done - self.stage_done) / elapsed if elapsed > 0 and done > self.stage_done else None
        self.store._write_json(
            self.folder / "progress.json",
            {
                "description": self.description,
                "stage": stage,
                "done": done,
                "total": total,
                "rate": rate,
                "eta_seconds": (total - done) / rate if rate else None,
                "failed": failed,
                "last_failure": last_failure,
                "updated_at": time.time(),
            },
        )
        self.pending_progress, self.last_write = None, now
        self._flush_answer()

    def show_answer(self, question_id: str, config_id: str, answer: str) -> None:
        self.pending_answer = {"question_id": question_id, "config_id": config_id, "text": answer}
        if time.monotonic() - self.last_answer >= ANSWER_EVERY:
            self._flush_answer()

    def _flush_answer(self) -> None:
        if self.pending_answer is not None:
            self.store._write_json(self.folder / "answer.json", self.pending_answer)
            self.pending_answer, self.last_answer = None, time.monotonic()

    def close(self) -> None:
        self._flush_progress(time.monotonic())
        self._flush_answer()


def progress_text(progress: dict[str, Any] | None) -> str:
    """`answers 120/640 · 3.2/s · ETA 2 min 40 s` (what the sidebar and `jobs list` show)."""
    if not progress:
        return "starting…"
    parts = [f"{progress['stage']} {progress['done']}/{progress['total']}"]
    if progress.get("failed"):
        parts[0] += f" kept · {progress['failed']} failed"
    if progress.get("rate"):
        parts.append(f"{progress['rate']:.3g}/s")
    if progress.get("eta_seconds") is not None and progress["done"] < progress["total"]:
        parts.append(f"ETA {duration_text(progress['eta_seconds'])}")
    if progress.get("last_failure"):
        parts.append(f"last failure: {progress['last_failure']}")
    return " · ".join(parts)


def duration_text(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"
