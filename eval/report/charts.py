"""Plotly figure builders shared by the dashboard and the reports (no Streamlit here).

Every builder takes the `eval.leaderboard.summarize()` table (one row per config) or a run's rows /
latency samples and returns a `plotly.graph_objects.Figure`. Labels may be Chinese: the layout names a
font family list with CJK fonts first.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from functools import partial

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from eval.analysis.why import CAUSE_NAMES, CAUSES
from eval.metrics import METRICS

FONT_FAMILY = '"Noto Sans CJK SC", "Microsoft YaHei", "PingFang SC", sans-serif'
SEARCH_TYPE_COLORS = {
    "similarity": "#1f77b4",
    "mmr": "#ff7f0e",
    "similarity_score_threshold": "#2ca02c",
    "bm25": "#8c564b",
    "ensemble": "#9467bd",
    "rerank": "#d62728",
}
LATENCY_SOURCES = ("retrieval_ms", "ttft_ms", "total_ms")


def label(metric: str) -> str:
    """A readable label for a metric name or a `<metric>_mean`/`_p50` column."""
    for suffix, extra in (("_mean", ""), ("_p50", " p50"), ("_p95", " p95")):
        if metric.endswith(suffix) and metric[: -len(suffix)] in METRICS:
            name, unit = _split_unit(METRICS[metric[: -len(suffix)]].label)
            return name + extra + unit
    return METRICS[metric].label if metric in METRICS else metric


def _split_unit(text: str) -> tuple[str, str]:
    """("Retrieval", " (ms)") from "Retrieval (ms)", so a percentile goes before the unit."""
    if text.endswith(")") and " (" in text:
        cut = text.rindex(" (")
        return text[:cut], text[cut:]
    return text, ""


def _layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    fig.update_layout(
        title=title, font={"family": FONT_FAMILY}, legend_title_text=kwargs.pop("legend_title", "search_type"), **kwargs
    )
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


def merge_identical(summary: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """One row per distinct (x, y): configs with identical results would hide each other on a chart, so they
    become one point (drawn in the first one's search type) whose `config_id` lists them all and whose
    `n_configs` says how many."""
    frame = summary.assign(_key=list(zip(summary[x].round(9), summary[y].round(9))))
    names = frame.groupby("_key", sort=False, dropna=False)["config_id"].agg(" = ".join)
    counts = frame.groupby("_key", sort=False, dropna=False).size()
    merged = frame.drop_duplicates("_key").copy()
    merged["config_id"] = merged["_key"].map(names)
    merged["n_configs"] = merged["_key"].map(counts)
    return merged.drop(columns="_key")


def _size_legend(fig: go.Figure, latency: pd.Series, size: str) -> None:
    """Legend entries for the smallest and largest bubble, so bubble size can be read."""
    finite = pd.to_numeric(latency, errors="coerce").dropna()
    if finite.empty or finite.max() == finite.min():
        return
    for value, marker_size in ((finite.min(), 10), (finite.max(), 40)):
        fig.add_trace(
            go.Scatter(
                x=[None],
                y=[None],
                mode="markers",
                name=f"{label(size)} {value:.1f}",
                legendgroup="size",
                legendgrouptitle_text="bubble size",
                marker={"size": marker_size, "color": "rgba(0,0,0,0)", "line": {"width": 1, "color": "#555"}},
            )
        )


def relevance_diversity(
    summary: pd.DataFrame, relevance: str = "ndcg", diversity: str = "ild", size: str = "retrieval_ms_p50"
) -> go.Figure:
    """x = diversity mean, y = relevance mean, bubble size = latency p50, colour = search type; configs at
    the same point are one bubble listing them all."""
    fig = go.Figure()
    x_col, y_col = _column(diversity), _column(relevance)
    points = merge_identical(summary, x_col, y_col)
    if size not in points:
        points[size] = np.nan
    sizes = pd.Series(_sizes(points[size]), index=points.index) if size in summary else pd.Series(16, points.index)
    for search_type, group in points.groupby("search_type", sort=False):
        fig.add_trace(
            go.Scatter(
                x=group[x_col].tolist(),
                y=group[y_col].tolist(),
                mode="markers",
                name=search_type,
                marker={
                    "size": sizes[group.index].tolist(),
                    "color": SEARCH_TYPE_COLORS.get(search_type),
                    "opacity": 0.75,
                    "line": {"width": 1},
                },
                customdata=np.column_stack([group["config_id"], group[size].round(2)]).tolist(),
                text=group["config_id"].tolist(),
                hovertemplate=(
                    "%{customdata[0]}<br>"
                    + label(x_col)
                    + " %{x:.3f}<br>"
                    + label(y_col)
                    + " %{y:.3f}<br>"
                    + label(size)
                    + " %{customdata[1]}<extra></extra>"
                ),
            )
        )
    if size in summary:
        _size_legend(fig, summary[size], size)
    return _layout(
        fig,
        f"{label(y_col)} vs {label(x_col)} (bubble: {label(size)})",
        xaxis_title=label(x_col),
        yaxis_title=label(y_col),
    )


def pareto_front(
    summary: pd.DataFrame, quality: str = "ndcg_mean", latency: str = "retrieval_ms_p50", higher_is_better: bool = True
) -> list[str]:
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


def pareto_chart(
    summary: pd.DataFrame, quality: str = "ndcg", latency: str = "retrieval_ms_p50", unit: str | None = None
) -> go.Figure:
    """Quality against latency (or another cost, e.g. retrieved characters, in `unit` when its label has none)
    for every config; the non-dominated configs are joined by a line. The cost has its bootstrap interval as a
    horizontal bar when the summary has one: configs whose bars overlap cannot be told apart on it. Configs at
    the same point are one marker listing them all."""
    q_col = _column(quality)
    base = quality[:-5] if quality.endswith("_mean") else quality
    higher = METRICS[base].higher_is_better if base in METRICS else True
    front = pareto_front(summary, q_col, latency, higher)
    cost_label = label(latency) + (f" ({unit})" if unit else "")
    fig = go.Figure()
    points = merge_identical(summary, latency, q_col)
    points["on_front"] = [any(c in front for c in ids.split(" = ")) for ids in points["config_id"]]
    for search_type, group in points.groupby("search_type", sort=False):
        error = None
        if f"{latency}_low" in group and group[f"{latency}_low"].notna().any():
            error = {
                "type": "data",
                "array": (group[f"{latency}_high"] - group[latency]).tolist(),
                "arrayminus": (group[latency] - group[f"{latency}_low"]).tolist(),
                "thickness": 1,
            }
        fig.add_trace(
            go.Scatter(
                x=group[latency].tolist(),
                y=group[q_col].tolist(),
                mode="markers",
                name=search_type,
                text=group["config_id"].tolist(),
                error_x=error,
                marker={
                    "size": [16 if f else 9 for f in group["on_front"]],
                    "color": SEARCH_TYPE_COLORS.get(search_type),
                    "line": {"width": [2 if f else 0 for f in group["on_front"]], "color": "black"},
                },
                hovertemplate="%{text}<br>" + cost_label + " %{x:.2f}<br>" + label(q_col) + " %{y:.3f}<extra></extra>",
            )
        )
    ordered = summary.set_index("config_id").loc[front]
    fig.add_trace(
        go.Scatter(
            x=ordered[latency].tolist(),
            y=ordered[q_col].tolist(),
            mode="lines+markers",
            name="Pareto front",
            text=front,
            line={"color": "black", "dash": "dot"},
            marker={"symbol": "star", "size": 10, "color": "black"},
            hovertemplate="%{text} (Pareto)<extra></extra>",
        )
    )
    return _layout(
        fig, f"{label(q_col)} vs {label(latency)}: Pareto front", xaxis_title=cost_label, yaxis_title=label(q_col)
    )


def latency_samples(latency: pd.DataFrame, rows: pd.DataFrame | None = None) -> pd.DataFrame:
    """Long table (config_id, measure, ms): retriever samples plus ttft_ms/total_ms from rows if present."""
    frames = []
    if latency is not None and len(latency):
        frames.append(
            latency[["config_id", "retrieval_ms"]].rename(columns={"retrieval_ms": "ms"}).assign(measure="retrieval_ms")
        )
    if rows is not None:
        for column in LATENCY_SOURCES[1:]:
            if column in rows and rows[column].notna().any():
                frames.append(
                    rows[["config_id", column]].rename(columns={column: "ms"}).dropna().assign(measure=column)
                )
    if not frames:
        return pd.DataFrame(columns=["config_id", "measure", "ms"])
    return pd.concat(frames, ignore_index=True)[["config_id", "measure", "ms"]]


def latency_distribution(
    latency: pd.DataFrame, rows: pd.DataFrame | None = None, kind: str = "box", configs: Iterable[str] | None = None
) -> go.Figure:
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
    return _layout(
        fig, "Latency per configuration", xaxis_title="config", yaxis_title="ms", legend_title="measure", **mode
    )


def parameter_heatmap(
    summary: pd.DataFrame,
    metric: str = "ndcg",
    x: str = "fetch_k",
    y: str = "lambda_mult",
    search_type: str | None = "mmr",
) -> go.Figure:
    """The metric mean over two parameters. A cell shared by several configs (e.g. different k) shows their
    mean, and the title says so; a cell of one config shows its confidence interval. The colour scale spans
    the intervals, not just the means, so differences smaller than the uncertainty do not look large."""
    column = _column(metric)
    base = column[:-5]
    frame = summary if search_type is None else summary[summary["search_type"] == search_type]
    frame = frame.dropna(subset=[x, y])
    pivot = partial(frame.pivot_table, index=y, columns=x, aggfunc="mean")
    table = pivot(values=column).sort_index().sort_index(axis=1)
    shared = int(frame.groupby([y, x]).size().max()) if len(frame) else 0
    has_ci = f"{base}_low" in frame and shared == 1
    z = table.to_numpy(float)
    text = [[("" if math.isnan(v) else f"{v:.3f}") for v in row] for row in z]
    zrange = {}
    if has_ci:
        low = pivot(values=f"{base}_low").reindex_like(table).to_numpy(float)
        high = pivot(values=f"{base}_high").reindex_like(table).to_numpy(float)
        text = [
            [cell and f"{cell}<br>[{lo:.3f}, {hi:.3f}]" for cell, lo, hi in zip(*row)] for row in zip(text, low, high)
        ]
        zrange = {"zmin": float(np.nanmin(low)), "zmax": float(np.nanmax(high))}
    fig = go.Figure(
        go.Heatmap(
            z=[[None if math.isnan(v) else v for v in row] for row in z],
            x=[f"{v:g}" for v in table.columns],
            y=[f"{v:g}" for v in table.index],
            colorscale="Viridis",
            text=text,
            texttemplate="%{text}",
            colorbar={"title": label(column)},
            **zrange,
            hovertemplate=f"{x} %{{x}}<br>{y} %{{y}}<br>{label(column)} %{{text}}<extra></extra>",
        )
    )
    note = f"; each cell the mean of up to {shared} configs ({_spread(frame, x, y)})" if shared > 1 else ""
    return _layout(
        fig,
        f"{label(column)} over {x} × {y}" + (f" ({search_type})" if search_type else "") + note,
        xaxis_title=x,
        yaxis_title=y,
        xaxis_type="category",
        yaxis_type="category",
    )


def _spread(frame: pd.DataFrame, x: str, y: str) -> str:
    """The parameters that vary inside a heatmap cell, e.g. "k 3, 5"."""
    varying = [
        c
        for c in ("k", "fetch_k", "lambda_mult", "score_threshold")
        if c not in (x, y) and c in frame and frame[c].nunique() > 1
    ]
    return "; ".join(f"{c} " + ", ".join(f"{v:g}" for v in sorted(frame[c].dropna().unique())) for c in varying)


def metric_vs_k(summary: pd.DataFrame, metric: str = "ndcg") -> go.Figure:
    """Metric mean against k, one line per search type, with CI ends as error bars when each point is one
    config. A point that averages several configs (e.g. mmr over fetch_k and lambda_mult) says so in its
    trace name and hover, and has no error bar."""
    column = _column(metric)
    base = column[:-5]
    fig = go.Figure()
    for search_type, group in summary.groupby("search_type", sort=False):
        by_k = group.groupby("k", sort=True)
        means, counts = by_k[column].mean(), by_k.size()
        error = None
        if f"{base}_low" in group and (counts == 1).all():
            low, high = by_k[f"{base}_low"].mean(), by_k[f"{base}_high"].mean()
            error = {"type": "data", "array": (high - means).tolist(), "arrayminus": (means - low).tolist()}
        name = search_type if (counts == 1).all() else f"{search_type} (mean of {counts.max()} configs per k)"
        fig.add_trace(
            go.Scatter(
                x=means.index.tolist(),
                y=means.tolist(),
                mode="lines+markers",
                name=name,
                error_y=error,
                line={"color": SEARCH_TYPE_COLORS.get(search_type)},
                customdata=counts.tolist(),
                hovertemplate="k %{x}<br>" + label(column) + " %{y:.3f}<br>"
                "mean of %{customdata} config(s)<extra>" + search_type + "</extra>",
            )
        )
    return _layout(fig, f"{label(column)} vs k", xaxis_title="k", yaxis_title=label(column))


def metric_vs_chunk_size(table: pd.DataFrame, metric: str = "ndcg") -> go.Figure:
    """An index family's best config at each chunk size, one line per embedding model and splitter (the
    `eval.family.family_leaderboard` table: one row per (index, config) pair)."""
    column = _column(metric)
    fig = go.Figure()
    for (model, splitter), group in table.groupby(["embedding_model", "splitter"], sort=True):
        best = group.sort_values(column, ascending=False).groupby("chunk_size", sort=True).head(1)
        best = best.sort_values("chunk_size")
        fig.add_trace(
            go.Scatter(
                x=best["chunk_size"].tolist(),
                y=best[column].tolist(),
                mode="lines+markers",
                name=f"{model} · {splitter}",
                text=best["pair"].tolist(),
                hovertemplate="%{text}<br>chunk_size %{x}<br>%{y:.3f}<extra></extra>",
            )
        )
    return _layout(
        fig,
        f"Best {label(column)} vs chunk size",
        xaxis_title="chunk_size",
        yaxis_title=label(column),
        legend_title="embedding model · splitter",
    )


def calibration_histogram(scores: pd.DataFrame, threshold: dict | None = None, bins: int = 40) -> go.Figure:
    """Overlaid histograms of relevance scores of relevant vs irrelevant candidates
    (`eval.calibration.score_calibration` output); the suggested threshold range is shaded."""
    fig = go.Figure()
    edges = {"start": 0.0, "end": 1.0, "size": 1.0 / bins}
    for relevant, name, color in ((False, "irrelevant chunks", "#d62728"), (True, "relevant chunks", "#2ca02c")):
        values = scores.loc[scores["relevant"] == relevant, "score"].tolist()
        fig.add_trace(
            go.Histogram(x=values, name=name, xbins=edges, opacity=0.6, marker_color=color, histnorm="probability")
        )
    if threshold:
        if (
            threshold.get("low") is not None
            and threshold.get("high") is not None
            and threshold["high"] > threshold["low"]
        ):
            fig.add_vrect(
                x0=threshold["low"],
                x1=threshold["high"],
                fillcolor="gold",
                opacity=0.2,
                line_width=0,
                annotation_text="suggested range",
                annotation_position="top left",
            )
        if threshold.get("best") is not None:
            fig.add_vline(
                x=threshold["best"],
                line_dash="dash",
                line_color="black",
                annotation_text=f"best F1 {threshold['best']:.3f}",
            )
    return _layout(
        fig,
        "Relevance scores of relevant vs irrelevant candidates",
        barmode="overlay",
        xaxis_title="LangChain relevance score (1 - cosine distance)",
        yaxis_title="share",
        legend_title="candidates",
    )


def comparison_bars(table: pd.DataFrame, metric: str = "ndcg") -> go.Figure:
    """One metric per config for two runs (the `compare_runs` table), as grouped bars."""
    fig = go.Figure(
        [go.Bar(name=f"run {side}", x=table["config_id"], y=table[f"{metric}_{side}"]) for side in ("a", "b")]
    )
    return _layout(fig, f"{label(metric)}: run a vs run b", barmode="group", yaxis_title=label(metric))


def run_charts(
    summary: pd.DataFrame, run=None, relevance: str = "ndcg", diversity: str = "ild"
) -> dict[str, go.Figure]:
    """The standard set of charts for a run summary, in the report's white template. (The dashboard's charts
    keep the default template, Streamlit's theme there: applying a named template costs ~55 ms a figure.)"""
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
    return {title: figure.update_layout(template="plotly_white") for title, figure in charts.items()}


def miss_causes(counts: pd.DataFrame) -> go.Figure:
    """Misses per config as a stacked bar of their causes (`WhyReport.counts()`: one row per config id)."""
    fig = go.Figure()
    for cause in CAUSES:
        if counts[cause].sum():
            fig.add_bar(name=CAUSE_NAMES[cause], x=list(counts.index), y=list(counts[cause]))
    fig.update_layout(barmode="stack", xaxis_title="config", yaxis_title="misses (relevant documents not retrieved)")
    return _layout(fig, "Why configs missed", legend_title="cause")
