"""Labels until a decision settles: the lab's order against random order, under both rules, on the shared sets
with gold (gold answers as the person), on the cached 60-question runs of 12 configs (vector, MMR, BM25, hybrid
and a config returning a random 15 chunks) in ~/.cache/retriever-lab-bench/decide/<set>/runs.

    python benchmarks/bench_decide.py --sets cmrc --seeds 2 --rules pick --seconds 300

A run's right answer: pick, within epsilon of the all-gold best over the pool; tie-set, the all-gold tie set.
Stops starting new cases after --seconds. `--check-every` evaluates the rule every N labels (the label count
is then rounded up to a multiple of N)."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

from eval.data.labels import load_labels
from eval.labels.decide import DecidePool, decide_with_oracle, run_truth
from eval.runs.store import RunStore

CACHE = Path.home() / ".cache" / "retriever-lab-bench" / "decide"


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
        store = RunStore(CACHE / name / "runs")
        run = store.load(sorted(m["run_id"] for m in store.list())[-1])
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
