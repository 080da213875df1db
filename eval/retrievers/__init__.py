"""Retriever kinds (vector, BM25, ensemble, rerank, external platforms) in LangChain's vocabulary, and the
registry that expands sweep specs and dispatches on kinds."""
