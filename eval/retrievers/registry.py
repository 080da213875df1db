"""The registry of retriever kinds, and everything that dispatches on them: sweep specs that expand to a grid of
configs, the fast path over a mixed grid, LangChain's reference path, and the checks before a run.

Kinds, by `search_type`: `similarity`, `mmr`, `similarity_score_threshold` (`eval.retrievers.vector`), `bm25`
(`eval.retrievers.bm25`), `ensemble` (`eval.retrievers.ensemble`), `rerank` (`eval.retrievers.rerank`) and the
external platforms `chatchat`, `ragflow`, `dify`, `http_json`, `imported` (`eval.retrievers.external`).

Both paths give identical ids, order and metrics; the retriever scores agree to about 1e-6 (vector scores are
recomputed from the stored vectors on the reference path).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from eval.errors import ConfigError
from eval.index.store import Index
from eval.retrievers import bm25, ensemble, rerank, vector
from eval.retrievers.base import Config, Kind, Results
from eval.retrievers.external import config as external
from eval.schema import Question, Retrieved, RetrievedChunk

KINDS: dict[str, Kind] = {
    search_type: kind
    for kind in (vector.KIND, bm25.KIND, ensemble.KIND, rerank.KIND, *external.KINDS)
    for search_type in kind.search_types
}
DEFAULT_SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [3, 5, 10]},
        {"search_type": "mmr", "k": [5], "fetch_k": [20, 50], "lambda_mult": [0.25, 0.5, 0.75]},
        {"search_type": "similarity_score_threshold", "k": [5], "score_threshold": [0.3, 0.5]},
    ]
}


def kind_of(config: Config) -> Kind:
    return KINDS[config.search_type]


# ---------------------------------------------------------------- sweep specs


def expand_entry(entry: Any, where: str) -> list[Config]:
    """One sweep spec entry: list values are alternatives (a list of search types too); the grid is their
    cartesian product."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping like {{search_type: mmr, k: [5]}}, got {entry!r}")
    search_types = entry.get("search_type", "similarity")
    if isinstance(search_types, list):
        if not search_types:
            raise ConfigError(f"{where}: 'search_type' has an empty list")
        return [
            config
            for search_type in search_types
            for config in expand_entry({**entry, "search_type": search_type}, where)
        ]
    if not isinstance(search_types, str) or search_types not in KINDS:
        raise ConfigError(f"{where}: unknown search_type {search_types!r} (use one of: {', '.join(KINDS)})")
    return KINDS[search_types].expand({"search_type": search_types, **entry}, where, expand_entry)


def parse_sweep(spec: Any, source: str = "sweep spec") -> list[Config]:
    """Validate a sweep spec (`{configs: [...]}`) and expand it; duplicates are dropped, order kept."""
    if not isinstance(spec, dict) or "configs" not in spec:
        raise ConfigError(f"{source}: expected a mapping with a 'configs' list")
    unknown = sorted(set(spec) - {"configs", "name"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key '{unknown[0]}' (allowed: configs, name)")
    entries = spec["configs"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: 'configs' must be a non-empty list")
    configs: dict[Config, None] = {}
    for number, entry in enumerate(entries, start=1):
        for config in expand_entry(entry, f"{source}, configs entry {number}"):
            configs[config] = None
    _check_distinct_ids(list(configs), source)
    return list(configs)


def config_from_params(params: dict[str, Any], where: str) -> Config:
    """A run's stored config (`{"config_id", **params}`, any kind) as a config again, validated as a sweep spec
    entry is, and refused when it does not give back the stored config id."""
    entry = {name: value for name, value in params.items() if name != "config_id"}
    configs = parse_sweep({"configs": [entry]}, where)
    if len(configs) != 1 or configs[0].config_id != params.get("config_id", configs[0].config_id):
        raise ConfigError(f"{where}: the stored parameters do not give back config {params.get('config_id')!r}")
    return configs[0]


def _check_distinct_ids(configs: list[Config], source: str) -> None:
    """Two different configs must not share a config id (e.g. two services of one kind without a `name`)."""
    seen: dict[str, Config] = {}
    for config in configs:
        if seen.setdefault(config.config_id, config) is not config:
            raise ConfigError(
                f"{source}: two configs have the id '{config.config_id}': give each service "
                "entry its own name (name: ...)"
            )


def load_sweep(path: str | Path) -> list[Config]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: sweep spec not found")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path.name}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse_sweep(spec, path.name)


# ---------------------------------------------------------------- grids of kinds


def with_dependencies(configs: Iterable[Config]) -> list[Config]:
    """The configs and every config they are built on, each once, dependencies first."""
    ordered: dict[Config, None] = {}

    def visit(config: Config) -> None:
        for dependency in config.dependencies():
            visit(dependency)
        ordered.setdefault(config, None)

    for config in configs:
        visit(config)
    return list(ordered)


def check_ready(configs: list[Config]) -> None:
    """Before a run starts: what each kind needs holds (keys set, models loadable), for nested configs too."""
    by_kind: dict[int, tuple[Kind, list[Config]]] = {}
    for config in with_dependencies(configs):
        kind = kind_of(config)
        by_kind.setdefault(id(kind), (kind, []))[1].append(config)
    for kind, members in by_kind.values():
        if kind.check is not None:
            kind.check(members)


def is_external(config: Config) -> bool:
    return kind_of(config).external


# ---------------------------------------------------------------- the fast path


def fast_retrieve_mixed(
    index: Index, configs: list[Config], questions: list[Question], query_vectors: np.ndarray | None
) -> Results:
    """Every config of any in-process kind for a block of questions, as the LangChain retrievers would return
    it. Configs other configs are built on are computed once and shared; each kind gets all its configs of a
    level at once (level 0: no dependency; level n: built on configs of lower levels), so that, for example,
    every vector config of the grid shares one Chroma query per search."""
    levels: dict[Config, int] = {}
    for config in with_dependencies(configs):
        levels[config] = 1 + max((levels[d] for d in config.dependencies()), default=-1)
    results: Results = {}
    for level in sorted(set(levels.values())):
        groups: dict[int, tuple[Kind, list[Config]]] = {}
        for config, config_level in levels.items():
            if config_level == level:
                kind = kind_of(config)
                groups.setdefault(id(kind), (kind, []))[1].append(config)
        for kind, members in groups.values():
            kind.fast(index, members, questions, query_vectors, results)
    return results


# ---------------------------------------------------------------- the reference path: LangChain's retrievers

_RETRIEVERS: weakref.WeakKeyDictionary[Index, dict[Config, Any]] = weakref.WeakKeyDictionary()


def langchain_retriever(index: Index, config: Config) -> Any:
    """The LangChain retriever for a config, built once per opened index (a BM25 retriever tokenizes the
    whole corpus when it is built)."""
    built = _RETRIEVERS.setdefault(index, {})
    if config not in built:
        built[config] = kind_of(config).langchain(
            index, config, lambda dependency: langchain_retriever(index, dependency)
        )
    return built[config]


def langchain_retrieve(
    index: Index, config: Config, question: str, query_vector: np.ndarray | None = None
) -> list[RetrievedChunk]:
    """`invoke` the config's LangChain retriever, and score what it returns as that retriever ranks (cosine
    relevance, BM25Okapi's score, the fused RRF score, the cross-encoder's score). `query_vector` is the
    question's vector when it is already known, so that vector scores need no second embedding."""
    documents = langchain_retriever(index, config).invoke(question)
    scores = kind_of(config).langchain_scores(
        index, config, langchain_retriever(index, config), question, documents, query_vector
    )
    vectors = index.embeddings_of([d.metadata["chunk_id"] for d in documents])
    return [
        RetrievedChunk(
            d.metadata["chunk_id"], d.metadata["doc_id"], float(s), d.page_content, int(d.metadata["start"]), v
        )
        for d, s, v in zip(documents, scores, vectors)
    ]


def reference_retrieve(index: Index, configs: list[Config], questions: list[Question]) -> Results:
    """Every config for a block of questions through LangChain's own retrievers, one `invoke` each."""
    results: Results = {}
    for question in questions:
        query_vector = np.asarray(index.embeddings.embed_query(question.question), np.float32)
        for config in configs:
            chunks = langchain_retrieve(index, config, question.question, query_vector)
            results[question.id, config.config_id] = Retrieved(
                [c.chunk_id for c in chunks],
                [c.doc_id for c in chunks],
                [c.score for c in chunks],
                [c.text for c in chunks],
                np.asarray([c.vector for c in chunks], np.float32).reshape(len(chunks), index.manifest.dimension),
            )
    return results
