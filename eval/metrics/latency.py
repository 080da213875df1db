"""Latency metrics. They are measured, not computed from rows: `retrieval_ms` by the sweep's timing of the real
LangChain retriever (`eval.sweep.measure_latency`), the others by the generators (`eval.generation`)."""
from __future__ import annotations

from eval.metrics.catalogue import Metric

RETRIEVAL_LATENCY = (
    Metric("retrieval_ms", "Retrieval (ms)", "latency", False, "wall time of the retriever call"),
)
GENERATION_LATENCY = (
    Metric("ttft_ms", "Time to first token (ms)", "latency", False,
           "from the start of generation to the first streamed answer token"),
    Metric("total_ms", "Total (ms)", "latency", False, "from the start of generation to the last answer token"),
    Metric("tokens_per_s", "Tokens / s", "latency", True,
           "generated tokens / (time of last token - time of first token)"),
)
