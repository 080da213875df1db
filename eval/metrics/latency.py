"""Latency metrics. They are measured, not computed from rows: `retrieval_ms` by the sweep's timing of the real
LangChain retriever (`eval.sweep.measure_latency`), the others by the generators (`eval.generation`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from eval.metrics.catalogue import Metric

RETRIEVAL_LATENCY = (Metric("retrieval_ms", "Retrieval (ms)", "latency", False, "wall time of the retriever call"),)
GENERATION_LATENCY = (
    Metric(
        "ttft_ms",
        "Time to first token (ms)",
        "latency",
        False,
        "from the start of generation to the first streamed answer token",
    ),
    Metric("total_ms", "Total (ms)", "latency", False, "from the start of generation to the last answer token"),
    Metric(
        "tokens_per_s", "Tokens / s", "latency", True, "generated tokens / (time of last token - time of first token)"
    ),
)


def empty_samples() -> pd.DataFrame:
    return pd.DataFrame(
        {"config_id": pd.Series(dtype=str), "question_id": pd.Series(dtype=str), "retrieval_ms": pd.Series(dtype=float)}
    )


def percentile_intervals(
    samples: pd.DataFrame,
    column: str = "retrieval_ms",
    confidence: float = 0.95,
    n_resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
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
                    float(v) for v in np.quantile(resampled, [tail, 1 - tail])
                )
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


SAMPLE_COLUMNS = ["config_id", "question_id", "retrieval_ms"]


PERCENTILES = {"p50": 0.5, "p95": 0.95}
