"""Family-wise error of the best-config set when every config is equal: how often a rule rules out at least one
config, over many simulated runs (per-question values of k equal configs, paired by question).

    .venv/bin/python benchmarks/bench_confidence_fwer.py [--configs 10] [--questions 40] [--repetitions 500]

Rules: the confidence set (`eval.analysis.confidence`, Holm over every pair); the uncorrected rule (rule out a
config whose paired randomization test against the leader gives p < 0.05, as the recommendation did before);
Holm over the comparisons with the leader only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from eval.analysis.confidence import best_set_mask, holm_rejected, resamples_for
from eval.metrics.statistics import _sign_flip_pvalues


def leader_pvalues(values: np.ndarray, seed: int) -> np.ndarray:
    leader = int(np.argmax(values.mean(axis=0)))
    others = [j for j in range(values.shape[1]) if j != leader]
    n = resamples_for(len(others))
    return (_sign_flip_pvalues(values[:, [leader]] - values[:, others], n, seed) * n + 1) / (n + 1)


def simulate(configs: int, questions: int, repetitions: int, seed: int = 0) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    errors = {"confidence set (Holm, all pairs)": 0, "uncorrected, against the leader": 0, "Holm, leader only": 0}
    for r in range(repetitions):
        # nDCG-like values: a per-question difficulty shared by all configs plus per-config noise, clipped to [0, 1]
        values = np.clip(rng.beta(2, 2, (questions, 1)) + rng.normal(0, 0.15, (questions, configs)), 0, 1)
        errors["confidence set (Holm, all pairs)"] += not best_set_mask(values, seed=r).all()
        p = leader_pvalues(values, r)
        errors["uncorrected, against the leader"] += bool((p < 0.05).any())
        errors["Holm, leader only"] += bool(holm_rejected(p).any())
    return {rule: count / repetitions for rule, count in errors.items()}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--configs", type=int, default=10)
    parser.add_argument("--questions", type=int, default=40)
    parser.add_argument("--repetitions", type=int, default=500)
    args = parser.parse_args()
    start = time.perf_counter()
    rates = simulate(args.configs, args.questions, args.repetitions)
    print(
        f"{args.configs} equal configs x {args.questions} questions, {args.repetitions} repetitions "
        f"({time.perf_counter() - start:.1f} s)"
    )
    for rule, rate in rates.items():
        print(f"  {rule}: family-wise error {rate:.3f}")


if __name__ == "__main__":
    main()
