"""A run's relevance metrics under another label source, from the run folder alone (its rows and
`chunks.parquet`), without retrieving again.

The rescored rows say which source scored them (`label_source`) and carry each retrieved chunk's grade under
it (`grades`, aligned with `chunk_ids`; None = unjudged), so every screen and file made from them (Compare,
Inspect, the reports, the exports) names the source and marks relevance under it. A run's own rows are
scored under `gold`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

from eval.data.labels import COMPLETE_SOURCES, Labels, load_labels
from eval.errors import LabError
from eval.labels.corrected import Corrected, corrected_rows, corrected_table, parse_corrected, sampled_questions
from eval.labels.pooled_judging import run_label_file
from eval.metrics.catalogue import parse_metric
from eval.metrics.passage import PASSAGE_METRIC_KEYS, chunk_grades, passage_metrics
from eval.metrics.ranking import DOC_METRIC_KEYS, doc_metrics
from eval.runs.store import Run
from eval.runs.summary import GRADES_COLUMN, SOURCE_COLUMN
from eval.schema import Span

# What a leaderboard under a label source shows: document and passage relevance, and how much of it is judged.
LABEL_METRICS = ("hit_rate", "recall", "mrr", "ndcg", "passage_precision", "passage_recall", "passage_ndcg", "judged")


def judged_text(rows: pd.DataFrame, source: str) -> str:
    """The label source's judged share of the rows' retrieved chunks, in words (a list that retrieved nothing
    is left out: nothing retrieved is not "unjudged")."""
    complete = source in COMPLETE_SOURCES
    if "judged" not in rows or rows["judged"].isna().all():
        return (
            f"{source} is complete: every retrieved chunk of a question it labels is judged"
            if complete
            else f"no judged share under {source}"
        )
    share = f"{rows['judged'].mean():.1%} of the retrieved chunks are judged under {source}"
    return share + (" (a complete source: a chunk it does not mark is judged not relevant)" if complete else "")


def row_grades(row: Mapping[str, Any], relevant_ids: Collection[str]) -> list[int | None]:
    """Each retrieved chunk's grade under the label source of `row`: the `grades` of a rescored row; for a run's
    own row (gold), by document: 1 for a chunk of a relevant document, else 0 (None when the question has no
    relevant document: gold does not label it)."""
    if GRADES_COLUMN in row and row[GRADES_COLUMN] is not None:
        return list(row[GRADES_COLUMN])
    return [int(d in relevant_ids) if relevant_ids else None for d in row["doc_ids"]]


def grade_label(grade: int | None) -> str:
    """A chunk's grade in words, as the reports and Inspect show it."""
    return "unjudged" if grade is None else f"relevant (grade {grade})" if grade >= 1 else "not relevant"


def run_under(run: Run, labels: Labels, source: str, metrics: Sequence[str] = LABEL_METRICS) -> Run:
    """The run with its rows `rescore`d under `source`; under "JUDGE corrected by HUMAN" the judge's rows with
    every metric but `judged` replaced by its prediction-powered pseudo-values (`eval.labels.corrected`)."""
    pair = parse_corrected(source)
    if pair is None:
        return replace(run, rows=rescore(run, labels, source, metrics))
    judge, human = pair
    human_rows = rescore(run, labels, human, list(dict.fromkeys([*metrics, "judged"])))
    rows = corrected_rows(
        rescore(run, labels, judge, metrics),
        human_rows,
        [m for m in metrics if m != "judged"],
        sampled_questions(human_rows),
        human,
    )
    return replace(run, rows=rows.assign(**{SOURCE_COLUMN: source}))


def corrected_estimates(run: Run, labels: Labels, judge: str, human: str, metric: str = "ndcg") -> Corrected:
    """Every config's `metric` under `judge` corrected by `human`'s fully graded questions, with the judge's
    own, and the paired differences to the leader (`eval.labels.corrected.corrected_table`)."""
    if judge == human:
        raise LabError(f"--judge and --human are both {judge}: correct a judge by another source")
    human_rows = rescore(run, labels, human, list(dict.fromkeys([metric, "judged"])))
    return corrected_table(
        rescore(run, labels, judge, [metric]), human_rows, metric, sampled_questions(human_rows), (judge, human)
    )


def run_under_source(
    run: Run, source: str | None, labels_file: str | Path | None = None, metrics: Sequence[str] = ()
) -> Run:
    """The run scored under `source` with the labels of `labels_file` (by default the label file beside the
    run's question set), `LABEL_METRICS` and `metrics` recomputed; the run itself when neither is given (its
    own rows are gold's). As the CLI's `--labels FILE --source NAME` read."""
    if source is None:
        if labels_file is not None:
            raise LabError("--labels needs --source NAME (gold, generated, llm:MODEL@VERSION or human:NAME)")
        return run
    labels = load_labels(labels_file if labels_file is not None else run_label_file(run))
    return run_under(run, labels, source, list(dict.fromkeys([*LABEL_METRICS, *metrics])))


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
    complete = source in COMPLETE_SOURCES
    scored: dict[tuple[str, tuple[str, ...]], tuple[dict[str, float], list]] = {}  # configs share lists
    values, grades = [], []
    for question_id, chunk_ids, doc_ids in zip(run.rows["question_id"], run.rows["chunk_ids"], run.rows["doc_ids"]):
        key = (question_id, tuple(chunk_ids))
        if key not in scored:
            chunks, spans = [where[c] for c in chunk_ids], judged.get(question_id, [])
            scored[key] = (
                {
                    **doc_metrics(list(doc_ids), doc_grades.get(question_id, {}), doc_specs),
                    **passage_metrics(chunks, spans, passage_specs, complete),
                },
                chunk_grades(chunks, spans, complete),
            )
        values.append(scored[key][0])
        grades.append(scored[key][1])
    rescored = run.rows.copy()
    rescored[list(metrics)] = pd.DataFrame(values, columns=list(metrics), index=run.rows.index, dtype=float)
    rescored[SOURCE_COLUMN] = source
    rescored[GRADES_COLUMN] = pd.Series(grades, index=run.rows.index, dtype=object)
    return rescored


def _best_by_document(spans: Sequence[Span]) -> dict[str, int]:
    best: dict[str, int] = {}
    for span in spans:
        best[span.doc_id] = max(span.grade, best.get(span.doc_id, span.grade))
    return best
