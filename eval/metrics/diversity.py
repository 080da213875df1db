"""Diversity of one retrieved list: how different its chunks are from each other."""
from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from eval.metrics.catalogue import Metric, names

DIVERSITY = (
    Metric("ild", "Intra-list diversity", "diversity", True,
           "mean over pairs of retrieved chunks of 1 - cosine similarity"),
    Metric("near_duplicate_rate", "Near-duplicate rate", "diversity", False,
           "pairs of retrieved chunks with cosine similarity >= threshold / pairs"),
    Metric("distinct_doc_ratio", "Distinct documents", "diversity", True, "distinct documents / retrieved chunks"),
    Metric("n_retrieved", "Chunks retrieved", "diversity", True, "number of chunks returned"),
)
DIVERSITY_METRIC_KEYS = names(DIVERSITY)
CONTEXT = (
    Metric("context_chars", "Characters retrieved", "diversity", False,
           "characters of the retrieved chunks (the context the prompt pays for): bigger chunks retrieve more"),
)


def context_chars(texts: Sequence[str]) -> float:
    """The characters of one retrieved list."""
    return float(sum(len(text) for text in texts))


@lru_cache(maxsize=128)
def _pairs(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The indexes of the upper triangle of an n x n matrix (every pair once), made once per n."""
    return np.triu_indices(n, 1)


def diversity_metrics(embeddings: np.ndarray, doc_ids: Sequence[str],
                      near_duplicate_threshold: float = 0.95) -> dict[str, float]:
    """Diversity of one retrieved list of n chunks (embeddings n x d, L2-normalized).

    ild = mean over pairs of (1 - cos), near_duplicate_rate = share of pairs with
    cos >= threshold (both NaN when n < 2), distinct_doc_ratio = distinct doc ids / n
    (NaN when n = 0), n_retrieved = n.
    """
    n = len(doc_ids)
    out = {"ild": np.nan, "near_duplicate_rate": np.nan,
           "distinct_doc_ratio": len(set(doc_ids)) / n if n else np.nan, "n_retrieved": float(n)}
    if n >= 2:
        vectors = np.asarray(embeddings, dtype=float)
        if vectors.shape[0] != n:
            raise ValueError(f"{vectors.shape[0]} embeddings for {n} doc ids")
        cos = np.clip((vectors @ vectors.T)[_pairs(n)], -1.0, 1.0)
        out["ild"] = float(np.mean(1.0 - cos))
        out["near_duplicate_rate"] = float(np.mean(cos >= near_duplicate_threshold))
    return out
