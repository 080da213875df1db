"""Does a busy spell of the machine get charged to one configuration? (target, on an idle machine: four
identical configs' medians within 1.2x of each other with interleaved timing)

    .venv/bin/python benchmarks/bench_latency_bias.py

Builds the bundled sample's index (e5-small) in a temporary folder, then times four identical similarity
configs (k=5) through the real LangChain retriever on 40 questions twice: config after config (how the sweep
timed before) and interleaved (`eval.timing.time_interleaved`, what the sweep does now). Each time, a burst of
a 2-thread torch matmul starts with the timing and lasts 2 seconds. Prints each way's per-config medians and
the ratio of the largest median to the smallest.
"""

from __future__ import annotations

import tempfile
import threading
import time
from pathlib import Path

BURST_SECONDS = 2.0


def burst(stop_after: float) -> threading.Thread:
    """Another job on the machine: a 2-thread matmul loop for `stop_after` seconds."""
    import torch

    def work() -> None:
        torch.set_num_threads(2)
        a = torch.randn(768, 768)
        ends = time.perf_counter() + stop_after
        while time.perf_counter() < ends:
            a @ a

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def sequential(calls: dict, questions: list) -> dict[str, float]:
    import statistics

    medians = {}
    for name, call in calls.items():
        samples = []
        for question in questions:
            started = time.perf_counter()
            call(question)
            samples.append((time.perf_counter() - started) * 1000)
        medians[name] = statistics.median(samples)
    return medians


def main() -> None:
    from eval import SAMPLE_DIR
    from eval.data.datasets import load_dataset
    from eval.index.chunking import ChunkingParams
    from eval.index.store import IndexStore
    from eval.sweep.timing import time_interleaved

    dataset = load_dataset(SAMPLE_DIR)
    with tempfile.TemporaryDirectory() as home:
        store = IndexStore(Path(home))
        store.build(dataset, "sample", "e5-small", ChunkingParams(400, 40))
        index = store.open("sample")
        retrievers = {
            f"similarity-k5 #{n}": index.vectorstore.as_retriever(search_kwargs={"k": 5}) for n in range(1, 5)
        }
        calls = {name: (lambda q, r=r: r.invoke(q.question)) for name, r in retrievers.items()}
        questions = dataset.questions[:40]
        for call in calls.values():  # warm every retriever up for the sequential run too
            call(questions[0])
        burst(BURST_SECONDS)
        before = sequential(calls, questions)
        time.sleep(BURST_SECONDS)  # let the first burst end
        burst(BURST_SECONDS)
        after = time_interleaved(calls, questions).groupby("config_id", sort=False).retrieval_ms.median()
    for title, medians in (("config after config", before), ("interleaved", dict(after))):
        values = list(medians.values())
        print(
            f"{title}: medians "
            + ", ".join(f"{v:.2f}" for v in values)
            + f" ms; largest / smallest {max(values) / min(values):.2f}x"
        )


if __name__ == "__main__":
    main()
