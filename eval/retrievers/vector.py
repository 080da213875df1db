"""Vector search: LangChain's `Chroma(...).as_retriever(search_type, search_kwargs)` with `similarity`, `mmr`
and `similarity_score_threshold`, in LangChain's vocabulary (`k`, `fetch_k`, `lambda_mult`, `score_threshold`,
`filter`).

Everything is validated here, before LangChain sees it: LangChain itself rejects an int `score_threshold`,
raises a TypeError from Chroma for `fetch_k` on `similarity`, and silently ignores `score_threshold` on `mmr`.

Two paths give identical ids, order and metrics: the fast path (`fast_retrieve`) queries Chroma once per block
of questions for each distinct search and derives every config from those candidates with LangChain's own
relevance function and MMR; the reference path invokes LangChain's `VectorStoreRetriever` and scores what it
returns as LangChain's cosine relevance would (the two scores agree to about 1e-6).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
from langchain_chroma.vectorstores import maximal_marginal_relevance

from eval.errors import ConfigError
from eval.index.store import Index
from eval.retrievers.base import Build, Expand, Kind, Results, alternatives, finite_json, take
from eval.schema import Question, Retrieved

SEARCH_TYPES = ("similarity", "mmr", "similarity_score_threshold")
PARAMETERS = ("k", "fetch_k", "lambda_mult", "score_threshold", "filter")
ALLOWED = {
    "similarity": {"k", "filter"},
    "mmr": {"k", "fetch_k", "lambda_mult", "filter"},
    "similarity_score_threshold": {"k", "score_threshold", "filter"},
}
LANGCHAIN_DEFAULTS = {"k": 4, "fetch_k": 20, "lambda_mult": 0.5}


@dataclass(frozen=True)
class RetrieverConfig:
    """One retriever configuration; build it with `RetrieverConfig.create` to validate and fill defaults."""

    search_type: str
    k: int
    fetch_k: int | None = None
    lambda_mult: float | None = None
    score_threshold: float | None = None
    filter_json: str | None = None  # the metadata filter, as canonical JSON so the config stays hashable

    @classmethod
    def create(cls, search_type: str = "similarity", **params: Any) -> RetrieverConfig:
        if search_type not in SEARCH_TYPES:
            raise ConfigError(f"unknown search_type '{search_type}' (use one of: {', '.join(SEARCH_TYPES)})")
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise ConfigError(f"unknown parameter '{unknown[0]}' (retriever parameters: {', '.join(PARAMETERS)})")
        given = {name: value for name, value in params.items() if value is not None}
        ignored = sorted(set(given) - ALLOWED[search_type])
        if ignored:
            raise ConfigError(
                f"'{ignored[0]}' is not used by search_type '{search_type}' "
                f"(it takes: {', '.join(sorted(ALLOWED[search_type]))})"
            )
        k = _int(given.get("k", LANGCHAIN_DEFAULTS["k"]), "k")
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        config = cls(search_type=search_type, k=k, filter_json=_filter_json(given.get("filter")))
        if search_type == "mmr":
            return config._with_mmr(given)
        if search_type == "similarity_score_threshold":
            if "score_threshold" not in given:
                raise ConfigError("search_type 'similarity_score_threshold' needs a score_threshold in [0, 1]")
            return replace(config, score_threshold=_unit(given["score_threshold"], "score_threshold"))
        return config

    def _with_mmr(self, given: dict[str, Any]) -> RetrieverConfig:
        fetch_k = _int(given.get("fetch_k", max(LANGCHAIN_DEFAULTS["fetch_k"], self.k)), "fetch_k")
        if fetch_k < self.k:
            raise ConfigError(f"fetch_k ({fetch_k}) must be at least k ({self.k})")
        lambda_mult = _unit(given.get("lambda_mult", LANGCHAIN_DEFAULTS["lambda_mult"]), "lambda_mult")
        return replace(self, fetch_k=fetch_k, lambda_mult=lambda_mult)

    @property
    def filter(self) -> dict[str, Any] | None:
        return json.loads(self.filter_json) if self.filter_json else None

    @property
    def candidates(self) -> int:
        """How many nearest chunks this config looks at (`fetch_k` for MMR, else `k`)."""
        return self.fetch_k or self.k

    def search_kwargs(self) -> dict[str, Any]:
        """Exactly the `search_kwargs` for `vectorstore.as_retriever(search_type=..., search_kwargs=...)`."""
        kwargs: dict[str, Any] = {"k": self.k}
        for name in ("fetch_k", "lambda_mult", "score_threshold"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        if self.filter_json:
            kwargs["filter"] = self.filter
        return kwargs

    def params(self) -> dict[str, Any]:
        """The config by LangChain's names, as stored in runs and exports."""
        return {"search_type": self.search_type, **self.search_kwargs()}

    @cached_property  # read once per row: made once per config
    def config_id(self) -> str:
        """A short, stable, readable id, e.g. `mmr-k5-f20-l0.5` or `similarity-k3-flt3fa2b1`."""
        parts = [
            {"similarity": "similarity", "mmr": "mmr", "similarity_score_threshold": "threshold"}[self.search_type],
            f"k{self.k}",
        ]
        if self.fetch_k is not None:
            parts.append(f"f{self.fetch_k}")
        if self.lambda_mult is not None:
            parts.append(f"l{self.lambda_mult:g}")
        if self.score_threshold is not None:
            parts.append(f"t{self.score_threshold:g}")
        if self.filter_json:
            parts.append("flt" + hashlib.sha256(self.filter_json.encode()).hexdigest()[:6])
        return "-".join(parts)

    def dependencies(self) -> tuple[()]:
        return ()

    def most_returned(self) -> int:
        return self.k


def _int(value: Any, name: str) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or (isinstance(value, float) and not value.is_integer())
    ):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _unit(value: Any, name: str) -> float:
    """A number in [0, 1]; ints such as `1` become floats (LangChain rejects an int threshold)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0 <= value <= 1:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def _filter_json(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ConfigError(f'filter must be a non-empty mapping such as {{"lang": "zh"}}, got {value!r}')
    finite_json(value, "filter")
    from chromadb.api.types import validate_where

    try:
        validate_where(value)
    except ValueError as error:
        raise ConfigError(f"invalid metadata filter {json.dumps(value, ensure_ascii=False)}: {error}") from None
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# ---------------------------------------------------------------- sweep spec entries


def expand(entry: dict[str, Any], where: str, expand_entry: Expand) -> list[RetrieverConfig]:
    """A vector entry: list values are alternatives; the grid is their cartesian product."""
    unknown = sorted(set(entry) - {"search_type", *PARAMETERS})
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (allowed: search_type, {', '.join(PARAMETERS)})")
    names = list(entry)
    choices = [alternatives(value) for value in entry.values()]
    for name, values in zip(names, choices):
        if not values:
            raise ConfigError(f"{where}: '{name}' has an empty list")
    configs = []
    for combination in itertools.product(*choices):
        params = dict(zip(names, combination))
        try:
            configs.append(RetrieverConfig.create(**params))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    return configs


# ---------------------------------------------------------------- the fast path


def fast_retrieve(
    index: Index,
    configs: list[RetrieverConfig],
    questions: list[Question],
    query_vectors: np.ndarray | None,
    results: Results,
) -> None:
    """All configs for a block of questions from the fewest Chroma queries that give LangChain's candidates.

    Chroma searches the HNSW graph with width max(ef_search, n_results): every `n_results` up to ef_search
    is the same search (their top-n are prefixes of one another), each larger one is a different, wider
    search. So per metadata filter, the configs with up to ef_search candidates share one query and each
    distinct candidate count above ef_search gets its own."""
    relevance = index.vectorstore._select_relevance_score_fn()
    by_search: dict[tuple[str | None, int], list[RetrieverConfig]] = {}
    for config in configs:
        by_search.setdefault((config.filter_json, max(config.candidates, index.ef_search)), []).append(config)
    for group in by_search.values():
        got = index.collection.query(
            query_embeddings=query_vectors,
            n_results=max(c.candidates for c in group),
            where=group[0].filter,
            include=["embeddings", "distances", "documents", "metadatas"],
        )
        for q_index, question in enumerate(questions):
            candidates = Retrieved(
                got["ids"][q_index],
                [m["doc_id"] for m in got["metadatas"][q_index]],
                [relevance(d) for d in got["distances"][q_index]],
                got["documents"][q_index],
                np.asarray(got["embeddings"][q_index], np.float32),
            )
            selections = mmr_selections(group, candidates, query_vectors[q_index])
            for config in group:
                results[question.id, config.config_id] = take(candidates, derive_picks(config, candidates, selections))


def mmr_selections(
    configs: list[RetrieverConfig], candidates: Retrieved, query_vector: np.ndarray
) -> dict[tuple[int, float], list[int]]:
    """LangChain's MMR, run once per (fetch_k, lambda_mult) with the largest k of the group.

    MMR is greedy, so the first k picks of a longer run are exactly the picks of a run with that k."""
    largest: dict[tuple[int, float], int] = {}
    for config in configs:
        if config.search_type == "mmr":
            key = (config.fetch_k, config.lambda_mult)
            largest[key] = max(largest.get(key, 0), config.k)
    query = np.asarray(query_vector, np.float32)
    selections = {}
    for (fetch_k, lambda_mult), k in largest.items():
        pool = min(fetch_k, len(candidates.chunk_ids))
        selections[fetch_k, lambda_mult] = (
            maximal_marginal_relevance(query, candidates.embeddings[:pool], k=k, lambda_mult=lambda_mult)
            if pool
            else []
        )
    return selections


def derive_picks(
    config: RetrieverConfig, candidates: Retrieved, mmr_selected: dict[tuple[int, float], list[int]]
) -> list[int]:
    """Positions in the candidate list that LangChain's retriever returns for this config, in its order."""
    top = range(min(config.k, len(candidates.chunk_ids)))
    if config.search_type == "similarity":
        return list(top)
    if config.search_type == "similarity_score_threshold":
        return [i for i in top if candidates.scores[i] >= config.score_threshold]
    selected = set(mmr_selected[config.fetch_k, config.lambda_mult][: config.k])
    # LangChain returns the MMR picks in Chroma's distance order, not in selection order.
    return sorted(selected)


# ---------------------------------------------------------------- the reference path


def langchain_retriever(index: Index, config: RetrieverConfig, build: Build) -> Any:
    return index.vectorstore.as_retriever(search_type=config.search_type, search_kwargs=config.search_kwargs())


def langchain_scores(
    index: Index,
    config: RetrieverConfig,
    retriever: Any,
    question: str,
    documents: list[Any],
    query_vector: np.ndarray | None,
) -> list[float]:
    """LangChain's cosine relevance (1 - cosine distance) of each returned chunk: the retriever returns no
    scores (MMR has none at all). `query_vector` is the question's vector when it is already known."""
    if not documents:
        return []
    query = np.asarray(index.embeddings.embed_query(question) if query_vector is None else query_vector, np.float32)
    return [float(score) for score in index.embeddings_of([d.metadata["chunk_id"] for d in documents]) @ query]


KIND = Kind(SEARCH_TYPES, expand, "vector", fast_retrieve, langchain_retriever, langchain_scores)
