"""Question sets: load, validate (errors with file and line), preview, detect the language; and import real
questions (a plain list or a chat platform's log) as a de-duplicated, weighted question set."""

from pathlib import Path

import pandas as pd
import streamlit as st

from dashboard import engine, widgets
from eval.data.datasets import load_question_set
from eval.data.question_import import FORMATS
from eval.settings import DEFAULT_EMBEDDING, DEFAULT_NEAR_DUPLICATE
from eval.text import cjk_share

IMPORT_TYPES = ["txt", "csv", "jsonl", "json", "md", "db", "sqlite"]
SHOWN_ROWS = 500  # rows of each preview table

st.title("Question sets")


def check_tab() -> None:
    path = None
    with widgets.lab_errors("check the path or the uploaded file"):
        path = widgets.dataset_source("questions")
    if path is None:
        return
    with widgets.lab_errors("check the path, or fix the file at the line named in the message, then load it again"):
        questions = load_question_set(path)
        texts = [q.question for q in questions]
        share = cjk_share(" ".join(texts))
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Questions", len(questions))
        c2.metric("Language", widgets.language_of(share), help=f"{share:.0%} of the letters are CJK")
        c3.metric("With relevant_ids", sum(bool(q.relevant_ids) for q in questions))
        c4.metric("With answers", sum(bool(q.answers) for q in questions))
        weighted = any(q.weight is not None for q in questions)
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "id": q.id,
                        "question": q.question,
                        "answers": " | ".join(q.answers),
                        "relevant_ids": ", ".join(q.relevant_ids),
                        **({"weight": 1 if q.weight is None else q.weight} if weighted else {}),
                    }
                    for q in questions
                ]
            ),
            hide_index=True,
            key="question-preview",
            column_config={
                "id": st.column_config.TextColumn(width="small"),  # fits 1,366 px
                "question": st.column_config.TextColumn(width="large"),
                "answers": st.column_config.TextColumn(width="medium"),
                "relevant_ids": st.column_config.TextColumn(width="medium"),
            },
        )
        if not any(q.relevant_ids for q in questions):
            st.warning(
                "No question has relevant_ids: rank metrics (nDCG, recall…) need them; answer metrics "
                "still work with answers."
            )


def import_files() -> list[Path]:
    """The files to import: uploaded, or named by path (one a line)."""
    source = st.radio("Files", ["Upload", "Paths"], horizontal=True, key="qimport-source")
    if source == "Upload":
        files = st.file_uploader(
            "Question lists or log exports (.txt, .csv, .jsonl, .json, Chatchat's .md export or info.db)",
            type=IMPORT_TYPES,
            accept_multiple_files=True,
            key="qimport-upload",
        )
        if not files:
            return []
        folder = widgets.save_uploads(files, "qimport", IMPORT_TYPES)
        return [folder / Path(f.name).name for f in files]
    text = st.text_area("Paths, one a line", key="qimport-paths")
    return [Path(line.strip()).expanduser() for line in text.splitlines() if line.strip()]


def import_settings() -> dict:
    """The reading and de-duplication choices, as `engine.import_real_questions` takes them."""
    c1, c2, c3 = st.columns(3)
    fmt = c1.selectbox("Format", ["auto", *FORMATS], key="qimport-format", help="auto: told from the content")
    column = c2.text_input("CSV column", key="qimport-column", help="default: question, query or 问题")
    field = c3.text_input("JSON field", key="qimport-field", help="dotted if nested; default as the column")
    d1, d2, d3 = st.columns(3)
    near = d1.toggle("Merge near duplicates", value=True, key="qimport-near")
    threshold = d2.number_input(
        "Cosine at least",
        min_value=0.5,
        max_value=1.0,
        value=DEFAULT_NEAR_DUPLICATE,
        step=0.01,
        key="qimport-threshold",
        disabled=not near,
        help="two questions this close are one; see the README for how the default was measured",
    )
    indexes = [m.name for m in engine.index_store().list()]
    choice = d3.selectbox(
        "For index",
        [f"index {name}" for name in indexes] + ["none (a named encoder)"],
        key="qimport-by",
        help="the index the questions are for: its encoder compares them, and its documents are saved beside "
        "them so that they can be labelled; or no index, and an encoder by name",
    )
    encoder = None
    if near and not choice.startswith("index "):
        encoder = st.text_input("Encoder", DEFAULT_EMBEDDING, key="qimport-encoder")
    return {
        "fmt": fmt,
        "column": column.strip() or None,
        "field": field.strip() or None,
        "threshold": float(threshold) if near else None,
        "index": choice.removeprefix("index ") if choice.startswith("index ") else None,
        "encoder": encoder.strip() if encoder else None,
    }


def show_import(result) -> None:
    """What was read, kept (with weights) and dropped (exact and near duplicates)."""
    skipped = sum(sum(read.skipped.values()) for read in result.files)
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Lines read", result.lines)
    c2.metric("Questions kept", len(result.questions))
    c3.metric("Exact duplicates", sum(d.count for d in result.exact), help="lines equal after normalising")
    c4.metric("Near duplicates", sum(d.count for d in result.near), help="lines merged by embedding cosine")
    c5.metric("Not questions", skipped, help="assistant replies, system prompts, greetings, unanswered rows")
    st.caption(" · ".join(result.summary()))
    st.markdown("**Kept questions** (weight = how many imported lines each stands for)")
    kept = pd.DataFrame([{"id": q.id, "question": q.question, "weight": q.weight} for q in result.questions])
    st.dataframe(kept.head(SHOWN_ROWS), hide_index=True, key="qimport-kept")
    dropped = pd.DataFrame(
        [
            {
                "dropped": d.text,
                "lines": d.count,
                "as": "exact" if d.cosine is None else "near",
                "cosine": d.cosine,
                "kept as": d.kept,
            }
            for d in result.near + result.exact
        ],
        columns=["dropped", "lines", "as", "cosine", "kept as"],
    )
    st.markdown(f"**Dropped duplicates** ({len(dropped)}; near duplicates first)")
    st.dataframe(dropped.head(SHOWN_ROWS), hide_index=True, key="qimport-dropped")


def import_tab() -> None:
    st.caption(
        "Real questions without labels: a plain list (.txt one a line, a CSV column, JSON lines) or a query log "
        "exported from Dify, RAGFlow or Langchain-Chatchat. Duplicates are merged and each kept question remembers "
        "how often it was asked (its weight), which Compare can weight the means by."
    )
    inputs = None
    with widgets.lab_errors("pick the files again, or name the format, column or field"):
        paths = import_files()
        settings = import_settings()
        inputs = (tuple(map(str, paths)), tuple(sorted(settings.items())))
        if st.button("Preview", key="qimport-preview", disabled=not paths, type="primary"):
            bar = st.progress(0.0, text="Reading…")

            def progress(stage: str, done: int, total: int) -> None:
                bar.progress(done / max(total, 1), text=f"{stage}: {done} of {total} questions")

            st.session_state["qimport-result"] = (
                inputs,
                engine.import_real_questions(paths, **settings, progress=progress),
            )
            bar.empty()
    kept = st.session_state.get("qimport-result")
    if not kept or kept[0] != inputs:
        return
    result = kept[1]
    show_import(result)
    with widgets.lab_errors("choose a new folder"):
        out = st.text_input("Save to folder (a new one)", key="qimport-out")
        if st.button("Save question set", key="qimport-save", disabled=not out.strip()):
            path = engine.save_real_questions(result, Path(out.strip()).expanduser(), settings["index"])
            st.success(
                f"Saved {len(result.questions)} questions to `{path}`: run them on **Run a sweep**, label them on "
                "**Labels**."
            )


check, real = st.tabs(["Check a question set", "Import real questions"])
with check:
    check_tab()
with real:
    import_tab()
