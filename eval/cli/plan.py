"""`python -m eval plan` (questions needed, detectable difference) and `calibrate` (a score_threshold with a
precision guarantee)."""

from __future__ import annotations

import argparse
import json
import math
from typing import Any

import pandas as pd

from eval.analysis.calibration import score_calibration, source_calibration, suggest_threshold
from eval.analysis.plan import check_delta, plan, plan_text
from eval.analysis.threshold import check_held_out, check_precision, guarantee_text, guaranteed_threshold
from eval.cli.common import run_store_from, store_from
from eval.data.datasets import load_question_set
from eval.data.labels import load_labels
from eval.errors import LabError


def cmd_plan(args: argparse.Namespace) -> None:
    check_delta(args.delta)  # before the run is read
    result = plan(run_store_from(args).load(args.run_id), args.delta, args.metric)
    print(json.dumps(result, indent=2) if args.json else plan_text(result))


def held_out_count(value: str) -> float:
    """`--held-out`: a number of new questions, or `all` (the population)."""
    if value.strip().lower() == "all":
        return math.inf
    try:
        return check_held_out(int(value))
    except ValueError:
        raise LabError(f"--held-out takes a number of questions or 'all', got '{value}'") from None


def calibration_candidates(args: argparse.Namespace) -> pd.DataFrame:
    """The judged candidates `calibrate` reads: gold's relevant_ids of the question set, or `--source`'s labels
    from `--labels` (default: the label file beside the question set)."""
    if args.source is None and args.labels is not None:
        raise LabError("--labels needs --source NAME (gold, generated, llm:MODEL@VERSION or human:NAME)")
    questions = load_question_set(args.questions)
    index: Any = store_from(args).open(args.index)
    if args.source is None:
        return score_calibration(index, questions, args.sample, args.top_n, args.seed)
    labels = load_labels(args.labels if args.labels is not None else args.questions)
    return source_calibration(index, questions, labels, args.source, args.sample, args.top_n, args.seed)


def cmd_calibrate(args: argparse.Namespace) -> None:
    check_precision(args.precision)  # before the index is opened
    held_out = None if args.held_out is None else held_out_count(args.held_out)
    scores = calibration_candidates(args)
    suggestion, guarantee = suggest_threshold(scores), guaranteed_threshold(scores, args.precision, held_out=held_out)
    if args.json:
        print(json.dumps({"suggestion": suggestion, "guarantee": guarantee}, indent=2))
        return
    relevant, irrelevant = suggestion["n_relevant"], suggestion["n_irrelevant"]
    print(
        f"{scores['question_id'].nunique()} questions, {relevant} relevant and {irrelevant} irrelevant candidates"
        f"{'' if args.source is None else f' under {args.source}'}"
    )
    if suggestion["best"] is not None:
        print(
            f"best-F1 threshold {suggestion['best']:.3f} (precision {suggestion['best_precision']:.2f}, "
            f"recall {suggestion['best_recall']:.2f})"
        )
    print(guarantee_text(guarantee))
