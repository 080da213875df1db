"""The headless CLI: `python -m eval ...`. Bad input exits with code 2 and a one-line message."""

from __future__ import annotations

import argparse
import json
import sys

from eval.analysis.gate import candidate_config, gate, load_baseline, run_scores, write_baseline
from eval.analysis.leaderboard import compare_runs
from eval.analysis.recommend import ranking_metric
from eval.cli.common import run_store_from
from eval.errors import LabError
from eval.io import atomic_write_bytes
from eval.report.render import COMPARISON_NOTE, comparison_frame, comparison_html, write_report
from eval.runs.export import export_run
from eval.runs.summary import quality_metrics


def cmd_export(args: argparse.Namespace) -> None:
    for path in export_run(run_store_from(args).load(args.run_id), args.format, args.out):
        print(path)


def cmd_runs_list(args: argparse.Namespace) -> None:
    manifests = run_store_from(args).manifests()
    if not manifests:
        print("no runs yet: start one with `python -m eval run --index NAME --questions PATH`")
    for m in manifests:
        print(
            f"{m.run_id}\t{m.status}\t{m.index.name}\t{len(m.configs)} configs\t"
            f"{m.questions.count} questions\t{m.created_at}"
        )


def cmd_runs_show(args: argparse.Namespace) -> None:
    print(json.dumps(run_store_from(args).manifest(args.run_id), ensure_ascii=False, indent=2))


def cmd_runs_compare(args: argparse.Namespace) -> None:
    """Per config: a metric's mean in each run and the change paired by question, as Compare shows them."""

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

    store = run_store_from(args)
    if args.write_baseline:
        if args.candidate or args.candidate_config or not args.out:
            raise LabError("--write-baseline RUN needs --out FILE (and no --candidate or --candidate-config)")
        scores = run_scores(store.load(args.write_baseline), args.config, args.metric)
        path = write_baseline(scores, args.out)
        print(
            f"baseline of run {scores.run_id}, config {scores.config_id}, {args.metric} on "
            f"{len(scores.values)} questions written to {path}"
        )
        return 0
    if not args.candidate or args.out:
        raise LabError("--baseline needs --candidate RUN (--out goes with --write-baseline)")
    baseline = load_baseline(store, args.baseline, args.config, args.metric)
    candidate = store.load(args.candidate)
    chosen = candidate_config(candidate, baseline.config_id, args.candidate_config)
    result = gate(baseline, run_scores(candidate, chosen, args.metric), args.max_drop, args.alpha)
    print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) if args.json else result.markdown())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return result.exit_code


def cmd_report(args: argparse.Namespace) -> None:
    """The Reports page's report of one run, or its comparison report of two runs, written to a file."""

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
