"""Run a sweep: build a grid of retriever configs, start it with progress, cancel and resume."""

import json

import streamlit as st

from dashboard import engine, widgets
from dashboard.jobs_panel import ACTIVE, job_store, start_job, watch_sweep_job
from eval.data.datasets import load_question_set
from eval.errors import LabError
from eval.index.bm25 import TOKENIZERS
from eval.retrievers.grid import RERANK_BASES, bm25_entry, grid_configs, hybrid_entry, rerank_base, rerank_entry
from eval.retrievers.registry import config_from_params
from eval.retrievers.vector import SEARCH_TYPES

st.title("Run a sweep")


def sweep_command(
    index_name: str,
    configs,
    question_source: str,
    latency_sample: int,
    limit: int = 0,
    generation: dict | None = None,
    resume: str | None = None,
) -> list[str]:
    """The CLI command (`python -m eval run ...`) that runs this sweep as a background job."""
    spec = json.dumps({"configs": [c.params() for c in configs]}, ensure_ascii=False).encode()  # JSON is YAML
    command = [
        "run",
        "--index",
        index_name,
        "--questions",
        question_source,
        "--sweep",
        str(job_store().save_input("sweep.yaml", spec)),
        "--latency-sample",
        str(int(latency_sample)),
    ]
    command += ["--limit", str(int(limit))] if limit else []
    if generation is not None:
        command += [
            "--generate",
            "--llm",
            generation["spec"].strip(),
            "--max-new-tokens",
            str(generation["max_new_tokens"]),
            "--max-length",
            str(generation["max_length"]),
            "--top-p",
            str(generation["top_p"]),
            "--temperature",
            str(generation["temperature"]),
        ]
    return command + (["--resume", resume] if resume else [])


def execute(command: list[str]) -> None:
    """Start the sweep as a job: it runs in its own process, so leaving or reloading the page does not stop it."""
    job = start_job(command)
    st.session_state["sweep-job"] = job.job_id
    st.success(
        f"Sweep job {job.job_id} {job.status}: it runs in the background; follow it here or in the "
        "sidebar, on any page."
    )


index_name = widgets.pick_index("sweep-index")
with widgets.lab_errors("pick the index's question set below"):
    widgets.default_questions("sweep-questions", index_name)
with widgets.lab_errors("check the path or the uploaded file"):
    question_path = widgets.dataset_source("sweep-questions")

st.subheader("Grid")
search_types = st.multiselect("Search types", list(SEARCH_TYPES), default=list(SEARCH_TYPES), key="grid-types")
c1, c2, c3, c4 = st.columns(4)
ks_text = c1.text_input("k values", key=widgets.remembered_text("grid-k", "3, 5, 10"))
fetch_text = c2.text_input("fetch_k values (mmr)", key=widgets.remembered_text("grid-fetch", "20, 50"))
lambda_text = c3.text_input("lambda_mult values (mmr)", key=widgets.remembered_text("grid-lambda", "0.25, 0.5, 0.75"))
threshold_seed = engine.threshold_grid(index_name, question_path)
widgets.remembered_text("grid-threshold", "0.5, 0.7")
seeded = ", ".join(f"{v:g}" for v in threshold_seed[0]) if threshold_seed else None
if threshold_seed and st.session_state.get("grid-threshold-seed") != threshold_seed:  # a new index or question set
    st.session_state["grid-threshold-seed"] = threshold_seed
    widgets.set_remembered("grid-threshold", seeded)
threshold_text = c4.text_input(
    "score_threshold values", key="grid-threshold", help=f"Seeded {threshold_seed[1]}" if threshold_seed else None
)
if threshold_seed and threshold_text == seeded:
    c4.caption(f"Seeded {threshold_seed[1]}.")
elif threshold_seed:
    c4.caption(f"Your values; the seed {threshold_seed[1]} is {seeded}.")
filter_text = st.text_area("Metadata filter (JSON, optional)", "", key="grid-filter", placeholder='{"lang": "zh"}')
with st.expander("BM25, hybrid and rerank configs"):
    h1, h2, h3 = st.columns(3)
    use_bm25 = h1.toggle("BM25", key="grid-bm25")
    use_hybrid = h2.toggle("Hybrid (BM25 + similarity)", key="grid-hybrid")
    use_rerank = h3.toggle("Rerank (cross-encoder)", key="grid-rerank")
    b1, b2 = st.columns(2)
    bm25_k_text = b1.text_input("BM25 k values", "5, 10", key="grid-bm25-k")
    tokenizers = b2.multiselect(
        "BM25 tokenizers",
        list(TOKENIZERS),
        default=["words"],
        key="grid-bm25-tok",
        help="words: lower-cased words (English); jieba: Chinese words; whitespace: LangChain's default text.split()",
    )
    if use_hybrid or use_rerank:
        e1, e2, e3 = st.columns(3)
        weights_text = e1.text_area(
            "Weights (BM25, similarity), one pair per line", "0.3, 0.7\n0.5, 0.5", key="grid-weights"
        )
        vector_k_text = e2.text_input("Hybrid similarity k values", "10", key="grid-hybrid-k")
        c_text = e3.text_input("RRF constant c values", "60", key="grid-c")
    if use_rerank:
        r1, r2, r3, r4 = st.columns([3, 1, 1, 1])
        model_text = r1.text_input(
            "Reranker",
            "",
            key="grid-rerank-model",
            placeholder="/path/to/a/sentence-transformers/CrossEncoder",
            help="a sentence-transformers CrossEncoder folder, or an LLM scoring P(yes): "
            "llm:bundled:smollm2, llm:<model folder or .gguf>, llm:openai:MODEL@URL "
            "(an endpoint that returns logprobs), or a served reranker: tei:URL (Text Embeddings Inference) or "
            "cohere:MODEL@URL (Cohere, Infinity, Jina)",
        )
        base_kind = r2.selectbox("Rerank base", RERANK_BASES, key="grid-rerank-base")
        candidates_text = r3.text_input("Candidates (base k)", "20", key="grid-rerank-k")
        top_n_text = r4.text_input("top_n values", "3, 5", key="grid-rerank-n")
c5, c6 = st.columns(2)
limit = c5.number_input("Questions to use (0 = all)", min_value=0, value=0, key="grid-limit")
latency_sample = c6.number_input(
    "Latency sample (questions timed through LangChain per config)", min_value=0, value=20, key="grid-latency"
)

st.subheader("Generation")
generate = st.toggle("Stream an answer for every row (retrieve, then generate)", key="gen-on")
generation = None
if generate:
    g1, g2, g3, g4 = st.columns(4)
    generation = {
        "spec": g1.text_input(
            "Model",
            "bundled:smollm2",
            key="gen-llm",
            help="bundled:smollm2, a model folder, a .gguf file, or openai:MODEL@URL",
        ),
        "max_new_tokens": int(g2.number_input("max new tokens", 1, 4096, 128, key="gen-max-new")),
        "max_length": int(g2.number_input("max_length (prompt + answer)", 16, 131072, 4096, key="gen-max-len")),
        "top_p": float(g3.slider("top_p", 0.05, 1.0, 1.0, 0.05, key="gen-top-p")),
        "temperature": float(g4.slider("temperature (0 = greedy)", 0.0, 2.0, 0.0, 0.05, key="gen-temp")),
    }
    st.caption("With greedy decoding, rows whose retrieved chunks are identical share one generated answer.")

configs = questions = None
with widgets.lab_errors("fix the grid values above"):
    filter_obj = None
    if filter_text.strip():
        try:
            filter_obj = json.loads(filter_text)
        except json.JSONDecodeError as error:
            raise LabError(
                f"the metadata filter is not valid JSON ({error.msg} at line {error.lineno}, column {error.colno})"
            ) from None
    extra = []  # BM25, hybrid and rerank entries, validated with the vector ones by parse_sweep
    if use_bm25 or use_hybrid:
        bm25 = bm25_entry(widgets.parse_list(bm25_k_text, int, "BM25 k"), tokenizers)
        extra += [bm25] if use_bm25 else []
    if use_hybrid or use_rerank:
        weights = [widgets.parse_list(line, float, "weights") for line in weights_text.splitlines() if line.strip()]
        cs = widgets.parse_list(c_text, int, "c")
        extra += (
            [hybrid_entry(bm25, widgets.parse_list(vector_k_text, int, "hybrid similarity k"), weights, cs)]
            if use_hybrid
            else []
        )
    if use_rerank:
        base = rerank_base(base_kind, widgets.parse_list(candidates_text, int, "candidates"), tokenizers, weights, cs)
        extra.append(rerank_entry(model_text.strip(), base, widgets.parse_list(top_n_text, int, "top_n")))
    configs = grid_configs(
        search_types,
        widgets.parse_list(ks_text, int, "k"),
        widgets.parse_list(fetch_text, int, "fetch_k") if "mmr" in search_types else [],
        widgets.parse_list(lambda_text, float, "lambda_mult") if "mmr" in search_types else [],
        widgets.parse_list(threshold_text, float, "score_threshold")
        if "similarity_score_threshold" in search_types
        else [],
        filter_obj,
        extra,
    )
with widgets.lab_errors("fix the question set (see the Question sets page)"):
    if question_path is not None:
        questions = load_question_set(question_path)
        if limit:
            questions = questions[: int(limit)]

if configs is not None:
    n_questions = len(questions) if questions else 0
    st.info(
        f"**{len(configs)} configurations** × **{n_questions} questions** = "
        f"**{len(configs) * n_questions} rows**; latency timed on "
        f"{min(int(latency_sample), n_questions)} questions per config."
    )
    with st.expander("Configurations"):
        st.dataframe([{"config_id": c.config_id, **c.params()} for c in configs], key="grid-configs")

if st.button("Start sweep", type="primary", disabled=not (configs and questions and index_name), key="start"):
    with widgets.lab_errors("fix the problem above and start again"):
        execute(sweep_command(index_name, configs, str(question_path), latency_sample, limit, generation))
watch_sweep_job()

# ---------------------------------------------------------------- resume
st.header("Unfinished runs")
running_jobs = {j.run_id for j in job_store().list() if j.status in ACTIVE}  # their jobs resume them
unfinished = [
    m
    for m in engine.run_store().manifests()
    if m.status in ("cancelled", "interrupted", "running") and m.run_id not in running_jobs
]
if not unfinished:
    st.caption("None: cancelled or interrupted runs appear here and can be resumed.")
for manifest in unfinished:
    run_id = manifest.run_id
    c1, c2 = st.columns([4, 1])
    c1.write(widgets.run_label(manifest))
    if c2.button("Resume", key=f"resume-{run_id}"):
        with widgets.lab_errors("the question source or index is gone: start a new run instead"):
            run_configs = [config_from_params(c, f"run {run_id}") for c in manifest.configs]
            settings = (manifest.generation or {}).get("settings")
            run_generation = (
                {
                    "spec": manifest.generation["llm"],
                    **{k: settings[k] for k in ("max_new_tokens", "max_length", "top_p", "temperature")},
                }
                if settings
                else None
            )
            execute(
                sweep_command(
                    manifest.index.name,
                    run_configs,
                    manifest.questions.source,
                    manifest.latency_sample,
                    manifest.questions.count,
                    run_generation,
                    resume=run_id,
                )
            )
