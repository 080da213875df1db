"""`run` refuses, before it makes a run, a question set whose spans `rescore` would later refuse."""

import json

import pytest
from support.lab_cli import run_cli
from support.tiny_corpus import write_dataset

from eval.data.labels import load_labels
from eval.errors import DatasetError


@pytest.mark.parametrize(
    ("span", "problem"),
    [
        ({"doc_id": "ghost", "start": 0, "end": 5}, "names a document absent from the corpus: ghost"),
        ({"doc_id": "k", "start": 10, "end": 5000}, "span 10-5000 ends past the end of document 'k'"),
    ],
)
def test_run_refuses_spans_that_rescore_refuses(tmp_path, tiny_dataset, tiny_index_store, capsys, span, problem):
    data = write_dataset(tmp_path / "data", tiny_dataset)
    questions = data / "questions.jsonl"
    records = [json.loads(line) for line in questions.read_text(encoding="utf-8").splitlines()]
    records[1]["spans"] = [span]
    questions.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    spec = tmp_path / "sweep.yaml"
    spec.write_text("configs:\n  - {search_type: similarity, k: [2]}\n", encoding="utf-8")
    home = tmp_path / "home"
    capsys.readouterr()

    code = run_cli(home, tiny_index_store, "tiny", str(questions), spec, "--latency-sample", "0")

    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and problem in err[0] and "line 2" in err[0] and "spans" in err[0], err
    assert not (home / "runs").exists() or list((home / "runs").iterdir()) == []
    with pytest.raises(DatasetError) as refused:  # rescore reads the labels of the question set so
        load_labels(questions)
    assert err[0] == f"error: {refused.value}"
