"""Document-level ranking metrics, ranx-compatible to 1e-9, at any cutoff (`ndcg@10`), on graded relevance.

Chunks are first reduced to documents, each at the rank of its first chunk; a cutoff k counts documents of
that list. Relevance judgements are a set of relevant document ids (grade 1 each) or `{doc_id: grade}` with
integer grades (0 = judged not relevant, 1, 2, ...). As in ranx and trec_eval, a document is relevant when
its grade is >= 1 (hit rate, precision, recall, MRR, MAP), and nDCG takes the grade as the gain. A question
without any relevant document cannot be scored: NaN. `tests/metrics/test_metrics.py` checks every metric, with and
without cutoff, binary and graded, against ranx.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from eval.metrics.catalogue import Metric, names, parse_metric

RANKING = (
    Metric(
        "hit_rate",
        "Hit rate",
        "relevance",
        True,
        "1 if any retrieved document is relevant, else 0",
        at_cutoff="1 if one of the first {k} retrieved documents is relevant, else 0",
    ),
    Metric(
        "precision",
        "Precision",
        "relevance",
        True,
        "relevant retrieved documents / retrieved documents (chunks of one document count once)",
        at_cutoff="relevant documents among the first {k} retrieved / {k}",
    ),
    Metric(
        "recall",
        "Recall",
        "relevance",
        True,
        "relevant retrieved documents / relevant documents",
        at_cutoff="relevant documents among the first {k} retrieved / relevant documents",
    ),
    Metric(
        "mrr",
        "MRR",
        "relevance",
        True,
        "1 / rank of the first relevant document (0 if none)",
        at_cutoff="1 / rank of the first relevant document if it is among the first {k}, else 0",
    ),
    Metric(
        "ndcg",
        "nDCG",
        "relevance",
        True,
        "sum gain_i / log2(i+1) over the retrieved documents (gain: the relevance grade, 1 for a relevant "
        "id), divided by the same sum for all relevant documents ranked best first",
        at_cutoff="nDCG of the first {k} retrieved documents, against the {k} best relevant documents",
    ),
    Metric(
        "map",
        "MAP",
        "relevance",
        True,
        "sum of precision@i at the ranks i of relevant documents / relevant documents",
        at_cutoff="sum of precision@i at the ranks i <= {k} of relevant documents / relevant documents",
    ),
)
DOC_METRIC_KEYS = names(RANKING)
Judgements = Mapping[str, int] | Iterable[str]


class RankedLists(NamedTuple):
    """Ranked lists as zero-padded rows, so that a metric scores many lists in a few array operations.

    rel[i, j] is 1 when item j+1 of list i is relevant, gains[i, j] its grade, ideal[i] the list's relevant
    grades best first; the zeros that pad shorter rows add nothing to any sum."""

    rel: np.ndarray
    gains: np.ndarray
    lengths: np.ndarray
    ideal: np.ndarray
    n_relevant: np.ndarray

    @classmethod
    def of(cls, gains: Sequence[Sequence[float]], ideal: Sequence[Sequence[float]] | None = None) -> RankedLists:
        padded, lengths = _padded(gains)
        best, n_relevant = _padded(ideal if ideal is not None else [[]] * len(gains))
        return cls((padded >= 1).astype(float), padded, lengths, best, n_relevant)


def _padded(rows: Sequence[Sequence[float]]) -> tuple[np.ndarray, np.ndarray]:
    """Rows of different lengths as one float matrix padded with zeros (at least one column), and the lengths."""
    lengths = np.fromiter(map(len, rows), dtype=int, count=len(rows))
    matrix = np.zeros((len(rows), max(int(lengths.max(initial=0)), 1)))
    for i, row in enumerate(rows):
        matrix[i, : len(row)] = row
    return matrix, lengths


def hit_rates(lists: RankedLists, k: int | None) -> np.ndarray:
    """Each list's hit rate (`hit_rate`)."""
    return lists.rel[:, :k].any(axis=1).astype(float)


def precisions(lists: RankedLists, k: int | None) -> np.ndarray:
    """Each list's precision. At a cutoff the denominator is k even for a shorter list (ranx, trec_eval);
    without one it is the list's length. An empty list scores 0."""
    if k is not None:
        return lists.rel[:, :k].sum(axis=1) / k
    found = lists.rel.sum(axis=1)
    return np.divide(found, lists.lengths, out=np.zeros_like(found), where=lists.lengths > 0)


def reciprocal_ranks(lists: RankedLists, k: int | None) -> np.ndarray:
    """Each list's reciprocal rank (`reciprocal_rank`)."""
    hits = lists.rel[:, :k] > 0
    return np.where(hits.any(axis=1), 1.0 / (hits.argmax(axis=1) + 1), 0.0)


def _recall(lists: RankedLists, k: int | None) -> np.ndarray:
    return lists.rel[:, :k].sum(axis=1) / lists.n_relevant


def _dcg(gains: np.ndarray) -> np.ndarray:
    return np.sum(gains / _log2_ranks(gains.shape[1]), axis=1)


@lru_cache(maxsize=256)
def _log2_ranks(n: int) -> np.ndarray:
    """log2(rank + 1) for ranks 1..n, the DCG discounts, made once per n (read-only: it is shared)."""
    ranks = np.log2(np.arange(2, n + 2))
    ranks.setflags(write=False)
    return ranks


def _ndcg(lists: RankedLists, k: int | None) -> np.ndarray:
    """DCG / IDCG; the ideal ranking is every relevant document by grade, cut at k too."""
    return _dcg(lists.gains[:, :k]) / _dcg(lists.ideal[:, :k])


def _average_precision(lists: RankedLists, k: int | None) -> np.ndarray:
    rel = lists.rel[:, :k]
    precision_at = np.cumsum(rel, axis=1) / np.arange(1, rel.shape[1] + 1)
    return np.sum(precision_at * rel, axis=1) / lists.n_relevant


def hit_rate(rel: np.ndarray, k: int | None = None) -> float:
    """1 if one of the first k items is relevant (rel[i] = 1 when the item at rank i+1 is), else 0."""
    return float(hit_rates(RankedLists.of([rel]), k)[0])


def precision(rel: np.ndarray, k: int | None = None) -> float:
    """Relevant items among the first k / k (without a cutoff: / the list's length; an empty list scores 0)."""
    return float(precisions(RankedLists.of([rel]), k)[0])


def reciprocal_rank(rel: np.ndarray, k: int | None = None) -> float:
    """1 / rank of the first relevant item among the first k (0 if none)."""
    return float(reciprocal_ranks(RankedLists.of([rel]), k)[0])


_COMPUTE: dict[str, Callable[[RankedLists, int | None], np.ndarray]] = {
    "hit_rate": hit_rates,
    "precision": precisions,
    "recall": _recall,
    "mrr": reciprocal_ranks,
    "ndcg": _ndcg,
    "map": _average_precision,
}


@lru_cache(maxsize=256)
def _plan(metrics: tuple[str, ...]) -> list[tuple[str, Callable, int | None]]:
    """(metric, function, cutoff) for each requested metric; parsed once per metric list."""
    plan = []
    for spec in metrics:
        name, k = parse_metric(spec)
        if name not in _COMPUTE:
            raise ValueError(f"unknown ranking metric {spec!r}: use one of {', '.join(_COMPUTE)}, optionally @k")
        plan.append((spec, _COMPUTE[name], k))
    return plan


def doc_metrics(
    retrieved_doc_ids: Sequence[str], relevant: Judgements, metrics: Sequence[str] = DOC_METRIC_KEYS
) -> dict[str, float]:
    """Document-level relevance of one retrieved list of chunks' doc ids, one value per requested metric.

    `relevant` is a set of relevant ids or `{doc_id: grade}`; metrics are names of `RANKING`, with an
    optional cutoff (`ndcg@10`). An empty list scores 0; no relevant document gives NaN everywhere.
    """
    return {spec: values[0] for spec, values in doc_metric_columns([retrieved_doc_ids], [relevant], metrics).items()}


def doc_metric_columns(
    retrieved: Sequence[Sequence[str]], relevant: Sequence[Judgements], metrics: Sequence[str] = DOC_METRIC_KEYS
) -> dict[str, list[float]]:
    """`doc_metrics` of many lists at once (list i judged by relevant[i]): one column of values per metric.
    A sweep scores thousands of short lists; as arrays, that costs a few operations per metric instead of a
    few per list."""
    plan = _plan(tuple(metrics))
    gains, ideal = [], []
    for doc_ids, judgements in zip(retrieved, relevant, strict=True):
        grades = judgements if isinstance(judgements, Mapping) else dict.fromkeys(judgements, 1)
        ideal.append(sorted((g for g in grades.values() if g >= 1), reverse=True))
        gains.append([grades.get(doc, 0) for doc in dict.fromkeys(doc_ids)])
    lists = RankedLists.of(gains, ideal)
    unjudged = lists.n_relevant == 0
    columns = {}
    with np.errstate(divide="ignore", invalid="ignore"):
        for spec, compute, k in plan:
            values = compute(lists, k)
            values[unjudged] = np.nan
            columns[spec] = values.tolist()
    return columns
