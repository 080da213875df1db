"""One label source across the pages (AppTest): chosen on one page, it carries to the others; Inspect marks a
chunk relevant with its grade under it where gold marks nothing; Compare and the reports name it and say how
many questions their means are over."""

import pytest
from streamlit.testing.v1 import AppTest
from support.label_source_lab import MMR, SIMILARITY, SOURCE
from support.paths import APP

from eval.data.labels import Judgement, save_labels

BOB = "human:bob"


@pytest.fixture
def two_labeller_lab(unlabelled_lab, tiny_dataset):
    """The lab with a second person's labels: bob marks the document both configs rank first (grade 1), on the
    first question ann labelled."""
    question_id = next(iter(unlabelled_lab.labelled))
    first = unlabelled_lab.run.rows.set_index(["config_id", "question_id"]).loc[(MMR, question_id), "doc_ids"][0]
    text = next(d.text for d in tiny_dataset.corpus if d.id == first)
    save_labels(
        unlabelled_lab.labels_file,
        [Judgement(question_id, first, 0, len(text), 1, BOB)],
        unlabelled_lab.questions,
        tiny_dataset.corpus,
    )
    return unlabelled_lab


@pytest.fixture
def app(two_labeller_lab, monkeypatch):
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(two_labeller_lab.home))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()  # opens on Compare
    assert not at.exception, [e.value for e in at.exception]
    return at


def shown(at: AppTest) -> str:
    return "\n".join(e.value for e in [*at.markdown, *at.caption, *at.get("html")])


def test_the_chosen_source_scores_compare_inspect_and_reports(app, two_labeller_lab):
    at = app
    at.selectbox(key="compare-run").set_value(two_labeller_lab.run.run_id).run()
    # the questions came without relevant_ids: gold labels nothing, so only the people's sources are offered
    assert at.selectbox(key="compare-labels").options == [SOURCE, BOB]
    at.selectbox(key="compare-labels").set_value(SOURCE).run()
    assert not at.exception, [e.value for e in at.exception]
    labelled, questions = len(two_labeller_lab.labelled), len(two_labeller_lab.questions)
    scored = f"nDCG scored on {labelled} of {questions} questions: {questions - labelled} have no relevant label"
    assert any(f"Label source: **{SOURCE}**" in c.value and scored in c.value for c in at.caption)
    assert at.dataframe(key="leaderboard").value["config_id"].iloc[0] == MMR

    at.selectbox(key="compare-labels").set_value(BOB).run()
    question_id, document = next(iter(two_labeller_lab.labelled.items()))
    at.switch_page("dashboard/pages/inspect_question.py").run()
    assert at.selectbox(key="compare-labels").value == BOB  # carried from Compare
    at.selectbox(key="inspect-run").set_value(two_labeller_lab.run.run_id).run()
    at.selectbox(key="inspect-question").set_value(question_id).run()
    at.multiselect(key="inspect-configs").set_value([MMR, SIMILARITY]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"under label source **{BOB}**" in shown(at)
    assert shown(at).count("● relevant (grade 1)") == 2 and "● relevant (grade 2)" not in shown(at)  # both firsts

    at.selectbox(key="compare-labels").set_value(SOURCE).run()
    docs = list(two_labeller_lab.run.rows.set_index(["config_id", "question_id"]).loc[(MMR, question_id), "doc_ids"])
    marks = [m.value for m in at.markdown if m.value.startswith(f"**{docs.index(document) + 1}.** score")]
    assert any("● relevant (grade 2)" in m for m in marks)  # mmr's chunk of ann's document
    assert shown(at).count("● relevant (grade 2)") == docs.count(document)  # gold has no relevant label at all
    assert "● relevant (grade 1)" not in shown(at) and f"under label source **{SOURCE}**" in shown(at)
    unlabelled = next(q.id for q in two_labeller_lab.questions if q.id not in two_labeller_lab.labelled)
    assert at.selectbox(key="inspect-question").format_func(unlabelled).startswith("○ no relevant label · ")
    assert at.selectbox(key="inspect-question").format_func(question_id).startswith("● 1/3 hit · ")

    at.selectbox(key="compare-labels").set_value(BOB).run()
    at.switch_page("dashboard/pages/reports.py").run()
    assert at.selectbox(key="compare-labels").value == BOB  # carried from Inspect
    at.selectbox(key="compare-labels").set_value(SOURCE).run()
    at.selectbox(key="report-run").set_value(two_labeller_lab.run.run_id).run()
    at.button(key="build-html").click().run()
    assert not at.exception, [e.value for e in at.exception]
    report = at.session_state["report-html"][1].decode("utf-8")
    assert f"label source: {SOURCE}" in report and scored in report
    at.selectbox(key="export-format").set_value("jsonl").run()
    at.button(key="export").click().run()
    assert f'"label_source": "{SOURCE}"' in at.session_state["export-data"][2].decode("utf-8")
    at.selectbox(key="compare-labels").set_value(BOB).run()
    assert "report-html" not in at.session_state and "export-data" not in at.session_state  # made under ann
