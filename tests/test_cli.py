import json
import os
import subprocess
import sys

from conftest import ROOT, TINY_TEXTS


def run_cli(*args, home):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "eval", "--home", str(home), *args],
                          capture_output=True, text=True, env=env, cwd=home)


def test_build_list_retrieve_delete(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(json.dumps({"id": k, "text": v}, ensure_ascii=False) for k, v in TINY_TEXTS.items()),
                      encoding="utf-8")
    built = run_cli("index", "build", "--corpus", str(corpus), "--name", "指南", "--embedding", "minilm",
                    "--chunk-size", "120", "--chunk-overlap", "10", home=tmp_path)
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


def test_bad_input_exits_2_with_one_line(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"id": "a", "text": "ok"}\n{"id": "b"}\n', encoding="utf-8")
    cases = [
        (("index", "build", "--corpus", str(tmp_path / "corpus.jsonl"), "--name", "x1"),
         "error: corpus.jsonl, line 2, field 'text': missing"),
        (("index", "build", "--corpus", str(tmp_path / "nothing"), "--name", "x1"), "error: nothing: no such file"),
        (("index", "build", "--corpus", str(tmp_path / "corpus.jsonl"), "--name", "../up"), "error: invalid index name"),
        (("retrieve", "--index", "missing", "--question", "q"), "error: no index named 'missing'"),
        (("retrieve", "--index", "x", "--question", "q", "--search-type", "mmr", "--k", "5", "--fetch-k", "2"),
         "error: fetch_k (2) must be at least k (5)"),
        (("retrieve", "--index", "x", "--question", "q", "--filter", "{lang"), "error: --filter must be JSON"),
        (("--chroma-host", "127.0.0.1", "index", "list"), "error: give both --chroma-host and --chroma-port"),
    ]
    for args, message in cases:
        result = run_cli(*args, home=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.strip().splitlines()[-1].startswith(message), result.stderr
        assert "Traceback" not in result.stderr
