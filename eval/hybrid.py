"""BM25, hybrid (ensemble) and reranking retriever configs, in LangChain's own vocabulary.

- `bm25`: `BM25Retriever` (langchain-community, rank_bm25's `BM25Okapi`) with `k`, `k1`, `b` and a tokenizer.
- `ensemble`: `EnsembleRetriever` (langchain-classic) over other configs, with `weights` and the RRF constant `c`.
- `rerank`: `ContextualCompressionRetriever(base_compressor=CrossEncoderReranker(model=HuggingFaceCrossEncoder(
  folder), top_n), base_retriever=<any config>)`.

Two paths give identical ids, order and scores (see `fast_retrieve_mixed` and `reference_retrieve_one`):
the reference builds and invokes those LangChain retrievers; the fast path builds each BM25 model once per
index and tokenizer, scores a question with rank_bm25's own arithmetic over a term -> postings table (the
same floats, so ties break the same way in the same `np.argsort`), fuses candidate lists already in
memory with `EnsembleRetriever`'s weighted reciprocal rank, and scores each (model, question, chunk text)
with the cross-encoder once, however many configs contain it.
"""
from __future__ import annotations

import gzip
import itertools
import json
import logging
import operator
import re
import weakref
from collections import defaultdict
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from importlib.metadata import version
from pathlib import Path
from typing import Any, Callable, Iterable, Union

import numpy as np

from eval.config import RetrieverConfig, expand_grid
from eval.errors import ConfigError, LabError

KINDS = ("bm25", "ensemble", "rerank")
BM25_FILE = "bm25.json.gz"
BM25_DEFAULTS = {"k": 4, "k1": 1.5, "b": 0.75, "tokenizer": "words"}
ENSEMBLE_C = 60  # EnsembleRetriever's default


# ---------------------------------------------------------------- tokenizers

def whitespace_tokens(text: str) -> list[str]:
    """LangChain's default BM25 preprocessing (`text.split()`)."""
    return text.split()


def word_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters and digits: suits English (a Chinese sentence stays one token)."""
    return re.findall(r"\w+", text.lower())


def jieba_tokens(text: str) -> list[str]:
    """jieba's words for Chinese (English words stay whole), lower-cased, without spaces and punctuation."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return [token for token in jieba.lcut(text.lower()) if re.search(r"\w", token)]


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "whitespace": whitespace_tokens, "words": word_tokens, "jieba": jieba_tokens}


# ---------------------------------------------------------------- configs

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


@dataclass(frozen=True)
class EnsembleConfig:
    """LangChain's `EnsembleRetriever(retrievers, weights, c)`: weighted reciprocal-rank fusion."""

    retrievers: tuple[AnyConfig, ...]
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
        return {"search_type": "ensemble", "weights": list(self.weights), "c": self.c,
                "retrievers": [r.params() for r in self.retrievers]}


@dataclass(frozen=True)
class RerankConfig:
    """`ContextualCompressionRetriever` with a `CrossEncoderReranker(top_n)` over a base config."""

    base: AnyConfig
    top_n: int
    model: str  # a sentence-transformers CrossEncoder folder, or "llm:<generation spec>" (eval.llm_rerank)
    search_type: str = field(default="rerank", init=False)
    filter_json: None = field(default=None, init=False)

    @cached_property  # read once per row: made once per config
    def config_id(self) -> str:
        """e.g. `rerank-n5-ms-marco-MiniLM-similarity-k50` (top_n, model folder name, base config)."""
        from eval.llm_rerank import is_llm, label

        name = label(self.model) if is_llm(self.model) else Path(self.model).name
        return f"rerank-n{self.top_n}-{name}-{self.base.config_id}"

    def params(self) -> dict[str, Any]:
        return {"search_type": "rerank", "top_n": self.top_n, "model": self.model, "base": self.base.params()}


AnyConfig = Union[RetrieverConfig, BM25Config, EnsembleConfig, RerankConfig]


def most_returned(config: AnyConfig) -> int:
    """The most chunks a config's retriever returns (an ensemble: all its retrievers' chunks, before
    de-duplication)."""
    if isinstance(config, EnsembleConfig):
        return sum(most_returned(r) for r in config.retrievers)
    if isinstance(config, RerankConfig):
        return config.top_n
    return config.k


def dependencies(config: AnyConfig) -> tuple[AnyConfig, ...]:
    if isinstance(config, EnsembleConfig):
        return config.retrievers
    if isinstance(config, RerankConfig):
        return (config.base,)
    return ()


def with_dependencies(configs: Iterable[AnyConfig]) -> list[AnyConfig]:
    """The configs and every config they are built on, each once, dependencies first."""
    ordered: dict[AnyConfig, None] = {}

    def visit(config: AnyConfig) -> None:
        for dependency in dependencies(config):
            visit(dependency)
        ordered.setdefault(config, None)

    for config in configs:
        visit(config)
    return list(ordered)


# ---------------------------------------------------------------- sweep spec entries

ENTRY_KEYS = {"bm25": {"search_type", "k", "k1", "b", "tokenizer"},
              "ensemble": {"search_type", "retrievers", "weights", "c"},
              "rerank": {"search_type", "base", "top_n", "model"}}


def expand_entry(entry: dict[str, Any], where: str) -> list[AnyConfig]:
    """One sweep spec entry of a kind in `KINDS`; list values are alternatives, as for vector configs."""
    kind = entry["search_type"]
    unknown = sorted(set(entry) - ENTRY_KEYS[kind])
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' for search_type {kind} "
                          f"(allowed: {', '.join(sorted(ENTRY_KEYS[kind]))})")
    empty = [name for name, value in entry.items() if value == []]
    if empty:
        raise ConfigError(f"{where}: '{empty[0]}' has an empty list")
    return {"bm25": _expand_bm25, "ensemble": _expand_ensemble, "rerank": _expand_rerank}[kind](entry, where)


def _alternatives(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _expand_bm25(entry: dict[str, Any], where: str) -> list[AnyConfig]:
    names = [name for name in ("k", "k1", "b", "tokenizer") if name in entry]
    configs = []
    for values in itertools.product(*(_alternatives(entry[name]) for name in names)):
        params = {**BM25_DEFAULTS, **dict(zip(names, values))}
        configs.append(bm25_config(params, where))
    return configs


def bm25_config(params: dict[str, Any], where: str) -> BM25Config:
    if params["tokenizer"] not in TOKENIZERS:
        raise ConfigError(f"{where}: unknown tokenizer {params['tokenizer']!r} "
                          f"(use one of: {', '.join(TOKENIZERS)})")
    k = _whole(params["k"], "k", where)
    k1, b = _number(params["k1"], "k1", where), _number(params["b"], "b", where)
    if k1 < 0 or not 0 <= b <= 1:
        raise ConfigError(f"{where}: BM25 needs k1 >= 0 and b in [0, 1], got k1={k1:g}, b={b:g}")
    return BM25Config(k=k, k1=k1, b=b, tokenizer=params["tokenizer"])


def _expand_ensemble(entry: dict[str, Any], where: str) -> list[AnyConfig]:
    retrievers = entry.get("retrievers")
    if not isinstance(retrievers, list) or len(retrievers) < 2:
        raise ConfigError(f"{where}: an ensemble needs 'retrievers', a list of at least two config entries")
    choices = [expand_grid(sub, f"{where}, retriever {n}") for n, sub in enumerate(retrievers, start=1)]
    weights = entry.get("weights", [1 / len(retrievers)] * len(retrievers))
    weight_choices = weights if isinstance(weights, list) and weights and isinstance(weights[0], list) else [weights]
    configs = []
    for weight_list in weight_choices:
        checked = _weights(weight_list, len(retrievers), where)
        for c in _alternatives(entry.get("c", ENSEMBLE_C)):
            c = _whole(c, "c", where, minimum=0)
            configs += [EnsembleConfig(tuple(combo), checked, c) for combo in itertools.product(*choices)]
    return configs


def _weights(weights: Any, retrievers: int, where: str) -> tuple[float, ...]:
    if not isinstance(weights, list) or len(weights) != retrievers:
        raise ConfigError(f"{where}: weights {weights!r} do not match the {retrievers} retrievers "
                          "(give one weight per retriever, in order, e.g. [0.3, 0.7])")
    checked = tuple(_number(w, "weight", where) for w in weights)
    if any(w < 0 for w in checked) or not any(w > 0 for w in checked):
        raise ConfigError(f"{where}: weights {list(checked)} must be >= 0 with at least one above 0")
    return checked


def _expand_rerank(entry: dict[str, Any], where: str) -> list[AnyConfig]:
    from eval import llm_rerank

    if not isinstance(entry.get("base"), dict):
        raise ConfigError(f"{where}: rerank needs 'base', the config entry whose chunks it reranks")
    if "model" not in entry:
        raise ConfigError(f"{where}: rerank needs 'model', a sentence-transformers CrossEncoder folder")
    bases = expand_grid(entry["base"], f"{where}, base")
    configs = []
    for model in _alternatives(entry["model"]):
        folder = llm_rerank.check_spec(model, where) if llm_rerank.is_llm(model) else cross_encoder_folder(model, where)
        for top_n in _alternatives(entry.get("top_n", 3)):  # CrossEncoderReranker's default top_n
            top_n = _whole(top_n, "top_n", where)
            for base in bases:
                if top_n > most_returned(base):
                    raise ConfigError(f"{where}: top_n {top_n} is more than the {most_returned(base)} candidates of "
                                      f"base {base.config_id} (raise the base's k or lower top_n)")
                configs.append(RerankConfig(base, top_n, folder))
    return configs


def cross_encoder_folder(model: Any, where: str) -> str:
    """The absolute path of a CrossEncoder folder, or a ConfigError naming what is missing."""
    path = Path(str(model)).expanduser()
    if not isinstance(model, str) or not path.is_dir():
        raise ConfigError(f"{where}: cross-encoder folder {str(model)!r} not found (model must be the path of a "
                          "sentence-transformers CrossEncoder folder; nothing is downloaded)")
    if not (path / "config.json").is_file():
        raise ConfigError(f"{where}: {path} has no config.json: it is not a sentence-transformers CrossEncoder "
                          "folder")
    return str(path.resolve())


def _whole(value: Any, name: str, where: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or value < minimum:
        raise ConfigError(f"{where}: {name} must be a whole number of at least {minimum}, got {value!r}")
    return int(value)


def _number(value: Any, name: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise ConfigError(f"{where}: {name} must be a number, got {value!r}")
    return float(value)


# ---------------------------------------------------------------- the BM25 side of an index

def write_bm25_side(folder: Path, chunk_ids: list[str], texts: list[str]) -> dict[str, Any]:
    """Tokenize the chunks with every tokenizer and store them beside the Chroma folder (in `folder`).

    Returns the manifest's `bm25` entry. The chunk order is the BM25 corpus order, which decides ties."""
    tokens = {name: [tokenize(text) for text in texts] for name, tokenize in TOKENIZERS.items()}
    with gzip.open(folder / BM25_FILE, "wt", encoding="utf-8") as file:
        json.dump({"chunk_ids": chunk_ids, "tokens": tokens}, file, ensure_ascii=False)
    return {"file": BM25_FILE, "chunks": len(chunk_ids), "tokenizers": list(TOKENIZERS),
            "versions": {name: version(name) for name in ("rank-bm25", "jieba")}}


class BM25Side:
    """An index's chunks in BM25 order with their tokens, texts and vectors; BM25 models built once."""

    def __init__(self, index: Any) -> None:
        folder = getattr(index, "folder", None)
        if not index.manifest.bm25 or folder is None or not (folder / BM25_FILE).is_file():
            raise LabError(f"index '{index.manifest.name}' has no BM25 side (it was built before BM25 support, or "
                           "lives on a Chroma server): rebuild it locally (python -m eval index ... --replace) "
                           "to use bm25, ensemble or rerank-over-bm25 configs")
        with gzip.open(folder / BM25_FILE, "rt", encoding="utf-8") as file:
            stored = json.load(file)
        self.chunk_ids: list[str] = stored["chunk_ids"]
        self.tokens: dict[str, list[list[str]]] = stored["tokens"]
        texts, metadatas, vectors = {}, {}, {}
        for start in range(0, len(self.chunk_ids), 5000):
            got = index.collection.get(ids=self.chunk_ids[start:start + 5000],
                                       include=["documents", "metadatas", "embeddings"])
            for chunk_id, text, metadata, vector in zip(got["ids"], got["documents"], got["metadatas"],
                                                        got["embeddings"]):
                texts[chunk_id], metadatas[chunk_id], vectors[chunk_id] = text, metadata, vector
        self.texts = [texts[chunk_id] for chunk_id in self.chunk_ids]
        self.metadatas = [metadatas[chunk_id] for chunk_id in self.chunk_ids]
        self.embeddings = np.asarray([vectors[chunk_id] for chunk_id in self.chunk_ids], np.float32)
        self.position = {chunk_id: n for n, chunk_id in enumerate(self.chunk_ids)}
        self._models: dict[str, Any] = {}
        self._postings: dict[tuple[str, float, float], dict[str, tuple[np.ndarray, np.ndarray]]] = {}

    def model(self, tokenizer: str) -> Any:
        """rank_bm25's `BM25Okapi` of the stored tokens (its idf does not depend on k1 or b)."""
        if tokenizer not in self._models:
            from rank_bm25 import BM25Okapi

            self._models[tokenizer] = BM25Okapi(self.tokens[tokenizer])
        return self._models[tokenizer]

    def postings(self, tokenizer: str, k1: float, b: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """term -> (chunk positions, the term's BM25Okapi contribution there), with rank_bm25's arithmetic."""
        key = (tokenizer, k1, b)
        if key not in self._postings:
            model = self.model(tokenizer)
            doc_len = np.array(model.doc_len)
            norm = k1 * (1 - b + b * doc_len / model.avgdl)
            by_term: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
            for position, frequencies in enumerate(model.doc_freqs):
                for term, frequency in frequencies.items():
                    by_term[term][0].append(position)
                    by_term[term][1].append(frequency)
            table = {}
            for term, (positions, frequencies) in by_term.items():
                docs, q_freq = np.array(positions), np.array(frequencies)
                table[term] = (docs, (model.idf.get(term) or 0) * (q_freq * (k1 + 1) / (q_freq + norm[docs])))
            self._postings[key] = table
        return self._postings[key]

    def scores(self, config: BM25Config, question: str) -> np.ndarray:
        """`BM25Okapi.get_scores(preprocess_func(question))`, bit for bit: each query token (repeats included)
        adds its contribution in query order; chunks without the token add 0.0 there, which changes nothing."""
        table = self.postings(config.tokenizer, config.k1, config.b)
        score = np.zeros(len(self.chunk_ids))
        for token in TOKENIZERS[config.tokenizer](question):
            if token in table:
                docs, contribution = table[token]
                score[docs] += contribution
        return score

    def retrieved(self, positions: Iterable[int], scores: Iterable[float]) -> Any:
        from eval.sweep import Retrieved

        positions = list(positions)
        return Retrieved([self.chunk_ids[p] for p in positions], [self.metadatas[p]["doc_id"] for p in positions],
                         [float(s) for s in scores], [self.texts[p] for p in positions],
                         self.embeddings[positions] if positions else self.embeddings[:0])


_SIDES: "weakref.WeakKeyDictionary[Any, BM25Side]" = weakref.WeakKeyDictionary()


def bm25_side(index: Any) -> BM25Side:
    """The index's BM25 side, loaded once per opened index."""
    if index not in _SIDES:
        _SIDES[index] = BM25Side(index)
    return _SIDES[index]


# ---------------------------------------------------------------- cross-encoders

class Reranker:
    """LangChain's `HuggingFaceCrossEncoder` (or the LLM reranker, `eval.llm_rerank`) with a cache of scores
    keyed by (question, chunk text)."""

    def __init__(self, folder: str) -> None:
        import torch
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder

        from eval.embeddings import default_torch_threads

        torch.set_num_threads(default_torch_threads())
        self.folder = folder
        from eval.llm_rerank import is_llm, load_scorer

        self.model = load_scorer(folder) if is_llm(folder) else \
            HuggingFaceCrossEncoder(model_name=folder, model_kwargs={"device": "cpu"})
        self.cache: dict[tuple[str, str], float] = {}
        self.pairs_scored = 0  # every pair the model has scored through `scores`

    def scores(self, question: str, texts: list[str]) -> list[Any]:
        """The model's score for each text, scoring only the pairs not seen before (in one batch)."""
        missing = list(dict.fromkeys(t for t in texts if (question, t) not in self.cache))
        if missing:
            scored = list(self.model.score([(question, text) for text in missing]))
            self.cache.update(((question, text), score) for text, score in zip(missing, scored))
            self.pairs_scored += len(missing)
        return [self.cache[question, text] for text in texts]


@lru_cache(maxsize=4)
def reranker(folder: str) -> Reranker:
    """One loaded cross-encoder (and its score cache) per folder and process."""
    return Reranker(folder)


# ---------------------------------------------------------------- the fast path

def fast_retrieve_mixed(index: Any, configs: list[AnyConfig], questions: list[Any],
                        query_vectors: np.ndarray) -> dict[tuple[str, str], Any]:
    """Every config (vector, bm25, ensemble, rerank) for a block of questions, as the LangChain retrievers
    would return it; configs other configs are built on are computed once and shared."""
    from eval.sweep import fast_retrieve

    everything = with_dependencies(configs)
    vector = [c for c in everything if isinstance(c, RetrieverConfig)]
    results = fast_retrieve(index, vector, questions, query_vectors) if vector else {}
    results.update(fast_bm25(index, [c for c in everything if isinstance(c, BM25Config)], questions))
    for config in everything:
        if isinstance(config, EnsembleConfig):
            for question in questions:
                lists = [results[question.id, r.config_id] for r in config.retrievers]
                results[question.id, config.config_id] = fuse(lists, config.weights, config.c)
        elif isinstance(config, RerankConfig):
            model = reranker(config.model)
            for question in questions:
                base = results[question.id, config.base.config_id]
                results[question.id, config.config_id] = rerank(base, model.scores(question.question, base.texts),
                                                                config.top_n)
    return results


def fast_bm25(index: Any, configs: list[BM25Config], questions: list[Any]) -> dict[tuple[str, str], Any]:
    """BM25 configs sharing (tokenizer, k1, b) share one score array and one `np.argsort` per question."""
    if not configs:
        return {}
    side = bm25_side(index)
    groups: dict[tuple[str, float, float], list[BM25Config]] = defaultdict(list)
    for config in configs:
        groups[config.tokenizer, config.k1, config.b].append(config)
    results = {}
    for group in groups.values():
        for question in questions:
            scores = side.scores(group[0], question.question)
            ranking = np.argsort(scores)[::-1]  # BM25Okapi.get_top_n, ties included
            for config in group:
                top = ranking[:config.k]
                results[question.id, config.config_id] = side.retrieved(top, scores[top])
    return results


def fuse(lists: list[Any], weights: tuple[float, ...], c: int) -> Any:
    """`EnsembleRetriever.weighted_reciprocal_rank`: RRF scores keyed by chunk text (LangChain de-duplicates
    by `page_content`), the first occurrence kept, a stable sort by score, highest first."""
    from eval.sweep import Retrieved

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
    return Retrieved([r.chunk_ids[p] for r, p in zip(*picks)], [r.doc_ids[p] for r, p in zip(*picks)],
                     [rrf[text] for text, _ in order], [text for text, _ in order],
                     np.concatenate([r.embeddings for r in lists])[rows])


def rerank(base: Any, scores: list[Any], top_n: int) -> Any:
    """`CrossEncoderReranker.compress_documents`: a stable sort by score, highest first, the first top_n."""
    from eval.sweep import Retrieved

    order = sorted(zip(range(len(scores)), scores), key=operator.itemgetter(1), reverse=True)[:top_n]
    picks = [position for position, _ in order]
    return Retrieved([base.chunk_ids[p] for p in picks], [base.doc_ids[p] for p in picks],
                     [float(score) for _, score in order], [base.texts[p] for p in picks],
                     base.embeddings[picks] if picks else base.embeddings[:0])


# ---------------------------------------------------------------- the reference path: LangChain's retrievers

_RETRIEVERS: "weakref.WeakKeyDictionary[Any, dict[AnyConfig, Any]]" = weakref.WeakKeyDictionary()


def langchain_retriever(index: Any, config: AnyConfig) -> Any:
    """The LangChain retriever for a config, built once per opened index (a BM25 retriever tokenizes the
    whole corpus when it is built)."""
    built = _RETRIEVERS.setdefault(index, {})
    if config not in built:
        built[config] = _build_retriever(index, config)
    return built[config]


def _build_retriever(index: Any, config: AnyConfig) -> Any:
    if isinstance(config, RetrieverConfig):
        return index.vectorstore.as_retriever(search_type=config.search_type, search_kwargs=config.search_kwargs())
    if isinstance(config, BM25Config):
        from langchain_community.retrievers import BM25Retriever

        side = bm25_side(index)
        return BM25Retriever.from_texts(side.texts, metadatas=side.metadatas, ids=side.chunk_ids,
                                        bm25_params={"k1": config.k1, "b": config.b},
                                        preprocess_func=TOKENIZERS[config.tokenizer], k=config.k)
    if isinstance(config, EnsembleConfig):
        from langchain_classic.retrievers import EnsembleRetriever

        return EnsembleRetriever(retrievers=[langchain_retriever(index, r) for r in config.retrievers],
                                 weights=list(config.weights), c=config.c)
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

    return ContextualCompressionRetriever(
        base_compressor=CrossEncoderReranker(model=reranker(config.model).model, top_n=config.top_n),
        base_retriever=langchain_retriever(index, config.base))


def reference_retrieve_one(index: Any, config: AnyConfig, question: str) -> list[Any]:
    """`invoke` the config's LangChain retriever, and score what it returns as that retriever ranks:
    BM25Okapi's score, the fused RRF score, or the cross-encoder's score. Returns `RetrievedChunk`s."""
    from eval.retrieval import RetrievedChunk

    documents = langchain_retriever(index, config).invoke(question)
    scores = reference_scores(index, config, question, documents)
    chunk_ids = [d.metadata["chunk_id"] for d in documents]
    return [RetrievedChunk(d.metadata["chunk_id"], d.metadata["doc_id"], float(s), d.page_content,
                           int(d.metadata["start"]), v)
            for d, s, v in zip(documents, scores, index.embeddings_of(chunk_ids))]


def reference_scores(index: Any, config: AnyConfig, question: str, documents: list[Any]) -> list[float]:
    retriever = langchain_retriever(index, config)
    if isinstance(config, BM25Config):
        scores = retriever.vectorizer.get_scores(retriever.preprocess_func(question))
        side = bm25_side(index)
        return [scores[side.position[d.metadata["chunk_id"]]] for d in documents]
    if isinstance(config, EnsembleConfig):
        rrf: dict[str, float] = defaultdict(float)
        for sub, weight in zip(retriever.retrievers, retriever.weights):
            for rank, document in enumerate(sub.invoke(question), start=1):
                rrf[document.page_content] += weight / (rank + retriever.c)
        return [rrf[d.page_content] for d in documents]
    if isinstance(config, RerankConfig):
        return list(reranker(config.model).model.score([(question, d.page_content) for d in documents])) \
            if documents else []
    raise TypeError(f"not a hybrid config: {config!r}")
