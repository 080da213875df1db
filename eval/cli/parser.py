"""The CLI's argument parser. Each command names its handler as "module:function" in one of the command-group
modules (`eval.cli.index`, `.sweep`, `.runs`, `.labels`, `.why`, `.family`, `.jobs`); `handler_of` imports that module
when the command runs, so that `python -m eval jobs list` does not load chromadb, LangChain and pandas."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eval.cli.progress import ProgressBar
from eval.settings import DEFAULT_EMBEDDING, DEFAULT_NEAR_DUPLICATE, EMBEDDING_HELP, lab_home

WEIGHTED_HELP = (
    "weighted means and intervals: each question counts by its weight (for imported questions, how often it was "
    "asked); default: each question once"
)
LABEL_LLM_HELP = (
    "openai:MODEL@URL, a model folder or a .gguf file (no default: bundled:smollm2-smoke-test is a 135M model "
    "for smoke tests only and makes no usable labels)"
)
MAX_FAILURES_HELP = "stop as failed after this many failures in a row (default 10; 0: never stop)"


def handler_of(args: argparse.Namespace) -> Callable[[argparse.Namespace], int | None]:
    """The function that runs the parsed command (an int it returns is the exit code)."""
    module, _, name = args.handler.partition(":")
    return getattr(importlib.import_module(module), name)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description="Retriever Lab: compare retriever configs.")
    parser.add_argument(
        "--home", type=Path, default=lab_home(), help="data folder (indexes, runs, model cache); env RETRIEVER_LAB_HOME"
    )
    parser.add_argument("--indexes", type=Path, help="indexes folder (default HOME/indexes)")
    parser.add_argument("--chroma-host", help="use a Chroma server instead of local folders")
    parser.add_argument("--chroma-port", type=int)
    parser.set_defaults(progress_bar=ProgressBar)  # a job's process (eval.cli.jobs) sets its own
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="build, list, show or delete indexes")
    index_commands = index.add_subparsers(dest="index_command", required=True)
    build = index_commands.add_parser("build", help="chunk, embed and store a corpus")
    build.add_argument(
        "--corpus",
        required=True,
        type=Path,
        help="dataset folder, corpus.jsonl, SQuAD .json, BEIR folder, or .txt/.md/.pdf files",
    )
    build.add_argument("--name", required=True)
    build.add_argument("--format", default="auto", choices=["auto", "native", "squad", "beir", "docs"])
    build.add_argument("--language", help="pick corpus_LANG.jsonl in a folder with several")
    build.add_argument("--embedding", default=DEFAULT_EMBEDDING, help=EMBEDDING_HELP)
    build.add_argument("--chunk-size", type=int, default=500)
    build.add_argument("--chunk-overlap", type=int, default=50)
    build.add_argument("--replace", action="store_true", help="replace an index of that name built from other inputs")
    build.set_defaults(handler="eval.cli.index:cmd_index_build")
    add_family_commands(commands, index_commands)
    index_commands.add_parser("list").set_defaults(handler="eval.cli.index:cmd_index_list")
    for name, handler in (("show", "eval.cli.index:cmd_index_show"), ("delete", "eval.cli.index:cmd_index_delete")):
        sub = index_commands.add_parser(name)
        sub.add_argument("name")
        sub.set_defaults(handler=handler)

    retrieve = commands.add_parser("retrieve", help="run one question through the LangChain retriever")
    retrieve.add_argument("--index", required=True)
    retrieve.add_argument("--question", required=True)
    retrieve.add_argument("--search-type", default="similarity")
    retrieve.add_argument("--k", type=int, default=4)
    retrieve.add_argument("--fetch-k", type=int)
    retrieve.add_argument("--lambda-mult", type=float)
    retrieve.add_argument("--score-threshold", type=float)
    retrieve.add_argument("--filter", help="metadata filter as JSON")
    retrieve.set_defaults(handler="eval.cli.index:cmd_retrieve")

    run = commands.add_parser("run", help="run a question set through a sweep of retriever configs")
    run.add_argument("--index", required=True)
    run.add_argument("--questions", required=True, type=Path, help="questions.jsonl/.csv or a dataset folder")
    run.add_argument("--sweep", type=Path, help="sweep spec YAML (default: an 11-config grid)")
    run.add_argument("--limit", type=int, help="only the first N questions")
    run.add_argument("--reference", action="store_true", help="use the LangChain retriever path")
    run.add_argument("--latency-sample", type=int, default=50, help="questions timed per config (0: none)")
    run.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run")
    run.add_argument(
        "--ragas", action="store_true", help="also score rows with ragas' ID-based and non-LLM context metrics (slower)"
    )
    generate = run.add_mutually_exclusive_group()
    generate.add_argument("--generate", action="store_true", help="stream an answer for every row")
    generate.add_argument("--no-generate", action="store_true", help="retrieval only (the default)")
    run.add_argument(
        "--llm",
        default="bundled:smollm2",
        help="bundled:smollm2, a model folder, a .gguf file, a hub id, or openai:MODEL@URL",
    )
    run.add_argument("--max-new-tokens", type=int, default=128)
    run.add_argument("--max-length", type=int, default=4096, help="cap on prompt + answer tokens")
    run.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (answers are then reused)")
    run.add_argument("--top-p", type=float, default=1.0)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--prompt-template", type=Path, help="a text file with {context} and {question}")
    run.add_argument("--language", choices=["zh", "en"], help="prompt language (default: per question)")
    run.add_argument(
        "--concurrency",
        type=int,
        help="parallel requests to external retrievers (default 4) and to an openai: endpoint "
        "(default 1; answers are then not streamed)",
    )
    run.add_argument(
        "--judge",
        metavar="openai:MODEL@URL",
        help="ragas LLM-judged metrics (faithfulness, context precision, answer relevancy)",
    )
    run.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="allow a model's own Python code (ChatGLM2/3); only for models you trust",
    )
    run.add_argument("--weighted", action="store_true", help=WEIGHTED_HELP)
    run.add_argument(
        "--race",
        action="store_true",
        help="run questions in blocks and stop a config once it is significantly worse than another "
        "(family-wise error 5%%), so answers and judging go to the contenders",
    )
    run.add_argument("--race-block", type=int, default=20, help="questions per racing block (default 20)")
    run.set_defaults(handler="eval.cli.sweep:cmd_run")

    export = commands.add_parser("export", help="export a run")
    export.add_argument("run_id")
    export.add_argument("--format", required=True, choices=["csv", "jsonl", "parquet", "trec"])
    export.add_argument("--out", required=True, type=Path)
    label_options(export, "the relevance metrics and chunk grades under this label source (default: the run's own)")
    export.set_defaults(handler="eval.cli.runs:cmd_export")

    commands.add_parser("sample", help="build the sample index and an example run").set_defaults(
        handler="eval.cli.index:cmd_sample"
    )

    runs = commands.add_parser("runs", help="list, show or delete runs")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True)
    runs_commands.add_parser("list").set_defaults(handler="eval.cli.runs:cmd_runs_list")
    for name, handler in (("show", "eval.cli.runs:cmd_runs_show"), ("delete", "eval.cli.runs:cmd_runs_delete")):
        sub = runs_commands.add_parser(name)
        sub.add_argument("run_id")
        sub.set_defaults(handler=handler)
    compare = runs_commands.add_parser("compare", help="two runs side by side, config by config")
    compare.add_argument("first")
    compare.add_argument("second")
    compare.add_argument(
        "--metric", action="append", help="a metric to show (repeatable; default: the ranking metric, e.g. ndcg)"
    )
    compare.set_defaults(handler="eval.cli.runs:cmd_runs_compare")

    gate = commands.add_parser(
        "gate",
        help="fail (exit 1) when a candidate run is significantly worse than a baseline; or write a baseline file",
    )
    source = gate.add_mutually_exclusive_group(required=True)
    source.add_argument("--baseline", metavar="RUN_OR_FILE", help="a run id or a baseline file")
    source.add_argument("--write-baseline", metavar="RUN", help="write RUN's per-question values to --out")
    gate.add_argument("--candidate", metavar="RUN")
    gate.add_argument("--config", help="the baseline's config (default: the run's only one, or the file's)")
    gate.add_argument(
        "--candidate-config",
        help="the candidate's config (default: the baseline's config id, else the candidate's only config)",
    )
    gate.add_argument("--metric", required=True, help="a catalogue metric, optionally at a cutoff: ndcg@10")
    gate.add_argument("--max-drop", type=float, default=0.01, help="tolerated drop of the mean")
    gate.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired test")
    gate.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    gate.add_argument("--out", type=Path, help="the baseline file --write-baseline writes")
    label_options(gate, "score the runs under this label source (default: the runs' own gold scores)")
    gate.set_defaults(handler="eval.cli.runs:cmd_gate")

    plan = commands.add_parser(
        "plan", help="questions needed to detect a difference, and the smallest difference a run could detect"
    )
    plan.add_argument("run_id")
    plan.add_argument("--delta", type=float, default=0.02, help="the difference to detect (default 0.02)")
    plan.add_argument("--metric", help="default: the ranking metric (e.g. ndcg)")
    plan.add_argument("--json", action="store_true", help="print JSON (questions_needed, detectable_delta, per config)")
    plan.set_defaults(handler="eval.cli.plan:cmd_plan")

    calibrate = commands.add_parser(
        "calibrate",
        help="how relevance scores fall on an index for labelled questions, and the lowest score_threshold whose "
        "kept chunks reach a precision target with 95%% confidence",
    )
    calibrate.add_argument("--index", required=True)
    calibrate.add_argument("--questions", required=True, type=Path, help="the question set (gold: its relevant_ids)")
    calibrate.add_argument("--precision", type=float, default=0.8, help="the precision target (default 0.8)")
    calibrate.add_argument(
        "--held-out",
        help="the guarantee is on the precision of this many new questions (default: as many as judged), or "
        "'all' for the precision over all questions like these",
    )
    relevant_ids = "judge candidates under this label source (default: the question set's relevant_ids)"
    label_options(calibrate, relevant_ids, beside="--questions")
    calibrate.add_argument("--sample", type=int, default=100, help="questions sampled")
    calibrate.add_argument("--top-n", type=int, default=20, help="candidates per question")
    calibrate.add_argument("--seed", type=int, default=0)
    calibrate.add_argument("--json", action="store_true")
    calibrate.set_defaults(handler="eval.cli.plan:cmd_calibrate")

    report = commands.add_parser("report", help="write a run's report (or a two-run comparison)")
    report.add_argument("run_id")
    report.add_argument("--compare", metavar="OTHER_RUN", help="write the comparison of the two runs (HTML)")
    report.add_argument("--format", choices=["html", "md"], default="html")
    report.add_argument("--out", required=True, type=Path)
    label_options(report, "rank and mark relevance under this label source (default: the run's own gold scores)")
    report.add_argument("--weighted", action="store_true", help=WEIGHTED_HELP)
    report.set_defaults(handler="eval.cli.runs:cmd_report")

    why = commands.add_parser("why", help="why each config missed relevant documents, and what-ifs that recover them")
    why.add_argument("run_id")
    why.add_argument("--config", action="append", help="a config id to diagnose (repeatable; default: all)")
    label_options(why, "the label source that says what is relevant", default="gold")
    why.add_argument("--json", action="store_true", help="per config id: misses and their count per cause")
    why.set_defaults(handler="eval.cli.why:cmd_why")

    rescore_parser = commands.add_parser("rescore", help="a run's metrics under another label source")
    rescore_parser.add_argument("run_id")
    label_options(rescore_parser, "the label source to score under", default="gold")
    rescore_parser.add_argument("--metric", action="append", help="a relevance metric, optionally @k (repeatable)")
    rescore_parser.add_argument("--weighted", action="store_true", help=WEIGHTED_HELP)
    rescore_parser.set_defaults(handler="eval.cli.labels:cmd_rescore")

    questions = commands.add_parser(
        "questions", help="generate a question set from an index's chunks, or import real questions"
    )
    questions_commands = questions.add_subparsers(dest="questions_command", required=True)
    generate_parser = questions_commands.add_parser("generate", help="ask an LLM for questions the chunks answer")
    generate_parser.add_argument("--index", required=True)
    generate_parser.add_argument("--n", type=int, default=200, help="questions to keep")
    generate_parser.add_argument("--llm", required=True, help=LABEL_LLM_HELP)
    generate_parser.add_argument("--max-failures", type=int, default=10, help=MAX_FAILURES_HELP)
    generate_parser.add_argument("--language", choices=["zh", "en"], help="default: each chunk's own language")
    generate_parser.add_argument("--seed", type=int, default=0)
    generate_parser.add_argument("--out", required=True, type=Path, help="a new folder (or one to resume)")
    generate_parser.add_argument("--trust-remote-code", action="store_true")
    generate_parser.set_defaults(handler="eval.cli.labels:cmd_questions_generate")
    add_import_command(questions_commands)

    judge_parser = commands.add_parser("judge", help="LLM relevance judgements of a run's pooled chunks")
    judge_parser.add_argument("run_id")
    judge_parser.add_argument("--llm", required=True, help=LABEL_LLM_HELP)
    judge_parser.add_argument("--max-failures", type=int, default=10, help=MAX_FAILURES_HELP)
    judge_parser.add_argument("--depth", type=int, default=10, help="pool each config's top DEPTH chunks")
    judge_parser.add_argument("--concurrency", type=int, default=1, help="parallel requests to an endpoint")
    judge_parser.add_argument("--labels", type=Path, help="label file (default: beside the run's question set)")
    judge_parser.add_argument(
        "--abstain-below",
        type=float,
        default=0.0,
        help="with a model that gives token probabilities, leave a pair ungraded when its grade's confidence "
        "(its share of the grade tokens' probability) is below this (e.g. 0.6)",
    )
    judge_parser.add_argument("--trust-remote-code", action="store_true")
    judge_parser.set_defaults(handler="eval.cli.labels:cmd_judge")

    agree = commands.add_parser("agreement", help="kappa and disagreements of two label sources on a run's pool")
    agree.add_argument("run_id")
    agree.add_argument("--labels", required=True, type=Path, help="label file or question set")
    agree.add_argument("--a", required=True, help="first source, e.g. gold")
    agree.add_argument("--b", required=True, help="second source, e.g. llm:MODEL@judge-v1")
    agree.add_argument("--depth", type=int, default=10)
    agree.add_argument("--show", type=int, default=20, help="disagreements to list")
    agree.add_argument("--metric", default="ndcg", help="the metric of the two leaderboards (default ndcg)")
    agree.add_argument("--draws", type=int, default=20, help="random label placements of the baseline tau")
    agree.add_argument("--llm", help="judge a sample of the pool twice with this model (as `judge --llm`): flip rate")
    agree.add_argument("--twice", type=int, default=50, help="pairs judged twice with --llm")
    agree.set_defaults(handler="eval.cli.labels:cmd_agreement")

    add_decide_command(commands)
    corrected = commands.add_parser(
        "corrected", help="an automatic judge's metrics corrected by a person's random sample of questions (PPI)"
    )
    corrected.add_argument("run_id")
    corrected.add_argument("--judge", required=True, help="the source grading the whole pool, e.g. llm:MODEL@judge-v1")
    corrected.add_argument("--human", required=True, help="the source grading a random sample of questions, human:NAME")
    corrected.add_argument("--labels", type=Path, help="label file (default: beside the run's question set)")
    corrected.add_argument("--metric", default="ndcg", help="a relevance metric, optionally @k (default ndcg)")
    corrected.add_argument("--json", action="store_true", help="print one JSON object")
    corrected.set_defaults(handler="eval.cli.labels:cmd_corrected")

    jobs = commands.add_parser("jobs", help="background jobs (index builds and sweeps the dashboard started)")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    jobs_commands.add_parser("list").set_defaults(handler="eval.cli.jobs:cmd_jobs_list")
    for name, handler in (
        ("show", "eval.cli.jobs:cmd_jobs_show"),
        ("cancel", "eval.cli.jobs:cmd_jobs_cancel"),
        ("resume", "eval.cli.jobs:cmd_jobs_resume"),
        ("wait", "eval.cli.jobs:cmd_jobs_wait"),
    ):
        sub = jobs_commands.add_parser(name)
        sub.add_argument("job_id")
        sub.set_defaults(handler=handler)
    start = jobs_commands.add_parser(
        "start",
        help="run `index build|family ...`, `run ...`, `run-family ...`, "
        "`questions generate ...` or `judge ...` as a background job",
    )
    start.add_argument("job_command", nargs=argparse.REMAINDER, help="the command, e.g. run --index NAME ...")
    start.set_defaults(handler="eval.cli.jobs:cmd_jobs_start")
    return parser


def label_options(
    parser: argparse.ArgumentParser, what: str, default: str | None = None, beside: str = "the run's question set"
) -> None:
    """`--labels FILE` and `--source NAME`: the one label source a command scores, ranks and marks under."""
    parser.add_argument(
        "--labels",
        type=Path,
        help=f"a label file, or the question set (file or folder) whose labels to use (default: the labels "
        f"beside {beside})",
    )
    parser.add_argument(
        "--source",
        default=default,
        help=f'{what}: gold, generated, llm:MODEL@VERSION, human:NAME or "JUDGE corrected by human:NAME"',
    )


def add_decide_command(commands: Any) -> None:
    """Add `decide` (eval.cli.labels) to the CLI's parsers."""
    decide = commands.add_parser("decide", help="label the pairs that settle the choice of a config, until settled")
    decide.add_argument("run_id")
    decide.add_argument("--labels", type=Path, help="label file (default: beside the run's question set)")
    decide.add_argument("--name", default="me", help="your labels are saved as human:NAME (default: me)")
    decide.add_argument(
        "--rule",
        choices=["pick", "tie-set"],
        default="pick",
        help="pick: a config within --epsilon of the best at 95%%; tie-set: the best and the configs a paired "
        "test cannot tell apart from it",
    )
    decide.add_argument("--epsilon", type=float, default=0.02, help="nDCG a pick may be below the best")
    decide.add_argument("--budget", type=int, help="stop after N labels")
    decide.add_argument("--oracle", metavar="SOURCE", help="answer from this existing label source, not a person")
    decide.add_argument(
        "--judge",
        metavar="SOURCE",
        help="an automatic judge's label source (llm:MODEL@VERSION): its grades inform the chance that an "
        "unjudged pair is relevant, weighed by how well they match your labels",
    )
    decide.add_argument("--order", choices=["active", "random", "questions"], default="active")
    decide.add_argument("--seed", type=int, default=0)
    decide.add_argument("--json", action="store_true", help="print the decision as one JSON object")
    decide.set_defaults(handler="eval.cli.labels:cmd_decide")


def add_import_command(questions_commands: Any) -> None:
    """Add `questions import` (eval.cli.questions) to the CLI's parsers."""
    parser = questions_commands.add_parser(
        "import",
        help="real questions (a list, or a Dify, RAGFlow or Langchain-Chatchat log) as a question set: "
        "de-duplicated, each weighted by how many lines it stands for",
    )
    parser.add_argument("files", nargs="+", type=Path, help=".txt, .csv, .jsonl/.json, Chatchat's info.db or .md")
    parser.add_argument("--out", required=True, type=Path, help="a new folder for questions.jsonl")
    parser.add_argument(
        "--format", default="auto", help="auto (from the content), txt, csv, jsonl, dify, ragflow, chatchat"
    )
    parser.add_argument("--column", help="the CSV column of the questions (default: question, query or 问题)")
    parser.add_argument("--field", help="the JSON field of the questions, dotted if nested (default as --column)")
    parser.add_argument(
        "--near-duplicate",
        default=str(DEFAULT_NEAR_DUPLICATE),
        metavar="COSINE",
        help=f"merge questions whose embeddings' cosine is at least this (default {DEFAULT_NEAR_DUPLICATE}), or off",
    )
    parser.add_argument("--encoder", help=f"the encoder that compares questions (default {DEFAULT_EMBEDDING})")
    parser.add_argument(
        "--index",
        help="the index the questions are for: its encoder compares them, and its documents are written beside "
        "them (corpus.jsonl) so that they can be labelled",
    )
    parser.set_defaults(handler="eval.cli.questions:cmd_questions_import")


def add_family_commands(commands: Any, index_commands: Any) -> None:
    """Add `index family` and `run-family` to the CLI's parsers."""
    family = index_commands.add_parser(
        "family",
        help="build one corpus under a grid of chunkings x embedding "
        "models (one index per variant, named NAME--VARIANT)",
    )
    family.add_argument("--corpus", required=True, type=Path)
    family.add_argument("--name", required=True, help="the family name (the prefix of its index names)")
    family.add_argument("--format", default="auto", choices=["auto", "native", "squad", "beir", "docs"])
    family.add_argument("--language", help="pick corpus_LANG.jsonl in a folder with several")
    family.add_argument("--chunk-size", type=int, nargs="+", default=[500])
    family.add_argument("--chunk-overlap", type=int, nargs="+", default=[50])
    family.add_argument("--splitter", nargs="+", default=["recursive"], help="recursive and/or sentence")
    family.add_argument("--embedding", nargs="+", default=[DEFAULT_EMBEDDING], help=EMBEDDING_HELP)
    family.add_argument("--replace", action="store_true")
    family.set_defaults(handler="eval.cli.family:cmd_index_family")

    run = commands.add_parser(
        "run-family",
        help="sweep several indexes of one corpus with one retriever grid, scored against the same (span) labels",
    )
    run.add_argument("--index", required=True, nargs="+", help="index names (same corpus)")
    run.add_argument("--questions", required=True, type=Path, help="questions file or dataset folder")
    run.add_argument("--sweep", type=Path, help="sweep spec YAML (default: an 11-config grid)")
    run.add_argument("--limit", type=int, help="only the first N questions")
    run.add_argument("--latency-sample", type=int, default=0, help="questions timed per config and index")
    run.add_argument("--labels-source", default="gold", help="gold, generated, llm:..., human:...")
    run.add_argument("--metric", default="passage_ndcg", help="the metric that ranks (index, config) pairs")
    run.add_argument("--top", type=int, default=10, help="rows of the leaderboard printed")
    run.add_argument(
        "--resume",
        metavar="ID",
        help="continue an interrupted family sweep (same arguments): its family id, or the id of one of its runs",
    )
    run.set_defaults(handler="eval.cli.family:cmd_run_family")
