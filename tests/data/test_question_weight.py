"""The optional `weight` of a question: read from JSONL and CSV question sets, checked, kept by a run, and left out
of the fingerprint of a set that has none (old fingerprints stay valid)."""

import json

import pytest

from eval.data.datasets import Dataset, load_question_set, question_record
from eval.errors import DatasetError
from eval.schema import Question


def test_weights_are_read_from_jsonl_and_csv(tmp_path):
    (tmp_path / "q.jsonl").write_text(
        '{"id": "a", "question": "What is RAG?", "weight": 12}\n{"id": "b", "question": "什么是检索？"}\n'
        '{"id": "c", "question": "Why?", "weight": 0.5}\n',
        encoding="utf-8",
    )
    assert [q.weight for q in load_question_set(tmp_path / "q.jsonl")] == [12, None, 0.5]
    (tmp_path / "q.csv").write_text("id,question,weight\na,What is RAG?,3\nb,什么是检索？,\n", encoding="utf-8")
    assert [q.weight for q in load_question_set(tmp_path / "q.csv")] == [3.0, None]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"id": "a", "question": "q", "weight": 0}', "field 'weight': must be a positive number, got 0"),
        ('{"id": "a", "question": "q", "weight": -2}', "field 'weight': must be a positive number, got -2"),
        ('{"id": "a", "question": "q", "weight": "3"}', "field 'weight': must be a positive number, got '3'"),
        ('{"id": "a", "question": "q", "weight": true}', "field 'weight': must be a positive number, got True"),
        ('{"id": "a", "question": "q", "weight": NaN}', "field 'weight': must be a positive number, got nan"),
    ],
)
def test_a_bad_weight_names_its_line_and_field(tmp_path, line, message):
    (tmp_path / "q.jsonl").write_text('{"id": "z", "question": "fine"}\n' + line + "\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=f"q.jsonl, line 2, {message}"):
        load_question_set(tmp_path / "q.jsonl")


def test_a_bad_csv_weight_names_its_line(tmp_path):
    (tmp_path / "q.csv").write_text("question,weight\nWhat is RAG?,often\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="q.csv, line 2, field 'weight': 'often' is not a number"):
        load_question_set(tmp_path / "q.csv")


def test_the_record_keeps_a_weight_and_the_fingerprint_ignores_its_absence():
    plain = Question("a", "What is RAG?", ("retrieval",), ("d1",))
    assert question_record(plain) == {
        "id": "a",
        "question": "What is RAG?",
        "answers": ["retrieval"],
        "relevant_ids": ["d1"],
    }
    assert question_record(Question("b", "为什么？", weight=7)) == {"id": "b", "question": "为什么？", "weight": 7}
    before_weights = "86ca6d73dff2c733"  # this set's fingerprint before questions had a weight (main, 637e3ed)
    assert Dataset("d", [], [plain]).questions_fingerprint() == before_weights
    assert (
        Dataset("d", [], [Question("a", "What is RAG?", ("retrieval",), ("d1",), weight=2)]).questions_fingerprint()
        != before_weights
    )


def test_a_run_keeps_the_weights_of_its_questions(tmp_path, tiny_index_store, tiny_dataset):
    from dataclasses import replace

    from eval.retrievers.registry import parse_sweep
    from eval.runs.store import RunStore
    from eval.sweep.engine import SweepOptions, run_sweep

    questions = [replace(q, weight=w) for q, w in zip(tiny_dataset.questions[:3], (5, None, 2))]
    store = RunStore(tmp_path)
    run_id = run_sweep(
        store,
        tiny_index_store.open("tiny"),
        parse_sweep({"configs": [{"search_type": "similarity", "k": 2}]}),
        questions,
        "weighted",
        SweepOptions(latency_sample=0),
    )
    run = store.load(run_id)
    assert run.question_weights() == {"q1": 5.0, "q2": 1.0, "q3": 2.0}
    unweighted = store.load(
        run_sweep(
            store,
            tiny_index_store.open("tiny"),
            parse_sweep({"configs": [{"search_type": "similarity", "k": 2}]}),
            tiny_dataset.questions[:3],
            "plain",
            SweepOptions(latency_sample=0),
        )
    )
    assert unweighted.question_weights() == {}
    assert json.loads((unweighted.folder / "questions.jsonl").read_text(encoding="utf-8").splitlines()[0]) == {
        "id": "q1",
        "question": tiny_dataset.questions[0].question,
        "answers": list(tiny_dataset.questions[0].answers),
        "relevant_ids": list(tiny_dataset.questions[0].relevant_ids),
    }
    assert run.info.questions.fingerprint != unweighted.info.questions.fingerprint
