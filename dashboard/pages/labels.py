"""Labels: generate a question set from an index, judge a run's pooled chunks with an LLM, label them by hand,
and see how far the label sources agree."""

from pathlib import Path

import streamlit as st

from dashboard import engine, widgets
from dashboard.decide_panel import decide_panel
from dashboard.jobs_panel import start_job
from eval.cli.parser import LABEL_LLM_HELP
from eval.data.labels import load_labels
from eval.errors import LabError
from eval.generation.generators import SMOKE_TEST_WARNING
from eval.labels.agreement import agreement, grade_by_length, leaderboard_agreement
from eval.labels.pooled_judging import (
    blind_order,
    chunk_judgements,
    labelling_progress,
    pool,
    run_label_file,
    save_judgements,
)

GRADE_BUTTONS = ((0, "0 · not relevant"), (1, "1 · partly relevant"), (2, "2 · answers it"))

st.title("Labels")
st.caption(
    "Relevance metrics need labels. Generate questions from your documents, let an LLM judge the chunks "
    "a run retrieved (each question's pool: every config's top chunks, judged once), add your own "
    "judgements, and check how far the sources agree before trusting a leaderboard."
)


def label_file_for(run, key: str) -> Path | None:
    """The label file beside the run's question set, or one the user names."""

    try:
        path = run_label_file(run)
        st.caption(f"Labels file: `{path}`")
        return path
    except LabError as error:
        st.warning(f"{error}.")
        text = st.text_input("Label file (beside a copy of the question set: `questions.labels.jsonl`)", key=key)
        return Path(text.strip()).expanduser() if text.strip() else None


def label_llm(key: str, label: str) -> str:
    """The LLM of a label job: no default (the bundled 135M model is a smoke test), with that warning beside."""
    llm = st.text_input(label, key=key, placeholder="openai:MODEL@URL", help=LABEL_LLM_HELP)
    st.caption(f":orange[{SMOKE_TEST_WARNING}]")
    return llm.strip()


def generate_tab() -> None:
    index_name = widgets.pick_index("gen-index")
    if not index_name:
        return
    with st.form("generate-form"):
        n = st.number_input("Questions to keep", 1, 5000, 50, key="gen-n")
        llm = label_llm("gen-llm", "LLM")
        language = st.selectbox("Language", ["each chunk's own", "zh", "en"], key="gen-language")
        seed = st.number_input("Seed", 0, 2**31 - 1, 0, key="gen-seed")
        out = st.text_input(
            "Output folder",
            str(engine.home() / "question_sets" / f"{index_name}-generated"),
            key="gen-out",
            help="a new folder, or the folder of an interrupted generation to resume",
        )
        submitted = st.form_submit_button("Generate", type="primary")
    if submitted and not llm:
        st.error("Name the LLM that writes the questions (openai:MODEL@URL, a model folder or a .gguf file).")
    elif submitted:
        command = [
            "questions",
            "generate",
            "--index",
            index_name,
            "--n",
            str(int(n)),
            "--llm",
            llm,
            "--seed",
            str(int(seed)),
            "--out",
            str(Path(out).expanduser()),
        ]
        command += [] if language.startswith("each") else ["--language", language]
        st.session_state.setdefault(widgets.GENERATED, {})[index_name] = str(Path(out).expanduser())
        started(
            start_job(command),
            "The question set will be in `" + out + "`: **Run a sweep** offers it for this index (its "
            "labels have the source `generated`). Run it again with the same folder to resume it.",
        )


def judge_tab() -> None:
    run_id = widgets.pick_run("judge-run")
    if not run_id:
        return
    run = engine.load_run(run_id)
    labels_file = label_file_for(run, "judge-labels")
    with st.form("judge-form"):
        llm = label_llm("judge-llm", "Judge LLM")
        depth = st.number_input("Pool depth (top chunks of every config)", 1, 100, 10, key="judge-depth")
        concurrency = st.number_input("Parallel requests (endpoints)", 1, 64, 1, key="judge-concurrency")
        submitted = st.form_submit_button("Judge the pool", type="primary")
    if submitted and not llm:
        st.error("Name the judge LLM (openai:MODEL@URL, a model folder or a .gguf file).")
    elif submitted and labels_file:
        started(
            start_job(
                [
                    "judge",
                    run_id,
                    "--llm",
                    llm,
                    "--depth",
                    str(int(depth)),
                    "--concurrency",
                    str(int(concurrency)),
                    "--labels",
                    str(labels_file),
                ]
            ),
            "Failed pairs are listed in the job's log; judge again to retry them (the cache keeps the rest).",
        )


def started(job, then: str) -> None:
    st.success(
        f"Job {job.job_id} {job.status}: {job.title} runs in the background (see the sidebar, on any page). {then}"
    )


def labelling_tab(keys: bool) -> None:
    """Label the pool by hand; the buttons take keys only when `keys` (their tab is open)."""
    name = st.text_input("Your name (labels are saved as human:NAME)", key="label-name").strip()
    run_id = widgets.pick_run("label-run")
    if not run_id or not name:
        st.info("Enter your name and pick a run to label its pooled chunks.")
        return
    run = engine.load_run(run_id)
    labels_file = label_file_for(run, "label-labels")
    depth = st.number_input("Pool depth", 1, 100, 5, key="label-depth")
    if not labels_file:
        return
    source = f"human:{name}"
    items = blind_order(pool(run, int(depth)))
    judged = chunk_judgements(labels_file, source)
    done_questions, total_questions, done_chunks = labelling_progress(items, judged, source)
    st.progress(
        done_chunks / max(len(items), 1),
        text=f"{done_questions} of {total_questions} questions labelled · {done_chunks} of {len(items)} chunks",
    )
    skipped = st.session_state.setdefault("label-skipped", set())
    undo = st.session_state.setdefault("label-undo", [])
    pending = [i for i in items if (i.question_id, i.doc_id, i.start, i.end, source) not in judged]
    todo = [i for i in pending if (i.question_id, i.chunk_id) not in skipped] or pending
    if undo and st.button("Undo the last label", shortcut="u" if keys else None, key="label-undo-button"):
        save_judgements(labels_file, [(undo.pop(), None)], source)
        st.rerun()
    if not todo:
        st.success("Every pooled chunk is labelled. See **Agreement** and pick this source on **Compare**.")
        return
    item = todo[0]
    question = run.questions_by_id[item.question_id]
    st.subheader(question.question)
    document = document_chunks(run, item.doc_id)
    title = document[0].metadata.get("title", item.doc_id) if document else item.doc_id
    st.caption(f"Document: {title} · characters {item.start}-{item.end}")
    st.text(item.text)
    with st.expander("Neighbouring chunks of this document"):
        show_neighbours(document, item)
    columns = st.columns(4)
    for column, (grade, label) in zip(columns, GRADE_BUTTONS):
        if column.button(label, shortcut=str(grade) if keys else None, key=f"grade-{grade}", width="stretch"):
            save_judgements(labels_file, [(item, grade)], source)
            undo.append(item)
            st.rerun()
    if columns[3].button("Skip", shortcut="s" if keys else None, key="label-skip", width="stretch"):
        skipped.add((item.question_id, item.chunk_id))
        st.rerun()


def document_chunks(run, doc_id: str) -> list:
    """The chunks of one document in the run's index, in order (empty when the index is gone)."""
    try:
        index = engine.open_index(run.info.index.name)
    except LabError:
        return []
    return sorted(index.chunks(where={"doc_id": doc_id}), key=lambda c: c.start)


def show_neighbours(document: list, item) -> None:
    position = next((n for n, c in enumerate(document) if c.chunk_id == item.chunk_id), None)
    if position is None:
        st.caption("The run's index is gone: neighbours are not available.")
        return
    for offset, label in ((-1, "Before"), (1, "After")):
        if 0 <= position + offset < len(document):
            st.caption(label)
            st.text(document[position + offset].text)


def agreement_tab() -> None:
    run_id = widgets.pick_run("agree-run")
    if not run_id:
        return
    run = engine.load_run(run_id)
    labels_file = label_file_for(run, "agree-labels")
    if not labels_file:
        return
    labels = load_labels(labels_file)
    if len(labels.sources) < 2:
        st.info(f"Only {', '.join(labels.sources) or 'no'} labels so far: judge or label the pool first.")
        return
    left, right = st.columns(2)
    a = left.selectbox("Source A", labels.sources, key="agree-a")
    b = right.selectbox("Source B", [s for s in labels.sources if s != a], key="agree-b")
    depth = st.number_input("Pool depth", 1, 100, 10, key="agree-depth")
    result = agreement(labels, a, b, pool(run, int(depth)))
    st.metric("Weighted kappa (linear)", f"{result.kappa:.3f}", help=result.summary())
    st.caption(result.summary())
    st.dataframe(result.confusion, key="agree-confusion")
    ranking_agreement_view(run, labels, a, b, int(depth))
    st.subheader("Disagreements to review")
    st.dataframe(result.disagreements, hide_index=True, key="agree-disagreements")


def decide_tab(keys: bool) -> None:
    st.caption(
        "Label only what decides: the lab asks for the (question, chunk) pairs that separate the best configs, "
        "a third of them at random, until the choice is settled at 95%. Keys: 0, 1, 2, s (skip), u (undo)."
    )
    run_id = widgets.pick_run("decide-run")
    if not run_id:
        return
    labels_file = label_file_for(engine.load_run(run_id), "decide-labels")
    if labels_file:
        decide_panel(run_id, labels_file, keys)


def ranking_agreement_view(run, labels, a: str, b: str, depth: int) -> None:
    """What decides: do the two sources rank the configs alike, better than random labels would?"""
    st.subheader("Do they rank the configs alike?")
    items = pool(run, depth)
    ranking = leaderboard_agreement(run, labels, a, b, items, draws=10)
    tau, baseline, pick = st.columns(3)
    tau.metric(
        "Kendall tau",
        f"{ranking.tau:.3f}",
        help=f"95% bootstrap over questions: {ranking.tau_low:.3f} to {ranking.tau_high:.3f}",
    )
    baseline.metric(
        "Random labels' tau",
        f"{ranking.random_tau:.3f}",
        help=f"{ranking.positives} positive labels placed at random in the pool, 10 times: a tau near it says nothing",
    )
    pick.metric("Same recommendation", "yes" if ranking.same_pick else "no")
    st.caption(ranking.summary())
    st.dataframe(ranking.leaderboards, hide_index=True, key="agree-leaderboards")
    st.subheader("Grades by chunk length")
    st.caption("A judge whose grades follow the chunks' length rather than their content shows it here.")
    st.dataframe(grade_by_length(labels, [a, b], items), hide_index=True, key="agree-length")


# The open tab is tracked so that only its buttons take keys: Streamlit keeps a hidden tab's buttons in the page,
# and their shortcuts fire too (with a name in both labelling tabs, one key press labelled a pair in each).
decide, generate, judge, label, agree = st.tabs(
    ["Decide", "Generate questions", "LLM judge", "Label by hand", "Agreement"], key="labels-tab", on_change="rerun"
)
with decide:
    with widgets.lab_errors("pick another run, or name the label file"):
        decide_tab(keys=decide.open is not False)
with generate:
    with widgets.lab_errors():
        generate_tab()
with judge:
    with widgets.lab_errors():
        judge_tab()
with label:
    with widgets.lab_errors("pick another run, or name the label file"):
        labelling_tab(keys=label.open is not False)
with agree:
    with widgets.lab_errors("judge or label the same run's pool with both sources"):
        agreement_tab()
