"""Aggregates over questions: bootstrap confidence intervals, paired significance tests, `aggregate`.

A question that cannot be scored has NaN, never 0, and every aggregate ignores NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd

# Elements of one random matrix block in the randomization test (about 32 MB of float64).
_BLOCK_ELEMENTS = 4_000_000


def _resample_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """How often each of n items is drawn in each bootstrap resample (n_resamples x n)."""
    draws = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    offsets = n * np.arange(n_resamples)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_resamples * n)
    return counts.reshape(n_resamples, n).astype(float)


def _bootstrap_matrix(
    values: np.ndarray, confidence: float, n_resamples: int, seed: int, weights: np.ndarray | None = None
) -> np.ndarray:
    """Rows mean, low, high (3 x k) of the columns of values (n x k), NaN dropped per column.

    Columns with the same NaN rows share one matrix product: counts (resamples x n) @ values;
    a given n always gets the same counts, so columns and configs see the same resamples.
    With `weights`, see `_weighted_bootstrap_matrix`.
    """
    if weights is not None:
        return _weighted_bootstrap_matrix(values, confidence, n_resamples, seed, weights)
    out = np.full((3, values.shape[1]), np.nan)
    counts: dict[int, np.ndarray] = {}
    valid = ~np.isnan(values)
    patterns: dict[bytes, list[int]] = {}
    for j in range(values.shape[1]):
        patterns.setdefault(valid[:, j].tobytes(), []).append(j)
    tail = (1.0 - confidence) / 2 * 100
    for cols in patterns.values():
        x = values[valid[:, cols[0]]][:, cols]
        if len(x):
            if len(x) not in counts:
                counts[len(x)] = _resample_counts(len(x), n_resamples, seed)
            means = counts[len(x)] @ x / len(x)
            out[0, cols] = x.mean(axis=0)
            out[1:, cols] = np.percentile(means, [tail, 100 - tail], axis=0)
    return out


def _weighted_bootstrap_matrix(
    values: np.ndarray, confidence: float, n_resamples: int, seed: int, weights: np.ndarray
) -> np.ndarray:
    """`_bootstrap_matrix` with a weight per row (positive: how many lines of a log each question stands for).

    The mean is sum(w x) / sum(w) over a column's non-NaN rows, and the resamples are of lines, not questions: a
    Poisson bootstrap (each line drawn Poisson(1) times, so a question of weight w Poisson(w) times), whose mean is
    sum(c x) / sum(c). Every column sees the same draws; two matrix products (draws @ values with NaN as 0, and
    draws @ the non-NaN mask) serve all columns. Weights 1 give the ordinary bootstrap of the mean, up to its
    Poisson approximation."""
    valid = ~np.isnan(values)
    filled = np.where(valid, values, 0.0)
    mask = valid.astype(float)
    draws = np.random.default_rng(seed).poisson(weights, (n_resamples, len(weights))).astype(float)
    tail = (1.0 - confidence) / 2 * 100
    with np.errstate(invalid="ignore", divide="ignore"):  # a column (or a resample) with no line has no mean
        mean = weights @ filled / (weights @ mask)
        means = draws @ filled / (draws @ mask)
        bounds = np.nanpercentile(means, [tail, 100 - tail], axis=0) if len(means) else np.full((2, len(mean)), np.nan)
    return np.vstack([mean, bounds])


def bootstrap_ci(
    values: Iterable[float], confidence: float = 0.95, n_resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap CI of the mean; NaN values are dropped first.

    Resamples are one matrix of draw counts (n_resamples x n) times the values. All NaN: NaNs.
    """
    column = np.asarray(values, dtype=float).reshape(-1, 1)
    mean, low, high = _bootstrap_matrix(column, confidence, n_resamples, seed)[:, 0]
    return float(mean), float(low), float(high)


def _sign_flip_pvalues(diffs: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Two-sided randomization p-value per column of paired differences (n x k; NaN = left out).

    p = share of random sign flips s with |sum s_i d_i| >= |sum d_i| (as ranx's Fisher test, which
    swaps each pair with probability 1/2). Signs come in blocks of rows to bound memory.
    """
    valid = ~np.isnan(diffs)
    d = np.where(valid, diffs, 0.0)
    observed = np.abs(d.sum(axis=0)) * (1 - 1e-9)  # tolerance for summation-order rounding
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK_ELEMENTS // max(len(d), 1))
    extreme = np.zeros(d.shape[1])
    for start in range(0, n_resamples, rows):
        signs = rng.integers(0, 2, size=(min(rows, n_resamples - start), len(d))) * 2.0 - 1.0
        extreme += np.sum(np.abs(signs @ d) >= observed, axis=0)
    return np.where(valid.any(axis=0), extreme / n_resamples, np.nan)


def _t_test_pvalues(diffs: np.ndarray) -> np.ndarray:
    """Paired t-test p-value per column (scipy.stats.ttest_rel, NaN pairs omitted)."""
    from scipy.stats import ttest_rel

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        p = np.asarray(ttest_rel(diffs, np.zeros_like(diffs), nan_policy="omit").pvalue, float)
    all_zero = np.all((diffs == 0) | np.isnan(diffs), axis=0) & ~np.all(np.isnan(diffs), axis=0)
    return np.where(all_zero, 1.0, p).reshape(-1)


def _paired_pvalues(diffs: np.ndarray, method: str, n_resamples: int, seed: int) -> np.ndarray:
    if method == "randomization":
        return _sign_flip_pvalues(diffs, n_resamples, seed)
    if method == "t-test":
        return _t_test_pvalues(diffs)
    raise ValueError(f"unknown paired test {method!r}: use 'randomization' or 't-test'")


def paired_test(
    a: Iterable[float],
    b: Iterable[float],
    method: Literal["randomization", "t-test"] = "randomization",
    n_resamples: int = 10_000,
    seed: int = 0,
) -> float:
    """Two-sided p-value that paired samples a and b have the same mean (pairs with a NaN dropped).

    randomization: random sign flips of the differences (ranx's "fisher"); t-test: ttest_rel.
    All differences zero gives 1.0; no complete pair gives NaN.
    """
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diffs = diffs[~np.isnan(diffs)]
    if diffs.size == 0:
        return np.nan
    return float(_paired_pvalues(diffs[:, None], method, n_resamples, seed)[0])


def aggregate(
    df: pd.DataFrame,
    metrics: Sequence[str],
    by: str = "config_id",
    baseline: str | None = None,
    alpha: float = 0.05,
    *,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    n_randomization: int = 2000,
    method: Literal["randomization", "t-test"] = "randomization",
    seed: int = 0,
    weights: Mapping[str, float] | None = None,
) -> pd.DataFrame:
    """One row per config (in order of appearance): n_questions, <m>_mean, <m>_low, <m>_high.

    With a baseline config: <m>_p (paired by question_id against the baseline) and <m>_sig (p < alpha).
    All configs x metrics go through one bootstrap and one randomization matrix product. Defaults
    (1000 bootstrap, 2000 randomization resamples) keep 30 configs x 1000 questions well under a
    second; p then has a resolution of 1/2000, below a Bonferroni 0.05 / 30.

    With `weights` ({question_id: weight}; a question not in it counts 1) the means are weighted, the
    intervals come from resampling the lines the weights count (see `_bootstrap_matrix`), and the paired
    test is on the weighted differences (it flips the sign of each question's weight x difference)."""
    metrics = list(metrics)
    configs = list(pd.unique(df[by]))
    wide, questions = _wide(df, metrics, by, configs)
    w = None if weights is None else np.array([float(weights.get(q, 1.0)) for q in questions])
    stats = _bootstrap_matrix(wide, confidence, n_bootstrap, seed, w)
    stats = stats.reshape(3, len(metrics), len(configs))
    out = pd.DataFrame({by: configs, "n_questions": df[by].value_counts().reindex(configs).to_numpy()})
    tested = wide if w is None else wide * w[:, None]
    p = None if baseline is None else _baseline_pvalues(tested, configs, baseline, method, n_randomization, seed)
    for j, m in enumerate(metrics):
        out[f"{m}_mean"], out[f"{m}_low"], out[f"{m}_high"] = stats[:, j]
        if p is not None:
            out[f"{m}_p"], out[f"{m}_sig"] = p[j], p[j] < alpha
    return out


def paired_differences(
    diffs: pd.DataFrame,
    metrics: Sequence[str],
    by: str = "config_id",
    alpha: float = 0.05,
    *,
    confidence: float = 0.95,
    n_bootstrap: int = 1000,
    n_randomization: int = 2000,
    seed: int = 0,
) -> pd.DataFrame:
    """Paired differences (one row per question and config: a metric's value in one run minus the other's)
    summarised per config: <m>_delta (mean), <m>_delta_low/_high (bootstrap CI), <m>_delta_p (randomization test
    that the mean difference is 0) and <m>_delta_sig (p < alpha). One matrix product for every config x metric,
    as in `aggregate`."""
    metrics = list(metrics)
    configs = list(pd.unique(diffs[by]))
    wide, _ = _wide(diffs, metrics, by, configs)
    stats = _bootstrap_matrix(wide, confidence, n_bootstrap, seed).reshape(3, len(metrics), len(configs))
    p = _paired_pvalues(wide, "randomization", n_randomization, seed).reshape(len(metrics), len(configs))
    out = pd.DataFrame({by: configs})
    for j, m in enumerate(metrics):
        out[f"{m}_delta"], out[f"{m}_delta_low"], out[f"{m}_delta_high"] = stats[:, j]
        out[f"{m}_delta_p"], out[f"{m}_delta_sig"] = p[j], p[j] < alpha
    return out


def _wide(df: pd.DataFrame, metrics: list[str], by: str, configs: list) -> tuple[np.ndarray, pd.Index]:
    """questions x (metrics x configs), NaN for a missing (question, config) pair, and the question ids.

    Questions are in sorted id order, as `DataFrame.pivot` gives them (the bootstrap draws rows by
    position, so the order is part of the result); built with integer codes, which is several times
    faster than a pivot on a million rows."""
    question_codes, questions = pd.factorize(df["question_id"], sort=True)
    config_codes, _ = pd.factorize(df[by])  # in order of appearance, as `configs` (pd.unique)
    pairs = question_codes.astype(np.int64) * len(configs) + config_codes
    if np.bincount(pairs).max(initial=0) > 1:
        raise ValueError(f"several rows for one ({by}, question_id)")
    wide = np.full((len(questions), len(metrics), len(configs)), np.nan)
    wide[question_codes, :, config_codes] = df[metrics].to_numpy(dtype=float)
    return wide.reshape(len(questions), -1), questions


def _baseline_pvalues(
    wide: np.ndarray, configs: list, baseline: str, method: str, n_resamples: int, seed: int
) -> np.ndarray:
    """p-values (metrics x configs) against the baseline; wide is questions x (metrics x configs)."""
    if baseline not in configs:
        raise ValueError(f"baseline config {baseline!r} is not in the results")
    cube = wide.reshape(len(wide), -1, len(configs))
    diffs = cube - cube[:, :, [configs.index(baseline)]]
    p = _paired_pvalues(diffs.reshape(len(wide), -1), method, n_resamples, seed)
    return p.reshape(-1, len(configs))


def indistinguishable_from_best(
    cubes: np.ndarray, alpha: float = 0.05, n_resamples: int = 1000, seed: int = 0
) -> np.ndarray:
    """For each of many score matrices (cubes: samples x questions x configs, NaN = not scored): which configs
    the paired randomization test (`paired_test`'s) cannot tell apart from the best mean at level `alpha`, the
    best itself included (samples x configs, bool). All samples' differences go through one sign-flip matrix
    product."""
    samples, questions, configs = cubes.shape
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        best = np.nanargmax(np.nan_to_num(np.nanmean(cubes, axis=1), nan=-np.inf), axis=1)
    diffs = cubes - cubes[np.arange(samples), :, best][:, :, None]
    p = _sign_flip_pvalues(diffs.transpose(1, 0, 2).reshape(questions, -1), n_resamples, seed)
    return (np.nan_to_num(p.reshape(samples, configs), nan=1.0) >= alpha) | (np.arange(configs) == best[:, None])
