"""Exports of a run: CSV, JSON Lines, Parquet, and TREC run + qrels files (for trec_eval or ranx).

TREC fields are split on whitespace, so ids are written by `eval.io.trec_field` (spaces and '%'
percent-encoded): trec_eval and ranx read them as one id each, and the `imported` kind turns them back."""

from __future__ import annotations

import io
import json
import math
import zipfile
from pathlib import Path
from typing import Any

import pandas as pd

from eval.errors import LabError
from eval.io import atomic_write_bytes, trec_field
from eval.metrics import METRICS
from eval.runs.store import RETRIEVED_COLUMNS, Run
from eval.runs.summary import GRADES_COLUMN, LATENCY_COLUMNS, SOURCE_COLUMN, label_source

FORMATS = ("csv", "jsonl", "parquet", "trec")
# How each answer was produced; `answer_reused` rows copy another row's answer and measured latency.
GENERATION_COLUMNS = ("answer_reused", "prompt_tokens", "completion_tokens")


def rows_with_latency(run: Run) -> pd.DataFrame:
    """The rows with the sampled retriever latency joined in (NaN for questions outside the sample) and the
    label source their relevance metrics are under (`label_source`, gold for a run's own rows)."""
    rows = run.rows.drop(columns=["retrieval_ms"], errors="ignore")
    if len(run.latency):
        rows = rows.merge(run.latency, on=["config_id", "question_id"], how="left")
    return rows.assign(**{SOURCE_COLUMN: label_source(run.rows)})


def _clean(value: Any) -> Any:
    if isinstance(value, float) and math.isnan(value):
        return None
    return value.item() if hasattr(value, "item") else value


def jsonl_records(run: Run) -> list[dict[str, Any]]:
    """One object per (question, configuration), in the documented export shape."""
    configs = {c["config_id"]: {k: v for k, v in c.items() if k != "config_id"} for c in run.configs}
    records = []
    for row in rows_with_latency(run).to_dict("records"):
        retrieved = [
            {"chunk_id": c, "doc_id": d, "score": _clean(float(s))}
            for c, d, s in zip(row["chunk_ids"], row["doc_ids"], row["scores"])
        ]
        if GRADES_COLUMN in row:  # rescored rows: each chunk's grade under the label source (None: unjudged)
            retrieved = [{**item, "grade": grade} for item, grade in zip(retrieved, row[GRADES_COLUMN])]
        record = {
            "question_id": row["question_id"],
            "config_id": row["config_id"],
            "config": configs[row["config_id"]],
            "label_source": row[SOURCE_COLUMN],
            "retrieved": retrieved,
            "metrics": {m: _clean(row[m]) for m in METRICS if m in row and METRICS[m].group != "latency"},
            "latency": {m: _clean(row[m]) for m in LATENCY_COLUMNS if m in row},
        }
        if "answer" in row:
            record["answer"] = row["answer"]
            record["generation"] = {c: _clean(row[c]) for c in GENERATION_COLUMNS if c in row}
        records.append(record)
    return records


def _flat(run: Run) -> pd.DataFrame:
    rows = rows_with_latency(run)
    for column in [c for c in (*RETRIEVED_COLUMNS, GRADES_COLUMN) if c in rows]:
        rows[column] = rows[column].map(lambda v: json.dumps(list(v), ensure_ascii=False))
    return rows


def trec_files(run: Run) -> dict[str, str]:
    """Per config a document-level TREC run (each document at its first rank, score = its best chunk's
    score; chunks of no document share one placeholder rank, as the metrics count them), plus one qrels file
    from the run's stored question set. Readers rank by score, so a list whose scores do not fall with rank (a
    service's distances, or no scores) gets the negated rank as its score."""
    files = {}
    for config_id, group in run.rows.groupby("config_id", sort=False):
        lines = []
        for row in group.itertuples():
            ranked, scores = _document_ranking(row.doc_ids, row.scores)
            lines += [
                f"{trec_field(row.question_id)} Q0 {trec_field(doc)} {rank} {score:.6f} {trec_field(config_id)}"
                for rank, (doc, score) in enumerate(zip(ranked, scores), start=1)
            ]
        files[f"{config_id}.run"] = "\n".join(lines) + "\n"
    files["qrels.txt"] = "".join(
        f"{trec_field(q.id)} 0 {trec_field(doc)} 1\n" for q in run.questions for doc in q.relevant_ids
    )
    return files


def _document_ranking(doc_ids: Any, chunk_scores: Any) -> tuple[list[str], list[float]]:
    """Each document at its first rank with its best chunk's score (or the negated rank, see `trec_files`)."""
    best: dict[str, float] = {}
    for doc_id, score in zip(doc_ids, chunk_scores):
        best[doc_id] = max(best.get(doc_id, -math.inf), float(score))
    ranked = list(best)
    scores = [best[doc] for doc in ranked]
    if not all(math.isfinite(s) for s in scores) or any(after > before for before, after in zip(scores, scores[1:])):
        scores = [-float(rank) for rank in range(1, len(ranked) + 1)]
    return ranked, scores


def _check(run: Run, fmt: str) -> None:
    if fmt not in FORMATS:
        raise LabError(f"unknown export format '{fmt}' (use one of: {', '.join(FORMATS)})")
    if run.status != "complete":
        raise LabError(f"run {run.run_id} is {run.status}, not complete: resume it before exporting")


def export_bytes(run: Run, fmt: str) -> bytes:
    """The export as the bytes of one file; `trec`'s files come as a zip archive (for a download)."""
    _check(run, fmt)
    buffer = io.BytesIO()
    if fmt == "trec":
        with zipfile.ZipFile(buffer, "w") as archive:
            for name, text in trec_files(run).items():
                archive.writestr(name, text)
    elif fmt == "jsonl":
        buffer.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in jsonl_records(run)).encode())
    elif fmt == "csv":
        buffer.write(_flat(run).to_csv(index=False).encode("utf-8-sig"))  # the BOM lets Excel read Chinese
    else:
        rows_with_latency(run).to_parquet(buffer, index=False)
    return buffer.getvalue()


def export_run(run: Run, fmt: str, out: str | Path) -> list[Path]:
    """Write the export; `trec` writes a folder of files (a run per config and qrels.txt). Returns the
    written paths."""
    out = Path(out)
    _check(run, fmt)
    if fmt != "trec":
        atomic_write_bytes(out, export_bytes(run, fmt))
        return [out]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in trec_files(run).items():
        atomic_write_bytes(out / name, text.encode())
        paths.append(out / name)
    return paths
