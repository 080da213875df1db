"""Inspect: one question under 2-4 configurations side by side."""

import pandas as pd
import streamlit as st

from dashboard import engine, widgets
from eval.analysis.why import CAUSE_NAMES
from eval.errors import LabError
from eval.labels.rescore import grade_label, row_grades
from eval.metrics import METRICS
from eval.retrievers.stages import has_stages
from eval.runs.summary import quality_metrics

st.title("Inspect a question")


def chunk_stages(run, params: dict, question, chunk_ids) -> dict:
    """chunk id -> its stages (BM25 / vector, rank before and after reranking) for hybrid and rerank configs,
    recomputed for this one question from the run's index; a caption says why when they cannot be."""
    if question is None or not has_stages(params):
        return {}
    try:
        stages = engine.question_stages(run, params, question, list(chunk_ids))
    except LabError as error:
        st.caption(f"Stages not shown: {error}")
        return {}
    return {s.chunk_id: s for s in stages}


def stage_text(stages) -> str:
    if stages is None:
        return ""
    text = f" · found by **{stages.found_by}** ({', '.join(f'{kind} #{rank}' for kind, rank in stages.found_in)})"
    if stages.rank_before is not None:
        text += f" · reranked #{stages.rank_before} → #{stages.rank_after}"
    return text


def why_report(run_id: str, label_file, source: str):
    """The run's miss diagnosis when asked for (it recomputes the candidates on the index), else None."""
    if not st.toggle("Why missed", key="inspect-why", help="the cause of each relevant document a config missed"):
        return None
    try:
        return engine.why_report(run_id, label_file, source)
    except LabError as error:
        st.warning(str(error))
        return None


def hit_counts(rows: pd.DataFrame) -> dict[str, str]:
    """Question id -> "● 3/9 hit · " (configs whose list holds a relevant document, of those run), or
    "○ no relevant label · " for a question the label source marks nothing relevant for."""
    if "hit_rate" not in rows:
        return {}
    counts = (
        rows.assign(hit=rows["hit_rate"] > 0, scored=rows["hit_rate"].notna())
        .groupby("question_id")
        .agg(hit=("hit", "sum"), scored=("scored", "any"), size=("hit", "size"))
    )
    return {
        qid: f"{'●' if hit else '○'} {hit}/{size} hit · " if scored else "○ no relevant label · "
        for qid, hit, scored, size in counts.itertuples()
    }


target = st.session_state.pop("inspect-target", None)  # (run, question, configs) opened from Compare
if target is not None:
    st.session_state["inspect-run"], st.session_state["inspect-question"], st.session_state["inspect-configs"] = target
run_id = widgets.pick_run("inspect-run")
if run_id:
    with widgets.lab_errors("pick another run"):
        label_file, source = widgets.pick_label_source(run_id)
        run = engine.scored_run(run_id, label_file, source)
        questions = run.questions_by_id
        question_ids = list(pd.unique(run.rows["question_id"]))
        hits = hit_counts(run.rows)
        label = {
            qid: (hits.get(qid, "") + (f"{qid}: {questions[qid].question}" if qid in questions else qid))
            for qid in question_ids
        }
        qid = st.selectbox("Question", question_ids, format_func=label.get, key="inspect-question")
        config_params = {c["config_id"]: c for c in run.configs}
        config_ids = list(config_params)
        chosen = st.multiselect(
            "Configurations (2-4)", config_ids, default=config_ids[:2], max_selections=4, key="inspect-configs"
        )
        question = questions.get(qid)
        if question is None:
            st.warning("The question text is not available (its source file has moved); showing ids only.")
        else:
            st.html(f"<p><b>Question:</b> {widgets.highlight(question.question, [])}</p>")
            if question.answers:
                st.html(
                    "<p><b>Gold answer:</b> "
                    + " | ".join(f"<mark>{widgets.highlight(a, [])}</mark>" for a in question.answers)
                    + "</p>"
                )
        relevant = set(question.relevant_ids) if question else set()
        answers = list(question.answers) if question else []
        st.caption(f"Relevance marks and metrics under label source **{source}**.")
        rows = run.rows[(run.rows["question_id"] == qid) & run.rows["config_id"].isin(chosen)].set_index("config_id")
        texts = run.chunk_texts
        metrics = [m for m in quality_metrics(run.rows) if METRICS[m].group != "latency"]
        why = why_report(run_id, label_file, source)
        columns = st.columns(max(1, len(chosen)))
        for column, config_id in zip(columns, chosen):
            if config_id not in rows.index:
                continue
            row = rows.loc[config_id]
            others = set().union(*[set(rows.loc[c, "chunk_ids"]) for c in chosen if c != config_id and c in rows.index])
            with column:
                st.subheader(config_id)
                for miss in why.for_row(qid, config_id) if why is not None else []:
                    st.warning(f"Missed {miss.doc_id}: {CAUSE_NAMES[miss.cause]} ({miss.detail})")
                st.dataframe(
                    pd.DataFrame({"metric": [METRICS[m].label for m in metrics], "value": [row[m] for m in metrics]}),
                    hide_index=True,
                    key=f"metrics-{config_id}",
                )
                if "answer" in row and isinstance(row["answer"], str):
                    st.html(f"<p><b>Answer:</b> {widgets.highlight(row['answer'], answers)}</p>")
                if isinstance(row.get("call_error"), str):  # an external retriever's failed call
                    st.warning(f"The call failed (not scored): {row['call_error']}")
                elif len(row["chunk_ids"]) == 0:
                    st.info("No chunks retrieved.")
                stages = chunk_stages(run, config_params[config_id], question, row["chunk_ids"])
                retrieved = zip(row["chunk_ids"], row["doc_ids"], row["scores"], row_grades(row, relevant))
                for rank, (chunk_id, doc_id, score, grade) in enumerate(retrieved, start=1):
                    mark = f" · {'●' if grade else '○'} {grade_label(grade)}"  # glyphs CJK fonts have (no emoji)
                    only = " · **only here**" if len(chosen) > 1 and chunk_id not in others else ""
                    with st.container(border=True):
                        stage = stage_text(stages.get(chunk_id))
                        st.markdown(f"**{rank}.** score {float(score):.4f}{mark}{only}{stage}")
                        st.code(f"{chunk_id}  ({doc_id})", language=None)
                        if chunk_id in texts:
                            st.html(f"<div>{widgets.highlight(texts[chunk_id], answers)}</div>")
