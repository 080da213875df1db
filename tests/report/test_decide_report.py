"""The reports say what the Decide tab says: after labelling on the Labels page's Decide tab (AppTest, answered from
the question set's own relevant documents) until "Settled", the HTML report built on the Reports page and the
Markdown report of `python -m eval report` carry a "Decided with N labels" section and a recommendation line with
the page's recommended config, its "settled after N labels" and its interval numbers, read from the page's text."""

import html
import re

import pytest
from streamlit.testing.v1 import AppTest
from support.paths import APP

from eval.cli.main import main
from eval.labels.pooled_judging import chunk_judgements
from eval.report.render import report_html, report_markdown

SOURCE = "human:carol"


@pytest.fixture
def settled_page(unlabelled_lab, tiny_dataset, monkeypatch):
    """The Labels page after carol settled the pick rule on the Decide tab."""
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(unlabelled_lab.home))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("dashboard/pages/labels.py").run()
    at.text_input(key="decide-name").set_value("carol").run()
    relevant = {q.id: set(q.relevant_ids) for q in tiny_dataset.questions}
    by_text = {q.question: q.id for q in unlabelled_lab.questions}
    for _ in range(300):
        if at.success:
            break
        question_id = by_text[at.subheader[0].value]
        document = next(c.value for c in at.caption if c.value.startswith("Document "))
        doc_id = document.removeprefix("Document ").split(" · ")[0]
        at.button(key=f"decide-{int(doc_id in relevant[question_id])}").click().run()
        assert not at.exception, [e.value for e in at.exception]
    assert at.success, "the Decide tab did not settle within 300 labels"
    return at


def test_a_report_without_a_decide_log_has_no_decided_section(unlabelled_lab):
    """Runs first: the module's lab has no decide log yet."""
    run = unlabelled_lab.run
    for report in (report_html(run), report_markdown(run)):
        assert "Decided with" not in report and "Decide (" not in report


@pytest.mark.slow
def test_reports_say_what_the_decide_tab_says(settled_page, unlabelled_lab, tmp_path):
    at, lab = settled_page, unlabelled_lab
    status = at.success[0].value
    found = re.match(
        r"Settled after (\d+) labels (?:\(certain under every completion\) )?\(pick\): (\S+) "
        r"\(nDCG (\d\.\d{3}), 95% interval (\S+)\)",
        status,
    )
    assert found, status
    labels, config, estimate, interval = found.groups()
    assert int(labels) == len(chunk_judgements(lab.labels_file, SOURCE))
    judged = next(c.value for c in at.caption if c.value.startswith(f"Label source {SOURCE}: "))
    assert re.fullmatch(rf"Label source {SOURCE}: {labels} of \d+ pool pairs judged \(\d+\.\d%\)", judged), judged

    at.switch_page("dashboard/pages/reports.py").run()
    at.selectbox(key="compare-labels").set_value(SOURCE).run()
    at.selectbox(key="report-run").set_value(lab.run.run_id).run()
    at.button(key="build-html").click().run()
    assert not at.exception, [e.value for e in at.exception]
    page_report = html.unescape(at.session_state["report-html"][1].decode("utf-8"))
    markdown_file = tmp_path / "report.md"
    command = ["report", lab.run.run_id, "--format", "md", "--out", str(markdown_file), "--source", SOURCE]
    assert main(["--home", str(lab.home), *command, "--labels", str(lab.labels_file)]) == 0
    markdown = markdown_file.read_text(encoding="utf-8").replace("\\", "")  # Markdown escapes as rendered

    for report in (page_report, markdown):
        assert f"Decided with {labels} labels" in report
        assert f"Decide ({SOURCE}, rule pick): {status}." in report  # the recommendation line is the page's
        assert f"Recommended config: {config}, nDCG estimate {estimate}, 95% interval {interval}." in report
        assert report.count(f"{status}.") == 2  # the recommendation line and the Decided section
        assert f"{judged}." in report
        assert "Ranking by the label metric with unjudged pairs counted not relevant: " in report
