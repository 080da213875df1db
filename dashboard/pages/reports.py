"""Reports: HTML/Markdown reports and data exports of a run; the run history with delete."""

import pandas as pd
import streamlit as st

from dashboard import engine, widgets
from eval.errors import LabError

st.title("Reports and exports")


def other_run(run_id: str, source: str):
    """Run b of a comparison report, under the same label source as run a (None, with a warning, when its
    question set has no such labels)."""
    label_file, sources = widgets.label_sources(run_id) if source != "gold" else (None, [source])
    if source not in sources:
        st.warning(f"Run {run_id}'s questions have no '{source}' labels: compare it under labels both runs have.")
        return None
    return engine.scored_run(run_id, label_file, source)


def report_why(run_id: str, label_file, source: str):
    """The run's miss diagnosis for the reports' "Why configs missed" section, or why there is none."""
    try:
        return engine.why_report(run_id, label_file, source)
    except LabError as error:
        return f"Not computed: {error}"


run_id = widgets.pick_run("report-run")
if run_id:
    with widgets.lab_errors("pick another run"):
        from eval.report.render import report_html, report_markdown

        label_file, source = widgets.pick_label_source(run_id)
        run = engine.scored_run(run_id, label_file, source)
        st.caption(
            f"Reports and exports score, rank and mark relevance under label source **{source}** (chosen here, "
            "on Compare or on Inspect)."
        )
        if st.session_state.get("report-source") != source:  # files prepared under another source are stale
            for key in ("report-html", "report-md", "report-comparison", "export-data"):
                st.session_state.pop(key, None)
            st.session_state["report-source"] = source
        c1, c2 = st.columns(2)
        if c1.button("Build HTML report", key="build-html"):
            st.session_state["report-html"] = (
                run_id,
                report_html(run, why=report_why(run_id, label_file, source)).encode("utf-8"),
            )
        if c2.button("Build Markdown report", key="build-md"):
            st.session_state["report-md"] = (
                run_id,
                report_markdown(run, why=report_why(run_id, label_file, source)).encode("utf-8"),
            )
        if st.session_state.get("report-html", (None,))[0] == run_id:
            c1.download_button(
                "Download HTML report",
                st.session_state["report-html"][1],
                file_name=f"retriever-lab-{run_id}.html",
                mime="text/html",
                key="dl-html",
            )
        if st.session_state.get("report-md", (None,))[0] == run_id:
            c2.download_button(
                "Download Markdown report",
                st.session_state["report-md"][1],
                file_name=f"retriever-lab-{run_id}.md",
                mime="text/markdown",
                key="dl-md",
            )

        others = [m.run_id for m in engine.run_store().manifests() if m.status == "complete" and m.run_id != run_id]
        if others:
            other_id = st.selectbox("Compare with run", others, key="compare-with")
            if st.button("Build comparison report", key="build-comparison"):
                from eval.report.render import comparison_html

                other = other_run(other_id, source)
                if other is not None:
                    html = comparison_html(run, other)
                    st.session_state["report-comparison"] = ((run_id, other_id), html.encode("utf-8"))
            if st.session_state.get("report-comparison", (None,))[0] == (run_id, other_id):
                st.download_button(
                    "Download comparison report",
                    st.session_state["report-comparison"][1],
                    file_name=f"retriever-lab-{run_id}-vs-{other_id}.html",
                    mime="text/html",
                    key="dl-comparison",
                )

        st.subheader("Data exports")
        from eval.runs.export import FORMATS, export_bytes

        fmt = st.selectbox("Format", FORMATS, key="export-format")
        if st.button("Prepare export", key="export"):
            file_name = f"{run_id}-trec.zip" if fmt == "trec" else f"{run_id}.{fmt}"
            st.session_state["export-data"] = (run_id, fmt, export_bytes(run, fmt), file_name)
        export = st.session_state.get("export-data")
        if export and export[:2] == (run_id, fmt):
            st.download_button(f"Download {export[3]}", export[2], file_name=export[3], key="dl-export")

st.header("Run history")
manifests = engine.run_store().manifests()
if manifests:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run_id": m.run_id,
                    "status": m.status,
                    "created": m.created_at,
                    "index": m.index.name,
                    "questions": m.questions.count,
                    "configs": len(m.configs),
                    "seconds": m.wall_seconds,
                }
                for m in manifests
            ]
        ),
        hide_index=True,
        key="history",
    )
    doomed = st.selectbox("Run to delete", [m.run_id for m in manifests], key="delete-run")
    confirm = st.checkbox(f"Yes, delete run {doomed}", key="delete-run-confirm")
    if st.button("Delete run", disabled=not confirm, key="delete-run-button"):
        with widgets.lab_errors("check the data folder's permissions"):
            engine.run_store().delete(doomed)
            st.cache_data.clear()
            st.success(f"Deleted run {doomed}")
            st.rerun()
else:
    st.info("No runs yet.")
