"""How fast a big run loads and the Compare page renders it (targets: load under 2 s and first render
under 3 s for 100 configurations x 10,000 questions, 1,000,000 rows).

    .venv/bin/python benchmarks/bench_compare.py --home /tmp/scale-home --make-run
    .venv/bin/python benchmarks/bench_compare.py --home /tmp/scale-home

`--make-run` first builds a SQuAD 1.1 dev index (MiniLM) in HOME and runs the real sweep (fast path) of the
100-configuration grid below on its first 10,000 questions (about an hour on this machine). Then, on the
biggest run in HOME, each in a fresh process: loading the run (all rows, and the scalar rows the Compare page
reads), the Compare page's first render through Streamlit's `AppTest` (the stored summary the sweep wrote
when it finished), and a re-render after a filter change.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SQUAD = ROOT.parent / "shared" / "datasets" / "squad11_dev_en"
GRID_100 = {
    "configs": [
        {"search_type": "similarity", "k": [1, 2, 3, 4, 5, 6, 8, 10, 15, 20]},
        {"search_type": "mmr", "k": [3, 5, 8, 10], "fetch_k": [20, 30, 50, 100], "lambda_mult": [0.25, 0.5, 0.75]},
        {
            "search_type": "similarity_score_threshold",
            "k": [3, 5, 8, 10, 15, 20, 25],
            "score_threshold": [0.2, 0.3, 0.4, 0.5, 0.6, 0.7],
        },
    ]
}


def make_run(home: Path, questions: int) -> None:
    from eval import IndexStore, RunStore, parse_sweep, run_sweep
    from eval.data.datasets import load_dataset
    from eval.sweep.engine import SweepOptions

    dataset = load_dataset(SQUAD)
    IndexStore(home / "indexes").build(dataset, "squad", "minilm")
    index = IndexStore(home / "indexes").open("squad")
    run_sweep(
        RunStore(home / "runs"),
        index,
        parse_sweep(GRID_100),
        dataset.questions[:questions],
        str(SQUAD),
        SweepOptions(latency_sample=20),
    )


def biggest_run(home: Path) -> str:
    from eval import RunStore

    manifests = [m for m in RunStore(home / "runs").manifests() if m.status == "complete"]
    return max(manifests, key=lambda m: len(m.configs) * m.questions.count).run_id


def measure_load(home: Path, run_id: str) -> None:
    from eval import RunStore
    from eval.runs.summary import stored_summary

    store = RunStore(home / "runs")
    started = time.perf_counter()
    rows = len(store.load(run_id, scores_only=True).rows)
    scores = time.perf_counter() - started
    started = time.perf_counter()
    store.load(run_id)
    full = time.perf_counter() - started
    stored_summary(store.load(run_id, scores_only=True))  # as the sweep does when it finishes (older runs)
    print(
        f"run of {rows:,} rows: loading the scalar rows {scores:.2f} s; all rows with the retrieved lists {full:.2f} s"
    )


def measure_page(home: Path, run_id: str) -> None:
    """The page as a user meets it: the server is up (its imports done, here by a render of the page on an
    empty data folder) and the run has not been opened since the server started."""
    import tempfile

    from streamlit.testing.v1 import AppTest

    page = str(ROOT / "dashboard" / "compare.py")
    with tempfile.TemporaryDirectory() as empty:
        os.environ["RETRIEVER_LAB_HOME"] = empty
        AppTest.from_file(page, default_timeout=300).run()
    os.environ["RETRIEVER_LAB_HOME"] = str(home)
    app = AppTest.from_file(page, default_timeout=300)
    started = time.perf_counter()
    app.run()
    app.selectbox(key="compare-run").set_value(run_id).run()
    first = time.perf_counter() - started
    assert not app.exception, app.exception
    started = time.perf_counter()
    app.multiselect(key="compare-types").set_value(["mmr"]).run()
    filtered = time.perf_counter() - started
    print(f"Compare page: first render {first:.2f} s; after a filter change {filtered:.2f} s")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--make-run", action="store_true", help="build the SQuAD index and run the 100-config sweep")
    parser.add_argument("--questions", type=int, default=10_000)
    parser.add_argument("--step", choices=["load", "page"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ["RETRIEVER_LAB_HOME"] = str(args.home)
    if args.make_run:
        make_run(args.home, args.questions)
    run_id = biggest_run(args.home)
    if args.step == "load":
        return measure_load(args.home, run_id)
    if args.step == "page":
        return measure_page(args.home, run_id)
    for step in ("load", "page"):  # each in a fresh process: nothing cached from the step before
        subprocess.run([sys.executable, __file__, "--home", str(args.home), "--step", step], check=True)


if __name__ == "__main__":
    main()
