"""Indexes: chunking, encoders, the embedding cache, the Chroma store and the BM25 side beside it."""
