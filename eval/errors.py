"""The project's own error type: every bad input ends in a `LabError` with a one-line message."""

from __future__ import annotations

from pathlib import Path


class LabError(Exception):
    """A user-facing error: the message says what is wrong and where."""


class DatasetError(LabError):
    """A problem in a dataset file, located by file, line and field when known."""

    def __init__(
        self, problem: str, file: str | Path | None = None, line: int | None = None, field: str | None = None
    ) -> None:
        self.problem, self.file, self.line, self.field = problem, file, line, field
        where = []
        if file is not None:
            where.append(Path(file).name)
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field '{field}'")
        super().__init__(f"{', '.join(where)}: {problem}" if where else problem)


class ConfigError(LabError):
    """An invalid retriever configuration or sweep spec."""
