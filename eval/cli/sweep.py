"""`python -m eval run`: a question set through a sweep of retriever configs, with answers if asked."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from functools import partial

from eval.analysis.leaderboard import leaderboard_report
from eval.analysis.racing import RACE_METHOD, race_rule, race_text
from eval.cli.common import run_store_from, store_from, warn_of_encoder_change
from eval.data.datasets import load_question_set
from eval.data.labels import check_beside_corpus
from eval.errors import LabError
from eval.generation.generators import GenerationSettings, load_generator
from eval.generation.pipeline import GeneratingAnswerer
from eval.metrics.llm_answer import JudgeScorer
from eval.metrics.ragas import RagasContextScorer
from eval.retrievers.external.client import answer_warnings, failures
from eval.retrievers.registry import DEFAULT_SWEEP, load_sweep, parse_sweep
from eval.runs.summary import quality_metrics, summarize, weighting_note
from eval.sweep.engine import SweepOptions, run_sweep


def cmd_run(args: argparse.Namespace) -> None:
    configs = load_sweep(args.sweep) if args.sweep else parse_sweep(DEFAULT_SWEEP, "default sweep")

    check_beside_corpus(args.questions)  # the spans `rescore` reads later: refused now, not after the run
    questions = load_question_set(args.questions)
    questions = questions[: args.limit] if args.limit else questions
    race = race_rule(len(questions), args.race_block) if args.race else None  # bad racing options before the index
    store = store_from(args)
    index = store.open(args.index)
    warn_of_encoder_change(index)
    bar = args.progress_bar("sweep")
    options = SweepOptions(
        reference=args.reference,
        latency_sample=args.latency_sample,
        progress=bar,
        cancel=bar.cancel,
        on_start=bar.on_start,
        block_size=int(os.environ.get("RETRIEVER_LAB_BLOCK_SIZE", 50)),
    )
    if args.race:
        options.block_size = args.race_block
        options.contenders = race
        options.extra_manifest["race"] = {"block": args.race_block, "method": RACE_METHOD}
    if args.concurrency is not None:
        if args.concurrency < 1:
            raise LabError(f"--concurrency must be at least 1, got {args.concurrency}")
        options.external_concurrency = args.concurrency
    if args.ragas:
        options.scorers.append(RagasContextScorer())
    if args.generate:
        options.answerer = answerer_from(args)
        options.on_answer = bar.show_answer
        options.generation_concurrency = args.concurrency or 1
        if args.judge:
            options.scorers.append(JudgeScorer(args.judge, index.embeddings))
    elif args.judge:
        raise LabError("--judge scores generated answers: add --generate")
    started: list[str] = []
    options.on_start = partial(_remember, started, options.on_start)
    try:
        run_id = run_sweep(
            run_store_from(args), index, configs, questions, str(args.questions), options, resume=args.resume
        )
    except KeyboardInterrupt as stop:  # Ctrl-C or SIGTERM: the run is marked interrupted
        if started:
            raise type(stop)(
                f"run {started[0]} interrupted: its finished blocks are kept; resume it with the same command "
                f"and --resume {started[0]}"
            ) from None
        raise
    finally:
        bar.close()
    run = run_store_from(args).load(run_id)
    metrics = [
        m
        for m in ("hit_rate", "recall", "mrr", "ndcg", "ild", "n_retrieved", "f1", "contains_answer")
        if m in quality_metrics(run.rows)
    ]
    print(f"run {run_id}  ({len(configs)} configs x {len(questions)} questions, {run.info.wall_seconds:.1f} s)")
    print(leaderboard_report(summarize(run, metrics=metrics, weighted=args.weighted), run.rows, metrics))
    if note := weighting_note(run, args.weighted):
        print(note)
    if args.race:
        print(race_text(run))

    for config_id, (count, first) in failures(run.rows).items():
        print(
            f"warning: {config_id}: {count} of {len(questions)} calls failed (not scored), e.g. {first}",
            file=sys.stderr,
        )
    for warning in answer_warnings(run.rows, run.configs):
        print(f"warning: {warning}", file=sys.stderr)


def _remember(started: list[str], on_start: Callable[[str], None] | None, run_id: str) -> None:
    started.append(run_id)
    if on_start is not None:
        on_start(run_id)


def answerer_from(args: argparse.Namespace):
    settings = GenerationSettings(
        max_new_tokens=args.max_new_tokens,
        max_length=args.max_length,
        top_p=args.top_p,
        temperature=args.temperature,
        seed=args.seed,
    )
    template = None
    if args.prompt_template:
        if not args.prompt_template.is_file():
            raise LabError(f"{args.prompt_template}: prompt template file not found")
        template = args.prompt_template.read_text(encoding="utf-8")
    generator = load_generator(args.llm, trust_remote_code=args.trust_remote_code, home=args.home)
    return GeneratingAnswerer(generator, settings, template, args.language)
