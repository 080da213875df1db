"""A sweep grid from per-parameter value lists (what the dashboard's grid widgets hold)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.errors import LabError
from eval.retrievers.registry import parse_sweep
from eval.retrievers.vector import RetrieverConfig


def grid_spec(
    search_types: Sequence[str],
    ks: Sequence[int],
    fetch_ks: Sequence[int] = (),
    lambdas: Sequence[float] = (),
    thresholds: Sequence[float] = (),
    filter_obj: dict[str, Any] | None = None,
    more: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The sweep spec crossing the values each search type uses: similarity takes `ks`; mmr takes every
    `fetch_k` of at least k and `lambdas`; score thresholds take `thresholds`. The filter goes on every entry.
    `more` entries (BM25, hybrid, rerank: see `bm25_entry`, `hybrid_entry`, `rerank_entry`) follow as given."""
    entries = []
    extra = {"filter": filter_obj} if filter_obj else {}
    for search_type in search_types:
        if search_type == "similarity":
            entries.append({"search_type": "similarity", "k": list(ks), **extra})
        elif search_type == "mmr":
            for k in ks:
                usable = [f for f in fetch_ks if f >= k]
                if not usable:
                    raise LabError(f"mmr: every fetch_k is below k={k}; add a fetch_k of at least {k}")
                entries.append({"search_type": "mmr", "k": k, "fetch_k": usable, "lambda_mult": list(lambdas), **extra})
        else:
            entries.append({"search_type": search_type, "k": list(ks), "score_threshold": list(thresholds), **extra})
    entries += more
    if not entries:
        raise LabError("choose at least one search type")
    return {"configs": entries}


def bm25_entry(ks: Sequence[int], tokenizers: Sequence[str]) -> dict[str, Any]:
    """BM25 configs: every k with every tokenizer."""
    return {"search_type": "bm25", "k": list(ks), "tokenizer": list(tokenizers)}


def hybrid_entry(
    bm25: dict[str, Any], vector_ks: Sequence[int], weights: Sequence[Sequence[float]], cs: Sequence[int]
) -> dict[str, Any]:
    """EnsembleRetriever configs over the BM25 entry and similarity at each of `vector_ks`: every weight pair
    (BM25's weight first) with every RRF constant c."""
    return {
        "search_type": "ensemble",
        "weights": [list(w) for w in weights],
        "c": list(cs),
        "retrievers": [bm25, {"search_type": "similarity", "k": list(vector_ks)}],
    }


RERANK_BASES = ("similarity", "bm25", "hybrid")


def rerank_base(
    kind: str,
    candidates: Sequence[int],
    tokenizers: Sequence[str],
    weights: Sequence[Sequence[float]] = (),
    cs: Sequence[int] = (),
) -> dict[str, Any]:
    """The entry a reranker reranks (one of `RERANK_BASES`), returning `candidates` chunks per retriever."""
    if kind == "similarity":
        return {"search_type": "similarity", "k": list(candidates)}
    if kind == "bm25":
        return bm25_entry(candidates, tokenizers)
    return hybrid_entry(bm25_entry(candidates, tokenizers), candidates, weights, cs)


def rerank_entry(model: str, base: dict[str, Any], top_ns: Sequence[int]) -> dict[str, Any]:
    """Cross-encoder rerank configs: each top_n over each config of the `base` entry."""
    return {"search_type": "rerank", "model": model, "top_n": list(top_ns), "base": base}


def grid_configs(
    search_types: Sequence[str],
    ks: Sequence[int],
    fetch_ks: Sequence[int] = (),
    lambdas: Sequence[float] = (),
    thresholds: Sequence[float] = (),
    filter_obj: dict[str, Any] | None = None,
    more: Sequence[dict[str, Any]] = (),
) -> list[RetrieverConfig]:
    """`grid_spec`, parsed and validated by `eval.config.parse_sweep`."""
    return parse_sweep(grid_spec(search_types, ks, fetch_ks, lambdas, thresholds, filter_obj, more), "grid")
