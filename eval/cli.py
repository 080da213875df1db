"""The headless CLI: `python -m eval ...`. Bad input exits with code 2 and a one-line message."""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable

from eval import SAMPLE_DIR
from eval.errors import LabError
from eval.settings import DEFAULT_EMBEDDING, EMBEDDING_HELP, lab_home


class ProgressBar:
    """A tqdm bar on stderr driven by (stage, done, total) callbacks; a new stage starts a new bar.

    A command run as a background job gets `eval.jobs.JobProgress` instead (`args.progress_bar`), which also
    brings the job's cancel event and records the run id (`on_start`)."""

    cancel = None  # a threading.Event that stops a sweep at its next safe point
    on_start = None  # told the run id once the run exists

    def __init__(self, description: str) -> None:
        self.description, self.bar, self.stage = description, None, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.bar is None or stage != self.stage:
            from tqdm import tqdm

            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{self.description}: {stage}", unit="item", file=sys.stderr,
                            leave=False)
        self.bar.update(done - self.bar.n)

    def show_answer(self, question_id: str, config_id: str, answer: str) -> None:
        """Stream the current answer's tail beside the bar."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"{question_id} {config_id}: {' '.join(answer.split())[-70:]}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------- commands

def store_from(args: argparse.Namespace):
    from eval.index import IndexStore

    if (args.chroma_host is None) != (args.chroma_port is None):
        raise LabError("give both --chroma-host and --chroma-port to use a Chroma server")
    return IndexStore(args.indexes or args.home / "indexes", args.chroma_host, args.chroma_port, home=args.home)


def cmd_index_build(args: argparse.Namespace) -> None:
    from eval.datasets import load_dataset
    from eval.index import ChunkingParams, slugify

    slugify(args.name)
    chunking = ChunkingParams(args.chunk_size, args.chunk_overlap)
    dataset = load_dataset(args.corpus, args.format, args.language)
    bar = args.progress_bar(f"building {args.name}")
    try:
        manifest = store_from(args).build(dataset, args.name, args.embedding, chunking, args.replace, bar)
    finally:
        bar.close()
    print(f"index '{manifest.name}': {manifest.documents} documents, {manifest.chunks} chunks, "
          f"{manifest.embedding_model}, {manifest.space} space, built in {manifest.build_seconds:.1f} s")
    if manifest.embedding_cache:
        print(f"embedding cache: {manifest.embedding_cache['hits']} texts cached, "
              f"{manifest.embedding_cache['misses']} encoded ({manifest.embedding_cache['hit_rate']:.0%} hits)")


def cmd_index_list(args: argparse.Namespace) -> None:
    manifests = store_from(args).list()
    if not manifests:
        print("no indexes yet: build one with `python -m eval index build --corpus PATH --name NAME`")
    for m in manifests:
        print(f"{m.name}\t{m.documents} docs\t{m.chunks} chunks\t{m.embedding_model}\t"
              f"chunk {m.chunk_size}/{m.chunk_overlap}\t{m.created_at}")


def cmd_index_show(args: argparse.Namespace) -> None:
    print(store_from(args).manifest(args.name).to_json())


def cmd_index_delete(args: argparse.Namespace) -> None:
    store_from(args).delete(args.name)
    print(f"deleted index '{args.name}'")


def cmd_retrieve(args: argparse.Namespace) -> None:
    from eval.config import RetrieverConfig
    from eval.retrieval import langchain_retrieve

    config = RetrieverConfig.create(args.search_type, k=args.k, fetch_k=args.fetch_k, lambda_mult=args.lambda_mult,
                                    score_threshold=args.score_threshold, filter=_json_arg(args.filter, "--filter"))
    chunks = langchain_retrieve(store_from(args).open(args.index), config, args.question)
    print(f"{config.config_id}: {len(chunks)} chunks")
    for rank, chunk in enumerate(chunks, start=1):
        text = " ".join(chunk.text.split())
        print(f"{rank:>2}. {chunk.score:.4f}  {chunk.chunk_id}  {text[:160]}")


def run_store_from(args: argparse.Namespace):
    from eval.runs import RunStore

    return RunStore(args.home / "runs")


def warn_of_encoder_change(index: Any) -> None:
    """Before a sweep: say so when the index was built by another build of its encoder."""
    change = index.encoder_change()
    if change:
        print(f"warning: {change}", file=sys.stderr)


def cmd_run(args: argparse.Namespace) -> None:
    from eval.config import DEFAULT_SWEEP, load_sweep, parse_sweep
    from eval.leaderboard import leaderboard_text, quality_metrics, summarize
    from eval.sweep import SweepOptions, run_sweep

    configs = load_sweep(args.sweep) if args.sweep else parse_sweep(DEFAULT_SWEEP, "default sweep")
    from eval.datasets import load_question_set

    store = store_from(args)
    index = store.open(args.index)
    warn_of_encoder_change(index)
    questions = load_question_set(args.questions)
    questions = questions[:args.limit] if args.limit else questions
    bar = args.progress_bar("sweep")
    options = SweepOptions(reference=args.reference, latency_sample=args.latency_sample, progress=bar,
                           cancel=bar.cancel, on_start=bar.on_start,
                           block_size=int(os.environ.get("RETRIEVER_LAB_BLOCK_SIZE", 50)))
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise LabError(f"--concurrency must be at least 1, got {args.concurrency}")
        options.external_concurrency = args.concurrency
    if args.ragas:
        from eval.metrics.ragas import RagasContextScorer

        options.scorers.append(RagasContextScorer())
    if args.generate:
        options.answerer = answerer_from(args)
        options.on_answer = bar.show_answer
        options.generation_concurrency = args.concurrency or 1
        if args.judge:
            from eval.judge import JudgeScorer

            options.scorers.append(JudgeScorer(args.judge, index.embeddings))
    elif args.judge:
        raise LabError("--judge scores generated answers: add --generate")
    try:
        run_id = run_sweep(run_store_from(args), index, configs, questions, str(args.questions), options,
                           resume=args.resume)
    finally:
        bar.close()
    run = run_store_from(args).load(run_id)
    metrics = [m for m in ("hit_rate", "recall", "mrr", "ndcg", "ild", "n_retrieved", "f1", "contains_answer")
               if m in quality_metrics(run.rows)]
    print(f"run {run_id}  ({len(configs)} configs x {len(questions)} questions, "
          f"{run.info.wall_seconds:.1f} s)")
    print(leaderboard_text(summarize(run, metrics=metrics), metrics))
    from eval.external import failures

    for config_id, (count, first) in failures(run.rows).items():
        print(f"warning: {config_id}: {count} of {len(questions)} calls failed (not scored), e.g. {first}",
              file=sys.stderr)


def answerer_from(args: argparse.Namespace):
    from eval.generation import GenerationSettings, load_generator
    from eval.pipeline import GeneratingAnswerer

    settings = GenerationSettings(max_new_tokens=args.max_new_tokens, max_length=args.max_length,
                                  top_p=args.top_p, temperature=args.temperature, seed=args.seed)
    template = None
    if args.prompt_template:
        if not args.prompt_template.is_file():
            raise LabError(f"{args.prompt_template}: prompt template file not found")
        template = args.prompt_template.read_text(encoding="utf-8")
    generator = load_generator(args.llm, trust_remote_code=args.trust_remote_code, home=args.home)
    return GeneratingAnswerer(generator, settings, template, args.language)


def cmd_export(args: argparse.Namespace) -> None:
    from eval.export import export_run

    for path in export_run(run_store_from(args).load(args.run_id), args.format, args.out):
        print(path)


def cmd_runs_list(args: argparse.Namespace) -> None:
    manifests = run_store_from(args).manifests()
    if not manifests:
        print("no runs yet: start one with `python -m eval run --index NAME --questions PATH`")
    for m in manifests:
        print(f"{m.run_id}\t{m.status}\t{m.index.name}\t{len(m.configs)} configs\t"
              f"{m.questions.count} questions\t{m.created_at}")


def cmd_runs_show(args: argparse.Namespace) -> None:
    print(json.dumps(run_store_from(args).manifest(args.run_id), ensure_ascii=False, indent=2))


def cmd_runs_compare(args: argparse.Namespace) -> None:
    """Per config: a metric's mean in each run and the change paired by question, as Compare shows them."""
    from eval.leaderboard import compare_runs, quality_metrics
    from eval.recommend import ranking_metric
    from eval.report import COMPARISON_NOTE, comparison_frame

    store = run_store_from(args)
    first, second = store.load(args.first), store.load(args.second)
    shared = [m for m in quality_metrics(first.rows) if m in quality_metrics(second.rows)]
    if not shared:
        raise LabError(f"runs {args.first} and {args.second} have no metric in common")
    metrics = args.metric or [ranking_metric(shared)]
    for metric in metrics:
        if metric not in shared:
            raise LabError(f"--metric {metric}: not a metric of both runs (they share: {', '.join(shared)})")
    table = comparison_frame(compare_runs(first, second, metrics), metrics)
    print(f"a = {args.first}, b = {args.second}")
    print(table.to_string(index=False))
    print(COMPARISON_NOTE)


def cmd_runs_delete(args: argparse.Namespace) -> None:
    run_store_from(args).delete(args.run_id)
    print(f"deleted run {args.run_id}")


def cmd_gate(args: argparse.Namespace) -> int:
    """The regression gate (`eval.gate`): exit 1 on a significant drop beyond --max-drop, else 0; or write a
    baseline file."""
    from eval.gate import gate, load_baseline, run_scores, write_baseline

    store = run_store_from(args)
    if args.write_baseline:
        if args.candidate or not args.out:
            raise LabError("--write-baseline RUN needs --out FILE (and no --candidate)")
        scores = run_scores(store.load(args.write_baseline), args.config, args.metric)
        path = write_baseline(scores, args.out)
        print(f"baseline of run {scores.run_id}, config {scores.config_id}, {args.metric} on "
              f"{len(scores.values)} questions written to {path}")
        return 0
    if not args.candidate or args.out:
        raise LabError("--baseline needs --candidate RUN (--out goes with --write-baseline)")
    baseline = load_baseline(store, args.baseline, args.config, args.metric)
    result = gate(baseline, run_scores(store.load(args.candidate), baseline.config_id, args.metric),
                  args.max_drop, args.alpha)
    print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) if args.json else result.markdown())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return result.exit_code


def cmd_report(args: argparse.Namespace) -> None:
    """The Reports page's report of one run, or its comparison report of two runs, written to a file."""
    from eval.report import comparison_html, write_report
    from eval.runs import atomic_write_bytes

    store = run_store_from(args)
    run = store.load(args.run_id)
    if args.compare is None:
        path = write_report(run, args.out, args.format)
    elif args.format != "html":
        raise LabError("the comparison report is HTML only: use --format html with --compare")
    else:
        path = args.out
        atomic_write_bytes(path, comparison_html(run, store.load(args.compare)).encode("utf-8"))
    print(path)


def cmd_rescore(args: argparse.Namespace) -> None:
    """A run's leaderboard under another label source, without retrieving again."""
    from dataclasses import replace

    from eval.labels import LABEL_METRICS, load_labels, rescore
    from eval.leaderboard import leaderboard_text, summarize

    run = run_store_from(args).load(args.run_id)
    metrics = args.metric or list(LABEL_METRICS)
    rows = rescore(run, load_labels(args.labels), args.source, metrics)
    print(f"run {run.run_id} under label source '{args.source}' ({args.labels})")
    print(leaderboard_text(summarize(replace(run, rows=rows), metrics=metrics), metrics, sort_by=metrics[0]))


def cmd_questions_generate(args: argparse.Namespace) -> None:
    from eval.generation import load_generator
    from eval.question_gen import generate_questions

    index = store_from(args).open(args.index)
    generator = load_generator(args.llm, trust_remote_code=args.trust_remote_code, home=args.home)
    bar = args.progress_bar("questions")
    try:
        report = generate_questions(index, generator, args.n, args.out, language=args.language, seed=args.seed,
                                    progress=bar, on_text=lambda text: bar.show_answer("", "generate", text))
    finally:
        bar.close()
    print(report.summary())
    print(f"question set written to {args.out} (labels: source 'generated')")


def cmd_judge(args: argparse.Namespace) -> None:
    from eval.generation import load_generator
    from eval.pooled_judge import judge_run

    run = run_store_from(args).load(args.run_id)
    generator = load_generator(args.llm, trust_remote_code=args.trust_remote_code, home=args.home)
    bar = args.progress_bar("judging")
    try:
        report = judge_run(run, generator, args.home, depth=args.depth, concurrency=args.concurrency,
                           labels_file=args.labels, progress=bar)
    finally:
        bar.close()
    print(report.summary())
    for failure in report.failures[:10]:
        print(f"failed: question {failure['question_id']}, chunk {failure['chunk_id']}: {failure['reason']}")
    if len(report.failures) > 10:
        print(f"... and {len(report.failures) - 10} more failures (rerun to retry them)")


def cmd_agreement(args: argparse.Namespace) -> None:
    from eval.agreement import agreement
    from eval.labels import load_labels
    from eval.pooled_judge import pool

    run = run_store_from(args).load(args.run_id)
    result = agreement(load_labels(args.labels), args.a, args.b, pool(run, args.depth))
    print(result.summary())
    print(result.confusion.to_string())
    for row in result.disagreements.head(args.show).itertuples():
        print(f"{row.question_id}\t{row.chunk_id}\t{row.grade_a} vs {row.grade_b}\t{' '.join(row.text.split())[:100]}")


def cmd_sample(args: argparse.Namespace) -> None:
    """Make sure the bundled sample has an index and a finished example run (what `make run` opens)."""
    from eval.config import DEFAULT_SWEEP, parse_sweep
    from eval.datasets import load_dataset
    from eval.index import ChunkingParams
    from eval.sweep import SweepOptions, run_sweep

    dataset = load_dataset(SAMPLE_DIR)
    store = store_from(args)
    bar = ProgressBar("sample index")
    try:
        manifest = store.build(dataset, "sample", "e5-small", ChunkingParams(400, 40), replace=True, progress=bar)
    finally:
        bar.close()
    runs = run_store_from(args)
    if any(m.status == "complete" and m.index.input_key == manifest.input_key for m in runs.manifests()):
        print(f"sample index and example run are ready in {args.home}")
        return
    configs = parse_sweep(DEFAULT_SWEEP, "default sweep")
    run_id = run_sweep(runs, store.open("sample"), configs, dataset.questions, str(SAMPLE_DIR / "questions.jsonl"),
                       SweepOptions(latency_sample=20))
    print(f"sample index and example run {run_id} are ready in {args.home}")


def job_store_from(args: argparse.Namespace):
    from eval.jobs import JobStore

    return JobStore(args.home)


def cmd_jobs_start(args: argparse.Namespace) -> None:
    command = args.job_command[1:] if args.job_command[:1] == ["--"] else args.job_command
    job = job_store_from(args).submit(command)
    print(f"{job.job_id}\t{job.status}\t{job.title}")


def cmd_jobs_list(args: argparse.Namespace) -> None:
    from eval.jobs import progress_text

    store = job_store_from(args)
    jobs = store.list()
    if not jobs:
        print("no jobs yet: the dashboard starts them, or `python -m eval jobs start run --index NAME ...`")
    for job in jobs:
        shown = progress_text(store.progress(job.job_id)) if job.status == "running" else (job.error or "")
        print(f"{job.job_id}\t{job.status}\t{job.title}\trun {job.run_id or '-'}\t{shown}")


def cmd_jobs_show(args: argparse.Namespace) -> None:
    from dataclasses import asdict

    store = job_store_from(args)
    store.list()  # notices a lost process first
    job = store.get(args.job_id)
    print(json.dumps({**asdict(job), "cancel_requested": store.cancel_requested(job.job_id),
                      "progress": store.progress(job.job_id), "answer": store.answer(job.job_id),
                      "log_tail": store.log_tail(job.job_id)}, ensure_ascii=False, indent=2))


def cmd_jobs_cancel(args: argparse.Namespace) -> None:
    job = job_store_from(args).cancel(args.job_id)
    print(f"job {job.job_id} cancelled" if job.status == "cancelled" else
          f"job {job.job_id}: cancel requested; it stops after its current step")


def cmd_jobs_resume(args: argparse.Namespace) -> None:
    job = job_store_from(args).resume(args.job_id)
    print(f"job {job.job_id} {job.status}")


def cmd_jobs_wait(args: argparse.Namespace) -> int:
    """Block until the job is no longer queued or running; exit 0 when it is done, else 1."""
    job = job_store_from(args).wait(args.job_id)
    print(f"job {job.job_id} {job.status}" + (f": {job.error}" if job.error else ""))
    return 0 if job.status == "done" else 1


def _json_arg(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise LabError(f"{option} must be JSON, e.g. '{{\"lang\": \"zh\"}}' ({error.msg})") from None


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description="Retriever Lab: compare retriever configs.")
    parser.add_argument("--home", type=Path, default=lab_home(),
                        help="data folder (indexes, runs, model cache); env RETRIEVER_LAB_HOME")
    parser.add_argument("--indexes", type=Path, help="indexes folder (default HOME/indexes)")
    parser.add_argument("--chroma-host", help="use a Chroma server instead of local folders")
    parser.add_argument("--chroma-port", type=int)
    parser.set_defaults(progress_bar=ProgressBar)  # a job runner (eval.jobs) sets its own
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="build, list, show or delete indexes")
    index_commands = index.add_subparsers(dest="index_command", required=True)
    build = index_commands.add_parser("build", help="chunk, embed and store a corpus")
    build.add_argument("--corpus", required=True, type=Path, help="dataset folder, corpus.jsonl, SQuAD .json, "
                       "BEIR folder, or .txt/.md/.pdf files")
    build.add_argument("--name", required=True)
    build.add_argument("--format", default="auto", choices=["auto", "native", "squad", "beir", "docs"])
    build.add_argument("--language", help="pick corpus_LANG.jsonl in a folder with several")
    build.add_argument("--embedding", default=DEFAULT_EMBEDDING, help=EMBEDDING_HELP)
    build.add_argument("--chunk-size", type=int, default=500)
    build.add_argument("--chunk-overlap", type=int, default=50)
    build.add_argument("--replace", action="store_true", help="replace an index of that name built from other inputs")
    build.set_defaults(handler=cmd_index_build)
    from eval.family_cli import add_family_commands

    add_family_commands(commands, index_commands)
    index_commands.add_parser("list").set_defaults(handler=cmd_index_list)
    for name, handler in (("show", cmd_index_show), ("delete", cmd_index_delete)):
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
    retrieve.set_defaults(handler=cmd_retrieve)

    run = commands.add_parser("run", help="run a question set through a sweep of retriever configs")
    run.add_argument("--index", required=True)
    run.add_argument("--questions", required=True, type=Path, help="questions.jsonl/.csv or a dataset folder")
    run.add_argument("--sweep", type=Path, help="sweep spec YAML (default: an 11-config grid)")
    run.add_argument("--limit", type=int, help="only the first N questions")
    run.add_argument("--reference", action="store_true", help="use the LangChain retriever path")
    run.add_argument("--latency-sample", type=int, default=50, help="questions timed per config (0: none)")
    run.add_argument("--resume", metavar="RUN_ID", help="continue an interrupted run")
    run.add_argument("--ragas", action="store_true",
                     help="also score rows with ragas' ID-based and non-LLM context metrics (slower)")
    generate = run.add_mutually_exclusive_group()
    generate.add_argument("--generate", action="store_true", help="stream an answer for every row")
    generate.add_argument("--no-generate", action="store_true", help="retrieval only (the default)")
    run.add_argument("--llm", default="bundled:smollm2",
                     help="bundled:smollm2, a model folder, a .gguf file, a hub id, or openai:MODEL@URL")
    run.add_argument("--max-new-tokens", type=int, default=128)
    run.add_argument("--max-length", type=int, default=4096, help="cap on prompt + answer tokens")
    run.add_argument("--temperature", type=float, default=0.0, help="0 = greedy (answers are then reused)")
    run.add_argument("--top-p", type=float, default=1.0)
    run.add_argument("--seed", type=int, default=0)
    run.add_argument("--prompt-template", type=Path, help="a text file with {context} and {question}")
    run.add_argument("--language", choices=["zh", "en"], help="prompt language (default: per question)")
    run.add_argument("--concurrency", type=int,
                     help="parallel requests to external retrievers (default 4) and to an openai: endpoint "
                          "(default 1; answers are then not streamed)")
    run.add_argument("--judge", metavar="openai:MODEL@URL",
                     help="ragas LLM-judged metrics (faithfulness, context precision, answer relevancy)")
    run.add_argument("--trust-remote-code", action="store_true",
                     help="allow a model's own Python code (ChatGLM2/3); only for models you trust")
    run.set_defaults(handler=cmd_run)

    export = commands.add_parser("export", help="export a run")
    export.add_argument("run_id")
    export.add_argument("--format", required=True, choices=["csv", "jsonl", "parquet", "trec"])
    export.add_argument("--out", required=True, type=Path)
    export.set_defaults(handler=cmd_export)

    commands.add_parser("sample", help="build the sample index and an example run").set_defaults(handler=cmd_sample)

    runs = commands.add_parser("runs", help="list, show or delete runs")
    runs_commands = runs.add_subparsers(dest="runs_command", required=True)
    runs_commands.add_parser("list").set_defaults(handler=cmd_runs_list)
    for name, handler in (("show", cmd_runs_show), ("delete", cmd_runs_delete)):
        sub = runs_commands.add_parser(name)
        sub.add_argument("run_id")
        sub.set_defaults(handler=handler)
    compare = runs_commands.add_parser("compare", help="two runs side by side, config by config")
    compare.add_argument("first")
    compare.add_argument("second")
    compare.add_argument("--metric", action="append",
                         help="a metric to show (repeatable; default: the ranking metric, e.g. ndcg)")
    compare.set_defaults(handler=cmd_runs_compare)

    gate = commands.add_parser("gate", help="fail (exit 1) when a candidate run is significantly worse than a "
                               "baseline; or write a baseline file")
    source = gate.add_mutually_exclusive_group(required=True)
    source.add_argument("--baseline", metavar="RUN_OR_FILE", help="a run id or a baseline file")
    source.add_argument("--write-baseline", metavar="RUN", help="write RUN's per-question values to --out")
    gate.add_argument("--candidate", metavar="RUN")
    gate.add_argument("--config", help="the config compared (default: the run's only one, or the file's)")
    gate.add_argument("--metric", required=True, help="a catalogue metric, optionally at a cutoff: ndcg@10")
    gate.add_argument("--max-drop", type=float, default=0.01, help="tolerated drop of the mean")
    gate.add_argument("--alpha", type=float, default=0.05, help="significance level of the paired test")
    gate.add_argument("--json", action="store_true", help="print JSON instead of a Markdown table")
    gate.add_argument("--out", type=Path, help="the baseline file --write-baseline writes")
    gate.set_defaults(handler=cmd_gate)

    report = commands.add_parser("report", help="write a run's report (or a two-run comparison)")
    report.add_argument("run_id")
    report.add_argument("--compare", metavar="OTHER_RUN", help="write the comparison of the two runs (HTML)")
    report.add_argument("--format", choices=["html", "md"], default="html")
    report.add_argument("--out", required=True, type=Path)
    report.set_defaults(handler=cmd_report)

    rescore_parser = commands.add_parser("rescore", help="a run's metrics under another label source")
    rescore_parser.add_argument("run_id")
    rescore_parser.add_argument("--labels", required=True, type=Path,
                                help="a label file, or the question set (file or folder) whose labels to use")
    rescore_parser.add_argument("--source", default="gold", help="gold, generated, llm:MODEL@VERSION, human:NAME")
    rescore_parser.add_argument("--metric", action="append", help="a relevance metric, optionally @k (repeatable)")
    rescore_parser.set_defaults(handler=cmd_rescore)

    questions = commands.add_parser("questions", help="generate a question set from an index's chunks")
    questions_commands = questions.add_subparsers(dest="questions_command", required=True)
    generate_parser = questions_commands.add_parser("generate", help="ask an LLM for questions the chunks answer")
    generate_parser.add_argument("--index", required=True)
    generate_parser.add_argument("--n", type=int, default=200, help="questions to keep")
    generate_parser.add_argument("--llm", default="bundled:smollm2", help="as for `run --llm`")
    generate_parser.add_argument("--language", choices=["zh", "en"], help="default: each chunk's own language")
    generate_parser.add_argument("--seed", type=int, default=0)
    generate_parser.add_argument("--out", required=True, type=Path, help="a new folder (or one to resume)")
    generate_parser.add_argument("--trust-remote-code", action="store_true")
    generate_parser.set_defaults(handler=cmd_questions_generate)

    judge_parser = commands.add_parser("judge", help="LLM relevance judgements of a run's pooled chunks")
    judge_parser.add_argument("run_id")
    judge_parser.add_argument("--llm", default="bundled:smollm2", help="as for `run --llm`")
    judge_parser.add_argument("--depth", type=int, default=10, help="pool each config's top DEPTH chunks")
    judge_parser.add_argument("--concurrency", type=int, default=1, help="parallel requests to an endpoint")
    judge_parser.add_argument("--labels", type=Path, help="label file (default: beside the run's question set)")
    judge_parser.add_argument("--trust-remote-code", action="store_true")
    judge_parser.set_defaults(handler=cmd_judge)

    agree = commands.add_parser("agreement", help="kappa and disagreements of two label sources on a run's pool")
    agree.add_argument("run_id")
    agree.add_argument("--labels", required=True, type=Path, help="label file or question set")
    agree.add_argument("--a", required=True, help="first source, e.g. gold")
    agree.add_argument("--b", required=True, help="second source, e.g. llm:MODEL@judge-v1")
    agree.add_argument("--depth", type=int, default=10)
    agree.add_argument("--show", type=int, default=20, help="disagreements to list")
    agree.set_defaults(handler=cmd_agreement)

    jobs = commands.add_parser("jobs", help="background jobs (index builds and sweeps the dashboard started)")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True)
    jobs_commands.add_parser("list").set_defaults(handler=cmd_jobs_list)
    for name, handler in (("show", cmd_jobs_show), ("cancel", cmd_jobs_cancel), ("resume", cmd_jobs_resume),
                          ("wait", cmd_jobs_wait)):
        sub = jobs_commands.add_parser(name)
        sub.add_argument("job_id")
        sub.set_defaults(handler=handler)
    start = jobs_commands.add_parser("start", help="run `index build|family ...`, `run ...`, `run-family ...`, "
                                     "`questions generate ...` or `judge ...` as a background job")
    start.add_argument("job_command", nargs=argparse.REMAINDER, help="the command, e.g. run --index NAME ...")
    start.set_defaults(handler=cmd_jobs_start)
    return parser


class _EngineNotes(logging.Handler):
    """The engine's INFO messages (e.g. a one-time ONNX export), printed to the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), file=sys.stderr)


def _print_engine_notes() -> None:
    logger = logging.getLogger("eval")
    if not any(isinstance(handler, _EngineNotes) for handler in logger.handlers):
        logger.addHandler(_EngineNotes())
        logger.setLevel(logging.INFO)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _print_engine_notes()
    handler: Callable[[argparse.Namespace], int | None] = args.handler  # an int is the exit code (gate)
    try:
        code = handler(args)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code or 0
