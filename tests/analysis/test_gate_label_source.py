"""The regression gate under a chosen label source: `gate --source NAME [--labels FILE]` scores both sides under
it, a baseline file records it, and scores made under two sources are never compared."""

import json

import numpy as np
from support.label_source_lab import MMR, SOURCE

from eval.cli.main import main


def gate(capsys, lab, *args):
    code = main(["--home", str(lab.home), "gate", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_baseline_written_under_a_person_s_labels_gates_under_them(unlabelled_lab, tmp_path, capsys):
    lab, baseline = unlabelled_lab, tmp_path / "baseline.json"
    code, out, _ = gate(
        capsys,
        lab,
        "--write-baseline",
        lab.run.run_id,
        "--config",
        MMR,
        "--metric",
        "ndcg",
        "--out",
        str(baseline),
        "--source",
        SOURCE,
    )
    assert code == 0 and f"under label source {SOURCE}" in out
    written = json.loads(baseline.read_text(encoding="utf-8"))
    assert written["label_source"] == SOURCE
    # ann's labelled questions have a value (mmr finds her document); the others have no relevant label: null
    assert {q for q, v in written["values"].items() if v is not None} == set(lab.labelled)
    assert all(0 < written["values"][q] <= 1 for q in lab.labelled)

    code, out, err = gate(
        capsys, lab, "--baseline", str(baseline), "--candidate", lab.run.run_id, "--metric", "ndcg", "--source", SOURCE
    )
    assert code == 0, err
    assert f"{len(lab.labelled)} paired questions, label source `{SOURCE}`" in out and "pass (no drop)" in out

    # the run's own (gold) scores have no nDCG here at all: a gold gate would compare nothing
    code, _, err = gate(capsys, lab, "--baseline", str(baseline), "--candidate", lab.run.run_id, "--metric", "ndcg")
    assert code == 2
    assert f"is a baseline under label source '{SOURCE}', not 'gold'" in err


def test_gate_of_two_runs_under_a_source_in_json(unlabelled_lab, capsys):
    lab = unlabelled_lab
    code, out, err = gate(
        capsys,
        lab,
        "--baseline",
        lab.run.run_id,
        "--candidate",
        lab.run.run_id,
        "--config",
        MMR,
        "--metric",
        "ndcg",
        "--source",
        SOURCE,
        "--labels",
        str(lab.labels_file),
        "--json",
    )
    assert code == 0, err
    result = json.loads(out)
    assert result["label_source"] == SOURCE and result["n_questions"] == len(lab.labelled)
    assert result["difference"] == 0 and not np.isnan(result["baseline_mean"])
