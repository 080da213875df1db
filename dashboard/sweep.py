"""Run a sweep: build a grid of retriever configs, start it with progress, cancel and resume."""
import json

import streamlit as st

from dashboard import state
from eval.datasets import load_question_set
from eval.config import RetrieverConfig, SEARCH_TYPES
from eval.errors import LabError
from eval.grid import grid_configs

st.title("Run a sweep")


def progress_callback(bar):
    def progress(stage: str, done: int, total: int) -> None:
        bar.progress(min(done / max(total, 1), 1.0), text=f"{stage}: {done}/{total}")
    return progress


def answer_streamer():
    """Show the answer being generated, token by token, under its question and configuration."""
    heading, answer = st.empty(), st.empty()

    def on_answer(question_id: str, config_id: str, text: str) -> None:
        heading.caption(f"Generating · question {question_id} · {config_id}")
        answer.text(text)
    return on_answer


def execute(index_name, configs, questions, source, latency_sample, resume=None, generation=None):
    from eval.diagnostics import run_warnings
    from eval.sweep import SweepCancelled, SweepOptions, run_sweep

    store = state.run_store()
    started: list[str] = []  # this session's run, once run_sweep has created (or resumed) it
    bar = st.progress(0.0, text="starting…")
    st.button("Cancel", key="cancel-sweep", help="stops after the current step; resume it below")
    options = SweepOptions(progress=progress_callback(bar), latency_sample=int(latency_sample),
                           on_start=started.append)
    if generation is not None:
        options.answerer = state.answerer(**generation)
        options.on_answer = answer_streamer()
    try:
        index = state.open_index(index_name)
        run_id = run_sweep(store, index, configs, questions, source, options, resume=resume)
    except SweepCancelled as error:
        st.warning(str(error))
        return
    except LabError:
        raise
    except BaseException:
        # a click elsewhere (e.g. Cancel) stops the script: the finished blocks stay; show this run as cancelled
        for run_id in started:
            store.update(run_id, status="cancelled")
        raise
    bar.progress(1.0, text="done")
    st.session_state["last-run"] = run_id
    st.success(f"Run {run_id} complete: {len(configs)} configs × {len(questions)} questions.")
    st.page_link("dashboard/compare.py", label="Open Compare to see the leaderboard", icon=":material/leaderboard:")
    for warning in run_warnings(store.load(run_id, scores_only=True)):
        st.warning(warning)


index_name = state.pick_index("sweep-index")
with state.lab_errors("check the path or the uploaded file"):
    question_path = state.dataset_source("sweep-questions")

st.subheader("Grid")
search_types = st.multiselect("Search types", list(SEARCH_TYPES), default=list(SEARCH_TYPES), key="grid-types")
c1, c2, c3, c4 = st.columns(4)
ks_text = c1.text_input("k values", "3, 5, 10", key="grid-k")
fetch_text = c2.text_input("fetch_k values (mmr)", "20, 50", key="grid-fetch")
lambda_text = c3.text_input("lambda_mult values (mmr)", "0.25, 0.5, 0.75", key="grid-lambda")
threshold_seed = state.threshold_grid(index_name, question_path)
if threshold_seed and st.session_state.get("grid-threshold-seed") != threshold_seed:  # a new index or question set
    st.session_state["grid-threshold-seed"] = threshold_seed
    st.session_state["grid-threshold"] = ", ".join(f"{v:g}" for v in threshold_seed[0])
st.session_state.setdefault("grid-threshold", "0.5, 0.7")
threshold_text = c4.text_input("score_threshold values", key="grid-threshold",
                               help=f"Seeded {threshold_seed[1]}" if threshold_seed else None)
if threshold_seed:
    c4.caption(f"Seeded {threshold_seed[1]}.")
filter_text = st.text_area("Metadata filter (JSON, optional)", "", key="grid-filter",
                           placeholder='{"lang": "zh"}')
c5, c6 = st.columns(2)
limit = c5.number_input("Questions to use (0 = all)", min_value=0, value=0, key="grid-limit")
latency_sample = c6.number_input("Latency sample (questions timed through LangChain per config)",
                                 min_value=0, value=20, key="grid-latency")

st.subheader("Generation")
generate = st.toggle("Stream an answer for every row (retrieve, then generate)", key="gen-on")
generation = None
if generate:
    g1, g2, g3, g4 = st.columns(4)
    generation = {
        "spec": g1.text_input("Model", "bundled:smollm2", key="gen-llm",
                              help="bundled:smollm2, a model folder, a .gguf file, or openai:MODEL@URL"),
        "max_new_tokens": int(g2.number_input("max new tokens", 1, 4096, 128, key="gen-max-new")),
        "max_length": int(g2.number_input("max_length (prompt + answer)", 16, 131072, 4096, key="gen-max-len")),
        "top_p": float(g3.slider("top_p", 0.05, 1.0, 1.0, 0.05, key="gen-top-p")),
        "temperature": float(g4.slider("temperature (0 = greedy)", 0.0, 2.0, 0.0, 0.05, key="gen-temp")),
    }
    st.caption("With greedy decoding, rows whose retrieved chunks are identical share one generated answer.")

configs = questions = None
with state.lab_errors("fix the grid values above"):
    filter_obj = None
    if filter_text.strip():
        try:
            filter_obj = json.loads(filter_text)
        except json.JSONDecodeError as error:
            raise LabError(f"the metadata filter is not valid JSON ({error.msg} at line {error.lineno}, "
                           f"column {error.colno})") from None
    configs = grid_configs(search_types, state.parse_list(ks_text, int, "k"),
                           state.parse_list(fetch_text, int, "fetch_k") if "mmr" in search_types else [],
                           state.parse_list(lambda_text, float, "lambda_mult") if "mmr" in search_types else [],
                           state.parse_list(threshold_text, float, "score_threshold")
                           if "similarity_score_threshold" in search_types else [], filter_obj)
with state.lab_errors("fix the question set (see the Question sets page)"):
    if question_path is not None:
        questions = load_question_set(question_path)
        if limit:
            questions = questions[:int(limit)]

if configs is not None:
    n_questions = len(questions) if questions else 0
    st.info(f"**{len(configs)} configurations** × **{n_questions} questions** = "
            f"**{len(configs) * n_questions} rows**; latency timed on "
            f"{min(int(latency_sample), n_questions)} questions per config.")
    with st.expander("Configurations"):
        st.dataframe([{"config_id": c.config_id, **c.params()} for c in configs], key="grid-configs")

if st.button("Start sweep", type="primary", disabled=not (configs and questions and index_name), key="start"):
    with state.lab_errors("fix the problem above and start again"):
        execute(index_name, configs, questions, str(question_path), latency_sample, generation=generation)

# ---------------------------------------------------------------- resume
st.header("Unfinished runs")
unfinished = [m for m in state.run_store().manifests() if m.status in ("cancelled", "interrupted", "running")]
if not unfinished:
    st.caption("None: cancelled or interrupted runs appear here and can be resumed.")
for manifest in unfinished:
    run_id = manifest.run_id
    c1, c2 = st.columns([4, 1])
    c1.write(state.run_label(manifest))
    if c2.button("Resume", key=f"resume-{run_id}"):
        with state.lab_errors("the question source or index is gone: start a new run instead"):
            wanted = state.run_store().load(run_id).questions
            run_configs = [RetrieverConfig.from_params({k: v for k, v in c.items() if k != "config_id"})
                           for c in manifest.configs]
            execute(manifest.index.name, run_configs, wanted, manifest.questions.source, manifest.latency_sample,
                    resume=run_id)
