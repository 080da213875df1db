"""`python -m eval plan` (questions needed, detectable difference) and `calibrate` (a score_threshold with a
precision guarantee)."""

from __future__ import annotations

import argparse
import json

from eval.analysis.plan import check_delta, plan, plan_text
from eval.cli.common import run_store_from


def cmd_plan(args: argparse.Namespace) -> None:
    check_delta(args.delta)  # before the run is read
    result = plan(run_store_from(args).load(args.run_id), args.delta, args.metric)
    print(json.dumps(result, indent=2) if args.json else plan_text(result))
