"""What a service that returns far more than it was asked for costs a sweep (issue: 10,000 hits for `top_k: 5`
took 340 s and 2.7 GB for one question, all scored). Results are now cut to the config's k before they are
mapped and embedded, so the flood should cost about what a well-behaved answer costs, plus reading the JSON.

    .venv/bin/python benchmarks/bench_external_flood.py [--hits 10000] [--trials 5] [--uncut-trials 1]

On the bundled sample (e5-small index), one question, an `http_json` config with `top_k: 5` against a local
server that answers either 5 hits ("normal") or `--hits` hits ("flood"); trials interleaved after a warm-up,
each a fresh `run_sweep`: wall time and the peak of Python-tracked memory (tracemalloc, numpy included).
`--uncut-trials` also times the same flood with `top_k` equal to `--hits`: every hit mapped and embedded, as
the flood was before the cut.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import tracemalloc
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eval import SAMPLE_DIR  # noqa: E402
from eval.data.datasets import load_dataset  # noqa: E402
from eval.index.store import IndexStore  # noqa: E402
from eval.retrievers.registry import parse_sweep  # noqa: E402
from eval.runs.store import RunStore  # noqa: E402
from eval.sweep.engine import SweepOptions, run_sweep  # noqa: E402


def serve(payload: bytes) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def hits(index, n: int) -> bytes:
    """The index's first five chunks, then distinct filler passages of about 400 characters."""
    chunks = list(index.chunks())
    real = [{"text": c.text, "doc": c.doc_id, "score": 1.0 - i / 100} for i, c in enumerate(chunks[:5])]
    filler = [
        {
            "text": f"filler passage {i}: " + "an unrelated sentence about nothing in particular. " * 8,
            "doc": chunks[i % len(chunks)].doc_id,
            "score": 0.5 - i / (4 * n),
        }
        for i in range(n - len(real))
    ]
    return json.dumps({"hits": real + filler}).encode()


def config(url: str, top_k: int):
    return parse_sweep(
        {
            "configs": [
                {
                    "search_type": "http_json",
                    "name": "svc",
                    "url": url,
                    "request": {"q": "{question}", "size": "{top_k}"},
                    "params": {"top_k": top_k},
                    "results": "hits",
                    "text": "text",
                    "score": "score",
                    "map_by": "doc_id",
                    "map_field": "doc",
                }
            ]
        }
    )


def one_run(index, configs, question, folder: Path) -> tuple[float, float, int]:
    """(seconds, peak MB tracked, chunks scored) of one fresh run."""
    tracemalloc.start()
    started = time.perf_counter()
    store = RunStore(folder)
    run = store.load(run_sweep(store, index, configs, [question], "bench", SweepOptions(latency_sample=0)))
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] / 1e6
    tracemalloc.stop()
    return seconds, peak, int(run.rows["n_retrieved"].iloc[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hits", type=int, default=10_000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--uncut-trials", type=int, default=0)
    args = parser.parse_args()
    flags = open("/proc/cpuinfo").read().split("flags")[1].split("\n")[0].split()
    print(
        f"cores {len(os.sched_getaffinity(0))}, avx2={'avx2' in flags}, avx512f={'avx512f' in flags}, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    work = Path(tempfile.mkdtemp(prefix="bench-flood-"))
    dataset = load_dataset(SAMPLE_DIR)
    IndexStore(work / "indexes").build(dataset, "sample", "e5-small")
    index = IndexStore(work / "indexes").open("sample")
    normal, flood = serve(hits(index, 5)), serve(hits(index, args.hits))
    urls = {
        name: f"http://127.0.0.1:{server.server_address[1]}/search"
        for name, server in (("normal", normal), ("flood", flood))
    }
    question = dataset.questions[0]
    variants = {"normal": config(urls["normal"], 5), "flood": config(urls["flood"], 5)}
    for name, configs in variants.items():  # warm-up: encoder loaded, first call made
        one_run(index, configs, question, work / f"warm-{name}")
    results: dict[str, list[tuple[float, float, int]]] = {name: [] for name in variants}
    for trial in range(args.trials):
        order = list(variants)
        random.Random(trial).shuffle(order)
        for name in order:
            results[name].append(one_run(index, variants[name], question, work / f"{name}-{trial}"))
    if args.uncut_trials:
        uncut = config(urls["flood"], args.hits)
        results["flood, top_k = hits (before the cut)"] = [
            one_run(index, uncut, question, work / f"uncut-{trial}") for trial in range(args.uncut_trials)
        ]
    for name, runs in results.items():
        seconds, peaks = [r[0] for r in runs], [r[1] for r in runs]
        print(
            f"{name:38s} median {statistics.median(seconds):8.3f} s (min {min(seconds):.3f}, max "
            f"{max(seconds):.3f}), peak {statistics.median(peaks):8.1f} MB, chunks scored {runs[0][2]}"
        )
    ratio = [f / n for f, n in zip((r[0] for r in results["flood"]), (r[0] for r in results["normal"]))]
    print(
        f"flood / normal time per interleaved pair: median {statistics.median(ratio):.2f} "
        f"(min {min(ratio):.2f}, max {max(ratio):.2f}); {args.hits} hits returned for top_k 5"
    )
    normal.shutdown()
    flood.shutdown()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
