"""Encoder speed on this CPU: MiniLM (sentence-transformers, torch) in fp32 on 1 thread and on every core,
and under `torch.autocast("cpu", dtype=torch.bfloat16)`, on the same SQuAD chunks (one run, ratios to fp32 on
one thread, which is today's default on 2 cores), with the cosine of each variant's vectors to fp32's.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_encoders.py [--chunks 200]

bf16 only pays where the CPU has AMX or AVX512-BF16; the script prints what torch detects.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import torch

from eval.datasets import load_dataset
from eval.embeddings import minilm_path
from eval.index import ChunkingParams, chunk_corpus

ROOT = Path(__file__).resolve().parent.parent


def encode(model, texts: list[str], threads: int, bf16: bool) -> tuple[np.ndarray, float]:
    torch.set_num_threads(threads)
    model.encode(texts[:8], batch_size=8)  # warm up at this setting
    started = time.perf_counter()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        vectors = model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
    return np.asarray(vectors, np.float32), time.perf_counter() - started


def main() -> None:
    from sentence_transformers import SentenceTransformer

    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--dataset", default=str(ROOT.parent / "shared" / "datasets" / "squad11_dev_en"))
    args = parser.parse_args()
    texts = [c.text for c in chunk_corpus(load_dataset(args.dataset).corpus, ChunkingParams())][:args.chunks]
    flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split()
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"amx_bf16={'amx_bf16' in flags}, avx512_bf16={'avx512_bf16' in flags}, cores {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.1f}")
    model = SentenceTransformer(minilm_path(), device="cpu")
    cores = os.cpu_count() or 1
    reference, base = encode(model, texts, 1, False)
    print(f"fp32, 1 thread: {len(texts) / base:.1f} chunks/s (1.00x)")
    for threads, bf16 in ((cores, False), (1, True), (cores, True)):
        vectors, seconds = encode(model, texts, threads, bf16)
        cosine = float(np.min(np.sum(vectors * reference, axis=1)))
        print(f"{'bf16' if bf16 else 'fp32'}, {threads} threads: {len(texts) / seconds:.1f} chunks/s "
              f"({base / seconds:.2f}x), min cosine to fp32 {cosine:.5f}")


if __name__ == "__main__":
    main()
