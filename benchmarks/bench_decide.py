"""Labels until a decision settles: the lab's order against random order, under both rules, on the shared sets
with gold (gold answers as the person), on the cached 60-question runs of 12 configs (vector, MMR, BM25, hybrid
and a config returning a random 15 chunks) in ~/.cache/retriever-lab-bench/decide/<set>/runs.

    python benchmarks/bench_decide.py --sets cmrc --seeds 2 --rules pick --seconds 300

A run's right answer: pick, within epsilon of the all-gold best over the pool; tie-set, the all-gold tie set.
Stops starting new cases after --seconds. `--check-every` evaluates the rule every N labels (the label count
is then rounded up to a multiple of N)."""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import time
from pathlib import Path

from eval.data.datasets import load_dataset, question_record
from eval.data.labels import load_labels
from eval.index.store import IndexStore
from eval.io import atomic_write_bytes
from eval.labels.decide import DecidePool, decide_with_oracle, run_truth
from eval.retrievers.registry import parse_sweep
from eval.runs.store import Run, RunStore
from eval.settings import ONNX_MODELS_ENV
from eval.sweep.engine import SweepOptions, run_sweep

CACHE = Path.home() / ".cache" / "retriever-lab-bench" / "decide"
SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
SETS = {  # name: (shared folder, language, bm25 tokenizer)
    "cmrc": ("cmrc2018_dev_zh", None, "jieba"),
    "squad": ("squad11_dev_en", None, "words"),
    "xquad-zh": ("xquad_zh_en", "zh", "jieba"),
    "xquad-en": ("xquad_zh_en", "en", "words"),
    "pubmedqa": ("pubmedqa_pqal_en", None, "words"),
}
QUESTIONS, DOCUMENTS = 60, 300


def latest_run(name: str) -> Run:
    """The set's cached run, made here once when there is none."""
    store = RunStore(CACHE / name / "runs")
    finished = sorted(m["run_id"] for m in store.list() if m.get("status") == "complete")
    return store.load(finished[-1]) if finished else make_run(name, store)


def make_run(name: str, store: RunStore) -> Run:
    """60 seeded-random questions of the set over their relevant documents plus random others (300 documents
    at most, written under the cache, not the repository) through the grid."""
    folder, language, tokenizer = SETS[name]
    os.environ.setdefault(ONNX_MODELS_ENV, str(CACHE.parent / "onnx"))
    full = load_dataset(SHARED / folder, language=language)
    rng = random.Random(0)
    questions = rng.sample([q for q in full.questions if q.relevant_ids], QUESTIONS)
    needed = {d for q in questions for d in q.relevant_ids}
    others = [d for d in full.corpus if d.id not in needed]
    corpus = [d for d in full.corpus if d.id in needed] + rng.sample(others, min(len(others), DOCUMENTS - len(needed)))
    data = CACHE / name / "data"
    data.mkdir(parents=True, exist_ok=True)
    write_jsonl(data / "corpus.jsonl", [{"id": d.id, "text": d.text, "title": d.title} for d in corpus])
    write_jsonl(data / "questions.jsonl", [question_record(q) for q in questions])
    dataset = load_dataset(data)
    indexes = IndexStore(CACHE / name / "indexes")
    indexes.build(dataset, name)
    index = indexes.open(name)
    random15 = CACHE / name / f"{name}-random15.jsonl"
    chunks = [(c.doc_id, c.chunk_id) for c in index.chunks()]
    write_jsonl(
        random15,
        [
            {"question_id": q.id, "retrieved": [{"doc_id": d, "chunk_id": c} for d, c in rng.sample(chunks, 15)]}
            for q in dataset.questions
        ],
    )
    return store.load(
        run_sweep(store, index, parse_sweep(grid(tokenizer, random15)), dataset.questions, str(data), SweepOptions())
    )


def grid(tokenizer: str, random15: Path) -> dict:
    """The benchmark's 12 configs: vector, MMR, BM25, hybrid and one returning 15 random chunks."""
    bm25 = {"search_type": "bm25", "k1": 1.5, "b": 0.75, "tokenizer": tokenizer}
    return {
        "configs": [
            *({"search_type": "similarity", "k": k} for k in (3, 5, 10)),
            *({"search_type": "mmr", "k": 5, "fetch_k": 20, "lambda_mult": m} for m in (0.25, 0.5, 0.75)),
            {"search_type": "mmr", "k": 10, "fetch_k": 30, "lambda_mult": 0.5},
            *({**bm25, "k": k} for k in (3, 5, 10)),
            {
                "search_type": "ensemble",
                "weights": [0.5, 0.5],
                "c": 60,
                "retrievers": [{**bm25, "k": 10}, {"search_type": "similarity", "k": 10}],
            },
            {"search_type": "imported", "format": "jsonl", "map_by": "doc_id", "name": "random15"}
            | {"path": str(random15)},
        ]
    }


def write_jsonl(path: Path, records: list[dict]) -> None:
    atomic_write_bytes(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sets", nargs="+", default=["cmrc", "squad"])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--rules", nargs="+", default=["pick", "tie-set"])
    parser.add_argument("--orders", nargs="+", default=["active", "random"])
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    began = time.perf_counter()
    for name in args.sets:
        run = latest_run(name)
        labels = load_labels(run.info.questions.source)
        pool = DecidePool(run)
        gold = pool.grades_from(labels, "gold")
        within, tie_set = run_truth(pool, gold)
        print(
            f"{name}: run {run.run_id}, {len(pool.questions)} questions, {len(pool.configs)} configs, "
            f"{len(pool)} pairs ({int((gold >= 1).sum())} relevant); within 0.02 of the best: {len(within)}; "
            f"all-gold tie set: {len(tie_set)}"
        )
        for rule in args.rules:
            for order in args.orders:
                used, right, chosen = [], 0, []
                for seed in range(args.seeds):
                    if time.perf_counter() - began > args.seconds:
                        break
                    result = decide_with_oracle(
                        run,
                        labels,
                        "gold",
                        rule=rule,
                        order=order,
                        seed=seed,
                        samples=args.samples,
                        check_every=1 if rule == "pick" and order == "active" else (10 if rule == "pick" else 50),
                        decide_pool=pool,
                    )
                    decision = result.decision
                    ok = (
                        decision.recommended in within if rule == "pick" else set(decision.indistinguishable) == tie_set
                    )
                    used.append(result.labels)
                    right += ok and result.settled
                    chosen.append(decision.recommended)
                if used:
                    print(
                        f"  {rule:8} {order:7} seeds {len(used)}: labels {used} (median {statistics.median(used):g}), "
                        f"settled and right {right}/{len(used)}, random15 chosen {chosen.count('random15')} times "
                        f"[{time.perf_counter() - began:.0f} s]",
                        flush=True,
                    )


if __name__ == "__main__":
    main()
