"""How far two label sources agree: weighted Cohen's kappa, a confusion matrix and the disagreements.

The units compared are a run's pooled (question, chunk) pairs (`eval.pooled_judge.pool`): each source grades
a chunk by the overlap rule (`eval.metrics.passage.chunk_grades`). For `gold` and `generated`, which mark
where the answers are, a chunk of a question the source labels but that overlaps none of its spans is grade
0; for LLM and human sources an unjudged chunk has no grade. Only pairs both sources grade count.

Kappa is linearly weighted by default (grades are ordered: 0 vs 2 is a worse disagreement than 0 vs 1), as
`sklearn.metrics.cohen_kappa_score(weights="linear")` computes it; `weights=None` gives the unweighted kappa.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

from eval.data.labels import COMPLETE_SOURCES, Labels
from eval.errors import LabError
from eval.labels.pooled_judging import PoolItem
from eval.metrics.passage import chunk_grades
from eval.schema import Span

GRADES = (0, 1, 2)


@dataclass(frozen=True)
class Agreement:
    source_a: str
    source_b: str
    kappa: float
    weights: str | None
    pairs: int
    exact: float  # share of pairs with the same grade
    confusion: pd.DataFrame  # rows: source_a grades, columns: source_b grades
    disagreements: pd.DataFrame  # question_id, chunk_id, grade_a, grade_b, text

    def summary(self) -> str:
        kind = f"{self.weights}-weighted " if self.weights else ""
        return (
            f"{self.source_a} vs {self.source_b}: {kind}kappa {self.kappa:.3f} on {self.pairs} pairs, "
            f"{self.exact:.1%} identical grades, {len(self.disagreements)} disagreements"
        )


def cohen_kappa(a: np.ndarray, b: np.ndarray, weights: Literal["linear", "quadratic"] | None = "linear") -> float:
    """Cohen's kappa of two integer grade vectors over grades 0..2 (NaN when it is undefined)."""
    observed = np.zeros((len(GRADES), len(GRADES)))
    np.add.at(observed, (a, b), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / max(observed.sum(), 1)
    i, j = np.indices(observed.shape)
    cost = {None: (i != j).astype(float), "linear": np.abs(i - j), "quadratic": (i - j) ** 2}[weights]
    denominator = (cost * expected).sum()
    return float(1 - (cost * observed).sum() / denominator) if denominator else float("nan")


def source_grades(labels: Labels, source: str, items: list[PoolItem]) -> list[int | None]:
    """Each pooled chunk's grade under one source (see the module docstring for unjudged chunks)."""
    spans = labels.spans(source)
    grades = []
    for item in items:
        chunk = Span(item.doc_id, item.start, item.end)
        grades.append(chunk_grades([chunk], spans.get(item.question_id, []), source in COMPLETE_SOURCES)[0])
    return grades


def agreement(
    labels: Labels,
    source_a: str,
    source_b: str,
    items: list[PoolItem],
    weights: Literal["linear", "quadratic"] | None = "linear",
) -> Agreement:
    """Agreement of two sources on the pooled chunks `items`."""
    if source_a == source_b:
        raise LabError("compare two different label sources")
    grades_a, grades_b = source_grades(labels, source_a, items), source_grades(labels, source_b, items)
    both = [(item, a, b) for item, a, b in zip(items, grades_a, grades_b) if a is not None and b is not None]
    if not both:
        raise LabError(
            f"no pooled chunk is graded by both {source_a} and {source_b}: judge the same run's pool with both first"
        )
    a = np.array([x for _, x, _ in both])
    b = np.array([y for _, _, y in both])
    confusion = pd.crosstab(pd.Categorical(a, GRADES), pd.Categorical(b, GRADES), dropna=False)
    confusion.index.name, confusion.columns.name = source_a, source_b
    disagreements = pd.DataFrame(
        [
            {"question_id": item.question_id, "chunk_id": item.chunk_id, "grade_a": x, "grade_b": y, "text": item.text}
            for item, x, y in both
            if x != y
        ],
        columns=["question_id", "chunk_id", "grade_a", "grade_b", "text"],
    )
    return Agreement(
        source_a,
        source_b,
        cohen_kappa(a, b, weights),
        weights,
        len(both),
        float(np.mean(a == b)),
        confusion,
        disagreements,
    )
