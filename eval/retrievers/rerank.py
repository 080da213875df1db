"""Reranking: LangChain's `ContextualCompressionRetriever(base_compressor=CrossEncoderReranker(model, top_n),
base_retriever=<any config>)`, the model a sentence-transformers CrossEncoder folder (`HuggingFaceCrossEncoder`),
an LLM read as a pointwise reranker (`eval.retrievers.llm_rerank`) or a served reranker (`tei:URL`,
`cohere:MODEL@URL`: `eval.retrievers.rerank_endpoint`). The fast path scores each (model, question, chunk text)
once, however many configs contain it."""

from __future__ import annotations

import json
import operator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

from eval.errors import ConfigError, LabError
from eval.generation.generators import in_parallel
from eval.index.encoders.base import default_torch_threads
from eval.index.store import Index
from eval.retrievers import llm_rerank, rerank_endpoint
from eval.retrievers.base import Build, Config, Expand, Kind, Results, alternatives, check_entry, whole_number
from eval.retrievers.external.config import check_environment
from eval.schema import Question, Retrieved

ENTRY_KEYS = {"search_type", "base", "top_n", "model", *rerank_endpoint.CALL_KEYS}
DEFAULT_TOP_N = 3  # CrossEncoderReranker's default


@dataclass(frozen=True)
class RerankConfig:
    """`ContextualCompressionRetriever` with a `CrossEncoderReranker(top_n)` over a base config."""

    base: Config
    top_n: int
    model: str  # a CrossEncoder folder, "llm:<generation spec>" (llm_rerank), "tei:URL" or "cohere:MODEL@URL"
    calls_json: str | None = None  # an endpoint's call settings (rerank_endpoint.CALL_KEYS) as canonical JSON
    search_type: str = field(default="rerank", init=False)
    filter_json: None = field(default=None, init=False)

    @cached_property  # read once per row: made once per config
    def config_id(self) -> str:
        """e.g. `rerank-n5-ms-marco-MiniLM-similarity-k50` (top_n, model folder name, base config)."""
        if rerank_endpoint.is_endpoint(self.model):
            name = rerank_endpoint.label(self.model)
        else:
            name = llm_rerank.label(self.model) if llm_rerank.is_llm(self.model) else Path(self.model).name
        return f"rerank-n{self.top_n}-{name}-{self.base.config_id}"

    def params(self) -> dict[str, Any]:
        calls = json.loads(self.calls_json) if self.calls_json else {}
        return {"search_type": "rerank", "top_n": self.top_n, "model": self.model, **calls, "base": self.base.params()}

    def dependencies(self) -> tuple[Config, ...]:
        return (self.base,)

    def most_returned(self) -> int:
        return self.top_n


def expand(entry: dict[str, Any], where: str, expand_entry: Expand) -> list[RerankConfig]:
    check_entry(entry, where, ENTRY_KEYS)
    if not isinstance(entry.get("base"), dict):
        raise ConfigError(f"{where}: rerank needs 'base', the config entry whose chunks it reranks")
    if "model" not in entry:
        raise ConfigError(
            f"{where}: rerank needs 'model', a sentence-transformers CrossEncoder folder, an llm: spec, "
            "tei:URL or cohere:MODEL@URL"
        )
    bases = expand_entry(entry["base"], f"{where}, base")
    calls = rerank_endpoint.check_settings(entry, where)
    configs = []
    for model in alternatives(entry["model"]):
        folder = model_spec(model, where, calls)
        for top_n in alternatives(entry.get("top_n", DEFAULT_TOP_N)):
            top_n = whole_number(top_n, "top_n", where)
            for base in bases:
                if top_n > base.most_returned():
                    raise ConfigError(
                        f"{where}: top_n {top_n} is more than the {base.most_returned()} candidates "
                        f"of base {base.config_id} (raise the base's k or lower top_n)"
                    )
                configs.append(RerankConfig(base, top_n, folder, calls))
    return configs


def model_spec(model: Any, where: str, calls: str | None) -> str:
    """The checked `model` of a rerank entry (nothing is loaded or contacted here); call settings are for
    endpoints only."""
    if rerank_endpoint.is_endpoint(model):
        try:
            rerank_endpoint.parse(model)
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        return model
    if calls is not None:
        keys = ", ".join(key for key in rerank_endpoint.CALL_KEYS if key in json.loads(calls))
        raise ConfigError(
            f"{where}: call settings ({keys}) are for a reranker endpoint (tei:URL or cohere:MODEL@URL), "
            f"not for {model!r}"
        )
    return llm_rerank.check_spec(model, where) if llm_rerank.is_llm(model) else cross_encoder_folder(model, where)


def cross_encoder_folder(model: Any, where: str) -> str:
    """The absolute path of a CrossEncoder folder, or a ConfigError naming what is missing."""
    path = Path(str(model)).expanduser()
    if not isinstance(model, str) or not path.is_dir():
        raise ConfigError(
            f"{where}: cross-encoder folder {str(model)!r} not found (model must be the path of a "
            "sentence-transformers CrossEncoder folder; nothing is downloaded)"
        )
    if not (path / "config.json").is_file():
        raise ConfigError(f"{where}: {path} has no config.json: it is not a sentence-transformers CrossEncoder folder")
    return str(path.resolve())


class Reranker:
    """LangChain's `HuggingFaceCrossEncoder` (or the LLM reranker, `eval.retrievers.llm_rerank`, or a served one,
    `eval.retrievers.rerank_endpoint`) with a cache of scores keyed by (question, chunk text)."""

    def __init__(self, folder: str, calls_json: str | None = None) -> None:
        self.folder = folder
        self.workers = 1  # questions scored at once: a local model uses every thread torch gets for one
        if rerank_endpoint.is_endpoint(folder):
            self.model: Any = rerank_endpoint.RerankEndpoint(folder, calls_json)
            self.workers = self.model.concurrency
        else:
            import torch  # heavy: only a run with a local reranker needs it
            from langchain_community.cross_encoders import HuggingFaceCrossEncoder  # imports transformers

            torch.set_num_threads(default_torch_threads())
            self.model = (
                llm_rerank.load_scorer(folder)
                if llm_rerank.is_llm(folder)
                else HuggingFaceCrossEncoder(model_name=folder, model_kwargs={"device": "cpu"})
            )
        self.cache: dict[tuple[str, str], float] = {}
        self.pairs_scored = 0  # every pair the model has scored through `scores`

    def scores(self, question: str, texts: list[str]) -> list[Any]:
        """The model's score for each text, scoring only the pairs not seen before (in one batch)."""
        return self.scores_of([(question, texts)])[0]

    def scores_of(self, asked: list[tuple[str, list[str]]]) -> list[list[Any]]:
        """`scores` for several (question, texts): each question's new pairs in one batch, `workers` questions at
        once."""
        missing: dict[str, list[str]] = {}
        for question, texts in asked:
            missing.setdefault(question, [])
            missing[question] += [t for t in dict.fromkeys(texts) if (question, t) not in self.cache]
        batches = [(question, list(dict.fromkeys(texts))) for question, texts in missing.items() if texts]
        scored = in_parallel(self._score_batch, batches, min(self.workers, len(batches)) or 1, "rerank")
        for (question, texts), values in zip(batches, scored):
            self.cache.update(((question, text), value) for text, value in zip(texts, values))
            self.pairs_scored += len(texts)
        return [[self.cache[question, text] for text in texts] for question, texts in asked]

    def _score_batch(self, batch: tuple[str, list[str]]) -> list[Any]:
        question, texts = batch
        return list(self.model.score([(question, text) for text in texts]))


def reranker(folder: str, calls_json: str | None = None) -> Reranker:
    """One loaded cross-encoder (and its score cache) per folder (or endpoint and call settings) and process."""
    return _loaded(folder, calls_json)  # positional: `reranker(folder)` and `reranker(folder, None)` share one


@lru_cache(maxsize=4)
def _loaded(folder: str, calls_json: str | None) -> Reranker:
    return Reranker(folder, calls_json)


def check_models(configs: list[RerankConfig]) -> None:
    """Load every reranker before a run starts, so a folder transformers cannot read fails now, in one line,
    and not as a failed run; an endpoint must have its key and answer one small request in its shape."""
    for config in configs:
        if config.calls_json is not None:
            check_environment(config.config_id, json.loads(config.calls_json))
    for model, calls in dict.fromkeys((config.model, config.calls_json) for config in configs):
        try:
            loaded = reranker(model, calls)
            if rerank_endpoint.is_endpoint(model):
                loaded.model.probe()
        except LabError:
            raise
        except Exception as error:  # whatever transformers or the endpoint client raise for a bad model
            detail = (str(error).strip().splitlines() or [type(error).__name__])[0][:200]
            raise ConfigError(f"reranker {model!r} cannot be loaded: {detail}") from None


def fast_rerank(
    index: Index,
    configs: list[RerankConfig],
    questions: list[Question],
    query_vectors: np.ndarray | None,
    results: Results,
) -> None:
    for config in configs:
        bases = [results[question.id, config.base.config_id] for question in questions]
        scores = reranker(config.model, config.calls_json).scores_of(
            [(question.question, base.texts) for question, base in zip(questions, bases)]
        )
        for question, base, question_scores in zip(questions, bases, scores):
            results[question.id, config.config_id] = rerank(base, question_scores, config.top_n)


def rerank(base: Retrieved, scores: list[Any], top_n: int) -> Retrieved:
    """`CrossEncoderReranker.compress_documents`: a stable sort by score, highest first, the first top_n."""
    order = sorted(zip(range(len(scores)), scores), key=operator.itemgetter(1), reverse=True)[:top_n]
    picks = [position for position, _ in order]
    return Retrieved(
        [base.chunk_ids[p] for p in picks],
        [base.doc_ids[p] for p in picks],
        [float(score) for _, score in order],
        [base.texts[p] for p in picks],
        base.embeddings[picks] if picks else base.embeddings[:0],
    )


def langchain_retriever(index: Index, config: RerankConfig, build: Build) -> ContextualCompressionRetriever:
    return ContextualCompressionRetriever(
        base_compressor=CrossEncoderReranker(model=reranker(config.model, config.calls_json).model, top_n=config.top_n),
        base_retriever=build(config.base),
    )


def langchain_scores(
    index: Index,
    config: RerankConfig,
    retriever: Any,
    question: str,
    documents: list[Any],
    query_vector: np.ndarray | None,
) -> list[float]:
    """The model's score of each returned chunk."""
    if not documents:
        return []
    return list(reranker(config.model, config.calls_json).model.score([(question, d.page_content) for d in documents]))


KIND = Kind(("rerank",), expand, "reranked", fast_rerank, langchain_retriever, langchain_scores, check_models)
