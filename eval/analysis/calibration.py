"""How LangChain's relevance scores are distributed on an index: the evidence for `score_threshold`.

For a seeded sample of questions, the top-N candidates of each question are fetched with one batched
embedding of the questions and one Chroma query per question, and scored with exactly the function LangChain
uses (`vectorstore._select_relevance_score_fn()`, for the cosine space `1 - distance`). A candidate is
relevant when its `doc_id` is among the question's `relevant_ids`.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from eval.analysis.threshold import DEFAULT_PRECISION, guaranteed_threshold
from eval.data.labels import COMPLETE_SOURCES, Labels
from eval.errors import LabError
from eval.index.store import check_relevant_ids
from eval.labels.corrected import parse_corrected
from eval.schema import Question

COLUMNS = ["question_id", "chunk_id", "doc_id", "rank", "score", "relevant"]


def score_calibration(
    index: Any, questions: Sequence[Question], sample: int = 100, top_n: int = 20, seed: int = 0
) -> pd.DataFrame:
    """One row per (question, candidate) among the top `top_n`: question_id, chunk_id, doc_id, rank (1-based),
    score (LangChain relevance score) and relevant (bool). Questions without `relevant_ids` are skipped."""
    labelled = [q for q in questions if q.relevant_ids]
    if not labelled:
        raise LabError("score calibration needs questions with relevant_ids (none of these questions has any)")

    check_relevant_ids(index, labelled)  # labels naming no document of the index would draw an all-red histogram
    return _top_candidates(index, labelled, sample, top_n, seed)


def source_calibration(
    index: Any,
    questions: Sequence[Question],
    labels: Labels,
    source: str,
    sample: int = 100,
    top_n: int = 20,
    seed: int = 0,
) -> pd.DataFrame:
    """`score_calibration`'s rows under one label source: a candidate is relevant when the source graded its
    document 1 or more for the question (document level, as gold's relevant_ids). A source that does not mark
    every relevant passage (an LLM judge, a person) leaves out the candidates of documents it did not judge for
    the question: unjudged is not irrelevant. Only questions the source judged are sampled."""
    if parse_corrected(source) is not None:
        raise LabError(
            f"calibrate counts one source's labels, and '{source}' is a correction of means: pass the person's "
            "labels (--source human:NAME) or the judge's"
        )
    grades: dict[tuple[str, str], int] = {}
    for question_id, spans in labels.spans(source).items():
        for span in spans:
            grades[question_id, span.doc_id] = max(grades.get((question_id, span.doc_id), 0), span.grade)
    judged = {question_id for question_id, _ in grades}
    chosen = [q for q in questions if q.id in judged]
    if not chosen:
        raise LabError(f"source '{source}' judged none of these {len(questions)} questions")
    rows = _top_candidates(index, chosen, sample, top_n, seed)
    grade = pd.Series([grades.get(key) for key in zip(rows["question_id"], rows["doc_id"])], dtype=float)
    if source in COMPLETE_SOURCES:
        grade = grade.fillna(0)
    rows = rows.assign(relevant=grade >= 1)[grade.notna()].reset_index(drop=True)
    if rows.empty:
        raise LabError(f"source '{source}' judged none of the top {top_n} candidates of these questions' documents")
    return rows


def _top_candidates(index: Any, questions: Sequence[Question], sample: int, top_n: int, seed: int) -> pd.DataFrame:
    """`score_calibration`'s rows for a seeded sample of the questions (relevant: False without labels)."""
    if top_n < 1:
        raise LabError(f"top_n must be at least 1, got {top_n}")
    chosen = list(questions) if len(questions) <= sample else random.Random(seed).sample(list(questions), sample)
    vectors = index.embeddings.embed_queries([q.question for q in chosen])  # the vectors the retriever uses
    relevance = index.vectorstore._select_relevance_score_fn()
    n_results = min(top_n, index.collection.count())
    records = []
    for question, vector in zip(chosen, vectors):
        got = index.collection.query(
            query_embeddings=[vector.tolist()], n_results=n_results, include=["distances", "metadatas"]
        )
        relevant = set(question.relevant_ids)
        for rank, (chunk_id, distance, metadata) in enumerate(
            zip(got["ids"][0], got["distances"][0], got["metadatas"][0]), start=1
        ):
            records.append(
                (
                    question.id,
                    chunk_id,
                    metadata["doc_id"],
                    rank,
                    float(relevance(distance)),
                    metadata["doc_id"] in relevant,
                )
            )
    return pd.DataFrame.from_records(records, columns=COLUMNS)


def threshold_grid(
    index: Any, questions: Sequence[Question], top_n: int = 10, sample: int = 100, seed: int = 0
) -> tuple[list[float], str]:
    """`score_threshold` values worth sweeping on this index, and where they come from.

    With questions whose labels name documents of the index: the calibration's suggested range and best-F1
    threshold (`suggest_threshold`), and the lowest threshold whose kept candidates reach precision 0.8 with
    95% confidence (`eval.analysis.threshold`) when one does. Otherwise the 25th, 50th and 75th percentiles of
    the top-`top_n` candidates' scores, so each threshold cuts some lists short. Fixed defaults would not do: e5-small's
    relevance scores sit between about 0.78 and 0.92, where 0.3 and 0.5 keep everything."""
    known = index.doc_ids()
    labelled = [q for q in questions if q.relevant_ids and all(d in known for d in q.relevant_ids)]
    if labelled:
        candidates = _top_candidates(index, labelled, sample, top_n, seed)
        suggestion, guarantee = suggest_threshold(candidates), guaranteed_threshold(candidates)["threshold"]
        values = [suggestion[key] for key in ("low", "best", "high") if suggestion[key] is not None]
        if values:
            guaranteed = (
                f", and {guarantee:.3f}, the lowest with precision {DEFAULT_PRECISION:g} at 95% confidence"
                if guarantee is not None
                else ""
            )
            return _rounded(values + ([guarantee] if guarantee is not None else [])), (
                f"from the calibration of {len(labelled)} labelled questions: suggested "
                f"range and best-F1 threshold among the top {top_n} candidates{guaranteed}"
            )
    if not questions:
        raise LabError("threshold values need at least one question to score")
    scores = _top_candidates(index, questions, sample, top_n, seed)["score"]
    return _rounded(scores.quantile([0.25, 0.5, 0.75]).tolist()), (
        f"from the score distribution (no labels for this index): 25th, 50th and 75th percentiles of the "
        f"top-{top_n} candidates' scores"
    )


def _rounded(values: list[float]) -> list[float]:
    return sorted({round(float(v), 3) for v in values})


def suggest_threshold(
    df: pd.DataFrame, irrelevant_percentile: float = 95.0, relevant_percentile: float = 5.0
) -> dict[str, Any]:
    """Suggest a `score_threshold` from `score_calibration` output.

    The rule:
    - `irrelevant_high` = the `irrelevant_percentile` (95th) percentile of irrelevant candidates' scores, and
      `relevant_low` = the `relevant_percentile` (5th) percentile of relevant candidates' scores.
    - The suggested range is `low = min(irrelevant_high, relevant_low)`, `high = max(...)`. When
      `irrelevant_high <= relevant_low` the two groups are separated (`separated=True`): any threshold in the
      range keeps ~95% of relevant chunks and drops ~95% of irrelevant ones. Otherwise they overlap and the
      range is where the trade-off happens.
    - `best` = the threshold `t` (among the observed scores) maximising F1 of "score >= t" as a classifier of
      relevant vs irrelevant candidates (ties: the lowest such t); `best_f1`, `best_precision`,
      `best_recall` describe it.
    Also returned: counts of relevant/irrelevant candidates and their median scores. Values are None when a
    group is empty.
    """
    scores = df["score"].to_numpy(float)
    labels = df["relevant"].to_numpy(bool)
    rel, irr = scores[labels], scores[~labels]
    out: dict[str, Any] = {
        "n_relevant": int(labels.sum()),
        "n_irrelevant": int((~labels).sum()),
        "relevant_median": float(np.median(rel)) if rel.size else None,
        "irrelevant_median": float(np.median(irr)) if irr.size else None,
        "irrelevant_high": float(np.percentile(irr, irrelevant_percentile)) if irr.size else None,
        "relevant_low": float(np.percentile(rel, relevant_percentile)) if rel.size else None,
        "low": None,
        "high": None,
        "separated": None,
        "best": None,
        "best_f1": None,
        "best_precision": None,
        "best_recall": None,
    }
    if rel.size and irr.size:
        a, b = out["irrelevant_high"], out["relevant_low"]
        out.update(low=min(a, b), high=max(a, b), separated=a <= b)
    if rel.size:
        order = np.argsort(-scores, kind="stable")
        sorted_scores, sorted_labels = scores[order], labels[order]
        true_pos = np.cumsum(sorted_labels)
        predicted = np.arange(1, len(scores) + 1)
        # only the last position of each distinct score is a valid cut ("score >= t" keeps all ties)
        last = np.r_[sorted_scores[1:] != sorted_scores[:-1], True]
        precision = true_pos / predicted
        recall = true_pos / rel.size
        f1 = np.where(precision + recall > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0)
        f1 = np.where(last, f1, -1)
        best = int(np.flatnonzero(f1 == f1.max())[-1])  # the lowest threshold among ties
        out.update(
            best=float(sorted_scores[best]),
            best_f1=float(f1[best]),
            best_precision=float(precision[best]),
            best_recall=float(recall[best]),
        )
    return out
