"""The calibration view under a person's labels: the Labels choice appears when the question set has a label file
beside it, and the candidates counted are those of the documents she judged (AppTest on the tiny index)."""

import pytest
from support.dashboard_lab import page_opener
from support.label_source_lab import SOURCE


@pytest.fixture
def at(unlabelled_lab, tiny_index_store, monkeypatch):
    indexes = unlabelled_lab.home / "indexes"
    if not indexes.exists():
        indexes.symlink_to(tiny_index_store.root)
    at = page_opener(unlabelled_lab.home, monkeypatch)("dashboard/pages/indexes.py")
    at.selectbox(key="cal-index").set_value("tiny").run()
    at.radio(key="cal-source").set_value("Folder or file path").run()
    at.text_input(key="cal-path").set_value(str(unlabelled_lab.data / "questions.jsonl")).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


@pytest.mark.slow  # a Streamlit page on a real index
def test_calibration_under_a_human_source_counts_her_judged_documents(at, unlabelled_lab, tiny_index_store):
    assert at.selectbox(key="cal-label-source").options == ["gold", SOURCE]
    at.selectbox(key="cal-label-source").set_value(SOURCE).run()
    at.button(key="calibrate").click().run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    chunks = tiny_index_store.open("tiny").collection.get(include=["metadatas"])["metadatas"]
    expected = sum(m["doc_id"] == doc_id for doc_id in unlabelled_lab.labelled.values() for m in chunks)
    questions = len(unlabelled_lab.labelled)
    assert f"{questions} questions, {expected} relevant and 0 irrelevant candidates under {SOURCE}" in [
        c.value for c in at.caption
    ]


@pytest.mark.slow  # a Streamlit page on a real index
def test_gold_on_a_set_without_relevant_ids_is_one_line(at):
    at.button(key="calibrate").click().run()  # gold, the default: these questions name no relevant document
    assert not at.exception and "needs questions with relevant_ids" in at.error[0].value
