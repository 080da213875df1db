"""`python -m eval gate` on inputs that used to pass silently or stop it: a NaN or infinite --max-drop, baseline
values no metric takes, and two one-config runs whose config ids differ (k10 then k1)."""

import json
import shutil

import pytest

from eval.cli.main import main

QUESTIONS = 32


@pytest.fixture(scope="module")
def home(sample_run, tmp_path_factory):
    """A lab home holding three real runs of the sample: similarity k10, similarity k1, and k3 + k5."""
    home = tmp_path_factory.mktemp("gate-home")
    ids = {}
    for name, k in (("k10", 10), ("k1", 1), ("k3k5", [3, 5])):
        run = sample_run({"configs": [{"search_type": "similarity", "k": k}]}, QUESTIONS, latency_sample=0)
        shutil.copytree(run.folder, home / "runs" / run.run_id)
        ids[name] = run
    return home, ids


def gate(capsys, home, *args) -> tuple[int, str, str]:
    code = main(["--home", str(home), "gate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_two_one_config_runs_with_different_ids_are_compared(home, capsys):
    """Precision of k1 then k10: a large drop (most of the ten chunks are not relevant)."""
    home, runs = home
    args = ["--baseline", runs["k1"].run_id, "--candidate", runs["k10"].run_id, "--metric", "precision"]
    code, out, err = gate(capsys, home, *args, "--json")
    result = json.loads(out)
    base, cand = runs["k1"].rows["precision"].mean(), runs["k10"].rows["precision"].mean()
    assert (result["config_id"], result["candidate_config_id"]) == ("similarity-k1", "similarity-k10")
    assert result["baseline_mean"] == pytest.approx(base) and result["candidate_mean"] == pytest.approx(cand)
    assert base - cand > 0.5 and result["p_value"] < 0.001
    assert (code, result["verdict"]) == (1, "FAIL (significant drop)")
    assert err == "warning: compared the baseline's config similarity-k1 with the candidate's similarity-k10\n"
    code, out, _ = gate(capsys, home, *args)
    assert out.startswith(
        f"Retriever Lab gate: baseline `{runs['k1'].run_id}` vs candidate `{runs['k10'].run_id}`, "
        "config `similarity-k1` vs `similarity-k10`, 32 paired questions"
    )


def test_candidate_config_picks_one_of_several(home, capsys):
    home, runs = home
    two = runs["k3k5"].run_id
    code, out, err = gate(capsys, home, "--baseline", runs["k10"].run_id, "--candidate", two, "--metric", "recall")
    assert code == 2 and err == (
        f"error: run {two} has no config 'similarity-k10' (the baseline's): choose one with "
        "--candidate-config (similarity-k3, similarity-k5)\n"
    )
    code, out, err = gate(
        capsys,
        home,
        "--baseline",
        runs["k10"].run_id,
        "--candidate",
        two,
        "--candidate-config",
        "similarity-k5",
        "--metric",
        "recall",
        "--json",
    )
    result = json.loads(out)
    rows = runs["k3k5"].rows
    assert result["candidate_config_id"] == "similarity-k5"
    assert result["candidate_mean"] == pytest.approx(rows[rows["config_id"] == "similarity-k5"]["recall"].mean())
    code, _, err = gate(
        capsys,
        home,
        "--baseline",
        two,
        "--config",
        "similarity-k3",
        "--candidate",
        two,
        "--candidate-config",
        "similarity-k9",
        "--metric",
        "recall",
    )
    assert code == 2 and err.startswith(f"error: run {two} has no config 'similarity-k9'")


@pytest.mark.parametrize("max_drop", ["nan", "inf", "-0.1"])
def test_a_max_drop_that_is_no_finite_tolerance_is_refused(max_drop, home, capsys):
    home, runs = home
    code, out, err = gate(
        capsys,
        home,
        "--baseline",
        runs["k1"].run_id,
        "--candidate",
        runs["k10"].run_id,
        "--metric",
        "precision",
        "--max-drop",
        max_drop,
    )
    assert (code, out) == (2, "")
    assert err == (
        f"error: --max-drop must be >= 0 (a finite number) and --alpha in (0, 1), got {float(max_drop)} and 0.05\n"
    )


@pytest.mark.parametrize(
    "metric, value, shown, bounds",
    [
        ("ndcg", 5.0, "5.0", "[0, 1]"),
        ("ndcg", -0.2, "-0.2", "[0, 1]"),
        ("ndcg", "NaN", "nan", "[0, 1]"),
        ("ild", 2.5, "2.5", "[0, 2]"),
        ("n_retrieved", -1, "-1", "[0, inf]"),
    ],
)
def test_a_baseline_value_the_metric_cannot_take_is_refused(metric, value, shown, bounds, home, capsys, tmp_path):
    home, runs = home
    path = tmp_path / "baseline.json"
    assert gate(capsys, home, "--write-baseline", runs["k10"].run_id, "--metric", metric, "--out", str(path))[0] == 0
    data = json.loads(path.read_text())
    question = sorted(data["values"])[3]
    text = json.dumps({**data, "values": {**data["values"], question: "@"}}).replace('"@"', str(value))
    path.write_text(text)
    code, out, err = gate(capsys, home, "--baseline", str(path), "--candidate", runs["k10"].run_id, "--metric", metric)
    assert (code, out) == (2, "")
    assert err == (
        f"error: {path}: question {question} has {metric} {shown}, outside {bounds}: not a value the "
        "metric takes (rewrite the file with `gate --write-baseline`)\n"
    )


def test_values_inside_the_range_pass(home, capsys, tmp_path):
    home, runs = home
    path = tmp_path / "baseline.json"
    gate(capsys, home, "--write-baseline", runs["k10"].run_id, "--metric", "ild", "--out", str(path))
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "values": {q: 1.5 for q in data["values"]}}))  # ild reaches 2 (1 - cos)
    code, out, err = gate(capsys, home, "--baseline", str(path), "--candidate", runs["k10"].run_id, "--metric", "ild")
    assert code == 1 and "FAIL (significant drop)" in out, err
