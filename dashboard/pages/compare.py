"""Compare: the leaderboard of a run with CIs and significance, and the charts."""

import streamlit as st

from dashboard import engine, widgets
from eval.analysis.diagnostics import run_warnings
from eval.analysis.drilldown import FILTERS, question_table
from eval.analysis.plan import plan, plan_caption
from eval.analysis.racing import race_text, raced
from eval.analysis.recommend import ranking_metric, ranking_rule, recommend
from eval.errors import LabError
from eval.labels.rescore import judged_text
from eval.metrics import METRICS
from eval.report import charts
from eval.report.render import COMPARISON_NOTE, comparison_frame, leaderboard_frame, why_frames, why_notes
from eval.retrievers.external.client import failures
from eval.runs.summary import quality_metrics, scored_text, weighting_note

st.title("Compare configurations")


def recommendation_section(
    run, summary, metric: str, available: list[str], source: str, weighted: bool = False
) -> str | None:
    """The recommended config (of all the run's configs) under the user's constraints, with the configs tied
    with it, in words. Returns its id."""
    st.subheader("Recommendation")
    c1, c2 = st.columns(2)
    budget = c1.number_input(
        "Latency budget: retrieval p50 (ms, 0 = none)", min_value=0.0, value=0.0, step=5.0, key="rec-budget"
    )
    min_judged = None
    if "judged" in available:
        min_judged = c2.slider(
            "Minimum judged share", 0.0, 1.0, 0.0, 0.05, key="rec-judged", help=METRICS["judged"].description
        )
    rec = _recommend(
        run.run_id,
        str(run.manifest.get("finished_at")),
        source,
        metric,
        budget or None,
        min_judged or None,
        weighted,
        run,
        summary,
    )
    (st.success if rec.config_id else st.warning)(rec.text)
    st.caption(f"Under label source **{source}**.")
    if rec.config_id and f"{metric}_mean" in summary:
        st.caption(plan_caption(plan(run, metric=metric, summary=summary)))
    if raced(run):
        st.caption(race_text(run))
    return rec.config_id


@st.cache_data(show_spinner=False, max_entries=32)
def _recommend(
    run_id: str,
    finished_at: str,
    source: str,
    metric: str,
    budget: float | None,
    min_judged: float | None,
    weighted: bool,
    _run,
    _summary,
):
    """`recommend`, once per run, label source, weighting and constraints (its paired test reads every row)."""
    return recommend(_run, _summary, metric, budget, min_judged, weighted)


def labels_line(rows, metric: str, source: str) -> str:
    """The label source the page scores under, its judged share, and how many questions the means are over."""
    return f"Label source: **{source}** · {judged_text(rows, source)} · {scored_text(rows, metric, source)}"


DRILL_ROWS = 500  # questions shown in the drill-down table (worst first)


@st.cache_data(show_spinner=False, max_entries=16)
def _question_table(run_id: str, finished_at: str, source: str, chosen: str, metric: str, show: str, _run):
    """`question_table` of a run, once per choice (a pivot of every row)."""
    return question_table(_run.rows, _run.questions_by_id, chosen, metric, [c["config_id"] for c in _run.configs], show)


LATENCY_LABELS = {
    "retrieval_ms_p50": ("p50 (ms)", "retrieval latency, median over the timed questions"),
    "retrieval_ms_p95": ("p95 (ms)", "retrieval latency, 95th percentile over the timed questions"),
    "ttft_ms_p50": ("TTFT p50 (ms)", "time to the first streamed token, median"),
    "total_ms_p50": ("total p50 (ms)", "retrieval plus generation, median"),
}


def leaderboard_layout(table, metrics: list[str]) -> dict:
    """Column order and headers that keep the leaderboard inside the window at 1,366 px: the config id (which
    spells out its parameters), the metrics, then latency; the parameter columns only on request."""
    with_parameters = st.toggle(
        "Parameter columns",
        key="leaderboard-parameters",
        help="search_type, k, fetch_k, … as columns (the config id names them too)",
    )
    shown = ["config_id", *[METRICS[m].label for m in metrics], *[c for c in LATENCY_LABELS if c in table]]
    if with_parameters:
        shown += [c for c in table.columns if c not in shown]
    config = {METRICS[m].label: st.column_config.TextColumn(help=METRICS[m].description) for m in metrics}
    config |= {column: st.column_config.TextColumn(name, help=why) for column, (name, why) in LATENCY_LABELS.items()}
    return {"column_order": [c for c in shown if c in table], "column_config": config}


def clickable_chart(figure, key: str) -> None:
    """A chart whose points are configs (their ids in each trace's `text`): clicking one opens its questions in
    the drill-down above (the first config of a point that stands for several identical ones)."""
    names = [list(trace.text or []) for trace in figure.data]

    def open_questions() -> None:  # a callback: it runs before the drill-down's widgets are made again
        points = st.session_state[key].selection.points
        trace = names[points[0]["curve_number"]] if points else []
        if points and points[0]["point_index"] < len(trace):
            st.session_state["drill-config"] = trace[points[0]["point_index"]].split(" = ")[0]

    st.plotly_chart(figure, key=key, on_select=open_questions, selection_mode="points")
    st.caption("Click a configuration's point to see its questions above.")


def other_run_section(run_id: str, available: list[str], sort_metric: str, source: str) -> None:
    """This run (a) against another complete run (b): per config, a metric's means and the paired change, both
    runs scored under the label source picked above."""
    others = [m.run_id for m in engine.run_store().manifests() if m.status == "complete" and m.run_id != run_id]
    if not others:
        return
    st.subheader("Against another run")
    c1, c2 = st.columns([3, 1])
    other = c1.selectbox(
        "Run b (this run is a)",
        ["(none)", *others],
        key="compare-other-run",
        help="the same configs on another index, chunking or question set: what changed?",
    )
    if other == "(none)":
        return
    if source == "gold":
        scored = engine.load_scores(other)
    else:
        label_file, sources = widgets.label_sources(other)
        if source not in sources:
            st.warning(f"Run {other}'s questions have no '{source}' labels: pick labels both runs have above.")
            return
        scored = engine.rescored_run(other, label_file, source)
    shared = [m for m in available if m in quality_metrics(scored.rows)]
    if not shared:
        st.warning(f"Run {other} has none of this run's metrics to compare.")
        return
    metric = c2.selectbox(
        "Metric",
        shared,
        index=shared.index(sort_metric) if sort_metric in shared else 0,
        format_func=lambda m: METRICS[m].label,
        key="compare-other-metric",
    )
    table = engine.run_comparison(run_id, other, (metric,), source)
    st.caption(COMPARISON_NOTE)
    st.dataframe(comparison_frame(table, [metric]), hide_index=True, key="compare-other-table")


def questions_section(
    run_id: str, run, config_ids: list[str], default: str | None, available: list[str], source: str
) -> None:
    """Per-question drill-down: the chosen config's worst questions first, where configs disagree; a picked
    question opens on the Inspect page."""
    st.subheader("Questions")
    c1, c2, c3 = st.columns([2, 1, 2])
    if st.session_state.get("drill-config") not in config_ids:  # first visit, or another run
        st.session_state["drill-config"] = default if default in config_ids else config_ids[0]
    chosen = c1.selectbox("Configuration", config_ids, key="drill-config")
    metric = c2.selectbox(
        "Metric",
        [m for m in available if METRICS[m].group in ("relevance", "answer")],
        format_func=lambda m: METRICS[m].label,
        key="drill-metric",
    )
    show = c3.radio("Show", FILTERS, horizontal=True, key="drill-show")
    table = _question_table(run.run_id, str(run.manifest.get("finished_at")), source, chosen, metric, show, run)
    shown = f"the first {DRILL_ROWS} of " if len(table) > DRILL_ROWS else ""
    st.caption(
        f"{shown}{len(table)} questions; {METRICS[metric].label} per configuration, {chosen} first and its "
        f"worst questions first ({scored_text(run.rows, metric, source)}). Select a row (or pick it below) to "
        "open it on Inspect."
    )
    table = table.head(DRILL_ROWS)
    picked = st.dataframe(
        table,
        hide_index=True,
        key="drill-table",
        on_select="rerun",
        selection_mode="single-row",
        # a column per config, the chosen one first; many scroll under the pinned question
        # (whether configs disagree is the Show filter, not a column)
        column_order=[c for c in table.columns if c not in ("configs_hit", "disagree")],
        column_config={
            "question_id": st.column_config.TextColumn(pinned=True),
            "question": st.column_config.TextColumn(width=300, pinned=True),
        },
    )
    d1, d2 = st.columns([4, 1])
    question_id = d1.selectbox("Question", table["question_id"], key="drill-question", label_visibility="collapsed")
    selected = list(picked.selection.rows) if picked else []
    if selected or d2.button("Open in Inspect", key="drill-open", disabled=question_id is None):
        question_id = table["question_id"].iloc[selected[0]] if selected else question_id
        others = [c for c in config_ids if c != chosen][:1]
        st.session_state["inspect-target"] = (run_id, question_id, [chosen, *others])
        st.switch_page("dashboard/pages/inspect_question.py")


def why_section(run_id: str, label_file, source: str) -> None:
    """Misses per config by cause (a stacked bar) and the what-ifs, once asked for: the diagnosis recomputes
    every config's candidates on the run's index."""
    st.caption(
        "A miss is a relevant document (under the label source) that no retrieved chunk covers. The causes come "
        "from each config's candidates, recomputed on the run's index exactly as the run made them."
    )
    if not st.toggle("Diagnose the misses", key="why-on"):
        return
    try:
        why = engine.why_report(run_id, label_file, source)
    except LabError as error:
        st.warning(str(error))
        return
    counts, what_ifs = why_frames(why)
    if counts["misses"].sum():
        st.plotly_chart(charts.miss_causes(why.counts()), key="chart-why")
    st.dataframe(counts, hide_index=True, key="why-counts")
    for note in why_notes(why):
        st.caption(note)
    st.markdown("**What-ifs, on the same candidates**")
    if len(what_ifs):
        st.dataframe(what_ifs, hide_index=True, key="why-what-ifs")
    else:
        st.info("No one-parameter change recovers a miss.")


run_id = widgets.pick_run("compare-run")
if run_id:
    with widgets.lab_errors("pick another run, or delete this one on the Reports page"):
        label_file, source = widgets.pick_label_source(run_id)
        run = engine.scored_run(run_id, label_file, source, scores_only=True)
        available = quality_metrics(run.rows)
        default = [m for m in ("ndcg", "hit_rate", "recall", "ild") if m in available]
        default += ["passage_ndcg", "judged"] if source != "gold" else []
        metrics = st.multiselect(
            "Metrics",
            available,
            default=default or available[:4],
            format_func=lambda m: METRICS[m].label,
            key="compare-metrics" if source == "gold" else f"compare-metrics-{source}",
        )
        config_ids = [c["config_id"] for c in run.configs]
        baseline = st.selectbox("Baseline (paired significance test)", ["(none)"] + config_ids, key="compare-baseline")
        baseline = None if baseline == "(none)" else baseline
        weighted = bool(run.question_weights()) and st.toggle(
            "Weighted by how often each question was asked",
            key="compare-weighted",
            help="means and intervals weighted by the questions' weights (an imported log: how many lines each "
            "question stands for); off: each question counts once",
        )
        # one summary of every metric serves the leaderboard and the charts (computed once per baseline)
        summary = (
            engine.summary(run_id, baseline, tuple(available), weighted)
            if source == "gold"
            else engine.rescored_summary(run_id, label_file, source, baseline, weighted)
        )
        types = st.multiselect(
            "Search types",
            sorted(summary["search_type"].unique()),
            default=sorted(summary["search_type"].unique()),
            key="compare-types",
        )
        shown = summary[summary["search_type"].isin(types)]
        sort_metric = ranking_metric(available)  # the rule the reports use too
        for config_id, (count, first) in failures(run.rows).items():  # external retrievers' failed calls
            st.warning(f"{config_id}: {count} calls failed and are not scored, e.g. {first}")

        recommended = recommendation_section(run, summary, sort_metric, available, source, weighted)  # every config
        table = leaderboard_frame(shown, metrics, sort_by=sort_metric)
        st.subheader("Leaderboard")
        st.caption(
            f"{ranking_rule(sort_metric)} {weighting_note(run, weighted)} Means with 95% bootstrap confidence "
            "intervals"
            + (
                f"; * = significantly different from {baseline} (paired randomization test, p < 0.05; "
                "none on a value that is the same for every question)"
                if baseline
                else "; pick a baseline to test differences"
            )
        )
        st.caption(labels_line(run.rows, sort_metric, source))
        board = st.dataframe(
            table,
            hide_index=True,
            key="leaderboard",
            on_select="rerun",
            selection_mode="single-row",
            **leaderboard_layout(table, metrics),
        )
        clicked = table["config_id"].iloc[board.selection.rows[0]] if board and board.selection.rows else None
        if clicked is not None and st.session_state.get("leaderboard-clicked") != clicked:  # a new click
            st.session_state["leaderboard-clicked"] = st.session_state["drill-config"] = clicked
        for warning in run_warnings(run):
            st.warning(warning)

        other_run_section(run_id, available, sort_metric, source)
        questions_section(run_id, run, config_ids, recommended, available, source)

        if not shown.empty:
            st.subheader("Charts")
            relevance = st.selectbox(
                "Relevance metric",
                [m for m in available if METRICS[m].group in ("relevance", "answer")],
                index=0,
                format_func=lambda m: METRICS[m].label,
                key="chart-relevance",
            )
            diversity_options = [m for m in available if METRICS[m].group == "diversity"]
            diversity = st.selectbox(
                "Diversity metric", diversity_options, format_func=lambda m: METRICS[m].label, key="chart-diversity"
            )
            tab1, tab2, tab3, tab4, tab5, tab6 = st.tabs(
                ["Relevance vs diversity", "Pareto", "Latency", "vs k", "MMR heatmap", "Why missed"]
            )
            with tab1:
                clickable_chart(charts.relevance_diversity(shown, relevance, diversity), "chart-scatter")
            with tab2:
                if shown["retrieval_ms_p50"].notna().any():
                    clickable_chart(charts.pareto_chart(shown, relevance), "chart-pareto")
                    st.write(
                        "Pareto front:",
                        ", ".join(
                            charts.pareto_front(
                                shown, f"{relevance}_mean", "retrieval_ms_p50", METRICS[relevance].higher_is_better
                            )
                        ),
                    )
                else:
                    st.info("This run has no latency samples (latency sample 0).")
            with tab3:
                kind = st.radio("Kind", ["box", "violin"], horizontal=True, key="latency-kind")
                st.plotly_chart(
                    charts.latency_distribution(run.latency, run.rows, kind, shown["config_id"]), key="chart-latency"
                )
            with tab4:
                st.plotly_chart(charts.metric_vs_k(shown, relevance), key="chart-k")
            with tab5:
                mmr = shown[shown["search_type"] == "mmr"]
                if len(mmr):
                    st.plotly_chart(charts.parameter_heatmap(shown, relevance), key="chart-heatmap")
                else:
                    st.info("No mmr configurations selected.")
            with tab6:
                why_section(run_id, label_file, source)
