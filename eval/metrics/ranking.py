"""Document-level ranking metrics, ranx-compatible to 1e-9, at any cutoff (`ndcg@10`), on graded relevance.

Chunks are first reduced to documents, each at the rank of its first chunk; a cutoff k counts documents of
that list. Relevance judgements are a set of relevant document ids (grade 1 each) or `{doc_id: grade}` with
integer grades (0 = judged not relevant, 1, 2, ...). As in ranx and trec_eval, a document is relevant when
its grade is >= 1 (hit rate, precision, recall, MRR, MAP), and nDCG takes the grade as the gain. A question
without any relevant document cannot be scored: NaN. `tests/test_metrics.py` checks every metric, with and
without cutoff, binary and graded, against ranx.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import lru_cache

import numpy as np

from eval.metrics.catalogue import Metric, names, parse_metric

RANKING = (
    Metric("hit_rate", "Hit rate", "relevance", True, "1 if any retrieved document is relevant, else 0",
           at_cutoff="1 if one of the first {k} retrieved documents is relevant, else 0"),
    Metric("precision", "Precision", "relevance", True,
           "relevant retrieved documents / retrieved documents (chunks of one document count once)",
           at_cutoff="relevant documents among the first {k} retrieved / {k}"),
    Metric("recall", "Recall", "relevance", True, "relevant retrieved documents / relevant documents",
           at_cutoff="relevant documents among the first {k} retrieved / relevant documents"),
    Metric("mrr", "MRR", "relevance", True, "1 / rank of the first relevant document (0 if none)",
           at_cutoff="1 / rank of the first relevant document if it is among the first {k}, else 0"),
    Metric("ndcg", "nDCG", "relevance", True,
           "sum gain_i / log2(i+1) over the retrieved documents (gain: the relevance grade, 1 for a relevant "
           "id), divided by the same sum for all relevant documents ranked best first",
           at_cutoff="nDCG of the first {k} retrieved documents, against the {k} best relevant documents"),
    Metric("map", "MAP", "relevance", True,
           "sum of precision@i at the ranks i of relevant documents / relevant documents",
           at_cutoff="sum of precision@i at the ranks i <= {k} of relevant documents / relevant documents"),
)
DOC_METRIC_KEYS = names(RANKING)
Judgements = Mapping[str, int] | Iterable[str]


def hit_rate(rel: np.ndarray, k: int | None = None) -> float:
    """1 if one of the first k items is relevant (rel[i] = 1 when the item at rank i+1 is), else 0."""
    return float(rel[:k].any())


def precision(rel: np.ndarray, k: int | None = None) -> float:
    """Relevant items among the first k / k: at a cutoff the denominator is k even for a shorter list (ranx,
    trec_eval); without one it is the list's length. An empty list scores 0."""
    n = rel.size if k is None else k
    return float(rel[:n].sum() / n) if n else 0.0


def reciprocal_rank(rel: np.ndarray, k: int | None = None) -> float:
    """1 / rank of the first relevant item among the first k (0 if none)."""
    hits = np.flatnonzero(rel[:k])
    return 1.0 / float(hits[0] + 1) if hits.size else 0.0


def _recall(rel: np.ndarray, gains: np.ndarray, ideal: np.ndarray, k: int | None) -> float:
    return float(rel[:k].sum() / ideal.size)


def _dcg(gains: np.ndarray) -> float:
    return np.sum(gains / _log2_ranks(gains.size))


@lru_cache(maxsize=256)
def _log2_ranks(n: int) -> np.ndarray:
    """log2(rank + 1) for ranks 1..n, the DCG discounts, made once per n (read-only: it is shared)."""
    ranks = np.log2(np.arange(2, n + 2))
    ranks.setflags(write=False)
    return ranks


def _ndcg(rel: np.ndarray, gains: np.ndarray, ideal: np.ndarray, k: int | None) -> float:
    """DCG / IDCG; the ideal ranking is every relevant document by grade, cut at k too."""
    return float(_dcg(gains[:k]) / _dcg(ideal[:k]))


def _average_precision(rel: np.ndarray, gains: np.ndarray, ideal: np.ndarray, k: int | None) -> float:
    rel = rel[:k]
    precision_at = np.cumsum(rel) / np.arange(1, rel.size + 1)
    return float(np.sum(precision_at * rel) / ideal.size)


_COMPUTE: dict[str, Callable[[np.ndarray, np.ndarray, np.ndarray, int | None], float]] = {
    "hit_rate": lambda rel, gains, ideal, k: hit_rate(rel, k),
    "precision": lambda rel, gains, ideal, k: precision(rel, k),
    "recall": _recall,
    "mrr": lambda rel, gains, ideal, k: reciprocal_rank(rel, k),
    "ndcg": _ndcg,
    "map": _average_precision}


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


def doc_metrics(retrieved_doc_ids: Sequence[str], relevant: Judgements,
                metrics: Sequence[str] = DOC_METRIC_KEYS) -> dict[str, float]:
    """Document-level relevance of one retrieved list of chunks' doc ids, one value per requested metric.

    `relevant` is a set of relevant ids or `{doc_id: grade}`; metrics are names of `RANKING`, with an
    optional cutoff (`ndcg@10`). An empty list scores 0; no relevant document gives NaN everywhere.
    """
    plan = _plan(tuple(metrics))
    grades = relevant if isinstance(relevant, Mapping) else dict.fromkeys(relevant, 1)
    ideal = np.sort(np.array([g for g in grades.values() if g >= 1], dtype=float))[::-1]
    if not ideal.size:
        return {spec: np.nan for spec, _, _ in plan}
    gains = np.array([grades.get(doc, 0) for doc in dict.fromkeys(retrieved_doc_ids)], dtype=float)
    rel = (gains >= 1).astype(float)
    return {spec: compute(rel, gains, ideal, k) for spec, compute, k in plan}
