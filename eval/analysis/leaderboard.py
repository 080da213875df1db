"""Per-configuration summaries of a run: means with 95% CIs, significance against a baseline, latency."""

from __future__ import annotations

import numpy as np
import pandas as pd

from eval.analysis.recommend import rank_order, ranking_metric, ranking_rule
from eval.errors import LabError
from eval.metrics import paired_differences
from eval.runs.store import Run
from eval.runs.summary import quality_metrics, scored_text


def measured_ranking_metric(summary: pd.DataFrame, metrics: list[str]) -> str:
    """`ranking_metric` of the metrics with a mean for at least one config in `summary`."""
    measured = [m for m in metrics if f"{m}_mean" in summary and summary[f"{m}_mean"].notna().any()]
    return ranking_metric(measured or metrics)


def leaderboard_text(summary: pd.DataFrame, metrics: list[str], sort_by: str | None = None) -> str:
    """A compact plain-text table for the terminal: each metric's mean with its 95% interval, best config first
    by the ranking rule (on `sort_by`, by default the ranking metric of `metrics`)."""
    columns = {"config_id": "config"}
    table = summary[["config_id"]].copy()
    for metric in metrics:
        if f"{metric}_mean" in summary:
            table[metric] = [
                "-" if np.isnan(m) else f"{m:.3f} [{lo:.3f}, {hi:.3f}]"
                for m, lo, hi in zip(summary[f"{metric}_mean"], summary[f"{metric}_low"], summary[f"{metric}_high"])
            ]
    for column in ("retrieval_ms_p50", "ttft_ms_p50"):
        if column in summary:
            table[column.replace("_p50", " p50")] = summary[column].map(lambda v: "-" if pd.isna(v) else f"{v:.1f}")
    sort_by = sort_by or measured_ranking_metric(summary, metrics)
    if f"{sort_by}_mean" in summary:
        table = table.loc[rank_order(summary, sort_by)]
    return table.rename(columns=columns).to_string(index=False)


def leaderboard_report(summary: pd.DataFrame, rows: pd.DataFrame, metrics: list[str], source: str = "gold") -> str:
    """What the CLI prints of a leaderboard: `leaderboard_text` ranked by the ranking rule, then the rule in words
    with the label source, and how many questions the ranking metric was scored on."""
    metric = measured_ranking_metric(summary, metrics)
    return "\n".join(
        [
            leaderboard_text(summary, metrics, metric),
            f"{ranking_rule(metric)} Label source: {source}. Means with 95% bootstrap confidence intervals.",
            scored_text(rows, metric, source),
        ]
    )


def compare_runs(first: Run, second: Run, metrics: list[str] | None = None) -> pd.DataFrame:
    """Configs of two runs side by side (matched by config id): each metric's mean in both (`_a`, `_b`) and the
    change b - a, paired by question (`_delta`, with a bootstrap interval `_delta_low`/`_delta_high`, the
    randomization test's `_delta_p` and `_delta_sig` at p < 0.05).

    Questions are matched too: only questions present in both runs count, so the means are comparable; a config
    in one run only has its mean and no change."""

    shared = set(first.rows["question_id"]) & set(second.rows["question_id"])
    if not shared:
        raise LabError(f"runs {first.run_id} and {second.run_id} have no question in common")
    metrics = metrics or [m for m in quality_metrics(first.rows) if m in quality_metrics(second.rows)]
    rows = [
        run.rows.loc[run.rows["question_id"].isin(shared), ["config_id", "question_id", *metrics]]
        for run in (first, second)
    ]
    means = [part.groupby("config_id", sort=False)[metrics].mean() for part in rows]
    table = means[0].add_suffix("_a").join(means[1].add_suffix("_b"), how="outer")
    pairs = rows[0].merge(rows[1], on=["config_id", "question_id"], suffixes=("_a", "_b"))
    diffs = pd.DataFrame(
        {
            "config_id": pairs["config_id"],
            "question_id": pairs["question_id"],
            **{m: pairs[f"{m}_b"] - pairs[f"{m}_a"] for m in metrics},
        }
    )
    if len(diffs):
        table = table.join(paired_differences(diffs, metrics).set_index("config_id"))
    parts = ("a", "b", "delta", "delta_low", "delta_high", "delta_p", "delta_sig")
    columns = [f"{m}_{part}" for m in metrics for part in parts]
    return table.reindex(columns=columns).reset_index()
