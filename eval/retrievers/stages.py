"""Which stage found each chunk of a hybrid or rerank config, recomputed for one question.

A run's rows hold each config's final chunks only. For the one question being inspected, the sweep's fast
path (`eval.retrievers.registry.fast_retrieve_mixed`) runs again on the index with the config and every config it is
built on, which gives each first-stage list (BM25, vector), the fused list and the reranker's candidates.
Chunks are matched by text, as `EnsembleRetriever` de-duplicates by `page_content`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eval.errors import LabError
from eval.index.store import Index
from eval.retrievers.base import Config
from eval.retrievers.registry import KINDS, config_from_params, fast_retrieve_mixed, kind_of, with_dependencies
from eval.schema import Question


@dataclass(frozen=True)
class ChunkStages:
    """One retrieved chunk: the first-stage retrievers that returned it (kind and rank there), and its rank in
    the reranker's candidates and after reranking (`rank_before` is None for a config without reranking)."""

    chunk_id: str
    found_in: tuple[tuple[str, int], ...]  # (kind, 1-based rank), kind "BM25" or "vector"
    rank_before: int | None
    rank_after: int

    @property
    def found_by(self) -> str:
        """ "BM25", "vector" or "both"."""
        kinds = {kind for kind, _ in self.found_in}
        return "both" if len(kinds) > 1 else next(iter(kinds))


def has_stages(params: dict[str, Any]) -> bool:
    """Whether a stored config (`{"config_id", **params}`) has stages to show (ensemble or rerank)."""
    kind = KINDS.get(params.get("search_type", ""))
    return kind is not None and kind.stage in ("fused", "reranked")


def chunk_stages(index: Index, config: Config, question: Question) -> list[ChunkStages]:
    """The config's chunks for the question, in order, each with the stages that found it."""
    everything = with_dependencies([config])
    vectors = (
        index.embeddings.embed_queries([question.question])
        if any(kind_of(c).stage == "vector" for c in everything)
        else None
    )
    results = fast_retrieve_mixed(index, [config], [question], vectors)
    texts = {c.config_id: results[question.id, c.config_id].texts for c in everything}
    first_stages = [c for c in everything if not c.dependencies()]
    candidates = texts[config.dependencies()[0].config_id] if kind_of(config).stage == "reranked" else None
    final = results[question.id, config.config_id]
    return [
        ChunkStages(
            chunk_id,
            tuple(
                (kind_of(c).stage, texts[c.config_id].index(text) + 1)
                for c in first_stages
                if text in texts[c.config_id]
            ),
            candidates.index(text) + 1 if candidates is not None else None,
            rank,
        )
        for rank, (chunk_id, text) in enumerate(zip(final.chunk_ids, final.texts), start=1)
    ]


def stages_for_row(
    index: Index, run_index_created_at: str, params: dict[str, Any], question: Question, stored_chunk_ids: list[str]
) -> list[ChunkStages]:
    """`chunk_stages` for a run's row, or a LabError when the index changed since the run or the recomputed
    chunks are not the ones the run stored (then the stages would describe other chunks)."""
    if index.manifest.created_at != run_index_created_at:
        raise LabError(
            f"index '{index.manifest.name}' was rebuilt after this run (built "
            f"{index.manifest.created_at}, the run used the build of {run_index_created_at}): the "
            "stages cannot be recomputed"
        )
    stages = chunk_stages(index, config_from_params(params, f"config {params.get('config_id')}"), question)
    if [s.chunk_id for s in stages] != list(stored_chunk_ids):
        raise LabError(
            f"recomputing {params.get('config_id')} for question {question.id} gave other chunks than "
            "the run stored, so the stages are not shown"
        )
    return stages
