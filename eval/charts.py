"""Plotly figure builders shared by the dashboard and the reports (no Streamlit here).

Every builder takes the `eval.leaderboard.summarize()` table (one row per config) or a run's rows /
latency samples and returns a `plotly.graph_objects.Figure`. Labels may be Chinese: the layout names a
font family list with CJK fonts first.
"""
from __future__ import annotations

import math
from typing import Iterable

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from eval.metrics import METRICS

FONT_FAMILY = '"Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif'
SEARCH_TYPE_COLORS = {"similarity": "#1f77b4", "mmr": "#ff7f0e", "similarity_score_threshold": "#2ca02c",
                      "bm25": "#8c564b", "ensemble": "#9467bd", "rerank": "#d62728"}
LATENCY_SOURCES = ("retrieval_ms", "ttft_ms", "total_ms")


def label(metric: str) -> str:
    """A readable label for a metric name or a `<metric>_mean`/`_p50` column."""
    for suffix, extra in (("_mean", ""), ("_p50", " p50"), ("_p95", " p95")):
        if metric.endswith(suffix) and metric[:-len(suffix)] in METRICS:
            return METRICS[metric[:-len(suffix)]].label + extra
    return METRICS[metric].label if metric in METRICS else metric


def _layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    fig.update_layout(title=title, font={"family": FONT_FAMILY}, template="plotly_white",
                      legend_title_text=kwargs.pop("legend_title", "search_type"), **kwargs)
    return fig


def _column(metric: str) -> str:
    return metric if metric.endswith(("_mean", "_p50", "_p95")) else f"{metric}_mean"


def _sizes(values: pd.Series, smallest: float = 10, largest: float = 40) -> list[float]:
    values = pd.to_numeric(values, errors="coerce")
    finite = values.dropna()
    if finite.empty or finite.max() == finite.min():
        return [(smallest + largest) / 2] * len(values)
    scaled = smallest + (values - finite.min()) / (finite.max() - finite.min()) * (largest - smallest)
    return scaled.fillna(smallest).tolist()


def relevance_diversity(summary: pd.DataFrame, relevance: str = "ndcg", diversity: str = "ild",
                        size: str = "retrieval_ms_p50") -> go.Figure:
    """x = diversity mean, y = relevance mean, bubble size = latency p50, colour = search type."""
    fig = go.Figure()
    x_col, y_col = _column(diversity), _column(relevance)
    for search_type, group in summary.groupby("search_type", sort=False):
        latency = group[size] if size in group else pd.Series([np.nan] * len(group), index=group.index)
        fig.add_trace(go.Scatter(
            x=group[x_col].tolist(), y=group[y_col].tolist(), mode="markers", name=search_type,
            marker={"size": _sizes(latency.reindex(group.index)) if size in summary else 16,
                    "color": SEARCH_TYPE_COLORS.get(search_type), "opacity": 0.75, "line": {"width": 1}},
            customdata=np.column_stack([group["config_id"], latency.round(2)]).tolist(),
            text=group["config_id"].tolist(),
            hovertemplate=("%{customdata[0]}<br>" + label(x_col) + " %{x:.3f}<br>" + label(y_col)
                           + " %{y:.3f}<br>" + label(size) + " %{customdata[1]} ms<extra></extra>")))
    return _layout(fig, f"{label(y_col)} vs {label(x_col)} (bubble: {label(size)})",
                   xaxis_title=label(x_col), yaxis_title=label(y_col))


def pareto_front(summary: pd.DataFrame, quality: str = "ndcg_mean", latency: str = "retrieval_ms_p50",
                 higher_is_better: bool = True) -> list[str]:
    """Config ids not dominated on (quality, latency): no other config is at least as good on both and
    strictly better on one. Lower latency is better; rows with a missing value are left out.
    Returned in order of increasing latency."""
    quality, latency = _column(quality) if quality in METRICS else quality, latency
    frame = summary[["config_id", quality, latency]].dropna()
    q = frame[quality].to_numpy(float) * (1 if higher_is_better else -1)
    t = frame[latency].to_numpy(float)
    front = []
    for i in range(len(frame)):
        dominated = np.any((q >= q[i]) & (t <= t[i]) & ((q > q[i]) | (t < t[i])))
        if not dominated:
            front.append(i)
    front.sort(key=lambda i: (t[i], -q[i]))
    return [frame["config_id"].iloc[i] for i in front]


def pareto_chart(summary: pd.DataFrame, quality: str = "ndcg", latency: str = "retrieval_ms_p50") -> go.Figure:
    """Quality against latency for every config; the non-dominated configs are joined by a line."""
    q_col = _column(quality)
    base = quality[:-5] if quality.endswith("_mean") else quality
    higher = METRICS[base].higher_is_better if base in METRICS else True
    front = pareto_front(summary, q_col, latency, higher)
    fig = go.Figure()
    on_front = summary["config_id"].isin(front)
    for search_type, group in summary.groupby("search_type", sort=False):
        fig.add_trace(go.Scatter(
            x=group[latency].tolist(), y=group[q_col].tolist(), mode="markers", name=search_type,
            text=group["config_id"].tolist(),
            marker={"size": [16 if f else 9 for f in on_front[group.index]],
                    "color": SEARCH_TYPE_COLORS.get(search_type),
                    "line": {"width": [2 if f else 0 for f in on_front[group.index]], "color": "black"}},
            hovertemplate="%{text}<br>" + label(latency) + " %{x:.2f} ms<br>" + label(q_col)
                          + " %{y:.3f}<extra></extra>"))
    ordered = summary.set_index("config_id").loc[front]
    fig.add_trace(go.Scatter(x=ordered[latency].tolist(), y=ordered[q_col].tolist(), mode="lines+markers",
                             name="Pareto front", text=front, line={"color": "black", "dash": "dot"},
                             marker={"symbol": "star", "size": 10, "color": "black"},
                             hovertemplate="%{text} (Pareto)<extra></extra>"))
    return _layout(fig, f"{label(q_col)} vs {label(latency)}: Pareto front",
                   xaxis_title=label(latency) + " (ms)", yaxis_title=label(q_col))


def latency_samples(latency: pd.DataFrame, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table (config_id, measure, ms): retriever samples plus ttft_ms/total_ms from rows if present."""
    frames = []
    if latency is not None and len(latency):
        frames.append(latency[["config_id", "retrieval_ms"]].rename(columns={"retrieval_ms": "ms"})
                      .assign(measure="retrieval_ms"))
    if rows is not None:
        for column in LATENCY_SOURCES[1:]:
            if column in rows and rows[column].notna().any():
                frames.append(rows[["config_id", column]].rename(columns={column: "ms"}).dropna()
                              .assign(measure=column))
    if not frames:
        return pd.DataFrame(columns=["config_id", "measure", "ms"])
    return pd.concat(frames, ignore_index=True)[["config_id", "measure", "ms"]]


def latency_distribution(latency: pd.DataFrame, rows: pd.DataFrame | None = None, kind: str = "box",
                         configs: Iterable[str] | None = None) -> go.Figure:
    """Box (or violin) per config and latency measure."""
    samples = latency_samples(latency, rows)
    if configs is not None:
        samples = samples[samples["config_id"].isin(list(configs))]
    fig = go.Figure()
    trace = go.Violin if kind == "violin" else go.Box
    for measure, group in samples.groupby("measure", sort=False):
        extra = {"box_visible": True, "meanline_visible": True} if kind == "violin" else {"boxmean": True}
        fig.add_trace(trace(x=group["config_id"].tolist(), y=group["ms"].tolist(), name=label(measure), **extra))
    mode = {"violinmode": "group"} if kind == "violin" else {"boxmode": "group"}
    return _layout(fig, "Latency per configuration", xaxis_title="config", yaxis_title="ms",
                   legend_title="measure", **mode)


def parameter_heatmap(summary: pd.DataFrame, metric: str = "ndcg", x: str = "fetch_k", y: str = "lambda_mult",
                      search_type: str | None = "mmr") -> go.Figure:
    """The metric mean over two parameters (mean over configs sharing a cell, e.g. different k)."""
    column = _column(metric)
    frame = summary if search_type is None else summary[summary["search_type"] == search_type]
    frame = frame.dropna(subset=[x, y])
    table = frame.pivot_table(index=y, columns=x, values=column, aggfunc="mean").sort_index().sort_index(axis=1)
    z = table.to_numpy(float)
    fig = go.Figure(go.Heatmap(
        z=[[None if math.isnan(v) else v for v in row] for row in z],
        x=[f"{v:g}" for v in table.columns], y=[f"{v:g}" for v in table.index], colorscale="Viridis",
        text=[[("" if math.isnan(v) else f"{v:.3f}") for v in row] for row in z], texttemplate="%{text}",
        colorbar={"title": label(column)},
        hovertemplate=f"{x} %{{x}}<br>{y} %{{y}}<br>{label(column)} %{{z:.3f}}<extra></extra>"))
    return _layout(fig, f"{label(column)} over {x} × {y}" + (f" ({search_type})" if search_type else ""),
                   xaxis_title=x, yaxis_title=y, xaxis_type="category", yaxis_type="category")


def metric_vs_k(summary: pd.DataFrame, metric: str = "ndcg") -> go.Figure:
    """Metric mean against k, one line per search type (mean over configs with the same k) with CI band
    ends as error bars when the summary has them and one config per point."""
    column = _column(metric)
    base = column[:-5]
    fig = go.Figure()
    for search_type, group in summary.groupby("search_type", sort=False):
        by_k = group.groupby("k", sort=True)
        means = by_k[column].mean()
        error = None
        if f"{base}_low" in group and (by_k.size() == 1).all():
            low, high = by_k[f"{base}_low"].mean(), by_k[f"{base}_high"].mean()
            error = {"type": "data", "array": (high - means).tolist(), "arrayminus": (means - low).tolist()}
        fig.add_trace(go.Scatter(x=means.index.tolist(), y=means.tolist(), mode="lines+markers", name=search_type,
                                 error_y=error, line={"color": SEARCH_TYPE_COLORS.get(search_type)}))
    return _layout(fig, f"{label(column)} vs k", xaxis_title="k", yaxis_title=label(column))


def calibration_histogram(scores: pd.DataFrame, threshold: dict | None = None, bins: int = 40) -> go.Figure:
    """Overlaid histograms of relevance scores of relevant vs irrelevant candidates
    (`eval.calibration.score_calibration` output); the suggested threshold range is shaded."""
    fig = go.Figure()
    edges = {"start": 0.0, "end": 1.0, "size": 1.0 / bins}
    for relevant, name, color in ((False, "irrelevant chunks", "#d62728"), (True, "relevant chunks", "#2ca02c")):
        values = scores.loc[scores["relevant"] == relevant, "score"].tolist()
        fig.add_trace(go.Histogram(x=values, name=name, xbins=edges, opacity=0.6, marker_color=color,
                                   histnorm="probability"))
    if threshold:
        if threshold.get("low") is not None and threshold.get("high") is not None \
                and threshold["high"] > threshold["low"]:
            fig.add_vrect(x0=threshold["low"], x1=threshold["high"], fillcolor="gold", opacity=0.2, line_width=0,
                          annotation_text="suggested range", annotation_position="top left")
        if threshold.get("best") is not None:
            fig.add_vline(x=threshold["best"], line_dash="dash", line_color="black",
                          annotation_text=f"best F1 {threshold['best']:.3f}")
    return _layout(fig, "Relevance scores of relevant vs irrelevant candidates", barmode="overlay",
                   xaxis_title="LangChain relevance score (1 - cosine distance)", yaxis_title="share",
                   legend_title="candidates")


def comparison_bars(table: pd.DataFrame, metric: str = "ndcg") -> go.Figure:
    """One metric per config for two runs (the `compare_runs` table), as grouped bars."""
    fig = go.Figure([go.Bar(name=f"run {side}", x=table["config_id"], y=table[f"{metric}_{side}"])
                     for side in ("a", "b")])
    return _layout(fig, f"{label(metric)}: run a vs run b", barmode="group", yaxis_title=label(metric))


def run_charts(summary: pd.DataFrame, run=None, relevance: str = "ndcg", diversity: str = "ild") -> dict[str, go.Figure]:
    """The standard set of charts for a run summary (used by the report)."""
    charts = {}
    has = lambda m: _column(m) in summary and summary[_column(m)].notna().any()  # noqa: E731
    if has(relevance) and has(diversity):
        charts["Relevance vs diversity"] = relevance_diversity(summary, relevance, diversity)
    if has(relevance) and "retrieval_ms_p50" in summary and summary["retrieval_ms_p50"].notna().any():
        charts["Quality-latency Pareto front"] = pareto_chart(summary, relevance)
    if has(relevance):
        charts["Metric vs k"] = metric_vs_k(summary, relevance)
        mmr = summary[summary["search_type"] == "mmr"]
        if mmr["fetch_k"].nunique() * mmr["lambda_mult"].nunique() > 1:
            charts["MMR heatmap"] = parameter_heatmap(summary, relevance)
    if run is not None and len(latency_samples(run.latency, run.rows)):
        charts["Latency"] = latency_distribution(run.latency, run.rows)
    return charts
