"""Retrievers outside this process: RAG platforms over HTTP and imported result files."""
