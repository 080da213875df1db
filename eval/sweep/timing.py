"""Retriever latency timed so that what the machine does meanwhile is not charged to one configuration:
per question every config in a shuffled order, after a warm-up call.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import pandas as pd

from eval.metrics.latency import SAMPLE_COLUMNS, empty_samples


def time_interleaved(
    calls: Mapping[str, Callable[[Any], Any]],
    questions: Sequence[Any],
    question_id: Callable[[Any], str] = lambda q: q.id,
    *,
    warmup: int = 1,
    seed: int = 0,
    clock: Callable[[], float] = time.perf_counter,
    before_each: Callable[[], None] | None = None,
    after_question: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Milliseconds per (config, question): for each question, each config's call once, in an order shuffled
    per question (seeded). First `warmup` untimed rounds of every config on the first question (cold caches,
    lazily built objects). `before_each` runs before every call (e.g. a cancel check); `after_question` is
    told how many questions are timed so far."""
    if not questions:
        return empty_samples()
    rng = random.Random(seed)
    names = list(calls)
    for _ in range(warmup):
        for name in rng.sample(names, len(names)):
            calls[name](questions[0])
    records = []
    for number, question in enumerate(questions, start=1):
        for name in rng.sample(names, len(names)):
            if before_each is not None:
                before_each()
            started = clock()
            calls[name](question)
            records.append((name, question_id(question), (clock() - started) * 1000))
        if after_question is not None:
            after_question(number)
    return pd.DataFrame.from_records(records, columns=SAMPLE_COLUMNS)
