"""Diversity of one retrieved list: how different its chunks are from each other."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from eval.metrics.catalogue import Metric, names

DIVERSITY = (
    Metric(
        "ild", "Intra-list diversity", "diversity", True, "mean over pairs of retrieved chunks of 1 - cosine similarity"
    ),
    Metric(
        "near_duplicate_rate",
        "Near-duplicate rate",
        "diversity",
        False,
        "pairs of retrieved chunks with cosine similarity >= threshold / pairs",
    ),
    Metric("distinct_doc_ratio", "Distinct documents", "diversity", True, "distinct documents / retrieved chunks"),
    Metric("n_retrieved", "Chunks retrieved", "diversity", True, "number of chunks returned"),
)
DIVERSITY_METRIC_KEYS = names(DIVERSITY)
CONTEXT = (
    Metric(
        "context_chars",
        "Characters retrieved",
        "diversity",
        False,
        "characters of the retrieved chunks (the context the prompt pays for): bigger chunks retrieve more",
    ),
)


def context_chars(texts: Sequence[str]) -> float:
    """The characters of one retrieved list."""
    return float(sum(len(text) for text in texts))


@lru_cache(maxsize=128)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The indexes of the upper triangle of an n x n matrix (every pair once), made once per n."""
    return np.triu_indices(n, 1)


def diversity_metrics(
    embeddings: np.ndarray, doc_ids: Sequence[str], near_duplicate_threshold: float = 0.95
) -> dict[str, float]:
    """Diversity of one retrieved list of n chunks (embeddings n x d, L2-normalized).

    ild = mean over pairs of (1 - cos), near_duplicate_rate = share of pairs with
    cos >= threshold (both NaN when n < 2), distinct_doc_ratio = distinct doc ids / n
    (NaN when n = 0), n_retrieved = n.
    """
    columns = diversity_metric_columns([embeddings], [doc_ids], near_duplicate_threshold)
    return {name: values[0] for name, values in columns.items()}


def diversity_metric_columns(
    embeddings: Sequence[np.ndarray], doc_ids: Sequence[Sequence[str]], near_duplicate_threshold: float = 0.95
) -> dict[str, list[float]]:
    """`diversity_metrics` of many lists at once: the lists of each length n share one stacked product of
    their n x n cosine matrices. One column of values per metric."""
    sizes = [len(ids) for ids in doc_ids]
    ild, near = [np.nan] * len(sizes), [np.nan] * len(sizes)
    by_size: dict[int, list[int]] = {}
    for i, (n, vectors) in enumerate(zip(sizes, embeddings, strict=True)):
        if len(vectors) != n:
            raise ValueError(f"{len(vectors)} embeddings for {n} doc ids")
        if n >= 2:
            by_size.setdefault(n, []).append(i)
    for n, rows in by_size.items():
        vectors = np.stack([np.asarray(embeddings[i], dtype=float) for i in rows])
        cos = np.clip((vectors @ vectors.transpose(0, 2, 1))[(slice(None), *_pairs(n))], -1.0, 1.0)
        for i, row_ild, row_near in zip(
            rows, np.mean(1.0 - cos, axis=1).tolist(), np.mean(cos >= near_duplicate_threshold, axis=1).tolist()
        ):
            ild[i], near[i] = row_ild, row_near
    return {
        "ild": ild,
        "near_duplicate_rate": near,
        "distinct_doc_ratio": [len(set(ids)) / n if n else np.nan for ids, n in zip(doc_ids, sizes)],
        "n_retrieved": [float(n) for n in sizes],
    }
