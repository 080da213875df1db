"""Why judging Chinese pairs with the bundled SmolLM2 is slow: prompt length in tokens per language, and the
time of the prompt's prefill and of one judgement (4 new tokens, with the KV cache), per pair.

    .venv/bin/python benchmarks/bench_judge_languages.py --pairs 2

Pairs: the first `--pairs` questions of CMRC 2018 dev (zh) and SQuAD 1.1 dev (en), each with the first 500
characters of its document, in the judging prompt (`eval.labels.pooled_judging.TEMPLATES`). Tokens per
character are measured over the first 20 documents' first 500 characters.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"
SETS = {"zh": "cmrc2018_dev_zh", "en": "squad11_dev_en"}


def first_rows(path: Path, n: int) -> list[dict]:
    with path.open(encoding="utf-8") as file:
        return [json.loads(next(file)) for _ in range(n)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=2)
    parser.add_argument("--home", type=Path, default=ROOT / ".retriever_lab")
    args = parser.parse_args()
    import torch

    from eval.generation.generators import GenerationSettings, load_generator
    from eval.labels.pooled_judging import TEMPLATES

    generator = load_generator("bundled:smollm2-smoke-test", home=args.home)
    print(f"torch threads {torch.get_num_threads()}, {generator.model.dtype}, load {os.getloadavg()[0]:.1f}")
    for language, folder in SETS.items():
        documents = first_rows(SHARED / folder / "corpus.jsonl", 20)
        per_char = sum(len(generator.tokenizer(d["text"][:500]).input_ids) for d in documents) / sum(
            len(d["text"][:500]) for d in documents
        )
        questions = first_rows(SHARED / folder / "questions.jsonl", args.pairs)
        for question, document in zip(questions, documents):
            prompt = TEMPLATES[language].format(question=question["question"], chunk=document["text"][:500])
            ids = generator.encode(prompt)
            start = time.perf_counter()
            with torch.inference_mode():
                generator.model(input_ids=ids)
            prefill = time.perf_counter() - start
            start = time.perf_counter()
            reply, _ = generator.complete(prompt, GenerationSettings(max_new_tokens=4))
            print(
                f"{language}: {per_char:.2f} tokens/char, prompt {ids.shape[1]} tokens, prefill {prefill:.2f} s, "
                f"judgement {time.perf_counter() - start:.2f} s, reply {reply!r}, load {os.getloadavg()[0]:.1f}",
                flush=True,
            )


if __name__ == "__main__":
    main()
