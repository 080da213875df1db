"""A run stopped by the world (SIGTERM, a full disk) says so in one line and is left resumable, never `running`."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from support.lab_cli import write_questions
from support.paths import ROOT, SESSION_EMBEDDING_CACHE
from support.tiny_corpus import write_dataset

from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.store import IndexStore

RUN_ENV = {**os.environ, "PYTHONPATH": str(ROOT), "RETRIEVER_LAB_BLOCK_SIZE": "2"}


def cli(home, *args: str) -> list[str]:
    return [sys.executable, "-m", "eval", "--home", str(home), *args]


def manifest(run_dir) -> dict:
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


def long_run(home, tmp_path, tiny_dataset) -> list[str]:
    """The command of a run of 150 blocks (300 questions, 2 a block with the environment `RUN_ENV`) on an e5-small
    index of the tiny corpus built in `home`."""
    IndexStore(home / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE)).build(
        tiny_dataset, "tiny", embedding_model="e5-small", chunking=ChunkingParams(120, 20)
    )
    many = replace(
        tiny_dataset,
        questions=[replace(q, id=f"{q.id}-{n}") for n in range(60) for q in tiny_dataset.questions],
    )
    questions = write_questions(many, tmp_path / "questions.jsonl")
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("configs:\n  - {search_type: similarity, k: [2, 4]}\n", encoding="utf-8")
    return cli(home, "run", "--index", "tiny", "--questions", questions, "--sweep", str(sweep), "--latency-sample", "0")


def start_run(args: list[str], runs, part: int) -> subprocess.Popen:
    """The run of `args` started, once it has written its block number `part` into its (only) folder in `runs`
    (or after 180 s)."""
    process = subprocess.Popen(args, env=RUN_ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    while time.time() < deadline and not list(runs.glob(f"*/parts/part-{part:05d}.parquet")):
        time.sleep(0.02)
    return process


def stderr_when_ended(process: subprocess.Popen, timeout: float, went_on: str) -> str:
    """The process's standard error once it has ended, or a failure saying that the run `went_on`."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail(f"the run went on {went_on}")
    return process.stderr.read()


@pytest.mark.slow
def test_sigterm_marks_a_cli_run_interrupted_and_it_resumes(tmp_path, tiny_dataset):
    """`kill PID` on a real `python -m eval run` mid-run: it ends at once with 143, the run is marked interrupted,
    one line names the run and `--resume`; resuming completes it."""
    home = tmp_path / "home"
    args = long_run(home, tmp_path, tiny_dataset)
    runs = home / "runs"
    process = start_run(args, runs, part=3)
    (run_dir,) = list(runs.iterdir())
    assert manifest(run_dir)["status"] == "running"
    process.send_signal(signal.SIGTERM)
    stderr = stderr_when_ended(process, 10, "after SIGTERM")
    assert process.returncode == 143, stderr
    assert manifest(run_dir)["status"] == "interrupted"
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert run_dir.name in lines[-1] and f"--resume {run_dir.name}" in lines[-1], stderr
    finished = subprocess.run([*args, "--resume", run_dir.name], env=RUN_ENV, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert manifest(run_dir)["status"] == "complete"
    assert list(runs.iterdir()) == [run_dir]


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MB tmpfs mounted at `tmp_path / "disk"` (a lab home on a small disk), unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip(f"mount -t tmpfs is not permitted here: {mounted.stderr.decode().strip()}")
    try:
        yield disk
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=True)


def fill(disk, leave: int = 0) -> None:
    """Fill `disk` until `leave` bytes are free (0: until the disk refuses a write)."""
    with open(disk / "filler.bin", "ab") as handle:
        try:
            while shutil.disk_usage(disk).free > leave:
                handle.write(os.urandom(min(64 * 1024, max(shutil.disk_usage(disk).free - leave, 4096))))
                handle.flush()
        except OSError:
            pass


def test_index_build_on_a_full_disk_is_one_line_and_leaves_nothing(tmp_path, small_disk, tiny_dataset):
    data = write_dataset(tmp_path / "data", tiny_dataset)
    home = small_disk / "home"
    home.mkdir()
    fill(small_disk, leave=200 * 1024)
    built = subprocess.run(
        cli(home, "index", "build", "--corpus", str(data), "--name", "tiny", "--embedding", "e5-small"),
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
    )
    assert built.returncode == 2, built.stderr
    assert "Traceback" not in built.stderr
    assert built.stderr.strip().splitlines()[-1].startswith("error: no space left on the disk of"), built.stderr
    assert [p.name for p in (home / "indexes").iterdir()] == []


def test_sweep_on_a_disk_that_fills_is_marked_failed_at_once(tmp_path, small_disk, tiny_dataset):
    """The disk fills up while a run writes its blocks: one line, the run marked failed (not left running)."""
    home = small_disk / "home"
    args = long_run(home, tmp_path, tiny_dataset)
    runs = home / "runs"
    process = start_run(args, runs, part=1)
    fill(small_disk)
    stderr = stderr_when_ended(process, 60, "on a full disk")
    (run_dir,) = list(runs.iterdir())
    assert process.returncode == 2, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: no space left on the disk of") and f"--resume {run_dir.name}" in last, stderr
    assert manifest(run_dir)["status"] == "failed"
