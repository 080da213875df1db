"""A lab as a new user has it: documents and questions with no relevance labels (no `relevant_ids`), a real run of
three configs on the tiny index, and a person's labels (`human:ann`) that mark, on some questions only, a
document the mmr config retrieved and the similarity config did not. Under gold nothing is relevant; under
human:ann mmr is the best config by nDCG (similarity and the config that retrieves nothing score 0).

The fixture is registered for every test by `pytest_plugins` in tests/conftest.py: name it as an argument.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from eval.data.labels import Judgement, label_path, save_labels
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

SOURCE = "human:ann"
SIMILARITY, MMR, NOTHING = "similarity-k2", "mmr-k2-f8-l0", "threshold-k3-t0.99"
SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [2]},
        {"search_type": "mmr", "k": [2], "fetch_k": [8], "lambda_mult": [0.0]},
        {"search_type": "similarity_score_threshold", "k": [3], "score_threshold": [0.99]},  # returns nothing
    ]
}
LABELLED = 3  # questions ann labels; the others have no relevant label under her source


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")


@pytest.fixture(scope="module")
def unlabelled_lab(tmp_path_factory, tiny_index_store, tiny_dataset):
    home, data = tmp_path_factory.mktemp("home"), tmp_path_factory.mktemp("data")
    corpus = tiny_dataset.corpus
    questions = [replace(q, relevant_ids=()) for q in tiny_dataset.questions]
    write_jsonl(data / "corpus.jsonl", [{"id": d.id, "text": d.text} for d in corpus])
    write_jsonl(
        data / "questions.jsonl", [{"id": q.id, "question": q.question, "answers": list(q.answers)} for q in questions]
    )
    runs = RunStore(home / "runs")
    run = runs.load(
        run_sweep(
            runs,
            tiny_index_store.open("tiny"),
            parse_sweep(SWEEP),
            questions,
            str(data / "questions.jsonl"),
            SweepOptions(latency_sample=0),
        )
    )
    assert [c["config_id"] for c in run.configs] == [SIMILARITY, MMR, NOTHING]
    docs = run.rows.set_index(["config_id", "question_id"])["doc_ids"]
    lengths = {d.id: len(d.text) for d in corpus}
    labelled: dict[str, str] = {}  # question -> the document ann marks relevant (grade 2)
    for q in questions:
        only_mmr = [d for d in docs[(MMR, q.id)] if d not in set(docs[(SIMILARITY, q.id)])]
        if only_mmr and len(labelled) < LABELLED:
            labelled[q.id] = only_mmr[0]
    assert len(labelled) == LABELLED < len(questions), labelled
    judgements = [Judgement(q, d, 0, lengths[d], 2, SOURCE) for q, d in labelled.items()]
    labels_file = label_path(data / "questions.jsonl")
    save_labels(labels_file, judgements, questions, corpus)
    return SimpleNamespace(
        home=home, data=data, run=run, labelled=labelled, labels_file=labels_file, questions=questions
    )
