"""`python -m eval rescore`, `questions generate`, `judge`, `agreement` and `decide`: labels, what they change."""

from __future__ import annotations

import argparse
import json

from eval.analysis.leaderboard import leaderboard_report
from eval.cli.common import run_store_from, store_from
from eval.cli.progress import ProgressBar
from eval.data.labels import load_labels
from eval.errors import LabError
from eval.generation.generators import SMOKE_TEST_WARNING, Generator, load_generator
from eval.labels.agreement import agreement, grade_by_length, leaderboard_agreement, self_consistency
from eval.labels.decide import Decision, decide_with_oracle, decision_text
from eval.labels.decide_session import DecideSession
from eval.labels.pooled_judging import judge_run, pool, run_label_file
from eval.labels.question_generation import generate_questions
from eval.labels.rescore import LABEL_METRICS, corrected_estimates, run_under_source
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
            abstain_below=args.abstain_below,
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
    """Kappa and disagreements pair by pair; the two leaderboards with Kendall tau against its random
    baseline; grades by chunk length; with --llm, the judge's flip rate on a sample judged twice."""
    run = run_store_from(args).load(args.run_id)
    labels, items = load_labels(args.labels), pool(run, args.depth)
    result = agreement(labels, args.a, args.b, items)
    print(result.summary())
    print(result.confusion.to_string())
    for row in result.disagreements.head(args.show).itertuples():
        print(f"{row.question_id}\t{row.chunk_id}\t{row.grade_a} vs {row.grade_b}\t{' '.join(row.text.split())[:100]}")
    ranking = leaderboard_agreement(run, labels, args.a, args.b, items, args.metric, args.draws)
    print(ranking.summary())
    print(ranking.leaderboards.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    print("grades by chunk length:")
    print(grade_by_length(labels, [args.a, args.b], items).to_string(index=False, float_format=lambda x: f"{x:.3f}"))
    if args.llm:
        generator = load_generator(args.llm, trust_remote_code=False, home=args.home)
        flips, pairs = self_consistency(run, generator, items, args.twice)
        print(f"self-consistency of {args.llm}: {flips:.1%} of {pairs} pairs judged twice changed grade")


def cmd_corrected(args: argparse.Namespace) -> None:
    """Every config's metric under the judge corrected by the person's sample, with 95% intervals."""
    run = run_store_from(args).load(args.run_id)
    labels = load_labels(args.labels or run_label_file(run))
    result = corrected_estimates(run, labels, args.judge, args.human, args.metric)
    print(json.dumps(result.to_dict(), ensure_ascii=False) if args.json else result.report())


def cmd_decide(args: argparse.Namespace) -> None:
    """Label the pairs that settle the choice of a config: answered by a person at the prompt, or by an
    existing label source (`--oracle`, for benchmarks and tests)."""
    if args.budget is not None and args.budget < 1:
        raise LabError(f"--budget must be at least 1, got {args.budget}")
    run = run_store_from(args).load(args.run_id)
    labels_file = args.labels or run_label_file(run)
    options = {"rule": args.rule, "order": args.order, "seed": args.seed, "epsilon": args.epsilon, "judge": args.judge}
    if args.oracle:
        result = decide_with_oracle(run, load_labels(labels_file), args.oracle, budget=args.budget, **options)
        decision = result.decision
    else:
        decision = decide_at_prompt(DecideSession(run, labels_file, args.name, **options), args.budget)
    if args.json:
        print(json.dumps(decision.as_json(args.order), ensure_ascii=False))
    else:
        print(decision_text(decision))


def decide_at_prompt(session: DecideSession, budget: int | None) -> Decision:
    """Ask for grades at the terminal until the rule settles, the budget is spent or the person quits."""
    print(f"labels are saved as {session.source} to {session.labels_file}; keys: 0 1 2, s skip, u undo, q quit")
    decision = session.decision()
    while not decision.settled and (budget is None or session.labels < budget):
        current = session.current()
        if current is None:
            break
        item, _ = current
        print(f"\n[{session.labels} labels] {decision_text(decision)}")
        print(f"question: {session.run.questions_by_id[item.question_id].question}")
        print(f"chunk ({item.doc_id}, characters {item.start}-{item.end}):\n{item.text}")
        key = input("grade 0 (not relevant), 1 (partly), 2 (answers it), s, u, q: ").strip().lower()
        if key == "q":
            break
        if key in ("0", "1", "2"):
            session.answer(int(key))
        elif key == "s":
            session.skip()
        elif key == "u":
            session.undo()
        else:
            print(f"'{key}' is not one of 0, 1, 2, s, u, q")
        decision = session.decision()
    return decision
