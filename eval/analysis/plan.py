"""How many questions: from a run (a pilot), the paired spread of each config's per-question difference to the
leader gives the questions needed to detect a difference `delta` at 80% power and the 5% level (two-sided), and
the smallest difference the run itself could detect.

The formula is the paired t-test's: n = ((t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / delta)^2, solved by
iteration (the t quantiles depend on n), and delta = (t_{1-alpha/2, n-1} + t_{power, n-1}) * sd / sqrt(n). The
lab tests with paired randomization, whose power is close to the t-test's; a test checks both against
simulation.
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from scipy.stats import t as student_t

from eval.analysis.recommend import rank_order, ranking_metric
from eval.errors import LabError
from eval.metrics import METRICS
from eval.runs.store import Run
from eval.runs.summary import quality_metrics, summarize

ALPHA, POWER = 0.05, 0.8
MIN_QUESTIONS = 6  # fewer paired differences cannot give a randomization p-value under 5% (2 / 2^5 > 0.05)
DEFAULT_DELTA = 0.02


def _quantiles(n: int, alpha: float, power: float) -> float:
    df = max(n - 1, 1)
    return float(student_t.ppf(1 - alpha / 2, df) + student_t.ppf(power, df))


def check_delta(delta: float) -> None:
    if not delta > 0:
        raise LabError(f"--delta must be above 0, got {delta:g}")


def questions_needed(sd: float, delta: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Questions for a paired test at level `alpha` to detect a mean difference `delta` with `power`."""
    check_delta(delta)
    n = MIN_QUESTIONS
    for _ in range(100):  # converges in a few steps: the t quantiles fall towards the normal's as n grows
        needed = max(MIN_QUESTIONS, math.ceil((_quantiles(n, alpha, power) * sd / delta) ** 2))
        if needed == n:
            break
        n = needed
    return n


def detectable_delta(sd: float, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """The smallest mean difference a paired test over `n` questions detects with `power` at level `alpha`."""
    return _quantiles(n, alpha, power) * sd / math.sqrt(n) if n > 1 else math.inf


def plan(
    run: Run, delta: float = DEFAULT_DELTA, metric: str | None = None, summary: pd.DataFrame | None = None
) -> dict[str, Any]:
    """Per config, its paired spread against the leader, the questions needed to detect `delta` and the
    run's detectable difference; overall, the largest of each (enough questions, and a difference detectable,
    against every config). Configs whose differences to the leader are all zero (the same lists) are left
    out: no number of questions tells them apart. `summary`: the run's leaderboard, when already made."""
    check_delta(delta)
    metric = metric or ranking_metric(quality_metrics(run.rows) or ["ndcg"])
    if metric not in run.rows or run.rows[metric].isna().all():
        raise LabError(f"run {run.run_id} has no {metric} values: planning needs a scored quality metric")
    summary = summarize(run, metrics=[metric]) if summary is None else summary
    leader = str(summary.loc[rank_order(summary, metric)[0], "config_id"])
    wide = run.rows.pivot(index="question_id", columns="config_id", values=metric)
    configs = []
    for config_id in summary["config_id"]:
        diffs = (wide[leader] - wide[config_id]).dropna()
        if config_id == leader or len(diffs) < 2 or not diffs.any():
            continue
        sd = float(diffs.std(ddof=1))
        configs.append(
            {
                "config_id": str(config_id),
                "questions": len(diffs),
                "mean_difference": float(diffs.mean()),
                "sd": sd,
                "questions_needed": questions_needed(sd, delta),
                "detectable_delta": detectable_delta(sd, len(diffs)),
            }
        )
    table = pd.DataFrame(configs)
    return {
        "metric": metric,
        "leader": leader,
        "delta": delta,
        "alpha": ALPHA,
        "power": POWER,
        "questions": int(wide[leader].notna().sum()),
        "questions_needed": int(table["questions_needed"].max()) if len(table) else None,
        "detectable_delta": float(table["detectable_delta"].max()) if len(table) else None,
        "configs": configs,
    }


def plan_caption(result: dict[str, Any]) -> str:
    """The planner in one sentence, for Compare and the CLI."""
    label = METRICS[result["metric"]].label
    if result["detectable_delta"] is None:
        return f"Every config retrieved the leader's lists on {label}: no number of questions tells them apart."
    return (
        f"With {result['questions']} questions, differences under {result['detectable_delta']:.2f} {label} "
        f"cannot be seen reliably (80% power, 5% level, against every config); detecting "
        f"{result['delta']:g} needs about {result['questions_needed']} questions."
    )


def plan_text(result: dict[str, Any]) -> str:
    """The CLI's table: per config, its spread against the leader and what it needs."""
    rows = pd.DataFrame(result["configs"])
    lines = [f"leader: {result['leader']} ({METRICS[result['metric']].label})"]
    if len(rows):
        rows = rows.assign(
            **{c: rows[c].map(lambda v: f"{v:.3f}") for c in ("mean_difference", "sd", "detectable_delta")}
        )
        lines.append(rows.rename(columns={"config_id": "config"}).to_string(index=False))
    lines.append(plan_caption(result))
    return "\n".join(lines)
