"""Streaming generation speed: our KV-cache loop against `model.generate`, on the bundled SmolLM2.

The prompt is a ~600-token RAG prompt built from SQuAD passages in ../shared/datasets (synthetic text when
that folder is absent). Both sides decode greedily with the same settings, so they produce the same tokens,
and both ignore stop tokens so that every run decodes exactly --max-new-tokens tokens (SmolLM2's RAG answers
are often ~20 tokens, too few for a steady rate). Rounds alternate between the two; medians are printed.
Run: `.venv/bin/python benchmarks/bench_generation.py [--threads 1]`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
from transformers.generation.streamers import BaseStreamer

from eval.generation.generators import GenerationSettings, TransformersGenerator, load_generator
from eval.generation.prompts import build_prompt

SQUAD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "squad11_dev_en"
TARGET_PROMPT_TOKENS = 600


class TokenClock(BaseStreamer):
    """Records when `generate` hands out each token (its first `put` is the prompt)."""

    def __init__(self) -> None:
        self.stamps: list[float] = []

    def put(self, value: torch.Tensor) -> None:
        self.stamps.append(time.perf_counter())

    def end(self) -> None:
        pass


def rag_prompt(generator: TransformersGenerator) -> str:
    """A question and enough passages (its own first) for a prompt of about TARGET_PROMPT_TOKENS tokens."""
    if SQUAD.is_dir():
        question = json.loads((SQUAD / "questions.jsonl").open().readline())
        passages = {row["id"]: row["text"] for row in map(json.loads, (SQUAD / "corpus.jsonl").open())}
        texts = [passages[question["relevant_ids"][0]], *passages.values()]
        question_text = question["question"]
    else:
        texts = [
            f"Passage {n}: the lab measures retrievers on many questions and configurations." * 4 for n in range(40)
        ]
        question_text = "What does the lab measure?"
    chunks: list[str] = []
    while generator.encode(build_prompt(question_text, chunks)).shape[1] < TARGET_PROMPT_TOKENS:
        chunks.append(texts[len(chunks)])
    return build_prompt(question_text, chunks)


def time_ours(generator: TransformersGenerator, prompt: str, settings: GenerationSettings) -> tuple[float, float, int]:
    """TTFT (ms), decode tokens/s and token count of one `stream`, consumed as fast as it comes."""
    for _ in generator.stream(prompt, settings):
        pass
    stats = generator.last_stats
    return stats.ttft_ms, stats.tokens_per_s, stats.completion_tokens


def time_generate(
    generator: TransformersGenerator, prompt: str, settings: GenerationSettings
) -> tuple[float, float, int]:
    """The same numbers for `model.generate`, with the chat template applied the same way."""
    clock = TokenClock()
    start = time.perf_counter()
    input_ids = generator.encode(prompt)
    generator.model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        do_sample=False,
        max_new_tokens=settings.max_new_tokens,
        eos_token_id=sorted(generator.stop_ids),
        streamer=clock,
    )
    first, *_, last = clock.stamps[1:]
    tokens = len(clock.stamps) - 1
    return 1000 * (first - start), (tokens - 1) / (last - first), tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's own choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    generator = load_generator("bundled:smollm2")
    print(
        f"model: {generator.name}, loaded in {time.perf_counter() - start:.1f} s, "
        f"dtype {generator.model.dtype}, torch threads {torch.get_num_threads()}"
    )
    generator.stop_ids = frozenset()  # decode a fixed number of tokens on both sides
    prompt = rag_prompt(generator)
    settings = GenerationSettings(max_new_tokens=args.max_new_tokens)
    time_ours(generator, prompt, settings)  # warm-up
    ours, theirs = [], []
    for round_number in range(args.rounds):  # who goes first alternates too
        pair = (time_ours, ours), (time_generate, theirs)
        for timer, runs in pair if round_number % 2 == 0 else reversed(pair):
            runs.append(timer(generator, prompt, settings))
    print(
        f"prompt: {generator.encode(prompt).shape[1]} tokens; decoded: {ours[0][2]} tokens "
        f"(generate: {theirs[0][2]}); {args.rounds} alternating rounds, medians:"
    )
    for label, runs in (("stream (KV-cache loop)", ours), ("model.generate", theirs)):
        ttft = statistics.median(run[0] for run in runs)
        rate = statistics.median(run[1] for run in runs)
        print(f"  {label:24s} time to first token {ttft:7.1f} ms   decode {rate:6.1f} tokens/s")
    ratio = statistics.median(run[1] for run in ours) / statistics.median(run[1] for run in theirs)
    print(f"  tokens/s ratio stream / generate: {ratio:.3f}")


if __name__ == "__main__":
    main()
