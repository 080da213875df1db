"""Sweep and index-build benchmarks on SQuAD dev from ../shared/datasets (each ratio measured in one run).

    .venv/bin/python benchmarks/bench_sweep.py [--questions 1000] [--embedding minilm]

Prints: index build chunks/s vs pure embedding of the same chunks; the fast sweep path vs the
LangChain reference path on the same 30-config grid (latency sampling excluded from both); the fast
path vs the floor: embedding the questions once plus one Chroma query each, with the vectors LangChain's
retriever uses (`embed_query`, one question at a time; the floor every exact path pays), and, for
comparison, with one batched encoding (cheaper, but MiniLM's batched vectors are not LangChain's).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from eval.data.datasets import Dataset, load_dataset
from eval.index.chunking import ChunkingParams, chunk_corpus
from eval.index.encoders import get_embeddings
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

ROOT = Path(__file__).resolve().parent.parent

GRID_30 = {
    "configs": [
        {"search_type": "similarity", "k": [1, 3, 5, 8, 10, 20]},
        {"search_type": "mmr", "k": [3, 5, 10], "fetch_k": [20, 50], "lambda_mult": [0.25, 0.5, 0.75]},
        {"search_type": "similarity_score_threshold", "k": [5, 10], "score_threshold": [0.3, 0.5, 0.7]},
    ]
}


def first_documents(dataset: Dataset, count: int | None) -> Dataset:
    """The first `count` documents and the questions about them only (all of them when `count` is None)."""
    if not count:
        return dataset
    kept = {d.id for d in dataset.corpus[:count]}
    return Dataset(dataset.name, dataset.corpus[:count], [q for q in dataset.questions if set(q.relevant_ids) <= kept])


def build_vs_embedding(dataset, embedding: str, work: Path) -> None:
    chunking = ChunkingParams()
    chunks = chunk_corpus(dataset.corpus, chunking)
    model = get_embeddings(embedding)
    model.embed_array(["warm up"])
    started = time.perf_counter()
    model.embed_array([c.text for c in chunks])
    embed_seconds = time.perf_counter() - started
    started = time.perf_counter()
    IndexStore(work / "indexes").build(dataset, "bench", embedding, chunking)
    build_seconds = time.perf_counter() - started
    print(
        f"[{dataset.name}] {len(chunks)} chunks, {embedding}: embedding alone {embed_seconds:.1f} s "
        f"({len(chunks) / embed_seconds:.0f} chunks/s); index build {build_seconds:.1f} s "
        f"({len(chunks) / build_seconds:.0f} chunks/s); build / embedding = {build_seconds / embed_seconds:.2f}x"
    )


def floor_seconds(index, questions, n_results: int, batched: bool) -> float:
    started = time.perf_counter()
    texts = [q.question for q in questions]
    vectors = index.embeddings.embed_array(texts, is_query=True) if batched else index.embeddings.embed_queries(texts)
    for vector in vectors:
        index.collection.query(
            query_embeddings=[vector],
            n_results=n_results,
            include=["embeddings", "distances", "documents", "metadatas"],
        )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=1000)
    parser.add_argument("--embedding", default="minilm")
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "squad11_dev_en"))
    parser.add_argument("--skip-reference", action="store_true")
    parser.add_argument("--home", type=Path, help="keep the index and runs here (default: a temporary folder)")
    parser.add_argument("--reuse-index", action="store_true", help="skip the build benchmark; use HOME's index")
    args = parser.parse_args()
    dataset = load_dataset(args.dataset)
    configs = parse_sweep(GRID_30)
    questions = dataset.questions[: args.questions]
    with tempfile.TemporaryDirectory() as folder:
        work = args.home or Path(folder)
        if not args.reuse_index:
            build_vs_embedding(dataset, args.embedding, work)
        index = IndexStore(work / "indexes").open("bench")
        store = RunStore(work / "runs")
        n_results = max(c.candidates for c in configs)
        batched_floor = floor_seconds(index, questions, n_results, batched=True)
        floor = floor_seconds(index, questions, n_results, batched=False)
        fast = store.manifest(run_sweep(store, index, configs, questions, options=SweepOptions(latency_sample=0)))
        print(f"sweep: {len(configs)} configs x {len(questions)} questions")
        print(f"floor (embed each question as embed_query does + one query each): {floor:.1f} s")
        print(f"batched floor (one batched encoding + one query each): {batched_floor:.1f} s")
        print(
            f"fast path: {fast['wall_seconds']:.1f} s; fast / floor = {fast['wall_seconds'] / floor:.2f}x; "
            f"fast / batched floor = {fast['wall_seconds'] / batched_floor:.2f}x"
        )
        if not args.skip_reference:
            ref = store.manifest(
                run_sweep(store, index, configs, questions, options=SweepOptions(reference=True, latency_sample=0))
            )
            print(
                f"reference path (LangChain retriever per config and question): {ref['wall_seconds']:.1f} s; "
                f"reference / fast = {ref['wall_seconds'] / fast['wall_seconds']:.1f}x"
            )


if __name__ == "__main__":
    main()
