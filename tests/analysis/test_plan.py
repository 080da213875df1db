"""The planner: its questions-needed and detectable-difference formulas against simulated paired randomization
tests on skewed, tied differences (as nDCG differences are), and `python -m eval plan` on a real run."""

import json

import numpy as np
import pytest

from eval.analysis.plan import detectable_delta, plan_caption, questions_needed
from eval.cli.main import main
from eval.metrics.statistics import _sign_flip_pvalues

NOISE = np.array([-0.5, 0.0, 0.5])  # most questions tie; the rest differ by half a point either way
P = np.array([0.15, 0.7, 0.15])
SD = float(np.sqrt(P @ NOISE**2))


def simulated_power(n: int, delta: float, repetitions: int = 1000) -> float:
    rng = np.random.default_rng(11)
    diffs = delta + rng.choice(NOISE, p=P, size=(n, repetitions))
    return float(np.mean(_sign_flip_pvalues(diffs, 2000, 0) < 0.05))


def test_questions_needed_reach_eighty_percent_power_in_simulation():
    n = questions_needed(SD, 0.06)
    assert 150 < n < 180  # about ((1.96 + 0.84) * 0.274 / 0.06)^2
    assert 0.76 < simulated_power(n, 0.06) < 0.84
    assert simulated_power(n // 2, 0.06) < 0.6  # half as many questions fall well short


def test_detectable_delta_of_forty_questions_is_seen_eighty_percent_of_the_time():
    delta = detectable_delta(SD, 40)
    assert 0.12 < delta < 0.14
    assert 0.76 < simulated_power(40, delta) < 0.84


@pytest.mark.parametrize("delta", ["0", "-0.1"])
def test_a_delta_at_or_below_zero_is_one_line(tmp_path, capsys, delta):
    code = main(["--home", str(tmp_path), "plan", "no-run", "--delta", delta])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err and f"--delta must be above 0, got {float(delta):g}" in err


@pytest.mark.slow  # a sweep of the sample
def test_plan_of_a_run_in_json_and_in_words(sample_run, tmp_path, capsys):
    run = sample_run({"configs": [{"search_type": "similarity", "k": [1, 2, 8]}]}, questions=24)
    (tmp_path / "runs").symlink_to(run.folder.parent)  # the run's store as the home's runs folder
    assert main(["--home", str(tmp_path), "plan", run.run_id, "--delta", "0.05", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["metric"] == "ndcg" and result["questions"] == 24 and result["delta"] == 0.05
    wide = run.rows.pivot(index="question_id", columns="config_id", values="ndcg")
    for row in result["configs"]:
        diffs = wide[result["leader"]] - wide[row["config_id"]]
        assert row["sd"] == pytest.approx(float(np.std(diffs, ddof=1)))
        assert row["questions_needed"] > 24 * (row["detectable_delta"] / 0.05) ** 2 * 0.8  # n grows as 1/delta^2
    assert result["questions_needed"] == max(r["questions_needed"] for r in result["configs"])
    caption = plan_caption(result)
    assert caption.startswith(f"With 24 questions, differences under {result['detectable_delta']:.2f} nDCG")
