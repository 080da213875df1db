"""The confidence set for the best config: family-wise error under the null by simulation, power against a
clearly worse config, and the set in the recommendation the dashboard and the reports show."""

import numpy as np
import pandas as pd
import pytest

from eval.analysis.confidence import METHOD, best_set_mask, confidence_set, holm_rejected
from eval.metrics.statistics import paired_test


def equal_configs(rng, questions: int, configs: int) -> np.ndarray:
    return np.clip(rng.beta(2, 2, (questions, 1)) + rng.normal(0, 0.15, (questions, configs)), 0, 1)


@pytest.mark.slow  # about 20 s: 500 simulated runs
def test_family_wise_error_of_equal_configs_stays_at_five_percent_while_the_uncorrected_rule_does_not():
    rng = np.random.default_rng(7)
    ruled_out, uncorrected = 0, 0
    for r in range(500):  # 10 configs, about the size of the default grid
        values = equal_configs(rng, 40, 10)
        ruled_out += not best_set_mask(values, seed=r).all()
        leader = int(np.argmax(values.mean(axis=0)))
        uncorrected += any(
            paired_test(values[:, leader], values[:, j], n_resamples=500, seed=r) < 0.05
            for j in range(10)
            if j != leader
        )
    assert ruled_out / 500 <= 0.05
    assert uncorrected / 500 > 0.2  # the simulation can see an uncontrolled rule


def test_a_clearly_worse_config_leaves_the_set_and_equal_ones_stay():
    rng = np.random.default_rng(1)
    values = equal_configs(rng, 80, 4)
    values[:, 3] -= 0.3
    mask = best_set_mask(values)
    assert mask.tolist() == [True, True, True, False]
    assert best_set_mask(-values, higher_is_better=False).tolist() == [True, True, True, False]


def test_holm_steps_down_and_stops_at_the_first_failure():
    p = np.array([0.04, 0.001, 0.015, 0.5])
    # levels 0.05/4, 0.05/3, 0.05/2, 0.05: 0.001 and 0.015 pass; 0.04 > 0.025 stops
    assert holm_rejected(p).tolist() == [False, True, True, False]
    assert holm_rejected(np.array([0.01, 0.02])).tolist() == [True, True]


def test_confidence_set_of_rows_names_its_method_and_orders_by_mean():
    rng = np.random.default_rng(3)
    values = equal_configs(rng, 60, 3)
    values[:, 0] -= 0.4
    rows = pd.DataFrame(
        [
            {"config_id": c, "question_id": f"q{i}", "ndcg": values[i, j]}
            for j, c in enumerate(["low", "a", "b"])
            for i in range(60)
        ]
    )
    result = confidence_set(rows, ["low", "a", "b"], "ndcg")
    assert sorted(result.members) == ["a", "b"] and result.ruled_out == ["low"]
    assert result.members[0] == ("a" if values[:, 1].mean() > values[:, 2].mean() else "b")
    assert result.n_questions == 60 and result.method == METHOD
