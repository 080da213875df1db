"""A `score_threshold` with a guarantee: the lowest threshold whose kept chunks reach a target precision with
95% confidence, from judged candidates (`eval.analysis.calibration`: gold, generated, an LLM judge's or a
person's labels on an index; or the lists a run retrieved, `run_candidates`).

Method (Learn-then-Test with fixed-sequence testing, exact binomial bounds): for each cut "score >= t" the kept
candidates' precision gets a one-sided Clopper-Pearson lower bound at an effective sample size. Thresholds are
tested from the highest down: the scan stops at the first threshold whose bound is under the target, and the
answer is the last one that passed. A fixed sequence needs no correction over the thresholds scanned (scanning
them all and taking the lowest that passes would need one); its order (by score alone, starting where enough
chunks are kept for the bound to pass at a precision halfway between the target and 1) is set before the labels
are read.

What is guaranteed: the realised precision of chunks scoring >= t among the top candidates (the calibration's top
N) of `held_out` new questions like these; by default as many new questions as were judged. That precision
varies around the precision of all such questions as much again as the judged questions' own does: the bound is
a prediction bound at the effective size of the difference of the two, 1 / (1/n + 1/m) for n judged and m new
kept chunks (about n/2 by default). `held_out=math.inf` bounds the precision over all questions like these
instead (the population; a lower threshold). Both sizes are first divided by the questions' design effect
(Korn and Graubard: candidates of one question are not independent). Treating the difference as a binomial
proportion at that size is an approximation: a simulation with clustered questions
(tests/analysis/test_threshold_held_out.py) holds in 95.7-96.4% of repetitions; on held-out halves of SQuAD and
CMRC 2018 the promise was broken in 3.5-5.0% of splits, without the held-out term in 9.5-12.5% (BENCHMARKS.md).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import beta

from eval.errors import LabError
from eval.labels.rescore import row_grades
from eval.runs.store import Run
from eval.runs.summary import label_source

CONFIDENCE = 0.95
DEFAULT_PRECISION = 0.8
SCAN = (
    "thresholds tested from the highest down, stopping at the first failure (Learn-then-Test fixed-sequence "
    "testing: no correction needed over the thresholds scanned)"
)


def method_text(held_out: float) -> str:
    """The method in words, for the screens, the CLI and the reports."""
    if math.isinf(held_out):
        about = "on the precision of all questions like these, at the kept chunks' effective size"
    else:
        about = (
            f"predicting the precision of {held_out:g} new questions' kept chunks, at the effective size of the "
            "difference, 1/(1/n + 1/m) for n judged and m new kept chunks"
        )
    return (
        f"one-sided Clopper-Pearson 95% lower bound {about} (Korn-Graubard: kept chunks over the questions' design "
        f"effect); {SCAN}"
    )


def check_precision(target: float) -> None:
    if not 0 < target < 1:
        raise LabError(f"the precision target must be between 0 and 1 (exclusive), got {target:g}")


def check_held_out(held_out: float) -> float:
    if not held_out >= 1:
        raise LabError(f"the held-out questions must number at least 1 (or all), got {held_out:g}")
    return held_out


def precision_lower_bound(relevant: np.ndarray, kept: np.ndarray, confidence: float = CONFIDENCE) -> np.ndarray:
    """Clopper-Pearson one-sided lower bounds of relevant / kept (0 where nothing relevant is kept); counts may
    be effective (fractional) ones."""
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1 - confidence, relevant, kept - relevant + 1)
    return np.where(relevant > 0, bound, 0.0)


def _first_kept(target: float, confidence: float, share: float) -> int:
    """Where the sequence starts: the fewest kept chunks whose bound reaches the target when their precision is
    halfway between the target and 1. Earlier, a single irrelevant chunk among the very top would fail the first
    test and end the scan; the start depends on counts alone, never on the labels. `share`: the part of the kept
    chunks the bound counts (held-out prediction)."""
    halfway = (1 + target) / 2
    n = 1
    while precision_lower_bound(np.array([halfway * n * share]), np.array([n * share]), confidence)[0] < target:
        n = math.ceil(n * 1.1) + 1
    return n


def _design_effect(ordered: pd.DataFrame, relevant: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Per cut (candidates in score order), how much the questions' clustering inflates the variance of the kept
    precision over a binomial's (at least 1): the cluster-robust variance of the ratio sum(x_q) / sum(n_q) over
    questions q (x_q relevant and n_q kept chunks of q) divided by p(1 - p) / n. Running sums of x_q^2, x_q n_q
    and n_q^2 give every cut at once."""
    r = ordered["relevant"].to_numpy(float)
    by_question = ordered.groupby("question_id", sort=False)
    x_before = by_question["relevant"].cumsum().to_numpy(float) - r  # the question's relevant kept before this one
    n_before = by_question.cumcount().to_numpy(float)
    xx, xn, nn = np.cumsum(2 * x_before * r + r), np.cumsum(x_before + r * n_before + r), np.cumsum(2 * n_before + 1)
    p = relevant / kept
    questions = max(ordered["question_id"].nunique(), 2)
    robust = questions / (questions - 1) * (xx - 2 * p * xn + p**2 * nn) / kept**2
    binomial = p * (1 - p) / kept
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(binomial > 0, np.maximum(robust / binomial, 1.0), 1.0)


def guaranteed_threshold(
    candidates: pd.DataFrame,
    target: float = DEFAULT_PRECISION,
    confidence: float = CONFIDENCE,
    held_out: float | None = None,
) -> dict[str, Any]:
    """The lowest threshold whose kept candidates (`score` >= it) on `held_out` new questions (default: as many as
    judged; `math.inf`: all questions like these) have precision >= `target` with `confidence`, from rows with
    `question_id`, `score` and `relevant`. `threshold` is None when no threshold passes."""
    check_precision(target)
    questions = candidates["question_id"].nunique()
    held_out = float(max(questions, 1) if held_out is None else check_held_out(held_out))
    share = 1.0 if math.isinf(held_out) else held_out / (held_out + questions)  # n/(1 + n/m), m/n = held_out/questions
    scores = candidates["score"].to_numpy(float)
    order = np.argsort(-scores, kind="stable")
    sorted_scores = scores[order]
    relevant = np.cumsum(candidates["relevant"].to_numpy(bool)[order])
    kept = np.arange(1, len(scores) + 1)
    effective = kept * share / _design_effect(candidates.iloc[order], relevant, kept)
    last = np.r_[sorted_scores[1:] != sorted_scores[:-1], True] if len(scores) else np.zeros(0, bool)
    start = _first_kept(target, confidence, share)
    cuts = np.flatnonzero(last & (kept >= start))
    bounds = precision_lower_bound(relevant[cuts] / kept[cuts] * effective[cuts], effective[cuts], confidence)
    passed = bounds >= target
    stop = len(cuts) if passed.all() else int(np.argmin(passed))
    out: dict[str, Any] = {
        "target": target,
        "confidence": confidence,
        "held_out": None if math.isinf(held_out) else int(held_out),
        "method": method_text(held_out),
        "candidates": len(scores),
        "threshold": None,
        "kept": 0,
        "precision": None,
        "lower_bound": None,
    }
    if stop:
        cut = cuts[stop - 1]
        out.update(
            threshold=float(sorted_scores[cut]),
            kept=int(kept[cut]),
            precision=float(relevant[cut] / kept[cut]),
            lower_bound=float(bounds[stop - 1]),
        )
    return out


def guarantee_text(result: dict[str, Any]) -> str:
    """The guaranteed threshold in words, for the calibration view, the CLI and the reports."""
    scope = "over all questions like these" if result["held_out"] is None else f"on {result['held_out']} new questions"
    if result["threshold"] is None:
        return (
            f"No score_threshold reaches precision {result['target']:g} {scope} with {result['confidence']:.0%} "
            "confidence "
            f"on these {result['candidates']} judged candidates. Method: {result['method']}."
        )
    return (
        f"score_threshold {result['threshold']:.3f} keeps {result['kept']} of {result['candidates']} judged "
        f"candidates with precision {result['precision']:.2f}, at least {result['target']:g} {scope} with "
        f"{result['confidence']:.0%} confidence (lower bound {result['lower_bound']:.3f}). Method: {result['method']}."
    )


def run_candidates(run: Run) -> tuple[dict[str, Any], pd.DataFrame] | None:
    """The judged candidates a run holds: the lists of its deepest similarity config without a filter (the top k
    of every question, as `calibrate` reads the top N), graded under the run's label source (unjudged chunks
    left out); the config and the rows (`question_id`, `score`, `relevant`), None without such a config."""
    plain = [c for c in run.configs if c.get("search_type") == "similarity" and not c.get("filter")]
    if not plain:
        return None
    config = max(plain, key=lambda c: c["k"])
    questions = run.questions_by_id
    records = []
    for row in run.rows[run.rows["config_id"] == config["config_id"]].to_dict("records"):
        question = questions.get(row["question_id"])
        grades = row_grades(row, question.relevant_ids if question else ())
        records += [(row["question_id"], float(s), g >= 1) for s, g in zip(row["scores"], grades) if g is not None]
    return config, pd.DataFrame.from_records(records, columns=["question_id", "score", "relevant"])


def run_threshold_text(run: Run, target: float = DEFAULT_PRECISION) -> str:
    """The guaranteed threshold from the run's own candidates, in the calibration view's words, for the reports."""
    found = run_candidates(run)
    if found is None:
        return (
            "Not computed: the run has no similarity config without a filter whose lists would give the candidates "
            "(python -m eval calibrate, or the calibration view on the Indexes page)."
        )
    config, candidates = found
    source = label_source(run.rows)
    if candidates.empty:
        return f"Not computed: no chunk {config['config_id']} retrieved is judged under label source {source}."
    return (
        f"Judged candidates: the lists of {config['config_id']} (the top {config['k']} of "
        f"{candidates['question_id'].nunique()} questions, label source {source}). "
        f"{guarantee_text(guaranteed_threshold(candidates, target))}"
    )
