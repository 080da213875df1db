"""Imported retrieval results: a TREC run file or a JSONL of ranked results per question, for systems
nobody can call from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from eval.errors import DatasetError
from eval.io import iter_jsonl, read_text


def read_imported(path: Path, fmt: str) -> dict[str, list[dict[str, Any]]]:
    """question id -> ranked results `{"doc_id", "score"?, "chunk_id"?, "text"?}` from a TREC run or JSONL."""
    results: dict[str, list[dict[str, Any]]] = {}
    if fmt == "trec":
        ranked: dict[str, list[tuple[float, int, str]]] = {}
        for number, line in enumerate(read_text(path).splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 6:
                raise DatasetError(
                    f"a TREC run line has 6 fields (qid Q0 docid rank score tag), got {len(fields)}", path, number
                )
            try:
                rank, score = int(fields[3]), float(fields[4])
            except ValueError:
                raise DatasetError(
                    f"rank must be a whole number and score a number, got {fields[3]!r} and {fields[4]!r}", path, number
                ) from None
            ranked.setdefault(fields[0], []).append((-score, rank, fields[2]))
        for question_id, entries in ranked.items():
            results[question_id] = [{"doc_id": doc, "score": -neg} for neg, _, doc in sorted(entries)]
        return results
    for number, record in iter_jsonl(path):
        if not isinstance(record.get("question_id"), str):
            raise DatasetError("each line needs a string question_id", path, number, "question_id")
        results[record["question_id"]] = _imported_entries(record, path, number)
    return results


def _imported_entries(record: dict[str, Any], path: Path, number: int) -> list[dict[str, Any]]:
    if isinstance(record.get("doc_ids"), list):
        return [{"doc_id": str(d)} for d in record["doc_ids"]]
    retrieved = record.get("retrieved")
    if not isinstance(retrieved, list):
        raise DatasetError(
            "give 'retrieved' (a list of {doc_id, score?, chunk_id?, text?}) or 'doc_ids'", path, number, "retrieved"
        )
    entries = []
    for item in retrieved:
        if not isinstance(item, dict) or not isinstance(item.get("doc_id"), str):
            raise DatasetError("each retrieved item needs a string doc_id", path, number, "retrieved")
        entries.append({key: item[key] for key in ("doc_id", "score", "chunk_id", "text") if key in item})
    return entries
