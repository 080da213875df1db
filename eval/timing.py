"""Retriever latency timed so that what the machine does meanwhile is not charged to one configuration.

Timing config after config charges a busy spell of the machine (another job, a background embedding, a
garbage collection) to whichever config happened to be timed then: one of four identical configs timed
during a 2-second burst of another process showed a median 1.7x the others'. Here every question is timed
on all configs back to back, in an order shuffled per question, after untimed warm-up calls; a slow phase
then lands on every config about equally. Percentiles come with bootstrap intervals, so two configs whose
intervals overlap are shown as not told apart.
"""
from __future__ import annotations

import random
import time
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

SAMPLE_COLUMNS = ["config_id", "question_id", "retrieval_ms"]
PERCENTILES = {"p50": 0.5, "p95": 0.95}


def empty_samples() -> pd.DataFrame:
    return pd.DataFrame({"config_id": pd.Series(dtype=str), "question_id": pd.Series(dtype=str),
                         "retrieval_ms": pd.Series(dtype=float)})


def time_interleaved(calls: Mapping[str, Callable[[Any], Any]], questions: Sequence[Any],
                     question_id: Callable[[Any], str] = lambda q: q.id, *, warmup: int = 1, seed: int = 0,
                     clock: Callable[[], float] = time.perf_counter,
                     before_each: Callable[[], None] | None = None,
                     after_question: Callable[[int], None] | None = None) -> pd.DataFrame:
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


def percentile_intervals(samples: pd.DataFrame, column: str = "retrieval_ms", confidence: float = 0.95,
                         n_resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Per config: `<column>_p50`, `_p95` and each one's percentile-bootstrap interval (`_p50_low`,
    `_p50_high`, ...), from the samples' `config_id` and `column`. The point values are the samples' own
    percentiles (linear interpolation, as pandas' `quantile`)."""
    tail = (1 - confidence) / 2
    records = []
    for config_id, values in samples.groupby("config_id", sort=False)[column]:
        values = values.dropna().to_numpy(float)
        record: dict[str, Any] = {"config_id": config_id}
        if len(values):
            draws = values[np.random.default_rng(seed).integers(0, len(values), (n_resamples, len(values)))]
            for name, q in PERCENTILES.items():
                resampled = np.quantile(draws, q, axis=1)
                record[f"{column}_{name}"] = float(np.quantile(values, q))
                record[f"{column}_{name}_low"], record[f"{column}_{name}_high"] = (
                    float(v) for v in np.quantile(resampled, [tail, 1 - tail]))
        records.append(record)
    columns = ["config_id"] + [f"{column}_{name}{part}" for name in PERCENTILES for part in ("", "_low", "_high")]
    return pd.DataFrame.from_records(records).reindex(columns=columns)


def indistinguishable(summary: pd.DataFrame, first: str, second: str, column: str = "retrieval_ms_p50") -> bool:
    """Whether two configs' latency intervals (`percentile_intervals` columns in a summary) overlap, i.e. the
    samples cannot tell which one is faster."""
    rows = summary.set_index("config_id").loc[[first, second]]
    low, high = rows[f"{column}_low"].to_numpy(float), rows[f"{column}_high"].to_numpy(float)
    if np.isnan(low).any() or np.isnan(high).any():
        return False
    return bool(low.max() <= high.min())
