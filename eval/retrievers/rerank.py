"""Reranking: LangChain's `ContextualCompressionRetriever(base_compressor=CrossEncoderReranker(model, top_n),
base_retriever=<any config>)`, the model a sentence-transformers CrossEncoder folder (`HuggingFaceCrossEncoder`)
or an LLM read as a pointwise reranker (`eval.retrievers.llm_rerank`). The fast path scores each (model,
question, chunk text) once, however many configs contain it."""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from langchain_classic.retrievers import ContextualCompressionRetriever
from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

from eval.errors import ConfigError, LabError
from eval.index.encoders.base import default_torch_threads
from eval.index.store import Index
from eval.retrievers import llm_rerank
from eval.retrievers.base import Build, Config, Expand, Kind, Results, alternatives, check_entry, whole_number
from eval.schema import Question, Retrieved

ENTRY_KEYS = {"search_type", "base", "top_n", "model"}
DEFAULT_TOP_N = 3  # CrossEncoderReranker's default


@dataclass(frozen=True)
class RerankConfig:
    """`ContextualCompressionRetriever` with a `CrossEncoderReranker(top_n)` over a base config."""

    base: Config
    top_n: int
    model: str  # a sentence-transformers CrossEncoder folder, or "llm:<generation spec>" (eval.retrievers.llm_rerank)
    search_type: str = field(default="rerank", init=False)
    filter_json: None = field(default=None, init=False)

    @cached_property  # read once per row: made once per config
    def config_id(self) -> str:
        """e.g. `rerank-n5-ms-marco-MiniLM-similarity-k50` (top_n, model folder name, base config)."""
        name = llm_rerank.label(self.model) if llm_rerank.is_llm(self.model) else Path(self.model).name
        return f"rerank-n{self.top_n}-{name}-{self.base.config_id}"

    def params(self) -> dict[str, Any]:
        return {"search_type": "rerank", "top_n": self.top_n, "model": self.model, "base": self.base.params()}

    def dependencies(self) -> tuple[Config, ...]:
        return (self.base,)

    def most_returned(self) -> int:
        return self.top_n


def expand(entry: dict[str, Any], where: str, expand_entry: Expand) -> list[RerankConfig]:
    check_entry(entry, where, ENTRY_KEYS)
    if not isinstance(entry.get("base"), dict):
        raise ConfigError(f"{where}: rerank needs 'base', the config entry whose chunks it reranks")
    if "model" not in entry:
        raise ConfigError(f"{where}: rerank needs 'model', a sentence-transformers CrossEncoder folder")
    bases = expand_entry(entry["base"], f"{where}, base")
    configs = []
    for model in alternatives(entry["model"]):
        folder = llm_rerank.check_spec(model, where) if llm_rerank.is_llm(model) else cross_encoder_folder(model, where)
        for top_n in alternatives(entry.get("top_n", DEFAULT_TOP_N)):
            top_n = whole_number(top_n, "top_n", where)
            for base in bases:
                if top_n > base.most_returned():
                    raise ConfigError(
                        f"{where}: top_n {top_n} is more than the {base.most_returned()} candidates "
                        f"of base {base.config_id} (raise the base's k or lower top_n)"
                    )
                configs.append(RerankConfig(base, top_n, folder))
    return configs


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
    """LangChain's `HuggingFaceCrossEncoder` (or the LLM reranker, `eval.retrievers.llm_rerank`) with a cache of
    scores keyed by (question, chunk text)."""

    def __init__(self, folder: str) -> None:
        import torch  # heavy: only a run with a reranker needs it
        from langchain_community.cross_encoders import HuggingFaceCrossEncoder  # imports transformers

        torch.set_num_threads(default_torch_threads())
        self.folder = folder
        self.model = (
            llm_rerank.load_scorer(folder)
            if llm_rerank.is_llm(folder)
            else HuggingFaceCrossEncoder(model_name=folder, model_kwargs={"device": "cpu"})
        )
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


def check_models(configs: list[RerankConfig]) -> None:
    """Load every reranker before a run starts, so a folder transformers cannot read fails now, in one line,
    and not as a failed run."""
    for model in dict.fromkeys(config.model for config in configs):
        try:
            reranker(model)
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
        model = reranker(config.model)
        for question in questions:
            base = results[question.id, config.base.config_id]
            results[question.id, config.config_id] = rerank(
                base, model.scores(question.question, base.texts), config.top_n
            )


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
        base_compressor=CrossEncoderReranker(model=reranker(config.model).model, top_n=config.top_n),
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
    return list(reranker(config.model).model.score([(question, d.page_content) for d in documents]))


KIND = Kind(("rerank",), expand, "reranked", fast_rerank, langchain_retriever, langchain_scores, check_models)
