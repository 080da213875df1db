"""The headless CLI: `python -m eval ...`. Bad input exits with code 2 and a one-line message."""

from __future__ import annotations

import logging
import sys

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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _print_engine_notes()
    try:
        code = handler_of(args)(args)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return code or 0
