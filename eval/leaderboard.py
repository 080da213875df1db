"""Per-configuration summaries of a run: means with 95% CIs, significance against a baseline, latency."""
from __future__ import annotations

import json
from hashlib import sha256

import numpy as np
import pandas as pd

from eval.errors import LabError
from eval.metrics import METRICS, aggregate
from eval.recommend import rank_order
from eval.runs import Run, atomic_write_parquet
from eval.timing import percentile_intervals

LATENCY_COLUMNS = ("retrieval_ms", "ttft_ms", "total_ms", "tokens_per_s")
PARAMETER_COLUMNS = ("search_type", "k", "fetch_k", "lambda_mult", "score_threshold", "filter")
SUMMARY_VERSION = 2  # raise it when `summarize` changes what it computes: stored summaries are then recomputed


def quality_metrics(rows: pd.DataFrame) -> list[str]:
    """Metrics of the registry present in the rows with at least one value (latency excluded)."""
    return [name for name, info in METRICS.items()
            if info.group != "latency" and name in rows and rows[name].notna().any()]


def config_table(run: Run) -> pd.DataFrame:
    """One row per config with its LangChain parameters as columns (filter as JSON text)."""
    records = []
    for config in run.configs:
        record = {"config_id": config["config_id"], **{c: config.get(c) for c in PARAMETER_COLUMNS}}
        record["filter"] = json.dumps(record["filter"], ensure_ascii=False) if record["filter"] else ""
        records.append(record)
    return pd.DataFrame(records)


def latency_table(run: Run) -> pd.DataFrame:
    """p50/p95 per config for retriever latency (from the samples, each with its bootstrap interval,
    `retrieval_ms_p50_low` ...) and the answer latencies (from rows)."""
    out = pd.DataFrame({"config_id": [c["config_id"] for c in run.configs]})
    if len(run.latency):
        out = out.merge(percentile_intervals(run.latency), on="config_id", how="left")
    for column in [c for c in LATENCY_COLUMNS[1:] if c in run.rows and run.rows[c].notna().any()]:
        grouped = run.rows.groupby("config_id")[column]
        stats = pd.DataFrame({f"{column}_p50": grouped.median(), f"{column}_p95": grouped.quantile(0.95)})
        out = out.merge(stats, left_on="config_id", right_index=True, how="left")
    for column in ("retrieval_ms_p50", "retrieval_ms_p95"):  # a run without latency samples still has them
        if column not in out:
            out[column] = np.nan
    return out


def summarize(run: Run, baseline: str | None = None, metrics: list[str] | None = None) -> pd.DataFrame:
    """The leaderboard: parameters, metric means and CIs (+ p-values against `baseline`), latency."""
    metrics = metrics or quality_metrics(run.rows)
    stats = aggregate(run.rows, metrics, baseline=baseline)
    return config_table(run).merge(stats, on="config_id").merge(latency_table(run), on="config_id")


def stored_summary(run: Run, baseline: str | None = None, metrics: list[str] | None = None) -> pd.DataFrame:
    """`summarize`, kept in the run folder (`summaries/`) once computed for a complete run.

    A summary of a million rows takes seconds (bootstrap CIs of every config and metric); a sweep
    stores its default summary when it finishes, so the Compare page opens a big run at once. The key
    holds everything the summary depends on; a run that is not complete is never cached."""
    metrics = metrics or quality_metrics(run.rows)
    if run.status != "complete":
        return summarize(run, baseline, metrics)
    key = json.dumps([run.manifest.get("finished_at"), baseline, metrics, SUMMARY_VERSION])
    path = run.folder / "summaries" / f"{sha256(key.encode()).hexdigest()[:16]}.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    summary = summarize(run, baseline, metrics)
    try:
        atomic_write_parquet(path, summary)
    except OSError:  # a read-only run folder still gets its summary, just not kept
        pass
    return summary


def leaderboard_text(summary: pd.DataFrame, metrics: list[str], sort_by: str = "ndcg") -> str:
    """A compact plain-text table for the terminal."""
    columns = {"config_id": "config"}
    table = summary[["config_id"]].copy()
    for metric in metrics:
        if f"{metric}_mean" in summary:
            table[metric] = summary[f"{metric}_mean"].map(lambda v: "-" if np.isnan(v) else f"{v:.3f}")
    for column in ("retrieval_ms_p50", "ttft_ms_p50"):
        if column in summary:
            table[column.replace("_p50", " p50")] = summary[column].map(lambda v: "-" if pd.isna(v) else f"{v:.1f}")
    if f"{sort_by}_mean" in summary:
        table = table.loc[rank_order(summary, sort_by)]
    return table.rename(columns=columns).to_string(index=False)


def compare_runs(first: Run, second: Run, metrics: list[str] | None = None) -> pd.DataFrame:
    """Configs of two runs side by side (matched by config id): each metric's mean in both (`_a`, `_b`) and the
    change b - a, paired by question (`_delta`, with a bootstrap interval `_delta_low`/`_delta_high`, the
    randomization test's `_delta_p` and `_delta_sig` at p < 0.05).

    Questions are matched too: only questions present in both runs count, so the means are comparable; a config
    in one run only has its mean and no change."""
    from eval.metrics import paired_differences

    shared = set(first.rows["question_id"]) & set(second.rows["question_id"])
    if not shared:
        raise LabError(f"runs {first.run_id} and {second.run_id} have no question in common")
    metrics = metrics or [m for m in quality_metrics(first.rows) if m in quality_metrics(second.rows)]
    rows = [run.rows.loc[run.rows["question_id"].isin(shared), ["config_id", "question_id", *metrics]]
            for run in (first, second)]
    means = [part.groupby("config_id", sort=False)[metrics].mean() for part in rows]
    table = means[0].add_suffix("_a").join(means[1].add_suffix("_b"), how="outer")
    pairs = rows[0].merge(rows[1], on=["config_id", "question_id"], suffixes=("_a", "_b"))
    diffs = pd.DataFrame({"config_id": pairs["config_id"], "question_id": pairs["question_id"],
                          **{m: pairs[f"{m}_b"] - pairs[f"{m}_a"] for m in metrics}})
    if len(diffs):
        table = table.join(paired_differences(diffs, metrics).set_index("config_id"))
    parts = ("a", "b", "delta", "delta_low", "delta_high", "delta_p", "delta_sig")
    columns = [f"{m}_{part}" for m in metrics for part in parts]
    return table.reindex(columns=columns).reset_index()
