"""The CLI of index families: `python -m eval index family ...` and `python -m eval run-family ...`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from eval.analysis.family import describe_best, family_leaderboard, family_rows
from eval.cli.common import run_store_from, store_from, warn_of_encoder_change
from eval.data.datasets import load_dataset, load_question_set
from eval.data.labels import load_labels
from eval.retrievers.registry import DEFAULT_SWEEP, load_sweep, parse_sweep
from eval.sweep.engine import SweepOptions
from eval.sweep.family import build_family, family_grid, run_family_sweep


def cmd_index_family(args: argparse.Namespace) -> None:
    variants = family_grid(args.chunk_size, args.chunk_overlap, args.splitter, args.embedding)
    dataset = load_dataset(args.corpus, args.format, args.language)
    bar = args.progress_bar(f"building {len(variants)} variants of {args.name}")
    try:
        manifests = build_family(store_from(args), dataset, args.name, variants, args.replace, bar)
    finally:
        bar.close()
    for m in manifests:
        cache = m.embedding_cache or {}
        print(
            f"index '{m.name}': {m.chunks} chunks, built in {m.build_seconds:.1f} s, embedding cache "
            f"{cache.get('hits', 0)} hits / {cache.get('misses', 0)} encoded ({cache.get('hit_rate', 0):.0%})"
        )


def cmd_run_family(args: argparse.Namespace) -> None:
    configs = load_sweep(args.sweep) if args.sweep else parse_sweep(DEFAULT_SWEEP, "default sweep")
    store = store_from(args)
    indexes = [store.open(name) for name in args.index]
    for index in indexes:
        warn_of_encoder_change(index)
    questions = load_question_set(args.questions)[: args.limit or None]
    labels = load_labels(args.questions)
    bar = args.progress_bar("family sweep")

    def announce(run_id: str) -> None:
        manifest = run_store_from(args).manifest(run_id)
        print(
            f"family sweep {manifest['family']['id']}: run {run_id} on index '{manifest['family']['variant']}' "
            f"(if it stops, add --resume {manifest['family']['id']} to the same command)",
            file=sys.stderr,
        )
        if bar.on_start is not None:  # a job records the run it reached
            bar.on_start(run_id)

    options = SweepOptions(
        latency_sample=args.latency_sample,
        progress=bar,
        on_start=announce,
        cancel=bar.cancel,
        block_size=int(os.environ.get("RETRIEVER_LAB_BLOCK_SIZE", 50)),
    )
    try:
        run_ids = run_family_sweep(
            run_store_from(args), indexes, configs, questions, str(args.questions), options, resume=args.resume
        )
    finally:
        bar.close()
    runs = [run_store_from(args).load(run_id) for run_id in run_ids]
    table = family_leaderboard(family_rows(runs, labels, args.labels_source), args.metric)
    print(f"runs {', '.join(run_ids)}  ({len(indexes)} indexes x {len(configs)} configs x {len(questions)} questions)")
    print(_table_text(table, args.metric, args.top))
    best = describe_best(table, args.metric)
    print(
        f"best: {best['index']} with {best['config_id']}: {args.metric} {best[args.metric]:.3f} "
        f"[{best['low']:.3f}, {best['high']:.3f}], {best['context_chars']:.0f} characters retrieved"
    )


def _table_text(table: Any, metric: str, top: int) -> str:
    lines = [f"{'index':<48} {'config':<24} {metric:>8} {'95% CI':>17} {'chars':>7}"]
    for row in table.head(top).itertuples(index=False):
        row = row._asdict()
        lines.append(
            f"{row['index'][:48]:<48} {row['config_id'][:24]:<24} {row[f'{metric}_mean']:>8.3f} "
            f"[{row[f'{metric}_low']:.3f}, {row[f'{metric}_high']:.3f}] {row['context_chars_mean']:>7.0f}"
        )
    return "\n".join(lines)
