"""Honest label jobs: a question generation or a pooled judging stops as failed after `limit` failures in a
row (a model that cannot do the task fails every item: better to say so after ten than after a thousand), and a
job that produced nothing fails instead of ending "done"."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from eval.errors import LabError

DEFAULT_MAX_FAILURES = 10
WHAT_TO_DO = "use a model that can do this (a real model or an endpoint: --llm openai:MODEL@URL), or label by hand"


class LabelJobFailed(LabError):
    """A label job that stopped because its model failed: the message says why and what to do."""


@dataclass
class FailureStreak:
    """Counts consecutive failures of `model` at `task`; `limit` 0 never stops."""

    task: str
    model: str
    limit: int = DEFAULT_MAX_FAILURES
    streak: int = 0

    def __post_init__(self) -> None:
        if self.limit < 0:
            raise LabError(f"--max-failures must be 0 (never stop) or more, got {self.limit}")

    def record(self, failure: str | None) -> None:
        """Note one item's outcome (None: it worked); raise `LabelJobFailed` once `limit` failed in a row."""
        self.streak = 0 if failure is None else self.streak + 1
        if self.limit and self.streak >= self.limit:
            raise LabelJobFailed(
                f"{self.task} stopped after {self.streak} failures in a row with {self.model} "
                f"(last: {one_line(failure or '')}): {WHAT_TO_DO}, or raise --max-failures"
            )


SMOKE_TEST_PREFIX = "bundled:"  # the bundled models are smoke tests (`eval.generation.generators.BUNDLED_MODELS`)


def refuse_chinese_on_smoke_test(model: str, languages: Iterable[str], task: str) -> None:
    """The bundled 135M model does not read Chinese: its English tokenizer spends about 1.8 tokens per Chinese
    character (0.25 per English one), so a Chinese judging prompt is about 900 tokens against about 220 for an
    English one, each pair takes up to a minute on a busy CPU, and its replies are noise ("1. 1"). Refuse at
    once rather than after an hour."""
    if model.startswith(SMOKE_TEST_PREFIX) and "zh" in set(languages):
        raise LabelJobFailed(
            f"{task} of Chinese text with {model} refused: this 135M smoke-test model's English tokenizer makes a "
            "Chinese prompt about 4x as long as an English one (up to a minute a pair) and its replies are not "
            f"grades; {WHAT_TO_DO}"
        )


def nothing_produced(task: str, model: str, tried: int, last: str | None) -> LabelJobFailed:
    """The error of a label job that ended without a single output."""
    return LabelJobFailed(
        f"{task} with {model} produced nothing: {tried} tried, every one failed"
        + (f" (last: {one_line(last)})" if last else "")
        + f"; nothing was saved: {WHAT_TO_DO}"
    )


def one_line(text: str, width: int = 120) -> str:
    return " ".join(str(text).split())[:width]
