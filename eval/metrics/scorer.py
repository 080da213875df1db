"""Run scorers: metrics computed over a sweep's finished rows (ragas' context metrics, an LLM judge, ...).

The sweep knows no scorer by name: it runs whatever `SweepOptions(scorers=[...])` holds, in order, once every
block is retrieved (and answered), adds the columns each one declares, and records each `describe()` in the
run manifest, so that a resumed run can refuse another set of scorers. A scorer lives beside the metrics it
computes (`eval.metrics.ragas.RagasContextScorer`, `eval.metrics.llm_answer.JudgeScorer`) and takes its columns from the
metric catalogue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import pandas as pd

from eval.schema import Chunk, Question

Need = Literal["answers", "chunk_texts", "index"]


class ChunkSource(Protocol):
    """What a scorer may read of the run's index (metrics sit below indexes, so they see only this)."""

    def chunks(self, limit: int | None = None, offset: int = 0, where: dict | None = None) -> list[Chunk]: ...


@dataclass
class ScoringContext:
    """What a scorer may read besides the rows (one per question x config, with `question_id`,
    `config_id`, `chunk_ids`, `doc_ids`, ... and, with generation, `answer`)."""

    questions: dict[str, Question]
    chunk_texts: dict[str, str]  # chunk id -> text, for every chunk the run retrieved
    index: ChunkSource  # the run's index
    progress: Callable[[str, int, int], None] | None = None  # (stage, done, total)


class RunScorer(Protocol):
    """Scores a run's rows. `needs` says what it reads ("answers": the rows must have generated answers;
    "chunk_texts", "index": from the context); `columns` are the columns it adds, in order."""

    @property
    def needs(self) -> frozenset[Need]: ...

    @property
    def columns(self) -> tuple[str, ...]: ...

    def describe(self) -> dict[str, Any]:
        """What the run manifest records: a `name` and every setting that changes the scores (no secrets)."""
        ...

    def score(self, rows: pd.DataFrame, context: ScoringContext) -> pd.DataFrame:
        """One output row per input row, in order, with exactly `columns`."""
        ...
