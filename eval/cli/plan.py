"""`python -m eval plan` (questions needed, detectable difference) and `calibrate` (a score_threshold with a
precision guarantee)."""

from __future__ import annotations

import argparse
import json

from eval.analysis.calibration import score_calibration, suggest_threshold
from eval.analysis.plan import check_delta, plan, plan_text
from eval.analysis.threshold import check_precision, guarantee_text, guaranteed_threshold
from eval.cli.common import run_store_from, store_from
from eval.data.datasets import load_question_set


def cmd_plan(args: argparse.Namespace) -> None:
    check_delta(args.delta)  # before the run is read
    result = plan(run_store_from(args).load(args.run_id), args.delta, args.metric)
    print(json.dumps(result, indent=2) if args.json else plan_text(result))


def cmd_calibrate(args: argparse.Namespace) -> None:
    check_precision(args.precision)  # before the index is opened
    questions = load_question_set(args.questions)
    scores = score_calibration(store_from(args).open(args.index), questions, args.sample, args.top_n, args.seed)
    suggestion, guarantee = suggest_threshold(scores), guaranteed_threshold(scores, args.precision)
    if args.json:
        print(json.dumps({"suggestion": suggestion, "guarantee": guarantee}, indent=2))
        return
    relevant, irrelevant = suggestion["n_relevant"], suggestion["n_irrelevant"]
    print(f"{scores['question_id'].nunique()} questions, {relevant} relevant and {irrelevant} irrelevant candidates")
    if suggestion["best"] is not None:
        print(
            f"best-F1 threshold {suggestion['best']:.3f} (precision {suggestion['best_precision']:.2f}, "
            f"recall {suggestion['best_recall']:.2f})"
        )
    print(guarantee_text(guarantee))
