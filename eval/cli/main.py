"""The headless CLI: `python -m eval ...`. Bad input exits with code 2 and a one-line message."""

from __future__ import annotations

import logging
import signal
import sys
from typing import Any

from eval.cli.parser import build_parser, handler_of
from eval.errors import LabError


class _EngineNotes(logging.Handler):
    """The engine's INFO messages (e.g. a one-time ONNX export), printed to the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        print(record.getMessage(), file=sys.stderr)


def _print_engine_notes() -> None:
    logger = logging.getLogger("eval")
    if not any(isinstance(handler, _EngineNotes) for handler in logger.handlers):
        logger.addHandler(_EngineNotes())
        logger.setLevel(logging.INFO)


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`), raised in the main thread like Ctrl-C, so that what runs records that it stopped (a
    run: "interrupted", resumable) before the process ends."""


def raise_terminated(signum: int, frame: Any) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _print_engine_notes()
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        code = handler_of(args)(args)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as stop:  # a command that knows what stopped says so in the exception
        print(stop.args[0] if stop.args else "interrupted", file=sys.stderr)
        return 128 + (signal.SIGTERM if isinstance(stop, Terminated) else signal.SIGINT)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return code or 0
