"""ragas' context metrics (ID-based and non-LLM), offline: a cross-check of our own relevance metrics."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any, ClassVar

import pandas as pd

from eval.metrics.catalogue import Metric, names
from eval.metrics.scorer import Need, ScoringContext

RAGAS = (
    Metric(
        "ragas_id_context_precision",
        "ragas ID context precision",
        "relevance",
        True,
        "ragas IDBasedContextPrecision: |retrieved ids ∩ reference ids| / |retrieved ids| (sets)",
    ),
    Metric(
        "ragas_id_context_recall",
        "ragas ID context recall",
        "relevance",
        True,
        "ragas IDBasedContextRecall: |retrieved ids ∩ reference ids| / |reference ids| (sets)",
    ),
    Metric(
        "ragas_nonllm_context_recall",
        "ragas non-LLM context recall",
        "relevance",
        True,
        "ragas NonLLMContextRecall: share of reference contexts whose best Levenshtein "
        "similarity to a retrieved context exceeds 0.5",
    ),
)
RAGAS_METRIC_KEYS = names(RAGAS)
_RAGAS_FIELDS = ("retrieved_context_ids", "reference_context_ids", "retrieved_contexts", "reference_contexts")


def ragas_context_metrics(rows: Sequence[dict]) -> pd.DataFrame:
    """ragas IDBasedContextPrecision, IDBasedContextRecall, NonLLMContextRecall per row, offline.

    Rows carry retrieved_context_ids, reference_context_ids (doc ids), retrieved_contexts and
    reference_contexts (texts). Runs ragas.evaluate with no LLM and telemetry off. ragas' own
    conventions hold: ids are compared as sets; an empty retrieved list gives NaN precision and
    NaN non-LLM recall (ragas logs the error), and recall 0.
    """
    if not rows:
        return pd.DataFrame(columns=list(RAGAS_METRIC_KEYS), dtype=float)
    os.environ["RAGAS_DO_NOT_TRACK"] = "true"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ragas import EvaluationDataset, RunConfig, SingleTurnSample, evaluate
        from ragas._analytics import do_not_track
        from ragas.metrics import IDBasedContextPrecision, IDBasedContextRecall, NonLLMContextRecall

        do_not_track.cache_clear()  # ragas caches the flag at its first call
        samples = [SingleTurnSample(**{f: [str(v) for v in row[f]] for f in _RAGAS_FIELDS}) for row in rows]
        metrics = [IDBasedContextPrecision(), IDBasedContextRecall(), NonLLMContextRecall()]
        result = evaluate(
            EvaluationDataset(samples=samples),
            metrics=metrics,
            show_progress=False,
            run_config=RunConfig(timeout=60, max_retries=1, max_wait=1),
        )
    ragas_names = [m.name for m in metrics]
    return pd.DataFrame(result.scores)[ragas_names].set_axis(list(RAGAS_METRIC_KEYS), axis=1)


class RagasContextScorer:
    """A run scorer: `ragas_context_metrics` for every row. The reference contexts are the chunks of the
    relevant documents (chunk-sized, as NonLLMContextRecall compares texts one to one)."""

    needs: ClassVar[frozenset[Need]] = frozenset({"chunk_texts", "index"})
    columns: ClassVar[tuple[str, ...]] = RAGAS_METRIC_KEYS

    def describe(self) -> dict[str, Any]:
        return {"name": "ragas_context", "ragas": version("ragas")}

    def score(self, rows: pd.DataFrame, context: ScoringContext) -> pd.DataFrame:
        questions, texts = context.questions, context.chunk_texts
        relevant_ids = sorted({d for q in questions.values() for d in q.relevant_ids})
        reference: dict[str, list[str]] = {}
        for start in range(0, len(relevant_ids), 500):
            for chunk in context.index.chunks(where={"doc_id": {"$in": relevant_ids[start : start + 500]}}):
                reference.setdefault(chunk.doc_id, []).append(chunk.text)
        if context.progress:
            context.progress("ragas", 0, len(rows))
        scored = ragas_context_metrics(
            [
                {
                    "retrieved_context_ids": list(row.doc_ids),
                    "retrieved_contexts": [texts[c] for c in row.chunk_ids],
                    "reference_context_ids": list(questions[row.question_id].relevant_ids),
                    "reference_contexts": [
                        t for d in questions[row.question_id].relevant_ids for t in reference.get(d, [])
                    ],
                }
                for row in rows.itertuples()
            ]
        )
        if context.progress:
            context.progress("ragas", len(rows), len(rows))
        return scored
