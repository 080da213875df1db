"""Decide's cost past the benchmark's 60 questions x 12 configs at k 10: a synthetic run of Q questions x C configs
at depth k (each config's list drawn from a question's 3k candidate documents, one chunk each), the time and peak
memory of building the pool and of one evaluation (200 completions), as the Decide tab makes after each label,
and of replaying 1,000 labels (a session does after each answer).

    python benchmarks/bench_decide_scale.py --questions 200 --configs 20 --k 100
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tracemalloc
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from eval.labels.decide import DecidePool, Decider


def synthetic_run(folder: Path, questions: int, configs: int, k: int, seed: int = 0) -> SimpleNamespace:
    """An object with what `DecidePool` reads of a run: rows, questions, folder/chunks.parquet."""
    rng = np.random.default_rng(seed)
    rows, chunks = [], {}
    for q in range(questions):
        candidates = [f"q{q}-d{n}" for n in range(3 * k)]
        for doc in candidates:
            chunks[f"{doc}#0"] = doc
        for c in range(configs):
            docs = list(rng.choice(candidates, size=k, replace=False))
            rows.append(
                {"question_id": f"q{q}", "config_id": f"c{c}", "chunk_ids": [f"{d}#0" for d in docs], "doc_ids": docs}
            )
    table = pd.DataFrame({"chunk_id": list(chunks), "doc_id": list(chunks.values()), "start": 0, "text": "x" * 100})
    table.to_parquet(folder / "chunks.parquet")
    return SimpleNamespace(
        run_id="synthetic",
        folder=folder,
        rows=pd.DataFrame(rows),
        questions=[SimpleNamespace(id=f"q{q}") for q in range(questions)],
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--configs", type=int, default=20)
    parser.add_argument("--k", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run = synthetic_run(Path(folder), args.questions, args.configs, args.k)
        began = time.perf_counter()
        pool = DecidePool(run)  # type: ignore[arg-type]
        built = time.perf_counter() - began
        grades = np.full(len(pool), np.nan)
        rng = np.random.default_rng(1)
        asked = rng.choice(len(pool), size=len(pool) // 20, replace=False)
        grades[asked] = rng.random(len(asked)) < 0.1
        decider = Decider(pool, grades)
        times = []
        for _ in range(4):  # the first warms up
            began = time.perf_counter()
            decider.evaluate()
            times.append(time.perf_counter() - began)
        decision = decider.evaluate()
        picks = []
        for _ in range(4):  # the lab's next pair (an active pick: no label made in this decision yet)
            began = time.perf_counter()
            decider.next_pair(decision)
            picks.append(time.perf_counter() - began)
        replay = Decider(pool, np.full(len(pool), np.nan))
        began = time.perf_counter()
        for n in asked[:1000]:  # what a session does after every answer: its labels again, in their order
            replay.label(int(n), int(grades[n]))
        replayed = time.perf_counter() - began
        tracemalloc.start()  # (it slows allocation: timed above, untraced)
        Decider(DecidePool(run), grades).evaluate()  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    print(
        f"{args.questions} questions x {args.configs} configs at k {args.k}: {len(pool)} pairs; pool built in "
        f"{built:.1f} s; one evaluation (200 completions) {np.median(times[1:]):.2f} s (after a warm-up, "
        f"median of 3: {', '.join(f'{t:.2f}' for t in times[1:])}); the next pair {np.median(picks[1:]):.2f} s; "
        f"building and one evaluation: peak traced "
        f"memory {peak / 2**20:.0f} MiB; {min(1000, len(asked))} labels replayed in {replayed:.2f} s"
    )


if __name__ == "__main__":
    main()
