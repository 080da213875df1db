"""`python -m eval export`, `runs list|show|compare|delete`, `gate` and `report`: what is done with a run."""

from __future__ import annotations

import argparse
import json
import sys

from eval.analysis.gate import candidate_config, gate, load_baseline, run_scores, write_baseline
from eval.analysis.leaderboard import compare_runs
from eval.analysis.recommend import ranking_metric
from eval.analysis.why import WhyReport, why_for_run
from eval.cli.common import run_store_from, store_from
from eval.errors import LabError
from eval.io import atomic_write_bytes
from eval.labels.rescore import run_under_source
from eval.report.render import COMPARISON_NOTE, comparison_frame, comparison_html, write_report
from eval.runs.export import export_run
from eval.runs.summary import quality_metrics, scored_text


def cmd_export(args: argparse.Namespace) -> None:
    run = run_under_source(run_store_from(args).load(args.run_id), args.source, args.labels)
    for path in export_run(run, args.format, args.out):
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
    for metric in metrics:
        print(f"a: {scored_text(first.rows, metric)}; b: {scored_text(second.rows, metric)}")
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
        run = run_under_source(store.load(args.write_baseline), args.source, args.labels, [args.metric])
        scores = run_scores(run, args.config, args.metric)
        path = write_baseline(scores, args.out)
        print(
            f"baseline of run {scores.run_id}, config {scores.config_id}, {args.metric} under label source "
            f"{scores.label_source} on {len(scores.values)} questions written to {path}"
        )
        return 0
    if not args.candidate or args.out:
        raise LabError("--baseline needs --candidate RUN (--out goes with --write-baseline)")
    baseline = load_baseline(store, args.baseline, args.config, args.metric, args.source, args.labels)
    candidate = run_under_source(store.load(args.candidate), args.source, args.labels, [args.metric])
    chosen = candidate_config(candidate, baseline.config_id, args.candidate_config)
    result = gate(baseline, run_scores(candidate, chosen, args.metric), args.max_drop, args.alpha)
    print(json.dumps(result.to_dict(), ensure_ascii=False, indent=2) if args.json else result.markdown())
    for warning in result.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    return result.exit_code


def cmd_report(args: argparse.Namespace) -> None:
    """The Reports page's report of one run, or its comparison report of two runs, written to a file."""

    store = run_store_from(args)
    run = run_under_source(store.load(args.run_id), args.source, args.labels)
    if args.compare is None:
        try:
            why: WhyReport | None = why_for_run(run, store_from(args), args.labels, args.source)
        except LabError as error:  # the report says what the Reports page says; the reason goes to the terminal
            print(f"note: the why-missed section is not computed: {error}", file=sys.stderr)
            why = None
        path = write_report(run, args.out, args.format, weighted=args.weighted, why=why)
    elif args.weighted:
        raise LabError("--weighted applies to one run's report, not to the comparison of two runs")
    elif args.format != "html":
        raise LabError("the comparison report is HTML only: use --format html with --compare")
    else:
        path = args.out
        other = run_under_source(store.load(args.compare), args.source, args.labels)
        atomic_write_bytes(path, comparison_html(run, other).encode("utf-8"))
    print(path)
