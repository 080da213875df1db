"""A lab for background-job tests: the tiny corpus indexed (e5-small), its question set on disk and a sweep spec
(the `jobs_lab` fixture), the CLI command of its sweep with generation, and rows compared without their timing."""

from __future__ import annotations

import time

import pandas as pd
import pytest
from support.tiny_corpus import write_dataset

from eval.cli.parser import build_parser
from eval.cli.sweep import answerer_from
from eval.data.datasets import load_question_set
from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.retrievers.registry import load_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

SWEEP_YAML = "configs:\n  - {search_type: similarity, k: [2, 3]}\n  - {search_type: mmr, k: [2], fetch_k: [4]}\n"
TIMING = ["ttft_ms", "total_ms", "tokens_per_s"]  # measured per process; every other column must match


@pytest.fixture(scope="module")
def jobs_lab(tmp_path_factory, tiny_dataset):
    """A data folder with the tiny corpus indexed (e5-small), its question set on disk and a sweep spec."""
    home = tmp_path_factory.mktemp("jobs-home")
    data = write_dataset(tmp_path_factory.mktemp("data") / "tiny", tiny_dataset)
    IndexStore(home / "indexes").build(tiny_dataset, "tiny", "e5-small", ChunkingParams(120, 20))
    sweep = home / "sweep.yaml"
    sweep.write_text(SWEEP_YAML, encoding="utf-8")
    return {"home": home, "data": data, "sweep": sweep}


def sweep_command(jobs_lab, llm_url: str) -> list[str]:
    return [
        "run",
        "--index",
        "tiny",
        "--questions",
        str(jobs_lab["data"]),
        "--sweep",
        str(jobs_lab["sweep"]),
        "--latency-sample",
        "0",
        "--generate",
        "--llm",
        f"openai:stub@{llm_url}",
        "--max-new-tokens",
        "64",
    ]


def wait_for(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def parts_of(jobs_lab, run_id: str) -> int:
    return len(list((jobs_lab["home"] / "runs" / run_id / "parts").glob("part-*.parquet")))


def comparable(rows: pd.DataFrame) -> pd.DataFrame:
    rows = rows.drop(columns=TIMING).sort_values(["question_id", "config_id"], ignore_index=True)
    for column in ("chunk_ids", "doc_ids", "scores"):
        rows[column] = rows[column].map(list)
    return rows


def uninterrupted_rows(jobs_lab, command: list[str]) -> pd.DataFrame:
    """The rows of the same sweep run straight through, in this process, with the CLI's own answerer."""

    args = build_parser().parse_args(["--home", str(jobs_lab["home"]), *command])
    runs = RunStore(jobs_lab["home"] / "straight-runs")
    run_id = run_sweep(
        runs,
        IndexStore(jobs_lab["home"] / "indexes").open("tiny"),
        load_sweep(args.sweep),
        load_question_set(args.questions),
        str(args.questions),
        SweepOptions(latency_sample=0, answerer=answerer_from(args)),
    )
    return runs.load(run_id).rows
