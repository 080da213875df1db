"""`python -m eval questions import` and `--weighted` on the commands that print or write a leaderboard, run as a
user runs them (a subprocess)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eval.data.labels import Judgement, load_labels, open_question_set, save_labels

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, home):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "eval", "--home", str(home), *args], capture_output=True, text=True, env=env, cwd=home
    )


def test_import_prints_what_it_read_dropped_and_wrote(tmp_path):
    (tmp_path / "list.txt").write_text(
        "如何重置密码？\nHow do I reset my password?\n如何重置密码\n\n", encoding="utf-8"
    )
    sessions = {
        "code": 0,
        "data": [
            {
                "chat_id": "c",
                "id": "s1",
                "messages": [
                    {"role": "assistant", "content": "Hi! How can I help?"},
                    {"role": "user", "content": "How do I reset my password"},
                    {"role": "assistant", "content": "Go to settings.", "id": "u"},
                ],
            }
        ],
    }
    (tmp_path / "ragflow.json").write_text(json.dumps(sessions), encoding="utf-8")
    done = run_cli(
        "questions", "import", "list.txt", "ragflow.json", "--out", "set", "--near-duplicate", "off", home=tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "read 3 questions from list.txt (txt)",
        "read 1 question from ragflow.json (ragflow), skipped 1 greetings; 1 assistant replies",
        "dropped 2 lines as exact duplicates (after normalising), no near duplicates sought",
        "kept 2 questions standing for 4 lines (weight = lines)",
        f"wrote 2 questions to {Path('set') / 'questions.jsonl'}",
    ]
    written = [
        json.loads(line) for line in (tmp_path / "set" / "questions.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [(r["question"], r["weight"]) for r in written] == [
        ("如何重置密码？", 2),
        ("How do I reset my password?", 2),
    ]
    again = run_cli("questions", "import", "list.txt", "--out", "set", home=tmp_path)
    assert (again.returncode, again.stderr.strip()) == (
        2,
        f"error: {Path('set') / 'questions.jsonl'} already holds a question set: choose a new folder",
    )


def test_bad_input_exits_2_with_one_line(tmp_path):
    (tmp_path / "log.jsonl").write_text('{"ts": 1, "text_body": "How do I log in?"}\n', encoding="utf-8")
    (tmp_path / "log.csv").write_text("ts,text\n1,How do I log in?\n", encoding="utf-8")
    (tmp_path / "empty.txt").write_text("", encoding="utf-8")
    cases = [
        (("log.jsonl",), "error: log.jsonl, line 1: no field named question / query / 问题 (there are: ts, text_body)"),
        (("log.csv",), "error: log.csv, line 1: no column named question / query / 问题 (there are: ts, text)"),
        (("empty.txt",), "error: empty.txt: the file is empty"),
        (("empty.txt", "--near-duplicate", "2"), "error: --near-duplicate must be a cosine between 0 and 1, or off"),
        (("log.csv", "--index", "x", "--encoder", "e5-small"), "error: give an index (its encoder) or an encoder"),
    ]
    for args, message in cases:
        done = run_cli("questions", "import", *args, "--out", "out", home=tmp_path)
        assert done.returncode == 2 and done.stderr.startswith(message), (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_weighted_leaderboards_on_run_rescore_and_report(tmp_path, tiny_index_store, tiny_dataset):
    """A question set with weights (1, 5, 2): `--weighted` weighs each question's hit by them, says so, and the
    default stays the plain mean. q2 is labelled with a document that does not answer it, so that it misses."""
    weights = {"q1": 1, "q2": 5, "q4": 2}
    relevant = {"q1": ["mmr"], "q2": ["cooking"], "q4": ["football"]}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": d.id, "text": d.text}, ensure_ascii=False) + "\n" for d in tiny_dataset.corpus),
        encoding="utf-8",
    )
    questions = tmp_path / "data" / "questions.jsonl"
    questions.write_text(
        "".join(
            json.dumps(
                {"id": q.id, "question": q.question, "relevant_ids": relevant[q.id], "weight": weights[q.id]},
                ensure_ascii=False,
            )
            + "\n"
            for q in tiny_dataset.questions
            if q.id in weights
        ),
        encoding="utf-8",
    )
    (tmp_path / "sweep.yaml").write_text("configs:\n  - {search_type: similarity, k: [1]}\n", encoding="utf-8")
    indexes = ("--indexes", str(tiny_index_store.root))
    ran = run_cli(
        *indexes,
        "run",
        "--index",
        "tiny",
        "--questions",
        str(questions),
        "--sweep",
        "sweep.yaml",
        "--latency-sample",
        "0",
        "--weighted",
        home=tmp_path,
    )
    assert ran.returncode == 0, ran.stderr
    from eval.runs.store import RunStore

    (manifest,) = RunStore(tmp_path / "runs").list()
    rows = RunStore(tmp_path / "runs").load(manifest["run_id"]).rows.set_index("question_id")
    assert rows["hit_rate"].to_dict() == {"q1": 1.0, "q2": 0.0, "q4": 1.0}
    weighted, plain = 3 / 8, 2 / 3
    note = (
        "Weighted means: each question counts by its weight (for imported questions, how many lines of the log "
        "it stands for: 8 over 3 questions)."
    )
    assert note in ran.stdout and f"{weighted:.3f}" in ran.stdout.splitlines()[2]
    rescored = run_cli("rescore", manifest["run_id"], "--labels", str(questions), "--metric", "hit_rate", home=tmp_path)
    assert rescored.returncode == 0, rescored.stderr
    assert f"{plain:.3f}" in rescored.stdout and "Unweighted means: each question counts once" in rescored.stdout
    rescored = run_cli(
        "rescore", manifest["run_id"], "--labels", str(questions), "--metric", "hit_rate", "--weighted", home=tmp_path
    )
    assert f"{weighted:.3f}" in rescored.stdout and note in rescored.stdout
    report = run_cli("report", manifest["run_id"], "--format", "md", "--out", "r.md", "--weighted", home=tmp_path)
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "r.md").read_text(encoding="utf-8")
    assert note in text and f"{weighted:.3f} [" in text


def test_questions_imported_for_an_index_can_be_labelled(tmp_path, sample_index):
    """With --index, the index's documents are written beside the questions, so a person's labels can be saved
    there (the label store checks every span against them)."""
    (tmp_path / "lab").mkdir()
    questions = tmp_path / "asked.txt"
    questions.write_text("How do I pick k?\n怎样选择 k？\n", encoding="utf-8")
    done = run_cli(
        "--indexes",
        sample_index.folder.parent,
        "questions",
        "import",
        questions,
        "--out",
        tmp_path / "set",
        "--index",
        "sample",
        "--near-duplicate",
        "off",
        home=tmp_path / "lab",
    )
    assert done.returncode == 0, done.stderr
    corpus = [json.loads(line) for line in (tmp_path / "set" / "corpus.jsonl").read_text().splitlines()]
    assert sorted(d["id"] for d in corpus) == sorted(sample_index.doc_ids())
    (first,) = sample_index.chunks(limit=1)
    question_id = json.loads((tmp_path / "set" / "questions.jsonl").read_text().splitlines()[0])["id"]
    span = Judgement(question_id, first.doc_id, first.start, first.start + len(first.text), 2, "human:ann")
    label_file = tmp_path / "set" / "questions.labels.jsonl"
    save_labels(label_file, [span], *open_question_set(label_file)[1:])
    assert load_labels(label_file).spans("human:ann")[question_id][0].grade == 2
