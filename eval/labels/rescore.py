"""A run's relevance metrics under another label source, from the run folder alone (its rows and
`chunks.parquet`), without retrieving again.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from eval.data.labels import Labels
from eval.errors import LabError
from eval.metrics.catalogue import parse_metric
from eval.metrics.passage import PASSAGE_METRIC_KEYS, passage_metrics
from eval.metrics.ranking import DOC_METRIC_KEYS, doc_metrics
from eval.runs.store import Run
from eval.schema import Span

# What a leaderboard under a label source shows: document and passage relevance, and how much of it is judged.
LABEL_METRICS = ("hit_rate", "recall", "mrr", "ndcg", "passage_precision", "passage_recall", "passage_ndcg", "judged")


def rescore(
    run: Run, labels: Labels, source: str = "gold", metrics: Sequence[str] = DOC_METRIC_KEYS + PASSAGE_METRIC_KEYS
) -> pd.DataFrame:
    """The run's rows with their relevance metrics recomputed under one label source, from the run folder
    alone (rows and `chunks.parquet`), without retrieving again.

    `metrics` are document-level (`eval.metrics.ranking`) and passage-level (`eval.metrics.passage`) names,
    optionally `@k`; their columns are replaced or added."""
    chunks_file = run.folder / "chunks.parquet"
    if not chunks_file.is_file():
        raise LabError(f"run {run.run_id} has no chunks.parquet (it did not finish): it cannot be rescored")
    chunks = pd.read_parquet(chunks_file)
    where = {
        c: Span(d, s, s + len(t))
        for c, d, s, t in zip(chunks["chunk_id"], chunks["doc_id"], chunks["start"].astype(int), chunks["text"])
    }
    doc_specs = [m for m in metrics if parse_metric(m)[0] in DOC_METRIC_KEYS]
    passage_specs = [m for m in metrics if parse_metric(m)[0] in PASSAGE_METRIC_KEYS]
    unknown = sorted(set(metrics) - set(doc_specs) - set(passage_specs))
    if unknown:
        raise LabError(
            f"cannot rescore {', '.join(unknown)}: only relevance metrics "
            f"({', '.join(DOC_METRIC_KEYS + PASSAGE_METRIC_KEYS)}, optionally @k) depend on labels"
        )
    judged = labels.spans(source)
    if not judged.keys() & set(run.rows["question_id"]):
        raise LabError(
            f"source '{source}' judges none of run {run.run_id}'s questions: are these the labels of its question set?"
        )
    doc_grades = {q: _best_by_document(spans) for q, spans in judged.items()}
    scored: dict[tuple[str, tuple[str, ...]], dict[str, float]] = {}  # configs often retrieve the same list
    values = []
    for question_id, chunk_ids, doc_ids in zip(run.rows["question_id"], run.rows["chunk_ids"], run.rows["doc_ids"]):
        key = (question_id, tuple(chunk_ids))
        if key not in scored:
            scored[key] = {
                **doc_metrics(list(doc_ids), doc_grades.get(question_id, {}), doc_specs),
                **passage_metrics([where[c] for c in chunk_ids], judged.get(question_id, []), passage_specs),
            }
        values.append(scored[key])
    rescored = run.rows.copy()
    rescored[list(metrics)] = pd.DataFrame(values, columns=list(metrics), index=run.rows.index, dtype=float)
    return rescored


def _best_by_document(spans: Sequence[Span]) -> dict[str, int]:
    best: dict[str, int] = {}
    for span in spans:
        best[span.doc_id] = max(span.grade, best.get(span.doc_id, span.grade))
    return best
