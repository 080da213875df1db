"""A confidence set for the best config: the configs a run cannot rule out as the best, with the family-wise
error held at 5% however many configs are compared.

Method: a paired randomization test (random sign flips of the per-question differences, as in
`eval.metrics.statistics`) for every pair of configs, Holm-adjusted over all k(k-1)/2 pairs. A config leaves the
set when some config with a better mean is significantly better than it. Testing only against the observed
leader would not do: the leader is chosen because it is highest, so its differences to the rest are biased
upwards, and with 10 equal configs a Holm correction over the 9 comparisons with it rules one out about twice
as often as its nominal 5% (see BENCHMARKS.md). Over all pairs, Holm controls the probability of ruling out
any config that is in truth as good as the best (strong control), so the set holds the best config with 95%
confidence.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from eval.metrics import METRICS
from eval.metrics.statistics import _sign_flip_pvalues

ALPHA = 0.05
METHOD = "Holm-adjusted paired randomization tests over every pair of configs (family-wise error 5%)"
MIN_RESAMPLES = 2000


def resamples_for(pairs: int, alpha: float = ALPHA) -> int:
    """Sign flips enough for Holm's smallest level alpha / pairs to span 10 flips (a p-value's resolution is one
    over the number of flips)."""
    return max(MIN_RESAMPLES, math.ceil(10 * pairs / alpha))


def holm_rejected(p: np.ndarray, alpha: float = ALPHA) -> np.ndarray:
    """Holm's step-down: reject the hypotheses with the smallest p-values while p_(r) <= alpha / (m - r)."""
    order = np.argsort(p, kind="stable")
    levels = alpha / (len(p) - np.arange(len(p)))
    passed = p[order] <= levels
    stop = len(p) if passed.all() else int(np.argmin(passed))
    rejected = np.zeros(len(p), bool)
    rejected[order[:stop]] = True
    return rejected


def best_set_mask(values: np.ndarray, higher_is_better: bool = True, alpha: float = ALPHA, seed: int = 0) -> np.ndarray:
    """Which columns of `values` (questions x configs; NaN: not scored) are in the confidence set for the best.

    Each pair is compared on the questions both were scored on (a raced run stops some configs early)."""
    k = values.shape[1]
    first, second = np.triu_indices(k, 1)
    if not len(first):
        return np.ones(k, bool)
    n_resamples = resamples_for(len(first), alpha)
    diffs = values[:, first] - values[:, second]
    flips = _sign_flip_pvalues(diffs, n_resamples, seed)
    p = (flips * n_resamples + 1) / (n_resamples + 1)  # the randomization p-value that counts the data's own signs
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pair never scored together has no mean difference
        better_first = np.nanmean(diffs, axis=0) * (1 if higher_is_better else -1)
    decided = holm_rejected(np.nan_to_num(p, nan=1.0), alpha) & (better_first != 0)
    out = np.ones(k, bool)
    out[np.where(better_first > 0, second, first)[decided]] = False
    return out


@dataclass
class ConfidenceSet:
    metric: str
    members: list[str]  # configs the run cannot rule out as the best, best mean first
    ruled_out: list[str] = field(default_factory=list)
    n_questions: int = 0  # questions scored on at least one of the configs
    method: str = METHOD


def confidence_set(
    rows: pd.DataFrame,
    configs: Sequence[str],
    metric: str,
    weights: Mapping[str, float] | None = None,
    alpha: float = ALPHA,
) -> ConfidenceSet:
    """The confidence set for the best of `configs` on `metric`, from a run's rows (one per config and question).

    Each pair of configs is compared on the questions both were scored on. With `weights` ({question_id: weight}, 1 when
    missing) each question's values are multiplied by its weight, as `aggregate`'s weighted paired test does."""
    wide = rows[rows["config_id"].isin(configs)].pivot(index="question_id", columns="config_id", values=metric)
    wide = wide.reindex(columns=list(configs)).dropna(how="all")
    if weights is not None:
        wide = wide.mul([float(weights.get(q, 1.0)) for q in wide.index], axis=0)
    higher = METRICS[metric].higher_is_better
    if wide.empty:
        return ConfidenceSet(metric, list(configs), n_questions=0)
    mask = best_set_mask(wide.to_numpy(float), higher, alpha)
    order = wide.mean().sort_values(ascending=not higher, kind="stable").index
    members = [c for c in order if mask[list(configs).index(c)]]
    return ConfidenceSet(metric, members, [c for c in configs if c not in members], len(wide))


def confidence_text(result: ConfidenceSet) -> str:
    """The set in words, with its method, for the dashboard and the reports."""
    label = METRICS[result.metric].label
    shown = ", ".join(result.members[:8]) + (f" and {len(result.members) - 8} more" if len(result.members) > 8 else "")
    return (
        f"Confidence set for the best configuration on {label} ({len(result.members)} of "
        f"{len(result.members) + len(result.ruled_out)}, over up to {result.n_questions} questions): {shown}. "
        f"Method: {result.method}."
    )
