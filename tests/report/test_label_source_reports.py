"""Both reports of a run rescored under a person's labels rank by the label metric they show, name the source
with its judged share and scored count, and mark each chunk with its grade under it; the CLI's `report` and
`export` take the source too."""

import html
import json
import re

from support.label_source_lab import MMR, NOTHING, SIMILARITY, SOURCE

from eval.cli.main import main
from eval.data.labels import load_labels
from eval.labels.rescore import run_under
from eval.report.render import comparison_html, report_html, report_markdown


def leaderboard_order(text: str, configs: list[str]) -> list[str]:
    """The configs in the order the report's leaderboard lists them."""
    board = text[text.index("Leaderboard") :]
    return sorted(configs, key=board.index)


def scored_line(lab) -> str:
    missing = len(lab.questions) - len(lab.labelled)
    return (
        f"nDCG scored on {len(lab.labelled)} of {len(lab.questions)} questions: {missing} have no relevant "
        f"label under {SOURCE}"
    )


def test_reports_under_a_human_source_rank_by_its_label_metric_and_name_it(unlabelled_lab):
    lab = unlabelled_lab
    rescored = run_under(lab.run, load_labels(lab.labels_file), SOURCE)
    configs = [SIMILARITY, MMR, NOTHING]
    for text in (report_html(rescored), report_markdown(rescored)):
        assert "Ranked by mean nDCG over questions" in text and f"label source: {SOURCE}" in text
        assert scored_line(lab) in text
        assert f"of the retrieved chunks are judged under {SOURCE}" in text
        assert leaderboard_order(text, configs) == [MMR, SIMILARITY, NOTHING]  # only mmr finds ann's documents
        assert f"Worst questions on the best configuration ({MMR}, by nDCG) under label source {SOURCE}" in text
    # the same run under gold, which labels nothing relevant here: ranked by the answer hit rate, no source shown
    gold = report_markdown(lab.run)
    assert "Ranked by mean Answer hit rate" in gold and "label source: gold" in gold
    assert leaderboard_order(gold, configs)[0] == SIMILARITY


def test_worst_questions_mark_each_chunk_with_its_grade_under_the_source(unlabelled_lab):
    lab = unlabelled_lab
    rescored = run_under(lab.run, load_labels(lab.labels_file), SOURCE)
    page = report_html(rescored, worst=len(lab.questions))
    sections = page[page.index("<h2>Worst questions") :].split("<h3>")[1:]  # one per question
    assert len(sections) == len(lab.questions)
    relevant = 0
    for section in sections:
        question_id = html.unescape(section[: section.index(":")])
        for css, doc_id, mark in re.findall(
            r'<tr( class="relevant")?><td>\d+</td><td>[^<]*</td><td>[^<]*</td>'
            r"<td>([^<]*)</td><td>([^<]*)</td>",
            section,
        ):
            marked = doc_id == lab.labelled.get(question_id)  # gold marks nothing here; ann marks this document
            assert (mark, bool(css)) == (("relevant (grade 2)", True) if marked else ("unjudged", False))
            relevant += marked
    mmr = rescored.rows[rescored.rows.config_id == MMR]
    expected = sum(d == lab.labelled.get(q) for q, docs in zip(mmr.question_id, mmr.doc_ids) for d in docs)
    assert relevant == expected > 0
    markdown = report_markdown(rescored, worst=len(lab.questions))
    assert markdown.count("(relevant (grade 2))") == expected


def cli(lab, *args: str) -> int:
    return main(["--home", str(lab.home), *args])


def test_cli_report_and_export_under_a_source(unlabelled_lab, tmp_path, capsys):
    lab = unlabelled_lab
    run_id, report, export = lab.run.run_id, tmp_path / "r.md", tmp_path / "e.jsonl"
    under_ann = ("--source", SOURCE, "--labels", str(lab.labels_file))
    assert cli(lab, "report", run_id, "--format", "md", "--out", str(report), *under_ann) == 0
    rescored = run_under(lab.run, load_labels(lab.labels_file), SOURCE)
    assert report.read_text(encoding="utf-8") == report_markdown(rescored)
    assert cli(lab, "export", run_id, "--format", "jsonl", "--out", str(export), "--source", SOURCE) == 0
    records = [json.loads(line) for line in export.read_text(encoding="utf-8").splitlines()]
    assert {r["label_source"] for r in records} == {SOURCE}
    for record in records:
        marked = lab.labelled.get(record["question_id"])
        grades = [c["grade"] for c in record["retrieved"]]
        assert grades == [2 if c["doc_id"] == marked else None for c in record["retrieved"]]
    assert (
        cli(lab, "report", run_id, "--format", "md", "--out", str(tmp_path / "x.md"), "--labels", str(lab.labels_file))
        == 2
    )
    assert "--labels needs --source NAME" in capsys.readouterr().err


def test_comparisons_name_the_source_and_the_scored_count(unlabelled_lab, capsys):
    lab = unlabelled_lab
    rescored = run_under(lab.run, load_labels(lab.labels_file), SOURCE)
    page = comparison_html(rescored, rescored)
    assert f"<tr><td>label source</td><td>{SOURCE}</td><td>{SOURCE}</td></tr>" in page
    assert f"<td>scored</td><td>{html.escape(scored_line(lab))}</td>" in page
    run_id = lab.run.run_id
    assert cli(lab, "runs", "compare", run_id, run_id, "--metric", "answer_hit_rate") == 0
    n = len(lab.questions)  # gold has no relevant label here, but every question has a reference answer
    assert f"a: Answer hit rate scored on {n} of {n} questions; b: Answer" in capsys.readouterr().out
