"""Imported result files that would be scored as something they are not are refused with file and line: NaN
scores, a document listed twice, an empty file, a question listed twice, documents of another corpus, a file
without any of the run's questions. The last two need the index, so `run` refuses them before the run exists."""

import json

import pytest
from support.lab_cli import run_cli, write_questions

from eval.errors import LabError
from eval.labels.pooled_judging import pool
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

TREC_GOOD = "q1 Q0 mmr 1 0.9 sys\nq1 Q0 k 2 0.8 sys\n"


@pytest.mark.parametrize(
    "name, text, message",
    [
        (
            "nan.trec",
            "q1 Q0 mmr 1 0.9 sys\nq1 Q0 k 2 nan sys\n",
            "nan.trec, line 2: score must be a finite number, got 'nan'",
        ),
        ("inf.trec", "q1 Q0 mmr 1 inf sys\n", "inf.trec, line 1: score must be a finite number, got 'inf'"),
        (
            "twice.trec",
            "q1 Q0 mmr 1 0.9 sys\nq2 Q0 mmr 1 0.9 sys\nq1 Q0 mmr 2 0.5 sys\n",
            "twice.trec, line 3: document mmr is listed twice for question q1 (first on line 1)",
        ),
        ("empty.trec", "", "empty.trec: no results in the file (it has no result line)"),
        ("blank.trec", "\n  \n", "blank.trec: no results in the file (it has no result line)"),
        (
            "nan.jsonl",
            '{"question_id": "q1", "retrieved": [{"doc_id": "mmr", "score": NaN}]}\n',
            "nan.jsonl, line 1, field 'retrieved': score must be a finite number, got nan",
        ),
        (
            "text.jsonl",
            '{"question_id": "q1", "retrieved": [{"doc_id": "mmr", "score": "high"}]}\n',
            "text.jsonl, line 1, field 'retrieved': score must be a finite number, got 'high'",
        ),
        (
            "again.jsonl",
            '{"question_id": "q1", "doc_ids": ["mmr"]}\n{"question_id": "q2", "doc_ids": ["k"]}\n'
            '{"question_id": "q1", "doc_ids": ["k"]}\n',
            "again.jsonl, line 3: question q1 has a second line (the first is line 1)",
        ),
        (
            "docs.jsonl",
            '{"question_id": "q1", "doc_ids": ["mmr", "k", "mmr"]}\n',
            "docs.jsonl, line 1, field 'doc_ids': document mmr is listed twice for question q1",
        ),
        (
            "chunks.jsonl",
            '{"question_id": "q1", "retrieved": [{"doc_id": "mmr", "chunk_id": "mmr#0"}, '
            '{"doc_id": "mmr", "chunk_id": "mmr#1"}, {"doc_id": "mmr", "chunk_id": "mmr#0"}]}\n',
            "chunks.jsonl, line 1, field 'retrieved': chunk mmr#0 is listed twice for question q1",
        ),
        ("empty.jsonl", "\n", "empty.jsonl: no results in the file (it has no result line)"),
    ],
)
def test_a_file_that_would_score_wrong_is_refused_with_its_line(name, text, message, tmp_path):
    (tmp_path / name).write_text(text, encoding="utf-8")
    with pytest.raises(LabError) as error:
        parse_sweep({"configs": [{"search_type": "imported", "path": str(tmp_path / name)}]})
    assert str(error.value).startswith(message), str(error.value)


def test_chunks_of_one_document_are_fine_in_jsonl(tmp_path):
    (tmp_path / "chunks.jsonl").write_text(
        json.dumps(
            {
                "question_id": "q1",
                "retrieved": [
                    {"doc_id": "mmr", "chunk_id": "mmr#0", "score": 2},
                    {"doc_id": "mmr", "chunk_id": "mmr#1", "score": None},
                ],
            }
        )
    )
    assert len(parse_sweep({"configs": [{"search_type": "imported", "path": str(tmp_path / "chunks.jsonl")}]})) == 1


def cli_run(tiny_index_store, tiny_dataset, tmp_path, entry: dict) -> int:
    spec = tmp_path / "sweep.yaml"
    spec.write_text(json.dumps({"configs": [entry]}), encoding="utf-8")
    questions = write_questions(tiny_dataset, tmp_path / "q.jsonl")
    return run_cli(tmp_path / "home", tiny_index_store, "tiny", questions, spec, "--latency-sample", "0")


@pytest.mark.parametrize(
    "text, message",
    [
        (
            TREC_GOOD + "q2 Q0 k 1 0.7 sys\nq2 Q0 covid-19 2 0.6 sys\n",
            "run.trec, line 4: 'covid-19' matches no document of index 'tiny' (map_by doc_id): import results "
            "retrieved from this corpus, or change map_by",
        ),
        (
            "x1 Q0 mmr 1 0.9 sys\nx2 Q0 k 1 0.9 sys\nx3 Q0 k 1 0.9 sys\nx4 Q0 k 1 0.9 sys\n",
            "run.trec: none of the run's 5 questions is in the file (it has questions x1, x2, x3, ...; the run "
            "asks q1, q2, q3, ...)",
        ),
    ],
)
def test_cli_run_refuses_documents_of_another_corpus_before_the_run_exists(
    text, message, tiny_index_store, tiny_dataset, tmp_path, capsys
):
    (tmp_path / "run.trec").write_text(text, encoding="utf-8")
    code = cli_run(
        tiny_index_store, tiny_dataset, tmp_path, {"search_type": "imported", "path": str(tmp_path / "run.trec")}
    )
    assert (code, capsys.readouterr().err) == (2, f"error: {message}\n")
    assert not (tmp_path / "home" / "runs").exists()


def test_a_document_beyond_k_is_never_scored_so_never_refused(tiny_index_store, tiny_dataset, tmp_path, capsys):
    (tmp_path / "run.trec").write_text(TREC_GOOD + "q2 Q0 k 1 0.7 sys\nq2 Q0 covid-19 2 0.6 sys\n")
    entry = {"search_type": "imported", "path": str(tmp_path / "run.trec"), "k": 1}
    assert cli_run(tiny_index_store, tiny_dataset, tmp_path, entry) == 0, capsys.readouterr().err
    assert RunStore(tmp_path / "home" / "runs").list()[0]["status"] == "complete"


def test_run_sweep_refuses_them_too(tiny_index_store, tiny_dataset, tmp_path):
    (tmp_path / "run.trec").write_text("q1 Q0 mmr 1 0.9 sys\nq1 Q0 Mmr 2 0.8 sys\n", encoding="utf-8")
    store = RunStore(tmp_path / "runs")
    with pytest.raises(LabError, match=r"^run\.trec, line 2: 'Mmr' matches no document of index 'tiny'"):
        run_sweep(
            store,
            tiny_index_store.open("tiny"),
            parse_sweep({"configs": [{"search_type": "imported", "path": str(tmp_path / "run.trec")}]}),
            tiny_dataset.questions,
            "tiny",
            SweepOptions(latency_sample=0),
        )
    assert store.list() == []


def test_imported_chunks_and_documents_keep_their_offsets_so_they_can_be_labelled(
    tiny_index_store, tiny_dataset, tmp_path
):
    index = tiny_index_store.open("tiny")
    later = next(c for c in index.chunks() if c.start > 0)  # a chunk that does not open its document
    whole = tiny_dataset.corpus[0]
    question = tiny_dataset.questions[0].id
    retrieved = [{"doc_id": later.doc_id, "chunk_id": later.chunk_id}, {"doc_id": whole.id}]
    (tmp_path / "run.jsonl").write_text(json.dumps({"question_id": question, "retrieved": retrieved}) + "\n")
    entry = {"search_type": "imported", "path": str(tmp_path / "run.jsonl"), "format": "jsonl", "map_by": "doc_id"}
    store = RunStore(tmp_path / "runs")
    run = store.load(
        run_sweep(store, index, parse_sweep({"configs": [entry]}), tiny_dataset.questions[:1], "tiny", SweepOptions())
    )
    items = {(item.doc_id, item.start): item for item in pool(run)}
    assert set(items) == {(later.doc_id, later.start), (whole.id, 0)}  # not -1: a label needs a span
    assert items[whole.id, 0].end == len(whole.text)
