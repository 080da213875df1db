"""Both reports carry Compare's planner caption under the recommendation and the guaranteed score_threshold in the
calibration view's words, computed from the run's deepest similarity lists under the run's label source."""

import re

import pandas as pd
import pytest
from support.label_source_lab import SIMILARITY, SOURCE

from eval.analysis.threshold import run_threshold_text
from eval.data.labels import load_labels
from eval.labels.rescore import run_under
from eval.report.render import report_html, report_markdown

SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [3, 10]},
        {"search_type": "mmr", "k": [3], "fetch_k": [10], "lambda_mult": [0.5]},
    ]
}
CAPTION = re.compile(
    r"With 20 questions, differences under (0\.\d\d) nDCG cannot be seen reliably \(80% power, 5% level, against "
    r"every config\); detecting 0\.02 needs about (\d+) questions\."
)


@pytest.fixture(scope="module")
def run(sample_run):
    return sample_run(SWEEP, 20, latency_sample=0)


def similarity_candidates(run) -> pd.DataFrame:
    """similarity-k10's retrieved chunks with gold relevance by document, read straight from the rows."""
    rows = run.rows[run.rows["config_id"] == "similarity-k10"]
    relevant = {q.id: set(q.relevant_ids) for q in run.questions_by_id.values()}
    records = [
        (score, doc_id in relevant[row.question_id])
        for row in rows.itertuples()
        for score, doc_id in zip(row.scores, row.doc_ids)
    ]
    return pd.DataFrame.from_records(records, columns=["score", "relevant"])


@pytest.mark.slow  # a 20-question run on the sample index
def test_both_reports_show_the_planner_caption_and_the_threshold(run):
    for text in (report_html(run), report_markdown(run)):
        recommendation = text[text.index("Recommendation") : text.index("Leaderboard")]
        caption = CAPTION.search(recommendation)
        assert caption is not None and 0 < float(caption[1]) < 1 and int(caption[2]) > 20
        section = text[text.index("A score_threshold with a guarantee") :]
        assert "the lists of similarity-k10 (the top 10 of 20 questions, label source gold)" in section
        # 20 questions x 10 chunks, all judged by gold; precision 0.8 is out of reach of these lists
        assert re.search(
            r"No score.?_threshold reaches precision 0\.8 on 20 new questions with 95% confidence", section
        )
        assert "on these 200 judged candidates" in section and "Learn-then-Test fixed-sequence testing" in section


@pytest.mark.slow  # a 20-question run on the sample index
def test_the_threshold_from_the_run_keeps_what_it_says(run):
    text = run_threshold_text(run, 0.3)
    found = re.search(r"score_threshold (0\.\d{3}) keeps (\d+) of 200 judged candidates with precision (0\.\d\d)", text)
    assert found is not None, text
    ordered = similarity_candidates(run).sort_values("score", ascending=False)
    kept, threshold = ordered.iloc[: int(found[2])], ordered["score"].iloc[int(found[2]) - 1]
    assert f"{threshold:.3f}" == found[1] and ordered["score"].iloc[int(found[2])] < threshold  # a cut between two
    assert f"{kept['relevant'].mean():.2f}" == found[3] and kept["relevant"].mean() > 0.3
    assert "on 20 new questions" in text


def test_a_run_without_similarity_lists_says_so(sample_run):
    run = sample_run({"configs": [{"search_type": "mmr", "k": [2], "fetch_k": [4], "lambda_mult": [0.5]}]}, 2)
    for text in (report_html(run), report_markdown(run)):
        assert "Not computed: the run has no similarity config without a filter" in text


def test_under_a_human_source_only_her_judged_chunks_count(unlabelled_lab):
    rescored = run_under(unlabelled_lab.run, load_labels(unlabelled_lab.labels_file), SOURCE)
    # she marked documents that mmr retrieved and similarity did not: similarity's lists hold none she judged
    expected = f"Not computed: no chunk {SIMILARITY} retrieved is judged under label source {SOURCE}."
    assert expected in report_markdown(rescored) and expected in report_html(rescored)
