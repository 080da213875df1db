"""Racing (`python -m eval run --race`): questions run in blocks, and after each block a config stops once it is
significantly worse than another, so generation, judging and labelling go to the contenders.

After each block but the last the contenders are the confidence set for the best (`eval.analysis.confidence`) of
the configs still running, on the rows so far, at level alpha / (blocks - 1): Holm over the pairs within a look,
Bonferroni over the looks, so the chance that any look stops a config as good as the best stays under alpha.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pandas as pd

from eval.analysis.confidence import ALPHA, confidence_set
from eval.analysis.recommend import ranking_metric
from eval.errors import LabError
from eval.runs.store import Run
from eval.runs.summary import quality_metrics

RACE_METHOD = (
    "after each block, the confidence set for the best of the configs still running (Holm-adjusted paired "
    "randomization tests over every pair), at 5% divided by the number of looks (Bonferroni)"
)


def race_rule(questions: int, block: int, alpha: float = ALPHA) -> Callable[[pd.DataFrame, list[str]], list[str]]:
    """The engine's `contenders` callback for a race over `questions` questions in blocks of `block`."""
    if block < 1:
        raise LabError(f"--race-block must be at least 1 question, got {block}")
    level = alpha / max(math.ceil(questions / block) - 1, 1)

    def contenders(rows: pd.DataFrame, running: list[str]) -> list[str]:
        measured = quality_metrics(rows)
        if not measured:
            raise LabError("racing needs a quality metric: the questions need relevant_ids (or answers)")
        return confidence_set(rows, running, ranking_metric(measured), alpha=level).members

    return contenders


def rows_saved(run: Run) -> tuple[int, int, dict[str, int]]:
    """(rows saved, rows of the full sweep, questions each stopped config ran) of a raced run."""
    questions = run.rows["question_id"].nunique()
    ran = run.rows.groupby("config_id").size()
    full = questions * len(run.configs)
    stopped = {c["config_id"]: int(ran.get(c["config_id"], 0)) for c in run.configs}
    return full - len(run.rows), full, {c: n for c, n in stopped.items() if n < questions}


def raced(run: Run) -> bool:
    """Whether the run was raced (`run --race`)."""
    return "race" in run.manifest


def race_text(run: Run) -> str:
    """What a raced run saved, in words."""
    saved, full, stopped = rows_saved(run)
    listed = ", ".join(f"{c} after {n}" for c, n in stopped.items()) or "none"
    return (
        f"racing: {saved} of {full} rows saved ({saved / max(full, 1):.0%}); configs stopped (questions run): "
        f"{listed}. Rule: {RACE_METHOD}."
    )
