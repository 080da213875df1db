"""The Labels page's Decide tab: grade the pairs the lab asks for (blind: no config is named while you label)
until the choice of a config is settled, with each config's bounds and estimate after every label."""

from pathlib import Path

import streamlit as st

from dashboard import engine
from dashboard.widgets import keeping_errors
from eval.labels.decide import ORDERS, RULES, Decision, decision_text
from eval.labels.decide_session import DecideSession

GRADES = ((0, "0 · not relevant"), (1, "1 · partly relevant"), (2, "2 · answers it"))
ERROR_KEY = "decide-error"  # a button's error, shown on the next render


def decide_panel(run_id: str, labels_file: Path, keys: bool) -> None:
    """The Decide tab below its run and label file; its buttons take keys 0, 1, 2, s and u only when `keys`
    (the tab is open: a hidden tab's shortcuts fire too)."""
    name = st.text_input("Your name (your Decide labels are saved as human:NAME)", key="decide-name").strip()
    left, right = st.columns(2)
    rule = left.selectbox(
        "Rule",
        RULES,
        key="decide-rule",
        help="pick: a config within 0.02 nDCG of the best at 95%; tie-set: the best and the configs a paired "
        "test cannot tell apart from it (needs many more labels)",
    )
    order = right.selectbox("Order", ORDERS, key="decide-order", help="active (the default) asks fewest labels")
    judges = [s for s in engine.label_sources(run_id)[1] if s.startswith("llm:") and " " not in s]
    judge = st.selectbox(
        "Automatic judge (optional)",
        [None, *judges],
        format_func=lambda s: "none" if s is None else s,
        key="decide-judge",
        help="an LLM judge's labels of the pool: its grades inform the chance that an unjudged pair "
        "is relevant, weighed by how well they match your labels (it never labels for you)",
    )
    if not name:
        st.info("Enter your name to start: the lab asks for the labels that decide, one at a time.")
        return
    session = session_for(run_id, labels_file, name, rule, order, judge)
    decision = session.decision()
    show_status(decision)
    st.caption(session.judged_text()[:1].upper() + session.judged_text()[1:])
    if not decision.settled:
        ask(session, keys)
    show_configs(decision)


def session_for(run_id: str, labels_file: Path, name: str, rule: str, order: str, judge: str | None) -> DecideSession:
    """One session per (run, label file, name, rule, order, judge), kept across reruns."""
    key = ("decide-session", run_id, str(labels_file), name, rule, order, judge)
    if key not in st.session_state:
        st.session_state[key] = DecideSession(
            engine.load_run(run_id), labels_file, name, rule=rule, order=order, judge=judge
        )
    return st.session_state[key]


def show_status(decision: Decision) -> None:
    text = decision_text(decision)
    if decision.settled:
        st.success(text[:1].upper() + text[1:])
    else:
        st.info(text[:1].upper() + text[1:])


def ask(session: DecideSession, keys: bool) -> None:
    if error := st.session_state.pop(ERROR_KEY, None):
        st.error(f"{error}\n\n**What to do:** fix the file it names, or skip this pair (s).")
    current = session.current()
    if current is None:
        st.warning("Every pair of the pool is judged or skipped: undo a skip to go on.")
    else:
        item, _ = current
        st.subheader(session.run.questions_by_id[item.question_id].question)
        st.caption(f"Document {item.doc_id} · characters {item.start}-{item.end}")
        st.text(item.text)
        columns = st.columns(5)
        for column, (grade, label) in zip(columns, GRADES):
            column.button(
                label,
                shortcut=str(grade) if keys else None,
                key=f"decide-{grade}",
                width="stretch",
                on_click=keeping_errors(session.answer, ERROR_KEY),
                args=(grade,),
            )
        columns[3].button(
            "Skip",
            shortcut="s" if keys else None,
            key="decide-skip",
            width="stretch",
            on_click=keeping_errors(session.skip, ERROR_KEY),
        )
    st.button(
        "Undo",
        shortcut="u" if keys else None,
        key="decide-undo",
        on_click=keeping_errors(session.undo, ERROR_KEY),
        disabled=not session.log["picks"],
    )


def show_configs(decision: Decision) -> None:
    table = decision.table.rename(
        columns={
            "config_id": "Config",
            "lower": "Lowest possible",
            "upper": "Highest possible",
            "estimate": "nDCG estimate",
            "low": "95% low",
            "high": "95% high",
            "probability": "P(within 0.02 of the best)",
            "in_tie_set": "P(in the tie set)",
        }
    )
    with st.expander("Every config so far (bounds: unjudged pairs at their worst and best)", expanded=decision.settled):
        st.dataframe(table.sort_values("nDCG estimate", ascending=False), hide_index=True, key="decide-table")
