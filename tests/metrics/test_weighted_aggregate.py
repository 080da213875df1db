"""Weighted means and intervals in `aggregate`: each question counts by its weight (how many lines of a query log
it stands for); the interval resamples those lines, and its coverage is checked against simulated traffic."""

import numpy as np
import pandas as pd
import pytest

from eval.metrics.statistics import aggregate


def rows(values: dict[str, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"config_id": c, "question_id": f"q{i}", "hit": v} for c, vs in values.items() for i, v in enumerate(vs)]
    )


def test_the_weighted_mean_counts_each_question_by_its_weight_and_skips_nan():
    table = rows({"a": [1.0, 0.0, 1.0, np.nan], "b": [0.0, 1.0, 0.0, 1.0]})
    weights = {"q0": 3, "q1": 1, "q2": 0.5, "q3": 4}
    out = aggregate(table, ["hit"], weights=weights).set_index("config_id")
    assert out.loc["a", "hit_mean"] == pytest.approx(3.5 / 4.5)  # q3 has no value for a: its weight drops out
    assert out.loc["b", "hit_mean"] == pytest.approx(5 / 8.5)
    assert (out["hit_low"] <= out["hit_mean"]).all() and (out["hit_mean"] <= out["hit_high"]).all()
    unweighted = aggregate(table, ["hit"]).set_index("config_id")
    assert unweighted.loc["a", "hit_mean"] == pytest.approx(2 / 3)  # the default is unchanged


def test_equal_weights_leave_means_and_paired_tests_as_without_weights():
    rng = np.random.default_rng(3)
    table = rows({"a": list(rng.random(40)), "b": list(rng.random(40) + 0.2), "c": list(rng.random(40))})
    plain = aggregate(table, ["hit"], baseline="a")
    weighted = aggregate(table, ["hit"], baseline="a", weights={f"q{i}": 3 for i in range(40)})
    assert weighted["hit_mean"].tolist() == pytest.approx(plain["hit_mean"].tolist())
    assert weighted["hit_p"].tolist() == plain["hit_p"].tolist()  # the test statistic only scales


def test_a_heavy_question_decides_the_weighted_paired_test():
    """b beats a on one question asked 200 times and loses on 12 asked once: unweighted, a is significantly better;
    weighted, b is better on the mean, and the test cannot call it (one question carries the whole difference)."""
    table = rows({"a": [0.0] + [1.0] * 12, "b": [1.0] + [0.0] * 12})
    weights = {"q0": 200, **{f"q{i}": 1 for i in range(1, 13)}}
    plain = aggregate(table, ["hit"], baseline="a").set_index("config_id")
    weighted = aggregate(table, ["hit"], baseline="a", weights=weights).set_index("config_id")
    assert plain.loc["b", "hit_mean"] < plain.loc["a", "hit_mean"] and plain.loc["b", "hit_p"] < 0.05
    assert weighted.loc["b", "hit_mean"] == pytest.approx(200 / 212)
    assert weighted.loc["b", "hit_p"] > 0.05


def simulated_logs(seeds: int, lines: int, distinct: int = 400):
    """Traffic: `distinct` questions with Zipf popularity; popular ones are easier (hit more often). Per seed, a log
    of `lines` lines drawn from it, de-duplicated: each question seen, with its count as weight. Each seed is its
    own "config" over its own questions, so one `aggregate` call makes every interval; the truth of each is the
    traffic's mean hit."""
    tables, weights, truths = [], {}, {}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        popularity = 1 / np.arange(1, distinct + 1) ** 1.1
        popularity /= popularity.sum()
        hit = (rng.random(distinct) < np.linspace(0.9, 0.3, distinct)).astype(float)
        seen, counts = np.unique(rng.choice(distinct, lines, p=popularity), return_counts=True)
        ids = [f"s{seed}-q{i}" for i in seen]
        tables.append(pd.DataFrame({"config_id": f"s{seed}", "question_id": ids, "hit": hit[seen]}))
        weights.update(zip(ids, counts))
        truths[f"s{seed}"] = float(popularity @ hit)
    return pd.concat(tables, ignore_index=True), weights, pd.Series(truths)


def coverage(table: pd.DataFrame, truths: pd.Series, weights: dict | None) -> float:
    """The share of logs whose interval holds the truth (logs summarised 25 at a time: their questions are
    disjoint, so one call over all of them would resample a mostly empty matrix)."""
    parts = [
        aggregate(table[table["config_id"].isin(group)], ["hit"], weights=weights, n_bootstrap=500)
        for group in np.array_split(truths.index, len(truths) // 25)
    ]
    out = pd.concat(parts).set_index("config_id")
    return float(((out["hit_low"] <= truths) & (truths <= out["hit_high"])).mean())


@pytest.mark.parametrize("lines", [60, 300])
def test_the_weighted_interval_covers_the_traffic_mean_95_percent_of_the_time(lines):
    table, weights, truths = simulated_logs(300, lines)
    weighted = coverage(table, truths, weights)
    # 300 logs: a true 95% lands in [0.92, 0.98] with probability above 0.98
    assert 0.92 <= weighted <= 0.98, weighted
    # each question once estimates another mean (over distinct questions): it misses the traffic's
    assert coverage(table, truths, None) < 0.9
