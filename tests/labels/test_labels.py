"""The label store (eval/labels.py), the overlap rule and the passage metrics (eval/metrics/passage.py)."""

import json
import os
import random

import numpy as np
import pandas as pd
import pytest
from ranx import Qrels, evaluate
from ranx import Run as RanxRun

from eval.data.datasets import load_squad
from eval.data.labels import Judgement, Labels, label_path, labels_from_questions, load_labels, read_labels, save_labels
from eval.errors import DatasetError, LabError
from eval.labels.rescore import rescore
from eval.metrics import DOC_METRIC_KEYS
from eval.metrics.passage import PASSAGE_METRIC_KEYS, chunk_grades, passage_metrics
from eval.retrievers.registry import parse_sweep
from eval.runs.store import Run
from eval.schema import AnswerSpan, Document, Question, Span

CORPUS = [Document("d1", "a" * 100), Document("d2", "b" * 50)]
QUESTIONS = [Question("q1", "first?", relevant_ids=("d1",)), Question("q2", "second?", relevant_ids=("d2",))]
SWEEP = parse_sweep(
    {
        "configs": [
            {"search_type": "similarity", "k": [2, 6]},
            {"search_type": "mmr", "k": 4, "fetch_k": 12, "lambda_mult": 0.3},
            {"search_type": "similarity_score_threshold", "k": 5, "score_threshold": 0.86},
        ]
    }
)


def shares_a_character(a: Span, b: Span) -> bool:
    """The overlap rule written independently: the two character sets intersect."""
    return a.doc_id == b.doc_id and bool(set(range(a.start, a.end)) & set(range(b.start, b.end)))


# ---------------------------------------------------------------- the overlap rule


@pytest.mark.parametrize(
    "chunk, grade",
    [
        (Span("d1", 0, 10), None),  # ends where the span starts: touching is not overlapping
        (Span("d1", 0, 11), 2),  # one shared character
        (Span("d1", 20, 30), None),  # starts where the span ends
        (Span("d1", 19, 30), 2),  # one shared character at the span's last
        (Span("d1", 12, 15), 2),  # inside
        (Span("d1", 0, 100), 2),  # contains it, and the grade-0 span too: the best grade wins
        (Span("d1", 15, 35), 2),  # overlaps the grade-2 and the grade-1 span
        (Span("d1", 35, 45), 1),
        (Span("d1", 55, 58), 0),  # judged not relevant: judged, grade 0
        (Span("d2", 10, 20), None),  # same offsets in another document
    ],
)
def test_a_chunk_takes_the_best_grade_of_the_spans_it_shares_a_character_with(chunk, grade):
    judged = [Span("d1", 10, 20, 2), Span("d1", 30, 40, 1), Span("d1", 50, 60, 0)]
    assert chunk_grades([chunk], judged) == [grade]
    overlapped = [s.grade for s in judged if shares_a_character(chunk, s)]
    assert grade == (max(overlapped) if overlapped else None)


def test_overlapping_relevant_spans_are_one_passage_and_touching_ones_two():
    # three annotators marking one answer a word apart, and a second answer right after it
    judged = [Span("d1", 10, 20, 1), Span("d1", 12, 20, 1), Span("d1", 8, 18, 1), Span("d1", 20, 25, 1)]
    one_chunk = passage_metrics([Span("d1", 0, 19)], judged, ["passage_recall", "passage_ndcg"])
    assert one_chunk["passage_recall"] == 0.5
    both = passage_metrics([Span("d1", 0, 19), Span("d1", 19, 30)], judged, ["passage_recall", "passage_ndcg"])
    assert both == {"passage_recall": 1.0, "passage_ndcg": 1.0}


def test_a_second_chunk_over_the_same_answer_adds_no_gain():
    judged = [Span("d1", 10, 20, 2)]
    metrics = passage_metrics([Span("d1", 0, 15), Span("d1", 12, 30)], judged)
    assert metrics == {"passage_precision": 1.0, "passage_recall": 1.0, "passage_ndcg": 1.0, "judged": 1.0}


def test_without_a_relevant_span_only_judged_is_defined():
    metrics = passage_metrics([Span("d1", 0, 15), Span("d2", 0, 5)], [Span("d1", 10, 20, 0)])
    assert metrics["judged"] == 0.5
    assert all(np.isnan(metrics[m]) for m in ("passage_precision", "passage_recall", "passage_ndcg"))


# ---------------------------------------------------------------- agreement with ranx


def random_case(rng: random.Random, documents: dict[str, int]):
    """Judged spans (non-overlapping within a document, grades 0-2) and a ranked list of random chunks."""
    judged = []
    for doc_id, length in documents.items():
        cursor = rng.randrange(0, 30)
        while cursor < length - 10:
            end = min(length, cursor + rng.randrange(1, 40))
            if rng.random() < 0.5:
                judged.append(Span(doc_id, cursor, end, rng.choice([0, 1, 1, 2])))
            cursor = end + rng.randrange(0, 30)
    chunks = []
    for _ in range(rng.randrange(1, 12)):
        doc_id = rng.choice(list(documents))
        start = rng.randrange(0, documents[doc_id] - 1)
        chunks.append(Span(doc_id, start, min(documents[doc_id], start + rng.randrange(1, 60))))
    return judged, chunks


def ranx_scores(qrels: dict, run: dict, metric: str) -> dict[str, float]:
    """ranx per-query scores by query id (ranx returns them in sorted query-id order)."""
    values = evaluate(Qrels(qrels), RanxRun(run), metric, return_mean=False)
    return dict(zip(sorted(qrels), np.atleast_1d(values)))


def ranked(items: list[str]) -> dict[str, float]:
    return {item: float(len(items) - rank) for rank, item in enumerate(items)}


@pytest.mark.parametrize("k", [None, 1, 3, 8])
def test_passage_metrics_agree_with_ranx_on_graded_span_qrels(k):
    rng = random.Random(k or 0)
    documents = {"d1": 300, "d2": 200, "d3": 120}
    cases = {f"q{i:02d}": random_case(rng, documents) for i in range(60)}
    cases = {q: case for q, case in cases.items() if any(s.grade >= 1 for s in case[0])}
    at = f"@{k}" if k else ""
    chunk_qrels, chunk_runs, span_qrels, found_runs, credit_runs, ours = {}, {}, {}, {}, {}, {}
    for q, (judged, chunks) in cases.items():
        top = chunks[:k]
        ids = [f"c{i}" for i in range(len(chunks))]
        grades = [max((s.grade for s in judged if shares_a_character(c, s)), default=0) for c in chunks]
        chunk_qrels[q] = {i: g for i, g in zip(ids, grades) if g >= 1} or {"none": 1}  # ranx needs one
        chunk_runs[q] = ranked(ids)
        relevant = {f"s{i}": s for i, s in enumerate(judged) if s.grade >= 1}
        span_qrels[q] = {i: s.grade for i, s in relevant.items()}
        found = [i for c in top for i, s in relevant.items() if shares_a_character(c, s)]
        found_runs[q] = ranked(list(dict.fromkeys(found)) or ["nothing"])  # ranx needs one
        credited, items = set(), []
        for rank, c in enumerate(chunks):
            new = [i for i, s in relevant.items() if shares_a_character(c, s) and i not in credited]
            best = max(new, key=lambda i: relevant[i].grade, default=f"miss{rank}")
            credited.add(best)
            items.append(best)
        credit_runs[q] = ranked(items)
        ours[q] = passage_metrics(
            chunks, judged, [f"passage_precision{at}", f"passage_recall{at}", f"passage_ndcg{at}", f"judged{at}"]
        )
        judged_in_top = sum(any(shares_a_character(c, s) for s in judged) for c in top)
        assert ours[q][f"judged{at}"] == judged_in_top / (k or len(chunks))
    precision = ranx_scores(chunk_qrels, chunk_runs, f"precision{at}")
    recall = ranx_scores(span_qrels, found_runs, "recall")
    ndcg = ranx_scores(span_qrels, credit_runs, f"ndcg{at}")
    assert len(cases) > 40
    for q in cases:
        assert ours[q][f"passage_precision{at}"] == pytest.approx(precision[q], abs=1e-9)
        assert ours[q][f"passage_recall{at}"] == pytest.approx(recall[q], abs=1e-9)
        assert ours[q][f"passage_ndcg{at}"] == pytest.approx(ndcg[q], abs=1e-9)
        assert 0.0 <= ours[q][f"passage_ndcg{at}"] <= 1.0


@pytest.mark.parametrize("k", [None, 2, 5])
def test_rescored_document_metrics_on_graded_labels_agree_with_ranx(tmp_path, k):
    """Several spans of one document, graded 0-2 by one source: the document takes the best grade."""
    rng = random.Random(7)
    documents = {f"d{i}": 200 for i in range(8)}
    chunks = pd.DataFrame(
        [(f"{d}:{s}", d, s, "x" * 50) for d in documents for s in range(0, 200, 50)],
        columns=["chunk_id", "doc_id", "start", "text"],
    )
    chunks.to_parquet(tmp_path / "chunks.parquet")
    judgements, rows, qrels, runs = [], [], {}, {}
    for q in (f"q{i:02d}" for i in range(40)):
        for doc_id in rng.sample(list(documents), 3):
            spans = sorted(rng.sample(range(0, 200, 20), 3))
            judgements += [Judgement(q, doc_id, s, s + 10, rng.choice([0, 1, 2]), "llm:m@v1") for s in spans]
        picks = chunks.sample(6, random_state=rng.randrange(10**6))
        rows.append(
            {"question_id": q, "config_id": "c", "chunk_ids": list(picks["chunk_id"]), "doc_ids": list(picks["doc_id"])}
        )
        grades = {}
        for j in judgements:
            if j.question_id == q:
                grades[j.doc_id] = max(j.grade, grades.get(j.doc_id, 0))
        if any(g >= 1 for g in grades.values()):
            qrels[q] = {d: g for d, g in grades.items() if g >= 1}
            runs[q] = ranked(list(dict.fromkeys(picks["doc_id"])))
    run = Run("r", tmp_path, {}, pd.DataFrame(rows), pd.DataFrame())
    at = f"@{k}" if k else ""
    rescored = rescore(run, Labels(tuple(judgements)), "llm:m@v1", [f"{m}{at}" for m in DOC_METRIC_KEYS])
    assert len(qrels) > 30
    for metric in DOC_METRIC_KEYS:
        expected = ranx_scores(qrels, runs, f"{metric}{at}")
        for q, value in zip(rescored["question_id"], rescored[f"{metric}{at}"]):
            assert value == pytest.approx(expected[q], abs=1e-9) if q in qrels else np.isnan(value)


# ---------------------------------------------------------------- the label file


def human(question_id="q1", doc_id="d1", start=10, end=20, grade=2, name="ana", time=None) -> Judgement:
    return Judgement(question_id, doc_id, start, end, grade, f"human:{name}", time)


def test_label_file_sits_beside_the_question_set(tmp_path):
    assert label_path(tmp_path / "questions.jsonl") == tmp_path / "questions.labels.jsonl"
    assert label_path(tmp_path / "questions_zh.jsonl") == tmp_path / "questions_zh.labels.jsonl"
    assert label_path(tmp_path / "dev-v1.1.json") == tmp_path / "dev-v1.1.labels.jsonl"


def test_saved_judgements_read_back_with_their_time(tmp_path):
    path = tmp_path / "questions.labels.jsonl"
    saved = save_labels(path, [human(), human("q2", "d2", 0, 50, 0)], QUESTIONS, CORPUS)
    assert all(j.time for j in saved.judgements)
    assert read_labels(path, QUESTIONS, CORPUS) == saved
    assert [(j.question_id, j.doc_id, j.start, j.end, j.grade, j.source) for j in saved.judgements] == [
        ("q1", "d1", 10, 20, 2, "human:ana"),
        ("q2", "d2", 0, 50, 0, "human:ana"),
    ]


def test_saving_one_source_leaves_every_other_source_as_it_was(tmp_path):
    path = tmp_path / "questions.labels.jsonl"
    save_labels(
        path,
        [Judgement("q1", "d1", 0, 100, 2, "generated"), Judgement("q2", "d2", 5, 9, 1, "generated")],
        QUESTIONS,
        CORPUS,
    )
    generated_lines = path.read_text(encoding="utf-8").splitlines()
    llm = Judgement("q1", "d1", 10, 20, 0, "llm:smollm2@v1")  # disagrees with `generated`: another source may
    save_labels(path, [llm], QUESTIONS, CORPUS)
    save_labels(path, [human(grade=1)], QUESTIONS, CORPUS)
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[: len(generated_lines)] == generated_lines
    assert read_labels(path, QUESTIONS, CORPUS).sources == ["generated", "llm:smollm2@v1", "human:ana"]
    with pytest.raises(DatasetError, match="field 'source': new judgement 1: gold labels come from the question set"):
        save_labels(path, labels_from_questions(QUESTIONS, CORPUS).judgements, QUESTIONS, CORPUS)


def test_a_different_grade_for_the_same_span_needs_replace_and_an_identical_one_changes_nothing(tmp_path):
    path = tmp_path / "questions.labels.jsonl"
    save_labels(
        path,
        [human(time="2026-01-01T00:00:00+00:00"), Judgement("q1", "d1", 10, 20, 1, "generated")],
        QUESTIONS,
        CORPUS,
    )
    before = path.read_bytes()
    with pytest.raises(LabError, match=r"already has grade 2, not 0; pass replace=True"):
        save_labels(path, [human(grade=0)], QUESTIONS, CORPUS)
    save_labels(path, [human(grade=2)], QUESTIONS, CORPUS)
    assert path.read_bytes() == before
    corrected = save_labels(path, [human(grade=0)], QUESTIONS, CORPUS, replace=True)
    assert [(j.source, j.grade) for j in corrected.judgements] == [("human:ana", 0), ("generated", 1)]
    assert read_labels(path, QUESTIONS, CORPUS) == corrected


def test_overlapping_spans_with_different_grades_from_one_source_are_refused(tmp_path):
    path = tmp_path / "questions.labels.jsonl"
    save_labels(path, [human(start=10, end=20, grade=2)], QUESTIONS, CORPUS)
    before = path.read_bytes()
    with pytest.raises(DatasetError, match=r"span 19-30 with grade 1 overlaps line 1 \(span 10-20, grade 2\)"):
        save_labels(path, [human(start=19, end=30, grade=1)], QUESTIONS, CORPUS)
    assert path.read_bytes() == before
    # touching spans, another source, another question, or the same grade are all fine
    save_labels(
        path,
        [
            human(start=20, end=30, grade=1),
            human(start=15, end=25, grade=0, name="bo"),
            human("q2", "d2", 0, 50, 0),
            human(start=5, end=15, grade=2),
        ],
        QUESTIONS,
        CORPUS,
    )
    assert len(read_labels(path, QUESTIONS, CORPUS).judgements) == 5


GOOD = {
    "question_id": "q1",
    "doc_id": "d1",
    "start": 10,
    "end": 20,
    "grade": 2,
    "source": "human:ana",
    "time": "2026-11-27T10:00:00+00:00",
}


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"question_id": "q1"', "line 2: invalid JSON"),
        (json.dumps({**GOOD, "question_id": "q9"}), "line 2, field 'question_id': unknown question id 'q9'"),
        (json.dumps({**GOOD, "doc_id": "d9"}), "line 2, field 'doc_id': unknown document id 'd9'"),
        (
            json.dumps({**GOOD, "end": 101}),
            "line 2, field 'end': span 10-101 is not inside document 'd1' (100 characters",
        ),
        (json.dumps({**GOOD, "start": 20}), "line 2, field 'start': span 20-20 is not inside document"),
        (json.dumps({**GOOD, "start": -1}), "line 2, field 'start': span -1-20 is not inside document"),
        (json.dumps({**GOOD, "grade": 3}), "line 2, field 'grade': grade 3 is not 0, 1 or 2"),
        (json.dumps({**GOOD, "grade": "2"}), "line 2, field 'grade': missing or not an integer"),
        (json.dumps({**GOOD, "grade": True}), "line 2, field 'grade': missing or not an integer"),
        (json.dumps({**GOOD, "source": "llm:smollm2"}), "line 2, field 'source': 'llm:smollm2' is not gold, generated"),
        (json.dumps({**GOOD, "source": "gold"}), "line 2, field 'source': gold labels come from the question set"),
        (json.dumps({**GOOD, "time": "yesterday"}), "line 2, field 'time': 'yesterday' is not an ISO 8601 time"),
        (json.dumps({**GOOD, "note": "x"}), "line 2, field 'note': unknown field(s) note"),
        (
            json.dumps({**GOOD, "start": 12, "grade": 1}),
            "line 2, field 'grade': span 12-20 with grade 1 overlaps line 1",
        ),
        (json.dumps(GOOD), "line 2: duplicate judgement (first on line 1)"),
    ],
)
def test_a_bad_label_file_names_file_line_and_field_and_saving_into_it_writes_nothing(tmp_path, line, message):
    path = tmp_path / "questions.labels.jsonl"
    path.write_text(json.dumps(GOOD) + "\n" + line + "\n", encoding="utf-8")
    before = path.read_bytes()
    with pytest.raises(DatasetError) as error:
        read_labels(path, QUESTIONS, CORPUS)
    assert str(error.value).startswith(f"questions.labels.jsonl, {message}")
    with pytest.raises(DatasetError):
        save_labels(path, [human("q2", "d2", 0, 5)], QUESTIONS, CORPUS)
    assert path.read_bytes() == before


def test_a_bad_new_judgement_is_described_and_writes_nothing(tmp_path):
    path = tmp_path / "questions.labels.jsonl"
    save_labels(path, [human()], QUESTIONS, CORPUS)
    before = path.read_bytes()
    with pytest.raises(DatasetError, match=r"field 'grade': new judgement 2: grade 5 is not 0, 1 or 2"):
        save_labels(path, [human("q2", "d2", 0, 5), human(grade=5)], QUESTIONS, CORPUS)
    with pytest.raises(DatasetError, match=r"document 'd2' 0-60 by human:ana: span 0-60 is not inside"):
        save_labels(path, [human("q2", "d2", 0, 60)], QUESTIONS, CORPUS)
    assert path.read_bytes() == before


def test_a_failed_write_leaves_the_saved_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "questions.labels.jsonl"
    save_labels(path, [human()], QUESTIONS, CORPUS)
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_labels(path, [human("q2", "d2", 0, 5)], QUESTIONS, CORPUS)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name, path.name + ".lock"]  # no temporary file left


# ---------------------------------------------------------------- gold from question sets


def test_gold_labels_are_whole_documents_or_answer_spans_at_grade_1():
    corpus = [*CORPUS, Document("d3", "c" * 30)]
    questions = [
        Question("q1", "?", relevant_ids=("d1", "d3"), spans=(AnswerSpan("d1", 5, 9),)),
        Question("q2", "?", relevant_ids=("d2",)),
    ]
    labels = labels_from_questions(questions, corpus)
    assert [(j.question_id, j.doc_id, j.start, j.end, j.grade, j.source) for j in labels.judgements] == [
        ("q1", "d3", 0, 30, 1, "gold"),
        ("q1", "d1", 5, 9, 1, "gold"),
        ("q2", "d2", 0, 50, 1, "gold"),
    ]
    with pytest.raises(LabError, match="question 'q1' names documents absent from the corpus: d3"):
        labels_from_questions(questions, CORPUS)


def test_load_labels_joins_the_question_sets_gold_and_its_label_file(tmp_path):
    (tmp_path / "corpus_zh.jsonl").write_text(
        "".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in CORPUS), encoding="utf-8"
    )
    questions_file = tmp_path / "questions_zh.jsonl"
    questions_file.write_text(
        "".join(
            json.dumps({"id": q.id, "question": q.question, "relevant_ids": list(q.relevant_ids)}) + "\n"
            for q in QUESTIONS
        ),
        encoding="utf-8",
    )
    assert load_labels(questions_file) == labels_from_questions(QUESTIONS, CORPUS)
    saved = save_labels(label_path(questions_file), [human()], QUESTIONS, CORPUS)
    joined = load_labels(label_path(questions_file))
    assert joined == load_labels(questions_file)
    assert joined.judgements == labels_from_questions(QUESTIONS, CORPUS).judgements + saved.judgements
    assert load_labels(label_path(questions_file)).sources == ["gold", "human:ana"]
    squad = tmp_path / "dev.json"
    squad.write_text(
        json.dumps(
            {
                "data": [
                    {
                        "title": "T",
                        "paragraphs": [
                            {
                                "id": "p",
                                "context": "Alpha beta.",
                                "qas": [{"id": "q", "question": "?", "answers": [{"text": "beta", "answer_start": 6}]}],
                            }
                        ],
                    }
                ]
            }
        ),
        encoding="utf-8",
    )
    assert load_labels(squad).judgements == (Judgement("q", "p", 6, 10, 1, "gold"),)
    with pytest.raises(DatasetError, match="no question set lost.jsonl, lost.csv or lost.json beside"):
        load_labels(tmp_path / "lost.labels.jsonl")


def test_metrics_use_one_named_source():
    labels = Labels((human(), Judgement("q1", "d1", 0, 100, 1, "gold")))
    assert labels.spans("human:ana") == {"q1": [Span("d1", 10, 20, 2)]}
    with pytest.raises(LabError, match=r"no judgements from source 'llm:x@v1' \(sources here: human:ana, gold\)"):
        labels.spans("llm:x@v1")


# ---------------------------------------------------------------- rescoring a real run


def test_rescoring_a_run_with_its_own_gold_reproduces_its_document_metrics(sample_run, sample_dataset):
    run = sample_run(SWEEP, 20, latency_sample=0)
    rescored = rescore(run, labels_from_questions(run.questions, sample_dataset.corpus), "gold")
    for metric in DOC_METRIC_KEYS:
        assert np.array_equal(rescored[metric].to_numpy(float), run.rows[metric].to_numpy(float), equal_nan=True)
    assert not rescored[list(DOC_METRIC_KEYS)].isna().all().any()
    # whole-document gold: every chunk of a relevant document is relevant, so passage precision is the share
    # of chunks from a relevant document; gold is complete, so every chunk is judged
    relevant = {q.id: set(q.relevant_ids) for q in run.questions}
    share = [
        np.mean([d in relevant[q] for d in doc_ids]) for q, doc_ids in zip(run.rows["question_id"], run.rows["doc_ids"])
    ]
    assert np.allclose(rescored["passage_precision"], share) and (rescored["judged"] == 1.0).all()
    other_set = labels_from_questions(
        [Question("elsewhere", "?", relevant_ids=(sample_dataset.corpus[0].id,))], sample_dataset.corpus
    )
    with pytest.raises(LabError, match="source 'gold' judges none of run .*'s questions"):
        rescore(run, other_set, "gold")


def squad_from(dataset, questions: list[Question]) -> dict:
    """The sample as a SQuAD-style file: each question's answer at its first occurrence in the first relevant
    document holding it."""
    qas = {}
    for q in questions:
        doc = next((d for d in dataset.corpus if d.id in q.relevant_ids and q.answer in d.text), None)
        if doc is not None:
            qas.setdefault(doc.id, []).append(
                {
                    "id": q.id,
                    "question": q.question,
                    "answers": [{"text": q.answer, "answer_start": doc.text.index(q.answer)}],
                }
            )
    return {
        "data": [
            {
                "title": "sample",
                "paragraphs": [{"id": d.id, "context": d.text, "qas": qas.get(d.id, [])} for d in dataset.corpus],
            }
        ]
    }


def test_passage_metrics_from_squad_gold_spans_on_a_real_run(sample_run, sample_dataset, tmp_path):
    run = sample_run(SWEEP, 20, latency_sample=0)
    (tmp_path / "sample.json").write_text(json.dumps(squad_from(sample_dataset, run.questions)), encoding="utf-8")
    imported = load_squad(tmp_path / "sample.json")
    texts = {d.id: d.text for d in sample_dataset.corpus}
    answers = {q.id: (q.spans[0].doc_id, q.spans[0].start, q.spans[0].end) for q in imported.questions}
    assert all(texts[d][s:e] == q.answer for q in run.questions if q.id in answers for d, s, e in [answers[q.id]])

    rescored = rescore(
        run,
        labels_from_questions(imported.questions, imported.corpus),
        "gold",
        [*PASSAGE_METRIC_KEYS, "passage_precision@2", "judged@2"],
    )
    chunks = pd.read_parquet(run.folder / "chunks.parquet").set_index("chunk_id")
    assert all(texts[c.doc_id][c.start : c.start + len(c.text)] == c.text for c in chunks.itertuples())
    seen = {"holds the answer": 0, "right document, no answer": 0}
    for row, metrics in zip(run.rows.itertuples(), rescored.to_dict("records")):
        if row.question_id not in answers:
            assert np.isnan(metrics["passage_precision"]) and metrics["judged"] == 0.0
            continue
        doc_id, start, end = answers[row.question_id]
        relevant = []
        for chunk_id in row.chunk_ids:
            chunk = chunks.loc[chunk_id]
            chunk_start, chunk_end = int(chunk.start), int(chunk.start) + len(chunk.text)
            holds = chunk.doc_id == doc_id and chunk_start <= start and end <= chunk_end
            apart = chunk.doc_id != doc_id or chunk_end <= start or end <= chunk_start  # else it overlaps
            if holds:
                seen["holds the answer"] += 1
            elif chunk.doc_id == doc_id and apart:
                seen["right document, no answer"] += 1
            relevant.append(not apart)
        assert metrics["passage_precision"] == pytest.approx(np.mean(relevant))
        assert metrics["judged"] == 1.0  # gold is complete: a chunk off the answer is judged not relevant
        assert metrics["passage_recall"] == float(any(relevant))
        assert metrics["passage_precision@2"] == pytest.approx(sum(relevant[:2]) / 2)
        assert metrics["judged@2"] == min(len(relevant), 2) / 2
    assert seen["holds the answer"] > 5 and seen["right document, no answer"] > 5, seen
