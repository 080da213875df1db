"""Index variants: the chunkings and embedding models of one corpus, swept with one retriever grid."""

import pandas as pd
import streamlit as st

from dashboard import engine, widgets
from eval.analysis.family import describe_best, family_leaderboard, family_rows, family_runs
from eval.data.labels import load_labels
from eval.metrics import METRICS
from eval.metrics.passage import PASSAGE_METRIC_KEYS
from eval.metrics.ranking import DOC_METRIC_KEYS
from eval.report import charts
from eval.runs.store import RunStore

LEADERBOARD_COLUMNS = ["index", "embedding_model", "splitter", "chunk_size", "chunk_overlap", "config_id"]


@st.cache_data(show_spinner="Scoring the index variants…", max_entries=8)
def family_table(runs_root: str, run_ids: tuple[str, ...], source: str, metric: str) -> pd.DataFrame:
    runs = [RunStore(runs_root).load(run_id) for run_id in run_ids]
    return family_leaderboard(family_rows(runs, load_labels(runs[0].manifest["questions"]["source"]), source), metric)


st.title("Compare index variants")
families = family_runs(engine.run_store())
if not families:
    st.info(
        "No family sweeps yet: build index variants with `python -m eval index family ...`, then sweep them "
        "with `python -m eval run-family --index ...` (prefix either with `jobs start` to run it in the "
        "background, shown in the sidebar)."
    )
else:
    family = st.selectbox(
        "Family sweep", list(families), key="family-id", format_func=lambda f: f"{f} · {len(families[f])} indexes"
    )
    with widgets.lab_errors("the question set of this sweep must still be where it was when the sweep ran"):
        first = engine.run_store().load(families[family][0], scores_only=True)
        sources = load_labels(first.manifest["questions"]["source"]).sources
        source = st.selectbox("Labels", sources, key="family-source")
        metrics = [m for m in PASSAGE_METRIC_KEYS + DOC_METRIC_KEYS if m != "judged"]
        metric = st.selectbox(
            "Metric",
            metrics,
            index=metrics.index("passage_ndcg"),
            format_func=lambda m: METRICS[m].label,
            key="family-metric",
        )
        table = family_table(str(engine.run_store().root), tuple(families[family]), source, metric)
        best = describe_best(table, metric)
        st.success(
            f"Best pair: **{best['index']}** with **{best['config_id']}**: {METRICS[metric].label} "
            f"{best[metric]:.3f} (95% CI {best['low']:.3f} to {best['high']:.3f}), "
            f"{best['context_chars']:.0f} characters retrieved per question"
        )
        st.caption(
            "Every variant is scored against the same judgements on document spans; `context_chars` is "
            "the mean number of characters retrieved (what the prompt pays for)."
        )
        shown = table[LEADERBOARD_COLUMNS + [f"{metric}_mean", f"{metric}_low", f"{metric}_high", "context_chars_mean"]]
        st.dataframe(shown, hide_index=True, key="family-leaderboard")
        heatmap, by_size, pareto = st.tabs(["chunk_size × k", "vs chunk size", "Pareto (context length)"])
        with heatmap:
            model = st.selectbox("Embedding model", sorted(table["embedding_model"].unique()), key="family-model")
            search_type = st.selectbox("Search type", sorted(table["search_type"].unique()), key="family-type")
            chosen = table[table["embedding_model"] == model]
            st.plotly_chart(
                charts.parameter_heatmap(chosen, metric, x="k", y="chunk_size", search_type=search_type),
                key="family-heatmap",
            )
        with by_size:
            st.plotly_chart(charts.metric_vs_chunk_size(table, metric), key="family-by-size")
        with pareto:
            st.plotly_chart(
                charts.pareto_chart(
                    table.assign(config_id=table["pair"]), metric, "context_chars_mean", unit="characters"
                ),
                key="family-pareto",
            )
