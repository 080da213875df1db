"""One ranking rule for dashboard and reports, and a recommendation with the configs tied with it."""

import html as html_module
import itertools
import re

import numpy as np
import pytest

from eval.analysis.recommend import ranking_metric, ranking_rule, recommend
from eval.report.render import leaderboard_frame, report_html, report_markdown
from eval.runs.summary import summarize

SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [1, 2, 4, 8]},
        {"search_type": "mmr", "k": [4], "fetch_k": [20], "lambda_mult": [0.25, 0.75]},
        # 0.99: almost nothing passes, a config the paired test must separate from the best
        {"search_type": "similarity_score_threshold", "k": [4], "score_threshold": [0.3, 0.99]},
    ]
}


@pytest.fixture(scope="module")
def run(sample_run):
    return sample_run(SWEEP, questions=24, latency_sample=12)


def test_ranking_rule_is_ndcg_first_and_stated():
    assert ranking_metric(["hit_rate", "recall", "ndcg"]) == "ndcg"
    assert ranking_metric(["recall", "hit_rate"]) == "hit_rate"
    assert ranking_rule("ndcg").startswith("Ranked by mean nDCG over questions (higher is better)")


def sign_flip_p(differences: np.ndarray) -> float:
    """Two-sided p of a paired sign-flip test, worked out without the lab's code: exact over every sign pattern
    of the non-zero differences (zeros flip to themselves) up to 16 of them, else from 200,000 random patterns."""
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return 1.0
    if nonzero.size <= 16:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=nonzero.size)))
    else:
        signs = np.random.default_rng(1).choice((1.0, -1.0), size=(200_000, nonzero.size))
    return float(np.mean(np.abs(signs @ nonzero) >= abs(nonzero.sum()) - 1e-12))


def best_by_rule(summary) -> str:
    """The ranking rule as stated: the highest mean nDCG; among equal means the lower retrieval p50, then grid
    order."""
    top = summary[summary.ndcg_mean == summary.ndcg_mean.max()]
    return str(top.sort_values("retrieval_ms_p50", kind="stable").config_id.iloc[0])


def test_recommendation_is_the_top_of_the_ranking_with_its_paired_ties(run):
    summary = summarize(run)
    rec = recommend(run, summary)
    assert rec.metric == "ndcg"
    assert rec.config_id == best_by_rule(summary)
    wide = run.rows.pivot(index="question_id", columns="config_id", values="ndcg")
    exact = {
        c: sign_flip_p((wide[c] - wide[rec.config_id]).to_numpy()) for c in summary.config_id if c != rec.config_id
    }
    close = {c: p for c, p in exact.items() if 0.03 < p < 0.08}
    assert not close, f"p-values too near 0.05 for a resampled test to classify surely: {close}"
    uncorrected_ties = [c for c, p in exact.items() if p >= 0.05]
    # the confidence set controls the family-wise error, so it keeps every config the uncorrected test kept
    assert uncorrected_ties and set(uncorrected_ties) <= set(rec.tied)
    assert f"Recommended: **{rec.config_id}**" in rec.text and f"{len(rec.tied)} other configuration" in rec.text
    assert "Holm-adjusted paired randomization tests over every pair" in rec.text


def test_a_latency_budget_leaves_slow_configs_out(run):
    """Latencies set by hand: the best config is the only one over the budget, so the pick is the best of the rest."""
    summary = summarize(run)
    best = best_by_rule(summary)
    summary["retrieval_ms_p50"] = np.where(summary.config_id == best, 9.0, 2.0)
    rec = recommend(run, summary, latency_budget_ms=5.0)
    assert rec.excluded == {best: "retrieval p50 9.0 ms is over the 5 ms budget"}
    assert rec.config_id == best_by_rule(summary[summary.config_id != best])
    nothing = recommend(run, summary, latency_budget_ms=1.0)
    assert nothing.config_id is None and "No configuration meets the constraints" in nothing.text
    assert set(nothing.excluded) == set(summary.config_id)


def test_reports_and_dashboard_rank_and_recommend_alike(run):
    summary = summarize(run)
    rec = recommend(run, summary)
    markdown, html = report_markdown(run), report_html(run)
    plain = rec.text.replace("**", "")  # the reports show it without Markdown emphasis
    assert plain in html_module.unescape(re.sub(r"\\(.)", r"\1", markdown))  # the Markdown, escapes undone
    assert plain in html
    assert ranking_rule("ndcg") in markdown and ranking_rule("ndcg") in html
    board = leaderboard_frame(summary, ["ndcg"], sort_by="ndcg")
    assert board.config_id.iloc[0] == rec.config_id
    assert f"Worst questions on the best configuration ({rec.config_id}, by nDCG)" in markdown
    assert "<td>generation</td><td>none</td>" in html  # not "null"
