"""A run stopped by the world (SIGTERM, a full disk) says so in one line and is left resumable, never `running`."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from support.lab_cli import write_questions
from support.paths import ROOT, SESSION_EMBEDDING_CACHE

from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.store import IndexStore


def cli(home, *args: str) -> list[str]:
    return [sys.executable, "-m", "eval", "--home", str(home), *args]


def manifest(run_dir) -> dict:
    return json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))


@pytest.mark.slow
def test_sigterm_marks_a_cli_run_interrupted_and_it_resumes(tmp_path, tiny_dataset):
    """`kill PID` on a real `python -m eval run` mid-run: it ends at once with 143, the run is marked interrupted,
    one line names the run and `--resume`; resuming completes it."""
    home = tmp_path / "home"
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
    args = cli(home, "run", "--index", "tiny", "--questions", questions, "--sweep", str(sweep), "--latency-sample", "0")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RETRIEVER_LAB_BLOCK_SIZE": "2"}  # 150 blocks
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    runs = home / "runs"
    deadline = time.time() + 180
    while time.time() < deadline and not list(runs.glob("*/parts/part-00003.parquet")):
        time.sleep(0.02)
    (run_dir,) = list(runs.iterdir())
    assert manifest(run_dir)["status"] == "running"
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        pytest.fail("the run went on after SIGTERM")
    stderr = process.stderr.read()
    assert process.returncode == 143, stderr
    assert manifest(run_dir)["status"] == "interrupted"
    lines = stderr.strip().splitlines()
    assert "Traceback" not in stderr
    assert run_dir.name in lines[-1] and f"--resume {run_dir.name}" in lines[-1], stderr
    finished = subprocess.run([*args, "--resume", run_dir.name], env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert manifest(run_dir)["status"] == "complete"
    assert list(runs.iterdir()) == [run_dir]
