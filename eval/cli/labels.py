"""`python -m eval rescore`, `questions generate`, `judge` and `agreement`: labels and what they change."""

from __future__ import annotations

import argparse

from eval.analysis.leaderboard import leaderboard_report
from eval.cli.common import run_store_from, store_from
from eval.cli.progress import ProgressBar
from eval.data.labels import load_labels
from eval.generation.generators import SMOKE_TEST_WARNING, Generator, load_generator
from eval.labels.agreement import agreement
from eval.labels.pooled_judging import judge_run, pool, run_label_file
from eval.labels.question_generation import generate_questions
from eval.labels.rescore import LABEL_METRICS, run_under_source
from eval.runs.summary import summarize, weighting_note


def cmd_rescore(args: argparse.Namespace) -> None:
    """A run's leaderboard under another label source, without retrieving again: means with 95% intervals,
    ranked by the lab's ranking rule."""
    metrics = args.metric or list(LABEL_METRICS)
    run = run_under_source(run_store_from(args).load(args.run_id), args.source, args.labels, metrics)
    print(f"run {run.run_id}, labels from {args.labels or run_label_file(run)}")
    summary = summarize(run, metrics=metrics, weighted=args.weighted)
    print(leaderboard_report(summary, run.rows, metrics, args.source))
    note = weighting_note(run, args.weighted)
    if note:
        print(note)


def label_generator(args: argparse.Namespace, bar: ProgressBar) -> Generator:
    """The LLM of a label job; a local model stops between tokens when the job is cancelled."""
    if args.llm.strip().startswith("bundled:"):
        print(f"warning: {SMOKE_TEST_WARNING}", flush=True)
    generator = load_generator(args.llm, trust_remote_code=args.trust_remote_code, home=args.home)
    generator.cancel = bar.cancel
    return generator


def cmd_questions_generate(args: argparse.Namespace) -> None:
    index = store_from(args).open(args.index)
    bar = args.progress_bar("questions")
    generator = label_generator(args, bar)
    try:
        report = generate_questions(
            index,
            generator,
            args.n,
            args.out,
            language=args.language,
            seed=args.seed,
            progress=bar,
            on_text=lambda text: bar.show_answer("", "generate", text),
            max_failures=args.max_failures,
        )
    finally:
        bar.close()
    print(report.summary())
    print(f"question set written to {args.out} (labels: source 'generated')")


def cmd_judge(args: argparse.Namespace) -> None:
    run = run_store_from(args).load(args.run_id)
    bar = args.progress_bar("judging")
    generator = label_generator(args, bar)
    try:
        report = judge_run(
            run,
            generator,
            args.home,
            depth=args.depth,
            concurrency=args.concurrency,
            labels_file=args.labels,
            progress=bar,
            max_failures=args.max_failures,
        )
    finally:
        bar.close()
    print(report.summary())
    for failure in report.failures[:10]:
        print(f"failed: question {failure['question_id']}, chunk {failure['chunk_id']}: {failure['reason']}")
    if len(report.failures) > 10:
        print(f"... and {len(report.failures) - 10} more failures (rerun to retry them)")


def cmd_agreement(args: argparse.Namespace) -> None:
    run = run_store_from(args).load(args.run_id)
    result = agreement(load_labels(args.labels), args.a, args.b, pool(run, args.depth))
    print(result.summary())
    print(result.confusion.to_string())
    for row in result.disagreements.head(args.show).itertuples():
        print(f"{row.question_id}\t{row.chunk_id}\t{row.grade_a} vs {row.grade_b}\t{' '.join(row.text.split())[:100]}")
