"""One ranking rule for dashboard and reports, and a recommendation with the configs tied with it."""

import pytest

from eval.analysis.recommend import rank_order, ranking_metric, ranking_rule, recommend
from eval.metrics.statistics import paired_test
from eval.report.render import leaderboard_frame, report_html, report_markdown
from eval.runs.summary import summarize

SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [1, 2, 4, 8]},
        {"search_type": "mmr", "k": [4], "fetch_k": [20], "lambda_mult": [0.25, 0.75]},
        {"search_type": "similarity_score_threshold", "k": [4], "score_threshold": [0.3]},
    ]
}


@pytest.fixture(scope="module")
def run(sample_run):
    return sample_run(SWEEP, questions=24, latency_sample=12)


def test_ranking_rule_is_ndcg_first_and_stated():
    assert ranking_metric(["hit_rate", "recall", "ndcg"]) == "ndcg"
    assert ranking_metric(["recall", "hit_rate"]) == "hit_rate"
    assert ranking_rule("ndcg").startswith("Ranked by mean nDCG over questions (higher is better)")


def test_recommendation_is_the_top_of_the_ranking_with_its_paired_ties(run):
    summary = summarize(run)
    rec = recommend(run, summary)
    assert rec.metric == "ndcg"
    ranked = summary.loc[rank_order(summary, "ndcg"), "config_id"].tolist()
    assert rec.config_id == ranked[0]
    assert summary.set_index("config_id").loc[rec.config_id, "ndcg_mean"] == summary.ndcg_mean.max()
    wide = run.rows.pivot(index="question_id", columns="config_id", values="ndcg")
    uncorrected_ties = [
        c
        for c in summary.config_id
        if c != rec.config_id and paired_test(wide[c], wide[rec.config_id], n_resamples=2000) >= 0.05
    ]
    # the confidence set controls the family-wise error, so it keeps every config the uncorrected test kept
    assert set(uncorrected_ties) <= set(rec.tied) and rec.tied  # 24 questions cannot separate every config
    assert f"Recommended: **{rec.config_id}**" in rec.text and f"{len(rec.tied)} other configuration" in rec.text
    assert "Holm-adjusted paired randomization tests over every pair" in rec.text


def test_a_latency_budget_leaves_slow_configs_out(run):
    summary = summarize(run)
    best = recommend(run, summary).config_id
    budget = float(summary.set_index("config_id").loc[best, "retrieval_ms_p50"]) - 1e-6
    rec = recommend(run, summary, latency_budget_ms=budget)
    assert best in rec.excluded and "over the" in rec.excluded[best]
    eligible = summary[summary.retrieval_ms_p50 <= budget]
    if len(eligible):
        assert rec.config_id == eligible.loc[rank_order(eligible, "ndcg")[0], "config_id"]
    nothing = recommend(run, summary, latency_budget_ms=1e-9)
    assert nothing.config_id is None and "No configuration meets the constraints" in nothing.text


def test_reports_and_dashboard_rank_and_recommend_alike(run):
    summary = summarize(run)
    rec = recommend(run, summary)
    markdown, html = report_markdown(run), report_html(run)
    assert rec.text in markdown and rec.text.replace("**", "") in html
    assert ranking_rule("ndcg") in markdown and ranking_rule("ndcg") in html
    board = leaderboard_frame(summary, ["ndcg"], sort_by="ndcg")
    assert board.config_id.iloc[0] == rec.config_id
    assert f"Worst questions on the best configuration ({rec.config_id}, by nDCG)" in markdown
    assert "<td>generation</td><td>none</td>" in html  # not "null"
