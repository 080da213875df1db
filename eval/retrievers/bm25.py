"""BM25: LangChain's `BM25Retriever` (langchain-community, rank_bm25's `BM25Okapi`) with `k`, `k1`, `b` and a
tokenizer (its `preprocess_func`), over the BM25 side an index keeps beside its Chroma collection.

The fast path builds each BM25 model once per index and tokenizer and scores a question with rank_bm25's own
arithmetic over a term -> postings table (`eval.index.bm25`): the same floats as `BM25Okapi.get_scores`, so
ties break the same way in the same `np.argsort`.
"""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from langchain_community.retrievers import BM25Retriever

from eval.errors import ConfigError
from eval.index.bm25 import TOKENIZERS, bm25_side
from eval.index.store import Index
from eval.retrievers.base import Build, Expand, Kind, Results, alternatives, check_entry, finite_number, whole_number
from eval.schema import Question

BM25_DEFAULTS = {"k": 4, "k1": 1.5, "b": 0.75, "tokenizer": "words"}
ENTRY_KEYS = {"search_type", "k", "k1", "b", "tokenizer"}


@dataclass(frozen=True)
class BM25Config:
    """LangChain's `BM25Retriever` with `k`, rank_bm25's `k1` and `b`, and a tokenizer (`preprocess_func`)."""

    k: int = BM25_DEFAULTS["k"]
    k1: float = BM25_DEFAULTS["k1"]
    b: float = BM25_DEFAULTS["b"]
    tokenizer: str = BM25_DEFAULTS["tokenizer"]
    search_type: str = field(default="bm25", init=False)
    filter_json: None = field(default=None, init=False)

    @cached_property  # read once per row: made once per config
    def config_id(self) -> str:
        """e.g. `bm25-k10-jieba`, with `-k1_1.2` / `-b0.5` when they differ from rank_bm25's defaults."""
        parts = ["bm25", f"k{self.k}", self.tokenizer]
        if self.k1 != BM25_DEFAULTS["k1"]:
            parts.append(f"k1_{self.k1:g}")
        if self.b != BM25_DEFAULTS["b"]:
            parts.append(f"b{self.b:g}")
        return "-".join(parts)

    def params(self) -> dict[str, Any]:
        return {"search_type": "bm25", "k": self.k, "k1": self.k1, "b": self.b, "tokenizer": self.tokenizer}

    def dependencies(self) -> tuple[()]:
        return ()

    def most_returned(self) -> int:
        return self.k


def expand(entry: dict[str, Any], where: str, expand_entry: Expand) -> list[BM25Config]:
    check_entry(entry, where, ENTRY_KEYS)
    names = [name for name in ("k", "k1", "b", "tokenizer") if name in entry]
    return [
        bm25_config({**BM25_DEFAULTS, **dict(zip(names, values))}, where)
        for values in itertools.product(*(alternatives(entry[name]) for name in names))
    ]


def bm25_config(params: dict[str, Any], where: str) -> BM25Config:
    if params["tokenizer"] not in TOKENIZERS:
        raise ConfigError(f"{where}: unknown tokenizer {params['tokenizer']!r} (use one of: {', '.join(TOKENIZERS)})")
    k = whole_number(params["k"], "k", where)
    k1, b = finite_number(params["k1"], "k1", where), finite_number(params["b"], "b", where)
    if k1 < 0 or not 0 <= b <= 1:
        raise ConfigError(f"{where}: BM25 needs k1 >= 0 and b in [0, 1], got k1={k1:g}, b={b:g}")
    return BM25Config(k=k, k1=k1, b=b, tokenizer=params["tokenizer"])


def fast_bm25(
    index: Index,
    configs: list[BM25Config],
    questions: list[Question],
    query_vectors: np.ndarray | None,
    results: Results,
) -> None:
    """BM25 configs sharing (tokenizer, k1, b) share one score array and one `np.argsort` per question."""
    side = bm25_side(index)
    groups: dict[tuple[str, float, float], list[BM25Config]] = defaultdict(list)
    for config in configs:
        groups[config.tokenizer, config.k1, config.b].append(config)
    for (tokenizer, k1, b), group in groups.items():
        for question in questions:
            scores = side.scores(tokenizer, k1, b, question.question)
            ranking = np.argsort(scores)[::-1]  # BM25Okapi.get_top_n, ties included
            for config in group:
                top = ranking[: config.k]
                results[question.id, config.config_id] = side.retrieved(top, scores[top])


def langchain_retriever(index: Index, config: BM25Config, build: Build) -> BM25Retriever:
    side = bm25_side(index)
    return BM25Retriever.from_texts(
        side.texts,
        metadatas=side.metadatas,
        ids=side.chunk_ids,
        bm25_params={"k1": config.k1, "b": config.b},
        preprocess_func=TOKENIZERS[config.tokenizer],
        k=config.k,
    )


def langchain_scores(
    index: Index,
    config: BM25Config,
    retriever: BM25Retriever,
    question: str,
    documents: list[Any],
    query_vector: np.ndarray | None,
) -> list[float]:
    """`BM25Okapi.get_scores` of the question, for each returned chunk."""
    scores = retriever.vectorizer.get_scores(retriever.preprocess_func(question))
    side = bm25_side(index)
    return [scores[side.position[d.metadata["chunk_id"]]] for d in documents]


KIND = Kind(("bm25",), expand, "BM25", fast_bm25, langchain_retriever, langchain_scores)
