"""Why configs miss, on CMRC 2018 dev (Chinese, SQuAD-style JSON with answer spans) from ../shared/datasets.

    .venv/bin/python benchmarks/bench_why.py [--documents 300] [--questions 200] [--embedding e5-small]

Indexes the first `--documents` paragraphs (chunks of 400 characters, overlap 40), runs the first `--questions`
questions about them through a grid of similarity, MMR, threshold, BM25 and hybrid configs, and diagnoses every
miss under the gold answer spans (`eval.analysis.why`): misses per config by cause, the what-ifs, and the time the
diagnosis took against the sweep's.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_sweep import first_documents

from eval.analysis.why import CAUSE_NAMES, CAUSES, why_missed
from eval.data.datasets import load_squad
from eval.data.labels import load_labels
from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

CMRC = ROOT.parent / "shared" / "datasets" / "raw" / "cmrc2018_dev.json"
BM25 = {"search_type": "bm25", "k": 5, "tokenizer": "jieba"}
GRID = {
    "configs": [
        {"search_type": "similarity", "k": [3, 5]},
        {"search_type": "mmr", "k": 5, "fetch_k": 20, "lambda_mult": 0.5},
        {"search_type": "similarity_score_threshold", "k": 5, "score_threshold": 0.85},
        BM25,
        {"search_type": "ensemble", "weights": [0.5, 0.5], "retrievers": [BM25, {"search_type": "similarity", "k": 5}]},
    ]
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--documents", type=int, default=300)
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--embedding", default="e5-small")
    args = parser.parse_args()
    if not CMRC.is_file():
        sys.exit(f"{CMRC} not found: this benchmark reads CMRC 2018 from ../shared/datasets")
    dataset = first_documents(load_squad(CMRC), args.documents)
    questions = dataset.questions[: args.questions]
    work = Path(tempfile.mkdtemp(prefix="bench-why-"))
    started = time.perf_counter()
    store = IndexStore(work / "indexes")
    manifest = store.build(dataset, "cmrc", args.embedding, ChunkingParams(400, 40))
    print(f"index: {args.documents} paragraphs, {manifest.chunks} chunks, {time.perf_counter() - started:.0f} s")
    index = store.open("cmrc")
    runs = RunStore(work / "runs")
    started = time.perf_counter()
    run_id = run_sweep(runs, index, parse_sweep(GRID), questions, str(CMRC), SweepOptions(latency_sample=0))
    sweep_seconds = time.perf_counter() - started
    run = runs.load(run_id)
    started = time.perf_counter()
    report = why_missed(run, index, load_labels(CMRC), "gold")
    why_seconds = time.perf_counter() - started
    print(
        f"{len(questions)} questions, {len(run.configs)} configs: sweep {sweep_seconds:.1f} s, why {why_seconds:.1f} s"
    )
    counts = report.counts()
    shown = ["misses", *[c for c in CAUSES if counts[c].sum()]]
    print("| config | " + " | ".join(CAUSE_NAMES.get(c, c) for c in shown) + " |")
    print("|---" * (len(shown) + 1) + "|")
    for config_id, row in counts.iterrows():
        print(f"| {config_id} | " + " | ".join(str(int(row[c])) for c in shown) + " |")
    assert (counts[list(CAUSES)].sum(axis=1) == counts["misses"]).all()
    print("\nwhat-ifs that recover a miss:")
    for what_if in report.what_ifs:
        if what_if.recovered:
            print(f"- {what_if.config_id}: {what_if.text}")
    print(f"re-queried ranks: {report.requeried}")


if __name__ == "__main__":
    main()
