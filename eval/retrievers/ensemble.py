"""Hybrid retrieval: LangChain's `EnsembleRetriever` (langchain-classic) over other configs, with `weights` and
the RRF constant `c`. The fast path fuses the candidate lists already in memory with `EnsembleRetriever`'s own
weighted reciprocal rank (`fuse`)."""

from __future__ import annotations

import itertools
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from langchain_classic.retrievers import EnsembleRetriever

from eval.errors import ConfigError
from eval.index.store import Index
from eval.retrievers.base import (
    Build,
    Config,
    Expand,
    Kind,
    Results,
    alternatives,
    check_entry,
    finite_number,
    whole_number,
)
from eval.schema import Question, Retrieved

ENSEMBLE_C = 60  # EnsembleRetriever's default
ENTRY_KEYS = {"search_type", "retrievers", "weights", "c"}


@dataclass(frozen=True)
class EnsembleConfig:
    """LangChain's `EnsembleRetriever(retrievers, weights, c)`: weighted reciprocal-rank fusion."""

    retrievers: tuple[Config, ...]
    weights: tuple[float, ...]
    c: int = ENSEMBLE_C
    search_type: str = field(default="ensemble", init=False)
    filter_json: None = field(default=None, init=False)

    @cached_property  # read once per row: made once per config
    def config_id(self) -> str:
        """e.g. `hybrid-w0.3-0.7-c60-bm25-k10-words+similarity-k10`."""
        weights = "-".join(f"{w:g}" for w in self.weights)
        return f"hybrid-w{weights}-c{self.c}-" + "+".join(r.config_id for r in self.retrievers)

    def params(self) -> dict[str, Any]:
        return {
            "search_type": "ensemble",
            "weights": list(self.weights),
            "c": self.c,
            "retrievers": [r.params() for r in self.retrievers],
        }

    def dependencies(self) -> tuple[Config, ...]:
        return self.retrievers

    def most_returned(self) -> int:
        """All its retrievers' chunks, before de-duplication."""
        return sum(r.most_returned() for r in self.retrievers)


def expand(entry: dict[str, Any], where: str, expand_entry: Expand) -> list[EnsembleConfig]:
    check_entry(entry, where, ENTRY_KEYS)
    retrievers = entry.get("retrievers")
    if not isinstance(retrievers, list) or len(retrievers) < 2:
        raise ConfigError(f"{where}: an ensemble needs 'retrievers', a list of at least two config entries")
    choices = [expand_entry(sub, f"{where}, retriever {n}") for n, sub in enumerate(retrievers, start=1)]
    weights = entry.get("weights", [1 / len(retrievers)] * len(retrievers))
    weight_choices = weights if isinstance(weights, list) and weights and isinstance(weights[0], list) else [weights]
    configs = []
    for weight_list in weight_choices:
        checked = _weights(weight_list, len(retrievers), where)
        for c in alternatives(entry.get("c", ENSEMBLE_C)):
            c = whole_number(c, "c", where, minimum=0)
            configs += [EnsembleConfig(tuple(combo), checked, c) for combo in itertools.product(*choices)]
    return configs


def _weights(weights: Any, retrievers: int, where: str) -> tuple[float, ...]:
    """One weight per retriever, each finite and >= 0, at least one above 0. LangChain does not ask them to sum
    to 1 (RRF only compares them), so neither does the lab."""
    if not isinstance(weights, list) or len(weights) != retrievers:
        raise ConfigError(
            f"{where}: weights {weights!r} do not match the {retrievers} retrievers "
            "(give one weight per retriever, in order, e.g. [0.3, 0.7])"
        )
    checked = tuple(finite_number(w, "weight", where) for w in weights)
    if any(w < 0 for w in checked) or not any(w > 0 for w in checked):
        raise ConfigError(f"{where}: weights {list(checked)} must be >= 0 with at least one above 0")
    return checked


def fast_fuse(
    index: Index,
    configs: list[EnsembleConfig],
    questions: list[Question],
    query_vectors: np.ndarray | None,
    results: Results,
) -> None:
    for config in configs:
        for question in questions:
            lists = [results[question.id, r.config_id] for r in config.retrievers]
            results[question.id, config.config_id] = fuse(lists, config.weights, config.c)


def fuse(lists: list[Retrieved], weights: tuple[float, ...], c: int) -> Retrieved:
    """`EnsembleRetriever.weighted_reciprocal_rank`: RRF scores keyed by chunk text (LangChain de-duplicates
    by `page_content`), the first occurrence kept, a stable sort by score, highest first."""
    rrf: dict[str, float] = defaultdict(float)
    for retrieved, weight in zip(lists, weights):
        for rank, text in enumerate(retrieved.texts, start=1):
            rrf[text] += weight / (rank + c)
    firsts: dict[str, tuple[int, int]] = {}
    for number, retrieved in enumerate(lists):
        for position, text in enumerate(retrieved.texts):
            firsts.setdefault(text, (number, position))
    order = sorted(firsts.items(), key=lambda item: rrf[item[0]], reverse=True)
    picks = [lists[n] for _, (n, _) in order], [p for _, (_, p) in order]
    offsets = np.cumsum([0] + [len(r.texts) for r in lists])
    rows = np.array([offsets[n] + p for _, (n, p) in order], dtype=int)
    return Retrieved(
        [r.chunk_ids[p] for r, p in zip(*picks)],
        [r.doc_ids[p] for r, p in zip(*picks)],
        [rrf[text] for text, _ in order],
        [text for text, _ in order],
        np.concatenate([r.embeddings for r in lists])[rows],
    )


def langchain_retriever(index: Index, config: EnsembleConfig, build: Build) -> EnsembleRetriever:
    return EnsembleRetriever(retrievers=[build(r) for r in config.retrievers], weights=list(config.weights), c=config.c)


def langchain_scores(
    index: Index,
    config: EnsembleConfig,
    retriever: EnsembleRetriever,
    question: str,
    documents: list[Any],
    query_vector: np.ndarray | None,
) -> list[float]:
    """The fused RRF score of each returned chunk, from its retrievers' own lists."""
    rrf: dict[str, float] = defaultdict(float)
    for sub, weight in zip(retriever.retrievers, retriever.weights):
        for rank, document in enumerate(sub.invoke(question), start=1):
            rrf[document.page_content] += weight / (rank + retriever.c)
    return [rrf[d.page_content] for d in documents]


KIND = Kind(("ensemble",), expand, "fused", fast_fuse, langchain_retriever, langchain_scores)
