"""Family sweep vs its single-index sweeps on SQuAD dev (issue 13; target: within 1.2x of their sum).

    .venv/bin/python benchmarks/bench_family.py [--questions 1000] [--docs N] [--embedding onnx-int8:minilm]
        [--rounds 2] [--home DIR --reuse-indexes]

Builds an index family of the corpus (chunk_size 500/800 x chunk_overlap 50/150, recursive splitter, one
embedding model: 4 variants) and prints the build time and its embedding-cache hits. Then times, with
the bench_sweep 30-configuration retriever grid and latency sampling off, the family sweep over the 4
indexes against the 4 single-index sweeps, interleaved: odd rounds run the singles first, even rounds the
family first, so that a burst of machine load is not charged to one side.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench_sweep import GRID_30, first_documents

from eval.data.datasets import Dataset, load_dataset
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep
from eval.sweep.family import build_family, family_grid, run_family_sweep

ROOT = Path(__file__).resolve().parent.parent
FAMILY = "bench-family"


def load(args: argparse.Namespace) -> Dataset:
    return first_documents(load_dataset(args.dataset), args.docs)


def timed(action) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--docs", type=int, help="only the first N documents (and the questions about them)")
    parser.add_argument("--embedding", default="onnx-int8:minilm")
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "squad11_dev_en"))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--home", type=Path, help="keep the indexes and runs here (default: a temporary folder)")
    parser.add_argument("--reuse-indexes", action="store_true", help="use HOME's family indexes as they are")
    args = parser.parse_args()
    dataset = load(args)
    questions = dataset.questions[: args.questions]
    configs = parse_sweep(GRID_30)
    variants = family_grid([500, 800], [50, 150], ["recursive"], [args.embedding])
    with tempfile.TemporaryDirectory() as folder:
        work = args.home or Path(folder)
        store = IndexStore(work / "indexes")
        if not args.reuse_indexes:
            seconds = timed(lambda: build_family(store, dataset, FAMILY, variants, replace_existing=True))
            print(
                f"family build: {len(variants)} variants of {len(dataset.corpus)} documents, {args.embedding}: "
                f"{seconds:.1f} s"
            )
        indexes = [store.open(v.index_name(FAMILY)) for v in variants]
        for index in indexes:
            cache = index.manifest.embedding_cache
            print(
                f"  {index.manifest.name}: {index.manifest.chunks} chunks, embedding cache "
                f"{cache.get('hits', 0)} hits / {cache.get('misses', 0)} encoded"
            )
        runs = RunStore(work / "runs")
        options = SweepOptions(latency_sample=0)
        print(
            f"{len(configs)} configs x {len(questions)} questions x {len(indexes)} indexes; "
            f"load {os.getloadavg()[0]:.2f}"
        )
        family_total = singles_total = 0.0
        for number in range(args.rounds):

            def singles() -> float:
                return sum(timed(lambda i=i: run_sweep(runs, i, configs, questions, options=options)) for i in indexes)

            def family() -> float:
                return timed(lambda: run_family_sweep(runs, indexes, configs, questions, options=options))

            if number % 2:
                family_seconds, singles_seconds = family(), singles()
            else:
                singles_seconds, family_seconds = singles(), family()
            print(
                f"round {number + 1}: four single sweeps {singles_seconds:.1f} s, family sweep "
                f"{family_seconds:.1f} s ({family_seconds / singles_seconds:.2f}x); load {os.getloadavg()[0]:.2f}"
            )
            family_total += family_seconds
            singles_total += singles_seconds
        print(f"all rounds: family / sum of singles = {family_total / singles_total:.2f}x (target <= 1.2x)")


if __name__ == "__main__":
    main()
