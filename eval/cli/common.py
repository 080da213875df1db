"""What the command groups share: the stores a command works on, from the global options, and small argument helpers."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from eval.errors import LabError
from eval.index.store import IndexStore
from eval.jobs.store import JobStore
from eval.runs.store import RunStore


def store_from(args: argparse.Namespace):
    if (args.chroma_host is None) != (args.chroma_port is None):
        raise LabError("give both --chroma-host and --chroma-port to use a Chroma server")
    return IndexStore(args.indexes or args.home / "indexes", args.chroma_host, args.chroma_port, home=args.home)


def run_store_from(args: argparse.Namespace):
    return RunStore(args.home / "runs")


def warn_of_encoder_change(index: Any) -> None:
    """Before a sweep: say so when the index was built by another build of its encoder."""
    change = index.encoder_change()
    if change:
        print(f"warning: {change}", file=sys.stderr)


def job_store_from(args: argparse.Namespace):
    return JobStore(args.home)


def json_arg(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise LabError(f'{option} must be JSON, e.g. \'{{"lang": "zh"}}\' ({error.msg})') from None
