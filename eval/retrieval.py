"""Retrieval through the real LangChain retriever: `Chroma(...).as_retriever(search_type, search_kwargs)`."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from eval.config import RetrieverConfig
from eval.index import Index


# An empty result under a score threshold is an expected outcome here, not a warning for every question.
logging.getLogger("langchain_core.vectorstores.base").setLevel(logging.ERROR)


@dataclass(frozen=True)
class RetrievedChunk:
    chunk_id: str
    doc_id: str
    score: float  # LangChain's relevance score for a cosine space: 1 - cosine distance
    text: str
    start: int
    vector: np.ndarray = field(repr=False, compare=False)  # the chunk's stored embedding


def langchain_retrieve(index: Index, config: RetrieverConfig, question: str,
                       query_vector: np.ndarray | None = None) -> list[RetrievedChunk]:
    """Run LangChain's `VectorStoreRetriever` and attach each chunk's relevance score.

    The retriever returns documents without scores (MMR has none at all), so the score is computed as
    LangChain's cosine relevance function would: 1 - cosine distance between query and chunk vectors.
    Pass the question's `query_vector` when it is already known, to avoid embedding it again.
    BM25, ensemble and rerank configs go to their own LangChain retrievers (`eval.hybrid`).
    """
    if not isinstance(config, RetrieverConfig):
        from eval.hybrid import reference_retrieve_one

        return reference_retrieve_one(index, config, question)
    retriever = index.vectorstore.as_retriever(search_type=config.search_type,
                                               search_kwargs=config.search_kwargs())
    documents = retriever.invoke(question)
    if not documents:
        return []
    chunk_ids = [doc.metadata["chunk_id"] for doc in documents]
    query = np.asarray(index.embeddings.embed_query(question) if query_vector is None else query_vector, np.float32)
    vectors = index.embeddings_of(chunk_ids)
    return [RetrievedChunk(doc.metadata["chunk_id"], doc.metadata["doc_id"], float(score), doc.page_content,
                           int(doc.metadata["start"]), vector)
            for doc, score, vector in zip(documents, vectors @ query, vectors)]
