"""The Labels page's Decide tab (AppTest): the lab asks for a pair, the buttons (the keys' buttons) save the grade
as human:NAME, skip and undo work, and labelling what it asks, answered from the question set's own relevant
documents, ends in "Settled after N labels" with the recommendation and every config's bounds."""

import json
import re

import pytest
from streamlit.testing.v1 import AppTest
from support.dashboard_lab import page_opener

from eval.labels.decide import DecidePool
from eval.labels.decide_session import decide_log_path, logged_session
from eval.labels.pooled_judging import chunk_judgements, save_judgements


@pytest.fixture
def page(unlabelled_lab, monkeypatch):
    at = page_opener(unlabelled_lab.home, monkeypatch)("dashboard/pages/labels.py")  # asserts no exception
    at.text_input(key="decide-name").set_value("bob").run()
    return at


def asked(at: AppTest, lab) -> tuple[str, str]:
    """(question id, document id) of the pair shown."""
    question = at.subheader[0].value
    question_id = next(q.id for q in lab.questions if q.question == question)
    document = next(c.value for c in at.caption if c.value.startswith("Document "))
    return question_id, document.removeprefix("Document ").split(" · ")[0]


def test_decide_tab_labels_skips_undoes_and_settles(page, unlabelled_lab, tiny_dataset):
    at, lab = page, unlabelled_lab
    assert "needs 5 relevant and 5 irrelevant labels first (has 0 and 0)" in at.info[0].value
    at.button(key="decide-2").click().run()
    assert list(chunk_judgements(lab.labels_file, "human:bob").values()) == [2]
    at.button(key="decide-skip").click().run()
    at.button(key="decide-undo").click().run()  # takes back the skip
    at.button(key="decide-undo").click().run()  # and the grade
    assert chunk_judgements(lab.labels_file, "human:bob") == {}

    relevant = {q.id: set(q.relevant_ids) for q in tiny_dataset.questions}
    for _ in range(300):
        if at.success:
            break
        question_id, doc_id = asked(at, lab)
        at.button(key=f"decide-{int(doc_id in relevant[question_id])}").click().run()
        assert not at.exception, [e.value for e in at.exception]
    labels = len(chunk_judgements(lab.labels_file, "human:bob"))
    assert re.match(
        rf"Settled after {labels} labels (\(certain under every completion\) )?\(pick\): ", at.success[0].value
    )
    assert "95% interval" in at.success[0].value
    table = at.dataframe[0].value  # the Decide tab comes first
    assert list(table.columns[:3]) == ["Config", "Lowest possible", "Highest possible"]
    assert (table["Lowest possible"] <= table["nDCG estimate"] + 1e-9).all()
    assert (table["nDCG estimate"] <= table["Highest possible"] + 1e-9).all()


def test_an_llm_judge_is_offered_and_kept_with_the_decision(page, unlabelled_lab):
    at, lab = page, unlabelled_lab
    item = DecidePool(lab.run).items[0]
    save_judgements(lab.labels_file, [(item, 2)], "llm:stand-in@v1")
    at.text_input(key="decide-name").set_value("carol").run()  # bob may have settled already (the test above)
    judge = at.selectbox(key="decide-judge")
    assert judge.options == ["none", "llm:stand-in@v1"]  # no human, gold or corrected source is a judge
    judge.set_value("llm:stand-in@v1").run()
    at.button(key="decide-0").click().run()
    assert not at.exception, [e.value for e in at.exception]
    log = json.loads(decide_log_path(lab.run, "human:carol").read_text())
    assert log["judge"] == "llm:stand-in@v1"
    assert logged_session(lab.run, "human:carol").decider.judge[0] == 2  # what the reports' decision uses too


def test_a_grade_that_cannot_be_saved_is_one_line_and_the_pair_stays(page, unlabelled_lab):
    # the document changed on disk since the run: its chunk's span no longer fits, so the label cannot be saved
    at, lab = page, unlabelled_lab
    at.text_input(key="decide-name").set_value("dave").run()
    question_id, doc_id = asked(at, lab)
    corpus = lab.labels_file.parent / "corpus.jsonl"
    kept = corpus.read_text()
    records = [json.loads(line) for line in kept.splitlines()]
    shortened = [{**r, "text": r["text"][:3]} if r["id"] == doc_id else r for r in records]
    corpus.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in shortened))
    try:
        at.button(key="decide-2").click().run()
    finally:
        corpus.write_text(kept)
    assert not at.exception, [e.value for e in at.exception]
    said = [e.value for e in at.error if "skip this pair" in e.value]  # (other panels read the changed file too)
    assert len(said) == 1 and f"is not inside document '{doc_id}'" in said[0], [e.value for e in at.error]
    assert asked(at, lab) == (question_id, doc_id)  # still asked: nothing was saved
    assert chunk_judgements(lab.labels_file, "human:dave") == {}
    at.run()
    assert not [e for e in at.error if "skip this pair" in e.value]  # said once
