"""How many generations prompt reuse saves on a run: rows vs distinct (question, retrieved chunks) pairs.

    .venv/bin/python benchmarks/count_reuse.py --home /tmp/bench-home [--run RUN_ID]

With deterministic decoding the sweep generates once per distinct pair (same chunks, same order).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from eval.runs.store import RunStore


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--run")
    args = parser.parse_args()
    store = RunStore(args.home / "runs")
    run_id = (
        args.run
        or max(
            (m for m in store.list() if m["status"] == "complete"),
            key=lambda m: len(m["sweep"]["configs"]) * m["questions"]["count"],
        )["run_id"]
    )
    rows = store.load(run_id).rows
    distinct = len(set(zip(rows["question_id"], rows["chunk_ids"].map(tuple))))
    print(
        f"run {run_id}: {len(rows)} rows, {distinct} distinct prompts: {len(rows) - distinct} generations "
        f"saved ({(len(rows) - distinct) / len(rows):.1%})"
    )


if __name__ == "__main__":
    main()
