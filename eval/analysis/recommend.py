"""From a leaderboard to a decision: one ranking rule for the dashboard and the reports, and a recommendation
(the best config under a latency budget and a minimum judged share, with the configs statistically tied with
it), in plain words."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eval.analysis.confidence import METHOD, confidence_set
from eval.metrics import METRICS
from eval.metrics.latency import indistinguishable
from eval.runs.store import Run
from eval.runs.summary import run_weights

# The ranking metric is the first of these the run has: graded, position-aware relevance first.
RANKING_ORDER = ("ndcg", "passage_ndcg", "mrr", "hit_rate", "recall", "answer_hit_rate", "f1")
LATENCY = "retrieval_ms_p50"


def ranking_metric(available: Sequence[str]) -> str:
    """The metric configs are ranked by, from the metrics a run has."""
    return next((m for m in RANKING_ORDER if m in available), available[0])


def ranking_rule(metric: str) -> str:
    """The ranking rule in words, shown wherever a ranking is."""
    better = "higher" if METRICS[metric].higher_is_better else "lower"
    return (
        f"Ranked by mean {METRICS[metric].label} over questions ({better} is better); ties go to the lower "
        f"retrieval p50, then to grid order."
    )


def rank_order(summary: pd.DataFrame, metric: str) -> pd.Index:
    """The summary's index, best config first by `ranking_rule` (configs without a mean last)."""
    keys = summary[[f"{metric}_mean"]].assign(_latency=summary[LATENCY] if LATENCY in summary else np.nan)
    return keys.sort_values(
        [f"{metric}_mean", "_latency"],
        ascending=[not METRICS[metric].higher_is_better, True],
        kind="stable",
        na_position="last",
    ).index


@dataclass
class Recommendation:
    metric: str
    config_id: str | None  # None when no config meets the constraints
    tied: list[str] = field(default_factory=list)  # the other eligible configs in the confidence set for the best
    fastest_tied: str | None = None  # the fastest tied config, if measurably faster than the pick
    excluded: dict[str, str] = field(default_factory=dict)  # config -> why it was left out
    text: str = ""


def recommend(
    run: Run,
    summary: pd.DataFrame,
    metric: str | None = None,
    latency_budget_ms: float | None = None,
    min_judged: float | None = None,
    weighted: bool = False,
) -> Recommendation:
    """The best eligible config by the ranking rule. Eligible: retrieval p50 within `latency_budget_ms` and
    mean `judged` share at least `min_judged` (each only when given and measured). Tied: the other eligible
    configs in the confidence set for the best (`eval.analysis.confidence`: Holm-adjusted paired randomization
    tests on `metric`, family-wise error 5%); with `weighted` (as the summary was made), on the questions'
    weighted values."""
    metric = metric or ranking_metric([c[:-5] for c in summary.columns if c.endswith("_mean")])
    table = summary.set_index("config_id")
    excluded = _excluded(table, latency_budget_ms, min_judged)
    eligible = summary[~summary["config_id"].isin(excluded) & summary[f"{metric}_mean"].notna()]
    if eligible.empty:
        return Recommendation(metric, None, excluded=excluded, text=_nothing_text(excluded))
    best = str(eligible.loc[rank_order(eligible, metric)[0], "config_id"])
    members = confidence_set(run.rows, list(eligible["config_id"]), metric, run_weights(run, weighted)).members
    tied = [c for c in eligible["config_id"] if c != best and c in members]
    fastest = None
    if LATENCY in table and tied:
        candidate = table.loc[tied, LATENCY].idxmin() if table.loc[tied, LATENCY].notna().any() else None
        if (
            candidate is not None
            and table.loc[candidate, LATENCY] < table.loc[best, LATENCY]
            and not indistinguishable(summary, str(candidate), best)
        ):
            fastest = str(candidate)
    recommendation = Recommendation(metric, best, tied, fastest, excluded)
    recommendation.text = _text(recommendation, table)
    return recommendation


def _excluded(table: pd.DataFrame, latency_budget_ms: float | None, min_judged: float | None) -> dict[str, str]:
    out = {}
    if latency_budget_ms is not None and LATENCY in table:
        for config_id, value in table[LATENCY].items():
            if not np.isnan(value) and value > latency_budget_ms:
                out[config_id] = f"retrieval p50 {value:.1f} ms is over the {latency_budget_ms:g} ms budget"
    if min_judged is not None and "judged_mean" in table:
        for config_id, value in table["judged_mean"].items():
            if config_id not in out and np.isnan(value):  # `judged` is NaN only where nothing was retrieved
                out[config_id] = "it retrieved nothing, so nothing of it is judged"
            elif config_id not in out and value < min_judged:
                out[config_id] = f"judged share {value:.2f} is below {min_judged:g}"
    return out


def _nothing_text(excluded: dict[str, str]) -> str:
    return (
        "No configuration meets the constraints"
        + (
            f": {len(excluded)} left out (" + "; ".join(f"{c}: {why}" for c, why in list(excluded.items())[:3]) + ")"
            if excluded
            else ""
        )
        + ". Relax the latency budget or the minimum judged share."
    )


def _text(rec: Recommendation, table: pd.DataFrame) -> str:
    info, row = METRICS[rec.metric], table.loc[rec.config_id]
    latency = f", retrieval p50 {row[LATENCY]:.1f} ms" if LATENCY in table and not np.isnan(row[LATENCY]) else ""
    parts = [
        f"Recommended: **{rec.config_id}**, the best configuration by {info.label} "
        f"({row[f'{rec.metric}_mean']:.3f} [{row[f'{rec.metric}_low']:.3f}, "
        f"{row[f'{rec.metric}_high']:.3f}]{latency})."
    ]
    if rec.tied:
        shown = ", ".join(rec.tied[:8]) + (f" and {len(rec.tied) - 8} more" if len(rec.tied) > 8 else "")
        parts.append(
            f"{len(rec.tied)} other configuration(s) cannot be told apart from it on {info.label}: with it they "
            f"form the confidence set for the best ({METHOD}): {shown}."
        )
    else:
        parts.append(
            f"Every other eligible configuration is significantly worse on {info.label}, so the confidence set "
            f"for the best holds it alone ({METHOD})."
        )
    if rec.fastest_tied:
        parts.append(
            f"The fastest of those is **{rec.fastest_tied}** (retrieval p50 "
            f"{table.loc[rec.fastest_tied, LATENCY]:.1f} ms): prefer it if latency matters more than a "
            f"difference these questions cannot show."
        )
    if rec.excluded:
        parts.append(f"{len(rec.excluded)} configuration(s) were left out by the constraints.")
    return " ".join(parts)
