"""The regression gate (`python -m eval gate`) and reports from the command line (`python -m eval report`)."""

import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

from eval.cli.main import main
from eval.io import fingerprint
from eval.runs.store import RunStore
from eval.schema import Question

SWEEP = {"configs": [{"search_type": "similarity", "k": [3, 5]}]}
QUESTIONS = 12


@pytest.fixture(scope="module")
def real_run(sample_run):
    """A finished run of the bundled sample: two configs, 12 questions, rows without any `@k` column."""
    return sample_run(SWEEP, QUESTIONS, latency_sample=0)


def constructed_run(home, like, values, metric="ndcg", status="complete") -> str:
    """A run in `home/runs` with `like`'s index manifest whose `metric` per config and question is exactly
    `values` ({config_id: {question_id: value}}); its question set is the question ids of the first config."""
    ids = list(next(iter(values.values())))
    questions = [Question(q, f"question {q}", (), ("doc",)) for q in ids]
    store = RunStore(home / "runs")
    manifest = {
        **like.manifest,
        "sweep": {"configs": [{"config_id": c, "search_type": "similarity", "k": 3} for c in values]},
        "questions": {"source": "constructed", "count": len(ids), "fingerprint": fingerprint(ids)},
    }
    run_id = store.create(manifest, questions)
    rows = pd.DataFrame(
        [
            {"question_id": q, "config_id": c, "chunk_ids": ["doc#0"], "doc_ids": ["doc"], "scores": [1.0], metric: v}
            for c, by_question in values.items()
            for q, v in by_question.items()
        ]
    )
    if status == "complete":
        store.finish(
            run_id,
            rows,
            pd.DataFrame(columns=["config_id", "question_id", "retrieval_ms"]),
            pd.DataFrame(columns=["chunk_id", "text"]),
        )
    else:
        store.write_part(run_id, 0, rows)
        store.update(run_id, status=status)
    return run_id


def gate_cli(capsys, home, *args):
    """(exit code, stdout, stderr) of `python -m eval --home HOME gate ARGS`, in process."""
    code = main(["--home", str(home), "gate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def table_row(markdown: str) -> list[str]:
    """The cells of the Markdown table's one data row."""
    rows = [line for line in markdown.splitlines() if line.startswith("| ") and not line.startswith("| metric")]
    assert len(rows) == 1, markdown
    return [cell.strip() for cell in rows[0].strip("|").split("|")]


def pair(n, shift, noise=0.0, seed=0):
    """Baseline values in [0.3, 1) for n questions and candidate values = baseline + shift + noise."""
    rng = np.random.default_rng(seed)
    base = rng.uniform(0.3, 1.0, n)
    cand = base + shift + rng.normal(0, noise, n)
    ids = [f"q{i:03d}" for i in range(n)]
    return dict(zip(ids, base.tolist())), dict(zip(ids, cand.tolist()))


def gate_runs(tmp_path, real_run, base, cand, metric="ndcg"):
    return (
        constructed_run(tmp_path, real_run, {"cfg": base}, metric),
        constructed_run(tmp_path, real_run, {"cfg": cand}, metric),
    )


def test_large_significant_drop_fails_and_the_table_has_the_means(tmp_path, real_run, capsys):
    base, cand = pair(40, -0.1, noise=0.02)
    b, c = gate_runs(tmp_path, real_run, base, cand)
    code, out, _ = gate_cli(capsys, tmp_path, "--baseline", b, "--candidate", c, "--metric", "ndcg")
    assert code == 1
    metric, base_mean, cand_mean, difference, p, verdict = table_row(out)
    expected_base, expected_cand = np.mean(list(base.values())), np.mean(list(cand.values()))
    assert (metric, base_mean, cand_mean) == ("ndcg", f"{expected_base:.4f}", f"{expected_cand:.4f}")
    low, high = (float(v) for v in re.search(r"\[(\S+), (\S+)\]", difference).groups())
    assert float(difference.split()[0]) == pytest.approx(expected_cand - expected_base, abs=5e-5)
    assert low <= expected_cand - expected_base <= high < 0
    assert float(p.removeprefix("< ")) < 0.05 and verdict.startswith("FAIL")


def test_drop_inside_the_tolerance_passes(tmp_path, real_run, capsys):
    base, cand = pair(40, -0.005)  # every question 0.005 lower: significant, but tolerated
    b, c = gate_runs(tmp_path, real_run, base, cand)
    code, out, err = gate_cli(capsys, tmp_path, "--baseline", b, "--candidate", c, "--metric", "ndcg", "--json")
    result = json.loads(out)
    assert code == 0 and result["p_value"] < 0.05 and not result["failed"]
    assert result["difference"] == pytest.approx(-0.005) and result["verdict"] == "pass (within tolerance)"
    assert err == ""
    code, _, _ = gate_cli(
        capsys, tmp_path, "--baseline", b, "--candidate", c, "--metric", "ndcg", "--max-drop", "0.001"
    )
    assert code == 1  # the same drop with a tighter tolerance fails


def test_large_drop_on_few_questions_passes_with_a_warning(tmp_path, real_run, capsys):
    base, cand = pair(3, -0.3)
    b, c = gate_runs(tmp_path, real_run, base, cand)
    code, out, err = gate_cli(capsys, tmp_path, "--baseline", b, "--candidate", c, "--metric", "ndcg")
    assert code == 0
    assert table_row(out)[-1] == "pass (drop not significant)"
    assert "> warning: the candidate is worse by 0.3000" in out
    assert err.startswith("warning: ") and "on 3 questions" in err


def test_improvement_passes(tmp_path, real_run, capsys):
    base, cand = pair(40, +0.1, noise=0.02)
    b, c = gate_runs(tmp_path, real_run, base, cand)
    code, out, err = gate_cli(capsys, tmp_path, "--baseline", b, "--candidate", c, "--metric", "ndcg", "--json")
    result = json.loads(out)
    assert code == 0 and result["difference"] > 0.09 and result["p_value"] < 0.05
    assert result["verdict"] == "pass (no drop)" and err == ""


def test_overlapping_question_sets_are_compared_on_the_shared_questions(tmp_path, real_run, capsys):
    base, cand = pair(40, +0.1, noise=0.02)
    shared = dict(list(cand.items())[:20])
    b, c = gate_runs(tmp_path, real_run, base, shared)
    code, out, err = gate_cli(capsys, tmp_path, "--baseline", b, "--candidate", c, "--metric", "ndcg", "--json")
    result = json.loads(out)
    assert code == 0 and result["n_questions"] == 20
    assert result["baseline_mean"] == pytest.approx(np.mean([base[q] for q in shared]))
    assert "question sets differ" in result["warnings"][0] and "question sets differ" in err


def test_worse_follows_the_metric_direction(tmp_path, real_run, capsys):
    """near_duplicate_rate is lower-is-better: a significant rise fails, a significant fall passes."""
    base, cand = pair(40, +0.1, noise=0.02)
    b, c = gate_runs(tmp_path, real_run, base, cand, metric="near_duplicate_rate")
    assert gate_cli(capsys, tmp_path, "--baseline", b, "--candidate", c, "--metric", "near_duplicate_rate")[0] == 1
    assert gate_cli(capsys, tmp_path, "--baseline", c, "--candidate", b, "--metric", "near_duplicate_rate")[0] == 0


def test_cutoff_metrics_are_computed_from_the_stored_rows(tmp_path, real_run, capsys):
    """The rows have no `ndcg@10` or `ndcg@1` column: the gate computes them from doc ids and the stored
    question set. On a k=3 list, nDCG@10 is the stored nDCG; with binary labels nDCG@1 is whether the first
    document is relevant, which differs from the stored nDCG on this data (so a cutoff that is ignored fails)."""
    shutil.copytree(real_run.folder, tmp_path / "runs" / real_run.run_id)
    rows = real_run.rows[real_run.rows["config_id"] == "similarity-k3"]
    assert "ndcg@10" not in rows
    questions = real_run.questions_by_id
    first_relevant = [float(d[0] in questions[q].relevant_ids) for q, d in zip(rows["question_id"], rows["doc_ids"])]
    assert np.mean(first_relevant) != pytest.approx(rows["ndcg"].mean())
    for metric, expected in (("ndcg@10", rows["ndcg"].mean()), ("ndcg@1", np.mean(first_relevant))):
        code, out, _ = gate_cli(
            capsys,
            tmp_path,
            "--baseline",
            real_run.run_id,
            "--candidate",
            real_run.run_id,
            "--config",
            "similarity-k3",
            "--metric",
            metric,
            "--json",
        )
        result = json.loads(out)
        assert code == 0 and result["n_questions"] == QUESTIONS
        assert result["baseline_mean"] == pytest.approx(expected, abs=1e-12) == result["candidate_mean"]


def test_baseline_file_round_trip(tmp_path, real_run, capsys):
    base, cand = pair(30, -0.1, noise=0.02)
    base["q000"] = float("nan")  # a question that cannot be scored stays unscored in the file
    b, c = gate_runs(tmp_path, real_run, base, cand)
    path = tmp_path / "ci" / "baseline.json"
    code, out, _ = gate_cli(capsys, tmp_path, "--write-baseline", b, "--metric", "ndcg", "--out", str(path))
    assert code == 0 and str(path) in out
    data = json.loads(path.read_text())
    assert data["run_id"] == b and data["config_id"] == "cfg" and data["metric"] == "ndcg"
    assert data["questions_fingerprint"] == fingerprint(list(base))
    assert data["values"] == {q: None if np.isnan(v) else v for q, v in base.items()}
    from_run = json.loads(
        gate_cli(capsys, tmp_path, "--baseline", b, "--candidate", c, "--metric", "ndcg", "--json")[1]
    )
    code, out, _ = gate_cli(capsys, tmp_path, "--baseline", str(path), "--candidate", c, "--metric", "ndcg", "--json")
    from_file = json.loads(out)
    assert code == 1 and from_file["n_questions"] == 29
    assert {**from_file, "baseline": b} == from_run


def test_bad_input_exits_2_with_one_line(tmp_path, real_run, capsys):
    base, cand = pair(10, 0.0)
    b, c = gate_runs(tmp_path, real_run, base, cand)
    two_configs = constructed_run(tmp_path, real_run, {"x": base, "y": base})
    other_questions = constructed_run(tmp_path, real_run, {"cfg": {f"other{i}": 0.5 for i in range(5)}})
    unfinished = constructed_run(tmp_path, real_run, {"cfg": base}, status="cancelled")
    file = tmp_path / "baseline.json"
    assert gate_cli(capsys, tmp_path, "--write-baseline", b, "--metric", "ndcg", "--out", str(file))[0] == 0
    good = json.loads(file.read_text())
    files = {name: tmp_path / f"{name}.json" for name in ("garbage", "kind", "values")}
    files["garbage"].write_text("{not json")
    files["kind"].write_text(json.dumps({**good, "kind": "something else"}))
    files["values"].write_text(json.dumps({**good, "values": {"q000": "high"}}))
    cases = [
        (("--baseline", "20990101-000000-abcdef", "--candidate", c, "--metric", "ndcg"), "no run '20990101"),
        (("--baseline", "nothing.json", "--candidate", c, "--metric", "ndcg"), "baseline 'nothing.json' is neither"),
        (("--baseline", b, "--candidate", c, "--metric", "ndgc"), "unknown metric 'ndgc'"),
        (("--baseline", b, "--candidate", c, "--metric", "ndcg@0"), "unknown metric 'ndcg@0'"),
        (("--baseline", b, "--candidate", c, "--metric", "ild"), f"run {b} has no values of metric 'ild'"),
        (("--baseline", b, "--candidate", c, "--metric", "ndcg", "--config", "nope"), f"run {b} has no config 'nope'"),
        (("--baseline", two_configs, "--candidate", c, "--metric", "ndcg"), "has 2 configs: choose one with --config"),
        (("--baseline", b, "--candidate", two_configs, "--metric", "ndcg"), f"run {two_configs} has no config 'cfg'"),
        (("--baseline", b, "--candidate", other_questions, "--metric", "ndcg"), "shares no question with the baseline"),
        (("--baseline", b, "--candidate", unfinished, "--metric", "ndcg"), "is cancelled, not complete"),
        (("--baseline", str(files["garbage"]), "--candidate", c, "--metric", "ndcg"), "cannot read the baseline file"),
        (("--baseline", str(files["kind"]), "--candidate", c, "--metric", "ndcg"), "not a Retriever Lab baseline"),
        (("--baseline", str(files["values"]), "--candidate", c, "--metric", "ndcg"), "malformed baseline file"),
        (("--baseline", str(file), "--candidate", c, "--metric", "recall"), "is a baseline of 'ndcg', not 'recall'"),
        (("--baseline", str(file), "--candidate", other_questions, "--metric", "ndcg"), "shares no question"),
        (("--baseline", b, "--metric", "ndcg"), "--baseline needs --candidate"),
        (("--write-baseline", b, "--metric", "ndcg"), "--write-baseline RUN needs --out"),
        (("--baseline", b, "--candidate", c, "--metric", "ndcg", "--alpha", "5"), "--max-drop must be >= 0"),
    ]
    for args, message in cases:
        code, out, err = gate_cli(capsys, tmp_path, *args)
        assert code == 2, (args, out, err)
        assert err.startswith("error: ") and message in err and len(err.strip().splitlines()) == 1, (args, err)


def test_report_cli_writes_the_pages_reports(tmp_path, real_run, sample_run, capsys):
    """The files are the reports of the runs named, in the format asked: their run ids, and each config's mean
    nDCG as the leaderboard shows it (3 decimals, best first), worked out here from the rows."""
    other = sample_run(SWEEP, QUESTIONS + 4, latency_sample=0)
    for run in (real_run, other):
        shutil.copytree(run.folder, tmp_path / "runs" / run.run_id)
    home = ["--home", str(tmp_path)]
    paths = {name: tmp_path / "out" / name for name in ("r.html", "r.md", "c.html")}
    assert main([*home, "report", real_run.run_id, "--format", "html", "--out", str(paths["r.html"])]) == 0
    assert main([*home, "report", real_run.run_id, "--format", "md", "--out", str(paths["r.md"])]) == 0
    assert main([*home, "report", real_run.run_id, "--compare", other.run_id, "--out", str(paths["c.html"])]) == 0
    assert capsys.readouterr().out.split() == [str(p) for p in paths.values()]
    grid = list(dict.fromkeys(real_run.rows["config_id"]))  # no latency measured: equal means keep grid order
    means = real_run.rows.groupby("config_id")["ndcg"].mean().reindex(grid).sort_values(ascending=False, kind="stable")

    markdown = paths["r.md"].read_text(encoding="utf-8")
    assert markdown.startswith(f"# Retriever Lab report: run {real_run.run_id}\n")
    board = [line for line in markdown.splitlines() if line.startswith(tuple(f"| {c} |" for c in means.index))]
    assert [line.split(" | ")[0][2:] for line in board[: len(means)]] == means.index.tolist()
    for line, mean in zip(board, means):
        assert f" | {mean:.3f} [" in line, line
    html = paths["r.html"].read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html") and real_run.run_id in html and "plotly" in html
    assert all(f"{mean:.3f} [" in html for mean in means)
    comparison = paths["c.html"].read_text(encoding="utf-8")
    assert real_run.run_id in comparison and other.run_id in comparison and other.run_id not in html
    assert (
        main(
            [
                *home,
                "report",
                real_run.run_id,
                "--compare",
                other.run_id,
                "--format",
                "md",
                "--out",
                str(tmp_path / "c.md"),
            ]
        )
        == 2
    )
    assert capsys.readouterr().err.startswith("error: the comparison report is HTML only")
