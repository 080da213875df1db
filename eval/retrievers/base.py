"""What every retriever kind shares: the config protocol, the `Kind` record the registry holds, and the checks
of sweep spec values.

A kind (vector search, BM25, ensemble, rerank, each external platform) is one module that declares a `Kind`:
how it expands a sweep spec entry into validated configs, how it retrieves a block of questions on the fast
path, how it builds LangChain's own retriever for the reference path and scores what that returns, and which
stage its chunks come from. `eval.retrievers.registry` holds the kinds by `search_type` and dispatches on
them; nothing else needs to know which kinds exist.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from eval.errors import ConfigError
from eval.index.store import Index
from eval.schema import Question, Retrieved

Results = dict[tuple[str, str], Retrieved]  # (question id, config id) -> what the config retrieved


class Config(Protocol):
    """A retriever configuration of any kind: hashable, with a stable id and LangChain's parameter names."""

    search_type: str
    filter_json: str | None

    @property
    def config_id(self) -> str: ...

    def params(self) -> dict[str, Any]:
        """The config by LangChain's names, as stored in runs and exports (with `search_type`)."""
        ...

    def dependencies(self) -> tuple[Config, ...]:
        """The configs whose results this one is built from (an ensemble's retrievers, a reranker's base)."""
        ...

    def most_returned(self) -> int:
        """The most chunks the config's retriever returns."""
        ...


Expand = Callable[[Any, str], list[Config]]  # the registry's own expansion, for entries inside entries
Build = Callable[[Config], Any]  # the LangChain retriever of a dependency


@dataclass(frozen=True)
class Kind:
    """One kind of retriever, as the registry dispatches on it.

    - `expand(entry, where, expand)`: a sweep spec entry (list values are alternatives) -> validated configs;
      `expand` expands the entries nested in it.
    - `fast(index, configs, questions, query_vectors, results)`: adds each config's result for each question
      to `results`, which already holds the results of every dependency. None for external kinds, whose
      calls the sweep makes through `eval.retrievers.external.client`.
    - `langchain(index, config, build)`: LangChain's retriever for the config (`build` gives a dependency's);
      `langchain_scores(index, config, retriever, question, documents, query_vector)`: the score of each
      returned document as that retriever ranks.
    - `check(configs)`: what must hold before a run starts (keys set, models loadable), or None.
    - `stage`: where its chunks come from, as Inspect names it ("vector", "BM25", "fused", "reranked",
      "external").
    """

    search_types: tuple[str, ...]
    expand: Callable[[dict[str, Any], str, Expand], list[Any]]
    stage: str
    fast: Callable[[Index, list[Any], list[Question], np.ndarray | None, Results], None] | None = None
    langchain: Callable[[Index, Any, Build], Any] | None = None
    langchain_scores: Callable[..., list[float]] | None = None
    check: Callable[[list[Any]], None] | None = None

    @property
    def external(self) -> bool:
        """Its configs are answered by a service or a file, not retrieved in this process."""
        return self.fast is None


def alternatives(value: Any) -> list[Any]:
    """A spec value's alternatives: a list as it is, anything else as the only one."""
    return value if isinstance(value, list) else [value]


def whole_number(value: Any, name: str, where: str, minimum: int = 1) -> int:
    """A finite whole number of at least `minimum` (2.0 counts; 2.5, True, .inf and NaN do not)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or int(value) != value
        or value < minimum
    ):
        raise ConfigError(f"{where}: {name} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


def finite_number(value: Any, name: str, where: str) -> float:
    """A finite number (ints become floats; True, NaN and infinities are refused)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ConfigError(f"{where}: {name} must be a finite number, got {value!r}")
    return float(value)


def finite_json(value: Any, name: str) -> None:
    """No NaN or infinity anywhere in a value that goes out as JSON (a metadata filter, a request body): JSON
    cannot carry them. The caller adds where the value sits."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{name} holds {value!r}: a JSON value takes finite numbers only")
    for item in value.values() if isinstance(value, dict) else value if isinstance(value, list) else ():
        finite_json(item, name)


def take(candidates: Retrieved, picks: list[int]) -> Retrieved:
    """The candidates at positions `picks`, in that order."""
    return Retrieved(
        [candidates.chunk_ids[i] for i in picks],
        [candidates.doc_ids[i] for i in picks],
        [candidates.scores[i] for i in picks],
        [candidates.texts[i] for i in picks],
        candidates.embeddings[picks] if picks else candidates.embeddings[:0],
    )


def check_entry(entry: dict[str, Any], where: str, allowed: set[str]) -> None:
    """No key the kind does not take, and no empty list of alternatives."""
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key '{unknown[0]}' for search_type {entry.get('search_type')} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )
    empty = [name for name, value in entry.items() if value == []]
    if empty:
        raise ConfigError(f"{where}: '{empty[0]}' has an empty list")
