"""`python -m eval why RUN`: why each config missed relevant documents, and what one change would recover."""

from __future__ import annotations

import argparse
import json

from eval.analysis.why import CAUSE_NAMES, CAUSES, why_for_run
from eval.cli.common import run_store_from, store_from


def cmd_why(args: argparse.Namespace) -> None:
    run = run_store_from(args).load(args.run_id)
    report = why_for_run(run, store_from(args), args.labels, args.source, args.config)
    if args.json:
        print(json.dumps(report.to_json(), ensure_ascii=False, indent=2))
        return
    print(f"run {run.run_id}: misses under {args.source} (relevant documents not retrieved, per question)")
    for config_id, row in report.counts().iterrows():
        causes = ", ".join(f"{CAUSE_NAMES[c]} {int(row[c])}" for c in CAUSES if row[c])
        print(f"{config_id}: {int(row['misses'])} misses" + (f" ({causes})" if causes else ""))
        for what_if in report.what_ifs:
            if what_if.config_id == config_id and what_if.recovered:
                print(f"  {what_if.text}")
    for config_id, reason in report.skipped.items():
        print(f"{config_id}: not diagnosed ({reason})")
    if report.requeried:
        print(f"{report.requeried} ranks come from a deeper re-query (past the search the run made)")
