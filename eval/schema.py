"""The shared records every stage passes on: documents and questions (with gold answer spans), chunks,
judged spans, and retrieved lists. Nothing here imports another module of the lab.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np


@dataclass(frozen=True)
class Document:
    id: str
    text: str
    title: str | None = None
    source: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class AnswerSpan:
    """Where a gold answer sits: characters [start, end) of document `doc_id`'s text."""

    doc_id: str
    start: int
    end: int


@dataclass(frozen=True)
class Question:
    id: str
    question: str
    answers: tuple[str, ...] = ()
    relevant_ids: tuple[str, ...] = ()
    spans: tuple[AnswerSpan, ...] = ()
    # How much the question counts in a weighted mean (e.g. how many lines of a query log it stands for);
    # None: not given, which counts as 1.
    weight: float | None = None

    @property
    def answer(self) -> str | None:
        return self.answers[0] if self.answers else None


@dataclass(frozen=True)
class Chunk:
    chunk_id: str
    doc_id: str
    start: int
    text: str
    metadata: dict[str, Any]


class Span(NamedTuple):
    """Characters [start, end) of document `doc_id`, with a grade when judged."""

    doc_id: str
    start: int
    end: int
    grade: int = 0


@dataclass
class Retrieved:
    chunk_ids: list[str]
    doc_ids: list[str]
    scores: list[float]
    texts: list[str]
    embeddings: np.ndarray


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: str
    doc_id: str
    score: float  # LangChain's relevance score for a cosine space: 1 - cosine distance
    text: str
    start: int
    vector: np.ndarray = field(repr=False, compare=False)  # the chunk's stored embedding
