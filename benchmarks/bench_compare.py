"""How fast the Compare page renders a big run (e.g. 30 configs x 1,000 questions), through AppTest.

    .venv/bin/python benchmarks/bench_sweep.py --home /tmp/bench-home --skip-reference
    .venv/bin/python benchmarks/bench_compare.py --home /tmp/bench-home

Prints the first render (the run loaded from disk and summarised) and a re-render after a filter change
(cached: no reload, no recomputation).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--home", type=Path, required=True)
    args = parser.parse_args()
    os.environ["RETRIEVER_LAB_HOME"] = str(args.home)
    from streamlit.testing.v1 import AppTest

    from eval.runs import RunStore

    manifest = max(RunStore(args.home / "runs").list(),
                   key=lambda m: len(m["sweep"]["configs"]) * m["questions"]["count"])
    size = f"{len(manifest['sweep']['configs'])} configs x {manifest['questions']['count']} questions"
    app = AppTest.from_file(str(ROOT / "dashboard" / "compare.py"), default_timeout=120)
    started = time.perf_counter()
    app.run()
    app.selectbox(key="compare-run").set_value(manifest["run_id"]).run()
    first = time.perf_counter() - started
    assert not app.exception, app.exception
    started = time.perf_counter()
    app.multiselect(key="compare-types").set_value(["mmr"]).run()
    filtered = time.perf_counter() - started
    print(f"Compare page, run of {size}: first render {first:.2f} s; after a filter change {filtered:.2f} s")


if __name__ == "__main__":
    main()
