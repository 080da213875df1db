"""Relevance labels: questions generated from chunks, pooled judging, agreement between sources, rescoring."""
