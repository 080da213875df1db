"""The retriever a LangChain user writes for a config, from LangChain's own classes: the reference the fast path
is compared with."""

from __future__ import annotations

from eval.index.bm25 import TOKENIZERS, bm25_side
from eval.retrievers.bm25 import BM25Config
from eval.retrievers.ensemble import EnsembleConfig
from eval.retrievers.rerank import RerankConfig


def langchain_retriever(index, config, cross_encoder_model):
    """The retriever a LangChain user writes for the config, from LangChain's own classes."""
    from langchain_classic.retrievers import ContextualCompressionRetriever, EnsembleRetriever
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker
    from langchain_community.retrievers import BM25Retriever
    from langchain_core.documents import Document

    if isinstance(config, BM25Config):
        got = index.collection.get(include=["documents", "metadatas"])
        by_id = {
            i: Document(page_content=t, metadata=m) for i, t, m in zip(got["ids"], got["documents"], got["metadatas"])
        }
        documents = [by_id[chunk_id] for chunk_id in bm25_side(index).chunk_ids]  # the index's chunk order
        return BM25Retriever.from_documents(
            documents,
            bm25_params={"k1": config.k1, "b": config.b},
            preprocess_func=TOKENIZERS[config.tokenizer],
            k=config.k,
        )
    if isinstance(config, EnsembleConfig):
        return EnsembleRetriever(
            retrievers=[langchain_retriever(index, r, cross_encoder_model) for r in config.retrievers],
            weights=list(config.weights),
            c=config.c,
        )
    if isinstance(config, RerankConfig):
        return ContextualCompressionRetriever(
            base_compressor=CrossEncoderReranker(model=cross_encoder_model, top_n=config.top_n),
            base_retriever=langchain_retriever(index, config.base, cross_encoder_model),
        )
    return index.vectorstore.as_retriever(search_type=config.search_type, search_kwargs=config.search_kwargs())
