"""Embedding cache benchmark: rebuilding an index with another `chunk_overlap` vs the first build (one run).

    .venv/bin/python benchmarks/bench_embedding_cache.py [--docs 400] [--embedding minilm]

Builds SQuAD dev passages (the first N) twice into a fresh folder with a fresh cache: chunk_size 500 with
overlap 50, then overlap 100. Prints both build times, their ratio (target: at most 0.5x) and the second
build's cache hit rate (the first chunk of every passage, and every passage shorter than a chunk, is the
same text under both overlaps). Then builds the second index again with the cache off, for the time the
rebuild would take without it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from eval.data.datasets import Dataset, load_dataset
from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.encoders import get_embeddings
from eval.index.store import IndexStore

ROOT = Path(__file__).resolve().parent.parent


def timed_build(store: IndexStore, dataset: Dataset, name: str, embedding: str, overlap: int):
    started = time.perf_counter()
    manifest = store.build(dataset, name, embedding, ChunkingParams(500, overlap))
    return manifest, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=400)
    parser.add_argument("--embedding", default="minilm")
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "squad11_dev_en"))
    args = parser.parse_args()
    full = load_dataset(args.dataset)
    dataset = Dataset(f"{full.name}[:{args.docs}]", full.corpus[: args.docs], [])
    get_embeddings(args.embedding).embed_array(["warm up"])
    with tempfile.TemporaryDirectory() as folder:
        cached = IndexStore(Path(folder) / "indexes", embedding_cache=EmbeddingCache(Path(folder) / "cache"))
        first, first_s = timed_build(cached, dataset, "overlap-50", args.embedding, 50)
        second, second_s = timed_build(cached, dataset, "overlap-100", args.embedding, 100)
        uncached = IndexStore(Path(folder) / "uncached", embedding_cache=EmbeddingCache(Path(folder) / "empty"))
        _, uncached_s = timed_build(uncached, dataset, "overlap-100", args.embedding, 100)
    print(
        f"[{dataset.name}] {args.embedding}: first build (overlap 50) {first.chunks} chunks in {first_s:.1f} s; "
        f"rebuild with overlap 100: {second.chunks} chunks in {second_s:.1f} s, cache hits "
        f"{second.embedding_cache['hits']}/{second.embedding_cache['hits'] + second.embedding_cache['misses']} "
        f"({second.embedding_cache['hit_rate']:.0%}); rebuild / first = {second_s / first_s:.2f}x; "
        f"the same rebuild without the cache {uncached_s:.1f} s (cached / uncached = {second_s / uncached_s:.2f}x)"
    )


if __name__ == "__main__":
    main()
