"""Hybrid sweep benchmark on SQuAD dev from ../shared/datasets (each ratio measured in one run).

    .venv/bin/python benchmarks/bench_hybrid.py [--questions 1000] [--embedding e5-small]
        [--home DIR [--index NAME] --reuse-index]
        [--reference-questions N] [--rounds N]

1. A 30-config grid mixing BM25, ensemble (hybrid) and vector configs, no reranker: the fast path vs the
   LangChain loop (the reference path: each config's LangChain retriever invoked per question), and the
   fast path vs its floor (embedding the questions as `embed_query` does, one Chroma query per question,
   one BM25 scoring pass per question and distinct (tokenizer, k1, b)). Latency sampling is off in both.
2. A grid of rerank configs over vector, BM25 and ensemble bases (the cross-encoder is made by
   tests/support/tiny_cross_encoder.py: MiniLM's 6 layers under a random head): the pairs the cross-encoder scored
   vs the distinct (question, chunk) pairs, and the sweep's wall time vs scoring those pairs alone.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_sweep import first_documents

from eval.data.datasets import load_dataset
from eval.index.bm25 import bm25_side
from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.retrievers.bm25 import BM25Config
from eval.retrievers.registry import (
    parse_sweep,
    with_dependencies,
)
from eval.retrievers.rerank import Reranker, reranker
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep
from tests.support.tiny_cross_encoder import build_cross_encoder

GRID_30 = {
    "configs": [
        {"search_type": "bm25", "k": [3, 5, 10, 20], "b": [0.75, 0.5]},
        {"search_type": "similarity", "k": [3, 5, 10, 20]},
        {"search_type": "mmr", "k": 5, "fetch_k": 20, "lambda_mult": [0.25, 0.5, 0.75]},
        {
            "search_type": "ensemble",
            "weights": [[0.3, 0.7], [0.5, 0.5], [0.7, 0.3]],
            "c": [60, 20],
            "retrievers": [{"search_type": "bm25", "k": [5, 10]}, {"search_type": "similarity", "k": 10}],
        },
        {
            "search_type": "ensemble",
            "weights": [[0.3, 0.7], [0.5, 0.5], [0.7, 0.3]],
            "retrievers": [{"search_type": "bm25", "k": 10}, {"search_type": "similarity", "k": 5}],
        },
    ]
}


def rerank_grid(model: str) -> dict:
    return {
        "configs": [
            {
                "search_type": "rerank",
                "model": model,
                "top_n": [3, 5],
                "base": {"search_type": "similarity", "k": [10, 20]},
            },
            {"search_type": "rerank", "model": model, "top_n": [3, 5], "base": {"search_type": "bm25", "k": [10, 20]}},
            {
                "search_type": "rerank",
                "model": model,
                "top_n": 5,
                "base": {
                    "search_type": "ensemble",
                    "weights": [0.5, 0.5],
                    "retrievers": [{"search_type": "bm25", "k": 10}, {"search_type": "similarity", "k": 10}],
                },
            },
        ]
    }


def floor_seconds(index, configs, questions) -> float:
    """Embed the questions as `embed_query` does, one Chroma query per question, one BM25 pass per question
    and distinct (tokenizer, k1, b)."""
    everything = with_dependencies(configs)
    n_results = max(c.candidates for c in everything if c.search_type in ("similarity", "mmr"))
    bm25 = {(c.tokenizer, c.k1, c.b): c for c in everything if isinstance(c, BM25Config)}
    side = bm25_side(index)
    for config in bm25.values():
        side.postings(config.tokenizer, config.k1, config.b)  # built once per sweep, as in the fast path
    started = time.perf_counter()
    vectors = index.embeddings.embed_queries([q.question for q in questions])
    for vector in vectors:
        index.collection.query(
            query_embeddings=[vector],
            n_results=n_results,
            include=["embeddings", "distances", "documents", "metadatas"],
        )
    for question in questions:
        for config in bm25.values():
            side.scores(config.tokenizer, config.k1, config.b, question.question)
    return time.perf_counter() - started


def rerank_benchmark(index, store, questions, folder: str) -> None:
    configs = parse_sweep(rerank_grid(folder))
    model = reranker(folder)
    model.cache.clear()
    before = model.pairs_scored
    run = store.load(run_sweep(store, index, configs, questions, options=SweepOptions(latency_sample=0)))
    scored = model.pairs_scored - before
    bases = {c.base.config_id for c in configs}
    # The distinct pairs: every (question, chunk text) of every base's candidates, from a second, plain sweep.
    plain = store.load(
        run_sweep(
            store,
            index,
            list(dict.fromkeys(c.base for c in configs)),
            questions,
            options=SweepOptions(latency_sample=0),
        )
    )
    chunks = plain.chunk_texts
    # Keyed by question text, as the cache is: questions asked twice (SQuAD has some) share their pairs.
    question_text = {q.id: q.question for q in questions}
    texts_by_question: dict[str, set[str]] = {}
    for row in plain.rows[plain.rows["config_id"].isin(bases)].itertuples():
        texts_by_question.setdefault(question_text[row.question_id], set()).update(chunks[c] for c in row.chunk_ids)
    distinct = sum(len(t) for t in texts_by_question.values())
    alone = Reranker(folder)  # a fresh cache: score exactly those pairs, one batch per question
    started = time.perf_counter()
    for question, texts in texts_by_question.items():
        alone.scores(question, sorted(texts))
    scoring = time.perf_counter() - started
    print(
        f"rerank sweep: {len(configs)} configs x {len(questions)} questions; cross-encoder pairs scored "
        f"{scored}, distinct (question, chunk) pairs {distinct}"
    )
    print(
        f"rerank sweep wall {run.manifest['wall_seconds']:.1f} s; scoring the distinct pairs alone {scoring:.1f} s; "
        f"sweep / scoring = {run.manifest['wall_seconds'] / scoring:.2f}x"
    )


def reference_loop(store, index, configs, timed, total: int, fast_seconds: float) -> None:
    """The LangChain loop on `timed` (the first questions); with fewer than `total`, its time per question is
    extrapolated to all of them, and the printout says so."""
    ref = store.manifest(
        run_sweep(store, index, configs, timed, options=SweepOptions(reference=True, latency_sample=0))
    )
    seconds = ref["wall_seconds"] / len(timed) * total
    if len(timed) < total:
        print(
            f"LangChain loop (reference path) timed on {len(timed)} of {total} questions: "
            f"{ref['wall_seconds']:.1f} s, extrapolated per question to {total}: {seconds:.1f} s"
        )
    else:
        print(f"LangChain loop (reference path): {seconds:.1f} s")
    print(f"reference / fast = {seconds / fast_seconds:.1f}x")


def floor_and_fast(store, index, configs, questions, rounds: int) -> float:
    """Time the floor and the fast path `rounds` times, alternating which goes first; print each round and the
    ratio of the totals. Returns the fast path's mean time."""

    def fast_seconds() -> float:
        options = SweepOptions(latency_sample=0)
        return store.manifest(run_sweep(store, index, configs, questions, options=options))["wall_seconds"]

    totals = {"floor": 0.0, "fast": 0.0}
    for number in range(1, rounds + 1):
        order = [("floor", lambda: floor_seconds(index, configs, questions)), ("fast", fast_seconds)]
        seconds = {name: measure() for name, measure in (order if number % 2 else order[::-1])}
        for name in totals:
            totals[name] += seconds[name]
        print(
            f"round {number}: floor {seconds['floor']:.1f} s; fast path: {seconds['fast']:.1f} s; "
            f"fast / floor = {seconds['fast'] / seconds['floor']:.2f}x; load {os.getloadavg()[0]:.2f}"
        )
    print(f"all rounds: fast / floor = {totals['fast'] / totals['floor']:.2f}x (target: within 1.5x)")
    return totals["fast"] / rounds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--docs", type=int, help="only the first N documents (and the questions about them)")
    parser.add_argument("--embedding", default="e5-small")
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "squad11_dev_en"))
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="time the floor and the fast path this many times, alternating which goes first",
    )
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--skip-rerank", action="store_true")
    parser.add_argument(
        "--reference-questions",
        type=int,
        metavar="N",
        help="time the LangChain loop on the first N questions only and extrapolate per question",
    )
    parser.add_argument("--home", type=Path, help="keep the index and runs here (default: a temporary folder)")
    parser.add_argument("--reuse-index", action="store_true", help="use HOME's index (--index) as it is")
    parser.add_argument("--index", default="bench-hybrid", help="the index's name in HOME (default: bench-hybrid)")
    args = parser.parse_args()
    dataset = first_documents(load_dataset(args.dataset), args.docs)
    configs = parse_sweep(GRID_30)
    assert len(configs) == 30, len(configs)
    questions = dataset.questions[: args.questions]
    with tempfile.TemporaryDirectory() as folder:
        work = args.home or Path(folder)
        indexes = IndexStore(work / "indexes")
        if not args.reuse_index:
            started = time.perf_counter()
            indexes.build(dataset, args.index, args.embedding, ChunkingParams(), replace=True)
            print(f"index build (with the BM25 side): {time.perf_counter() - started:.1f} s")
        index = indexes.open(args.index)
        store = RunStore(work / "runs")
        print(
            f"sweep: {len(configs)} configs (BM25, hybrid, vector) x {len(questions)} questions, "
            f"{index.manifest.chunks} chunks, {index.manifest.embedding_model}"
        )
        fast = floor_and_fast(store, index, configs, questions, args.rounds)
        if not args.skip_reference:
            reference_loop(store, index, configs, questions[: args.reference_questions or None], len(questions), fast)
        if not args.skip_rerank:
            rerank_benchmark(index, store, questions, str(build_cross_encoder(work / "minilm-ce", minilm_layers=6)))


if __name__ == "__main__":
    main()
