"""Charts and leaderboard cells that do not mislead: identical configs as one point, averaged points said to
be averages, labels without a doubled unit, a bubble-size legend, no star on a constant, latency intervals."""

import math

import pandas as pd

from eval.report import charts
from eval.report.render import leaderboard_frame

NAN = math.nan


def summary() -> pd.DataFrame:
    """Two similarity configs, a threshold config identical to one of them, four mmr configs over k x lambda."""
    rows = [
        ("similarity-k2", "similarity", 2, NAN, NAN, NAN, 0.50, 0.40, 0.60, 0.30, 2.0),
        ("similarity-k4", "similarity", 4, NAN, NAN, NAN, 0.60, 0.50, 0.70, 0.35, 3.0),
        ("threshold-k4-t0.3", "similarity_score_threshold", 4, NAN, NAN, 0.3, 0.60, 0.50, 0.70, 0.35, 3.1),
        ("mmr-k2-f10-l0.5", "mmr", 2, 10, 0.5, NAN, 0.52, 0.42, 0.62, 0.45, 4.0),
        ("mmr-k4-f10-l0.5", "mmr", 4, 10, 0.5, NAN, 0.58, 0.48, 0.68, 0.50, 5.0),
        ("mmr-k2-f10-l0.9", "mmr", 2, 10, 0.9, NAN, 0.51, 0.41, 0.61, 0.40, 4.5),
        ("mmr-k4-f10-l0.9", "mmr", 4, 10, 0.9, NAN, 0.57, 0.47, 0.67, 0.48, 6.0),
    ]
    frame = pd.DataFrame(
        rows,
        columns=[
            "config_id",
            "search_type",
            "k",
            "fetch_k",
            "lambda_mult",
            "score_threshold",
            "ndcg_mean",
            "ndcg_low",
            "ndcg_high",
            "ild_mean",
            "retrieval_ms_p50",
        ],
    )
    return frame.assign(
        filter="", retrieval_ms_p50_low=frame.retrieval_ms_p50 - 0.5, retrieval_ms_p50_high=frame.retrieval_ms_p50 + 0.5
    )


def test_configs_with_identical_results_are_one_point_listing_all_names():
    fig = charts.relevance_diversity(summary(), "ndcg", "ild")
    names = [name for trace in fig.data if trace.legendgroup != "size" for name in trace.text]
    assert "similarity-k4 = threshold-k4-t0.3" in names
    assert len(names) == 6 and not any(n == "threshold-k4-t0.3" for n in names)


def test_bubble_sizes_have_a_legend_and_labels_name_the_unit_once():
    fig = charts.relevance_diversity(summary(), "ndcg", "ild")
    legend = [t for t in fig.data if t.legendgroup == "size"]
    assert [t.name for t in legend] == ["Retrieval p50 (ms) 2.0", "Retrieval p50 (ms) 6.0"]
    assert legend[0].marker.size < legend[1].marker.size
    pareto = charts.pareto_chart(summary(), "ndcg")
    assert pareto.layout.xaxis.title.text == "Retrieval p50 (ms)"
    assert "(ms) p50 (ms)" not in pareto.to_json()


def test_pareto_chart_shows_latency_intervals():
    pareto = charts.pareto_chart(summary(), "ndcg")
    similarity = next(t for t in pareto.data if t.name == "similarity")
    assert list(similarity.error_x.array) == [0.5, 0.5] and list(similarity.error_x.arrayminus) == [0.5, 0.5]


def test_vs_k_says_when_a_point_averages_configs():
    fig = charts.metric_vs_k(summary(), "ndcg")
    names = {t.name for t in fig.data}
    assert "mmr (mean of 2 configs per k)" in names and "similarity" in names
    mmr = next(t for t in fig.data if t.name.startswith("mmr"))
    assert mmr.error_y.array is None and list(mmr.customdata) == [2, 2]


def test_heatmap_says_what_a_cell_averages_and_spans_the_intervals():
    fig = charts.parameter_heatmap(summary(), "ndcg")
    assert "mean of up to 2 configs (k 2, 4)" in fig.layout.title.text
    one_per_cell = summary()[lambda f: (f.search_type != "mmr") | (f.k == 4)]
    fig = charts.parameter_heatmap(one_per_cell, "ndcg")
    heat = fig.data[0]
    assert heat.zmin == 0.47 and heat.zmax == 0.68  # the interval ends, not just the means (0.57 .. 0.58)
    assert "0.580<br>[0.480, 0.680]" in [cell for row in heat.text for cell in row]


def test_no_significance_star_on_a_value_that_is_constant_across_questions():
    board = pd.DataFrame(
        {
            "config_id": ["a", "b"],
            "search_type": ["similarity"] * 2,
            "k": [5, 10],
            "n_retrieved_mean": [5.0, 10.0],
            "n_retrieved_low": [5.0, 10.0],
            "n_retrieved_high": [5.0, 10.0],
            "n_retrieved_sig": [False, True],
            "ndcg_mean": [0.5, 0.7],
            "ndcg_low": [0.4, 0.6],
            "ndcg_high": [0.6, 0.8],
            "ndcg_sig": [False, True],
        }
    )
    table = leaderboard_frame(board, ["n_retrieved", "ndcg"]).set_index("config_id")
    assert table.loc["b", "Chunks retrieved"] == "10.000 [10.000, 10.000]"
    assert table.loc["b", "nDCG"] == "0.700 [0.600, 0.800] *"
