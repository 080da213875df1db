"""How long `aggregate` takes for a leaderboard of 30 configs x 1,000 questions x 6 metrics, with a baseline
(1,000 bootstrap and 2,000 randomization resamples, the defaults).

    .venv/bin/python benchmarks/bench_aggregate.py [--repeat 5]

Prints the best and the median of the repeats, in seconds.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import pandas as pd

from eval.metrics import aggregate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    metrics = ["hit_rate", "recall", "ndcg", "mrr", "ild", "ttft_ms"]
    n = 1000
    rows = pd.concat(
        [
            pd.DataFrame({"config_id": f"c{c}", "question_id": np.arange(n), **{m: rng.random(n) for m in metrics}})
            for c in range(30)
        ]
    )
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        out = aggregate(rows, metrics, baseline="c0")
        times.append(time.perf_counter() - started)
    assert out.shape == (30, 2 + 5 * len(metrics))
    print(
        f"aggregate, 30 configs x {n} questions x {len(metrics)} metrics with a baseline: "
        f"best {min(times):.3f} s, median {statistics.median(times):.3f} s ({args.repeat} runs)"
    )


if __name__ == "__main__":
    main()
