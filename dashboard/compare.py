"""Compare: the leaderboard of a run with CIs and significance, and the charts."""
import streamlit as st

from dashboard import state
from eval import charts
from eval.leaderboard import quality_metrics
from eval.metrics import METRICS
from eval.report import leaderboard_frame
from eval.external import failures

st.title("Compare configurations")
run_id = state.pick_run("compare-run")
if run_id:
    with state.lab_errors("pick another run, or delete this one on the Reports page"):
        run = state.load_scores(run_id)
        available = quality_metrics(run.rows)
        default = [m for m in ("hit_rate", "recall", "mrr", "ndcg", "ild", "n_retrieved") if m in available]
        metrics = st.multiselect("Metrics", available, default=default or available[:4],
                                 format_func=lambda m: METRICS[m].label, key="compare-metrics")
        config_ids = [c["config_id"] for c in run.configs]
        baseline = st.selectbox("Baseline (paired significance test)", ["(none)"] + config_ids,
                                key="compare-baseline")
        baseline = None if baseline == "(none)" else baseline
        # one summary of every metric serves the leaderboard and the charts (computed once per baseline)
        summary = state.summary(run_id, baseline, tuple(available))
        types = st.multiselect("Search types", sorted(summary["search_type"].unique()),
                               default=sorted(summary["search_type"].unique()), key="compare-types")
        shown = summary[summary["search_type"].isin(types)]
        sort_metric = (metrics or default or available)[0]
        for config_id, (count, first) in failures(run.rows).items():  # external retrievers' failed calls
            st.warning(f"{config_id}: {count} calls failed and are not scored, e.g. {first}")

        table = leaderboard_frame(shown, metrics, sort_by=sort_metric)
        st.subheader("Leaderboard")
        st.caption("Means with 95% bootstrap confidence intervals" +
                   (f"; * = significantly different from {baseline} (paired randomization test, p < 0.05)"
                    if baseline else "; pick a baseline to test differences"))
        st.dataframe(table, hide_index=True, key="leaderboard")

        if not shown.empty:
            st.subheader("Charts")
            relevance = st.selectbox("Relevance metric", [m for m in available
                                                          if METRICS[m].group in ("relevance", "answer")],
                                     index=0, format_func=lambda m: METRICS[m].label, key="chart-relevance")
            diversity_options = [m for m in available if METRICS[m].group == "diversity"]
            diversity = st.selectbox("Diversity metric", diversity_options, format_func=lambda m: METRICS[m].label,
                                     key="chart-diversity")
            tab1, tab2, tab3, tab4, tab5 = st.tabs(["Relevance vs diversity", "Pareto", "Latency", "vs k",
                                                    "MMR heatmap"])
            with tab1:
                st.plotly_chart(charts.relevance_diversity(shown, relevance, diversity), key="chart-scatter")
            with tab2:
                if shown["retrieval_ms_p50"].notna().any():
                    st.plotly_chart(charts.pareto_chart(shown, relevance), key="chart-pareto")
                    st.write("Pareto front:", ", ".join(charts.pareto_front(
                        shown, f"{relevance}_mean", "retrieval_ms_p50", METRICS[relevance].higher_is_better)))
                else:
                    st.info("This run has no latency samples (latency sample 0).")
            with tab3:
                kind = st.radio("Kind", ["box", "violin"], horizontal=True, key="latency-kind")
                st.plotly_chart(charts.latency_distribution(run.latency, run.rows, kind, shown["config_id"]),
                                key="chart-latency")
            with tab4:
                st.plotly_chart(charts.metric_vs_k(shown, relevance), key="chart-k")
            with tab5:
                mmr = shown[shown["search_type"] == "mmr"]
                if len(mmr):
                    st.plotly_chart(charts.parameter_heatmap(shown, relevance), key="chart-heatmap")
                else:
                    st.info("No mmr configurations selected.")
