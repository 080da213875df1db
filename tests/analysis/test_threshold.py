"""The guaranteed score_threshold: on synthetic candidates whose true precision at every threshold is known,
the population threshold's true precision reaches the target in at least 95% of datasets (the best-looking
threshold does not), the bound is Clopper-Pearson's, and a target outside (0, 1) is one line. The held-out
guarantee is in test_threshold_held_out.py."""

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from eval import SAMPLE_DIR
from eval.analysis.threshold import guaranteed_threshold, method_text, precision_lower_bound
from eval.cli.main import main
from eval.errors import LabError

SLOPE, CENTRE = 20.0, 0.75  # P(relevant | score s) = logistic(SLOPE * (s - CENTRE)); scores uniform on [0.5, 1]


def true_precision(t: float) -> float:
    """Mean of P(relevant | s) over s uniform on [t, 1], in closed form."""
    primitive = lambda s: np.log1p(np.exp(SLOPE * (s - CENTRE))) / SLOPE  # noqa: E731
    return float((primitive(1.0) - primitive(t)) / (1.0 - t))


def candidates(rng, n: int = 600) -> pd.DataFrame:
    scores = rng.uniform(0.5, 1.0, n)
    relevant = rng.random(n) < 1 / (1 + np.exp(-SLOPE * (scores - CENTRE)))
    return pd.DataFrame({"question_id": np.arange(n) // 20, "score": scores, "relevant": relevant})


def lowest_observed(frame: pd.DataFrame, target: float) -> float:
    """The naive rule: the lowest threshold whose kept candidates' observed precision reaches the target."""
    ordered = frame.sort_values("score", ascending=False)
    precision = ordered["relevant"].cumsum().to_numpy() / np.arange(1, len(ordered) + 1)
    return float(ordered["score"].to_numpy()[np.flatnonzero(precision >= target)[-1]])


def test_the_guarantee_holds_in_at_least_95_percent_of_datasets_and_the_naive_rule_does_not():
    rng = np.random.default_rng(5)
    held, naive, thresholds = 0, 0, []
    for _ in range(300):
        frame = candidates(rng)
        result = guaranteed_threshold(frame, 0.8, held_out=math.inf)
        assert result["threshold"] is not None  # 600 candidates always find one
        held += true_precision(result["threshold"]) >= 0.8
        naive += true_precision(lowest_observed(frame, 0.8)) >= 0.8
        thresholds.append(result["threshold"])
    assert held / 300 >= 0.95
    assert naive / 300 < 0.8
    # and the guarantee is not bought by keeping almost nothing: the true 0.8 cut is at 0.7105
    assert 0.7105 < np.median(thresholds) < 0.75


def test_clopper_pearson_bounds_are_the_exact_binomial_ones():
    # 10 of 10 relevant: the bound is 0.05 ** (1 / 10); 0 relevant: 0
    assert precision_lower_bound(np.array([10, 0]), np.array([10, 5])) == pytest.approx([0.05**0.1, 0.0])
    # 80 of 100: the exact bound is the p at which 80 or more relevant of 100 has probability 5%
    bound = precision_lower_bound(np.array([80]), np.array([100]))[0]
    assert binom.sf(79, 100, bound) == pytest.approx(0.05, abs=1e-6) and 0.7 < bound < 0.75


def test_the_scan_stops_at_the_first_failing_threshold():
    # 60 relevant on top, then 40 irrelevant, then 400 relevant: a lower threshold would pass again
    scores = np.linspace(1, 0, 500)
    relevant = np.r_[np.ones(60), np.zeros(40), np.ones(400)].astype(bool)
    frame = pd.DataFrame({"question_id": np.arange(500) % 50, "score": scores, "relevant": relevant})
    result = guaranteed_threshold(frame, 0.8, held_out=math.inf)
    assert 60 <= result["kept"] < 100 and result["threshold"] > scores[100]
    assert result["method"] == method_text(math.inf) and result["held_out"] is None


def test_labels_clustered_by_question_lower_the_bound():
    # 40 questions x 10 candidates, 300 relevant: spread evenly, or whole questions relevant or not
    scores = np.linspace(1, 0, 400)
    question = np.arange(400) % 40
    spread = pd.DataFrame(
        {"question_id": question, "score": scores, "relevant": (np.arange(400) // 40 + question) % 4 != 3}
    )
    clustered = spread.assign(relevant=question % 4 != 3)
    assert spread["relevant"].sum() == clustered["relevant"].sum() == 300
    plain, grouped = (guaranteed_threshold(frame, 0.4, held_out=math.inf) for frame in (spread, clustered))
    assert plain["kept"] == grouped["kept"] == 400  # both keep everything (precision 0.75 overall)
    assert grouped["lower_bound"] < plain["lower_bound"] - 0.03  # 10 labels of one question count as fewer


@pytest.mark.parametrize("target", [0.0, 1.0, 1.5, -0.2])
def test_a_target_outside_zero_one_is_one_line(target, tmp_path, capsys):
    with pytest.raises(LabError, match="precision target must be between 0 and 1"):
        guaranteed_threshold(pd.DataFrame({"question_id": ["q"], "score": [0.9], "relevant": [True]}), target)
    code = main(
        [
            "--home",
            str(tmp_path),
            "calibrate",
            "--index",
            "none",
            "--questions",
            str(tmp_path),
            "--precision",
            str(target),
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and "precision target must be between 0 and 1" in err


@pytest.mark.slow  # builds the sample index
def test_calibrate_prints_the_guaranteed_threshold_of_a_real_index(sample_index, capsys, tmp_path):
    args = [
        "--home",
        str(tmp_path),
        "--indexes",
        str(sample_index.folder.parent),
        "calibrate",
        "--index",
        "sample",
        "--questions",
        str(SAMPLE_DIR),
        "--precision",
        "0.5",
    ]
    assert main([*args, "--json"]) == 0
    guarantee = json.loads(capsys.readouterr().out)["guarantee"]
    assert guarantee["threshold"] is not None and guarantee["lower_bound"] >= 0.5
    assert guarantee["precision"] > guarantee["lower_bound"] and guarantee["kept"] <= guarantee["candidates"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"score_threshold {guarantee['threshold']:.3f} keeps {guarantee['kept']} of" in out
    assert "Method: one-sided Clopper-Pearson" in out
