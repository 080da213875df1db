import math

import pandas as pd
import plotly.graph_objects as go
import plotly.io
import pytest

from eval.report import charts
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.runs.summary import summarize
from eval.sweep.engine import SweepOptions, run_sweep

SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [2, 4]},
        {"search_type": "mmr", "k": [3], "fetch_k": [6, 10], "lambda_mult": [0.3, 0.7]},
        {"search_type": "similarity_score_threshold", "k": [4], "score_threshold": [0.8]},
    ]
}


@pytest.fixture(scope="module")
def run(sample_index, tmp_path_factory, sample_dataset):
    store = RunStore(tmp_path_factory.mktemp("runs"))
    questions = sample_dataset.questions[:10]
    run_id = run_sweep(store, sample_index, parse_sweep(SWEEP), questions, "sample", SweepOptions(latency_sample=2))
    return store.load(run_id)


@pytest.fixture(scope="module")
def summary(run):
    return summarize(run)


def close(a, b):
    return all((math.isnan(x) and math.isnan(y)) or abs(x - y) < 1e-9 for x, y in zip(a, b))


def test_relevance_diversity_matches_summary(summary):
    fig = charts.relevance_diversity(summary, "ndcg", "ild")
    assert isinstance(fig, go.Figure)
    points = [t for t in fig.data if t.legendgroup != "size"]
    merged = charts.merge_identical(summary, "ild_mean", "ndcg_mean")  # identical configs are one point
    assert {t.name for t in points} == set(merged["search_type"])
    assert sorted(" = ".join(n for t in points for n in t.text).split(" = ")) == sorted(summary["config_id"])
    for trace in points:
        group = merged[merged["search_type"] == trace.name]
        assert list(trace.text) == group["config_id"].tolist()
        assert close(trace.x, group["ild_mean"].tolist())
        assert close(trace.y, group["ndcg_mean"].tolist())
        assert [c[0] for c in trace.customdata] == group["config_id"].tolist()
    assert "Noto Sans CJK SC" in fig.layout.font.family


def test_pareto_front_pure():
    frame = pd.DataFrame(
        {
            "config_id": ["a", "b", "c", "d", "e"],
            "ndcg_mean": [0.5, 0.7, 0.6, 0.7, float("nan")],
            "retrieval_ms_p50": [1.0, 3.0, 3.5, 5.0, 0.1],
        }
    )
    # c is dominated by b (better and faster), d by b (same quality, slower), e has no quality
    assert charts.pareto_front(frame, "ndcg_mean", "retrieval_ms_p50") == ["a", "b"]
    assert charts.pareto_front(frame, "ndcg") == ["a", "b"]
    lower = frame.assign(ndcg_mean=[0.5, 0.1, 0.6, 0.7, 0.2])  # lower is better: a is dominated by e
    assert charts.pareto_front(lower, "ndcg_mean", higher_is_better=False) == ["e", "b"]


def test_pareto_chart_on_run(summary):
    front = charts.pareto_front(summary, "ndcg_mean", "retrieval_ms_p50")
    assert front
    fig = charts.pareto_chart(summary, "ndcg")
    line = [t for t in fig.data if t.name == "Pareto front"][0]
    assert list(line.text) == front
    indexed = summary.set_index("config_id")
    assert close(line.y, indexed.loc[front, "ndcg_mean"].tolist())
    assert close(line.x, indexed.loc[front, "retrieval_ms_p50"].tolist())
    # no config outside the front beats a front member on both axes
    for config in front:
        q, t = indexed.loc[config, "ndcg_mean"], indexed.loc[config, "retrieval_ms_p50"]
        better = indexed[(indexed["ndcg_mean"] > q) & (indexed["retrieval_ms_p50"] < t)]
        assert better.empty


def test_latency_distribution(run):
    fig = charts.latency_distribution(run.latency, run.rows)
    assert len(fig.data) == 1  # no answers in this run: retrieval only
    box = fig.data[0]
    assert sorted(box.y) == sorted(run.latency["retrieval_ms"].tolist())
    assert list(box.x) == run.latency["config_id"].tolist()
    rows = run.rows.assign(ttft_ms=5.0, total_ms=9.0)
    violin = charts.latency_distribution(run.latency, rows, kind="violin")
    assert len(violin.data) == 3 and all(isinstance(t, go.Violin) for t in violin.data)
    assert list(violin.data[1].y) == [5.0] * len(rows)


def test_heatmap_matches_summary(summary):
    fig = charts.parameter_heatmap(summary, "ndcg", "fetch_k", "lambda_mult", "mmr")
    heat = fig.data[0]
    mmr = summary[summary["search_type"] == "mmr"]
    for _, row in mmr.iterrows():
        i = list(heat.y).index(f"{row['lambda_mult']:g}")
        j = list(heat.x).index(f"{row['fetch_k']:g}")
        assert abs(heat.z[i][j] - row["ndcg_mean"]) < 1e-9


def test_metric_vs_k(summary):
    fig = charts.metric_vs_k(summary, "recall")
    sim = [t for t in fig.data if t.name == "similarity"][0]
    expected = summary[summary["search_type"] == "similarity"].groupby("k")["recall_mean"].mean()
    assert list(sim.x) == expected.index.tolist()
    assert close(sim.y, expected.tolist())


def test_calibration_histogram_and_run_charts(summary, run):
    scores = pd.DataFrame({"score": [0.1, 0.2, 0.8, 0.9], "relevant": [False, False, True, True]})
    fig = charts.calibration_histogram(scores, {"low": 0.2, "high": 0.8, "best": 0.8})
    assert sorted(fig.data[0].x) == [0.1, 0.2] and sorted(fig.data[1].x) == [0.8, 0.9]
    assert fig.layout.shapes
    figures = charts.run_charts(summary, run)
    assert {"Relevance vs diversity", "Quality-latency Pareto front", "Metric vs k", "MMR heatmap", "Latency"} <= set(
        figures
    )
    white = plotly.io.templates["plotly_white"].layout.plot_bgcolor  # the report's charts are on white
    assert {figure.layout.template.layout.plot_bgcolor for figure in figures.values()} == {white}


def test_chinese_labels_serialise(summary):
    fig = charts.relevance_diversity(summary.assign(config_id="中文配置"))
    html = fig.to_html(include_plotlyjs=False)
    assert "中文配置" in html or "\\u4e2d" in html
