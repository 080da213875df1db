"""Imported retrieval results: a TREC run file or a JSONL of ranked results per question, for systems
nobody can call from here.

A file is read whole and refused, with its file and line, when a score is not a finite number, a question
lists one document (or chunk) twice, a question has two JSONL lines, or it holds no result at all: each of
these would otherwise be scored silently as something it is not. TREC ids are read as written; this tool's
own export percent-encodes ids with spaces (`eval.io.trec_field`), which `resolve` turns back.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any

from eval.errors import DatasetError
from eval.io import iter_jsonl, read_text, text_lines, trec_field, trec_unescape


def read_imported(path: Path, fmt: str) -> dict[str, list[dict[str, Any]]]:
    """question id -> ranked results `{"doc_id", "line", "score"?, "chunk_id"?, "text"?}` from a TREC run or
    JSONL; bad lines raise `DatasetError` naming file and line."""
    results = _read_trec(path) if fmt == "trec" else _read_jsonl(path)
    if not results:
        raise DatasetError("no results in the file (it has no result line)", path)
    return results


@lru_cache(maxsize=8)
def read_imported_once(path: str, fmt: str, sha256: str) -> dict[str, list[dict[str, Any]]]:
    """`read_imported` of one version of a file (its hash), read once per process: the check before a run
    and the run itself share it. Callers must not change what it returns."""
    return read_imported(Path(path), fmt)


def entries_of(results: dict[str, list[dict[str, Any]]], question_id: str) -> list[dict[str, Any]] | None:
    """A question's results, under its id as written or as this tool's TREC export escapes it."""
    found = results.get(question_id)
    return found if found is not None else results.get(trec_field(question_id))


def id_forms(value: str, fmt: str) -> list[str]:
    """The ids a file's value may stand for, most literal first: a TREC field may be percent-encoded."""
    return [value, trec_unescape(value)] if fmt == "trec" and "%" in value else [value]


def _read_trec(path: Path) -> dict[str, list[dict[str, Any]]]:
    ranked: dict[str, list[tuple[float, int, str, int]]] = {}
    first_line: dict[tuple[str, str], int] = {}
    for number, line in enumerate(text_lines(read_text(path)), start=1):
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
        if not math.isfinite(score):
            raise DatasetError(f"score must be a finite number, got {fields[4]!r}", path, number)
        seen = first_line.setdefault((fields[0], fields[2]), number)
        if seen != number:
            raise DatasetError(
                f"document {fields[2]} is listed twice for question {fields[0]} (first on line {seen})", path, number
            )
        ranked.setdefault(fields[0], []).append((-score, rank, fields[2], number))
    return {
        question_id: [{"doc_id": doc, "score": -neg, "line": number} for neg, _, doc, number in sorted(entries)]
        for question_id, entries in ranked.items()
    }


def _read_jsonl(path: Path) -> dict[str, list[dict[str, Any]]]:
    results: dict[str, list[dict[str, Any]]] = {}
    lines: dict[str, tuple[int, Any]] = {}  # question id -> (its line, its config id in an export of this tool)
    for number, record in iter_jsonl(path):
        question_id = record.get("question_id")
        if not isinstance(question_id, str):
            raise DatasetError("each line needs a string question_id", path, number, "question_id")
        if question_id in lines:
            first, config = lines[question_id]
            mixed = record.get("config_id") not in (None, config)
            raise DatasetError(
                f"question {question_id} has a second line (the first is line {first})"
                + (f", of config {record['config_id']} after {config}: keep one config's lines" if mixed else ""),
                path,
                number,
            )
        lines[question_id] = (number, record.get("config_id"))
        results[question_id] = _imported_entries(record, path, number)
    return results


def _imported_entries(record: dict[str, Any], path: Path, number: int) -> list[dict[str, Any]]:
    if isinstance(record.get("doc_ids"), list):
        entries, field = [{"doc_id": str(d), "line": number} for d in record["doc_ids"]], "doc_ids"
    else:
        retrieved, field = record.get("retrieved"), "retrieved"
        if not isinstance(retrieved, list):
            raise DatasetError(
                "give 'retrieved' (a list of {doc_id, score?, chunk_id?, text?}) or 'doc_ids'", path, number, field
            )
        entries = [_retrieved_item(item, path, number) for item in retrieved]
    seen: set[str] = set()
    for entry in entries:
        key = entry.get("chunk_id") or entry["doc_id"]
        if key in seen:
            raise DatasetError(
                f"{'chunk' if entry.get('chunk_id') else 'document'} {key} is listed twice for question "
                f"{record['question_id']} (give each chunk of a document its own chunk_id)",
                path,
                number,
                field,
            )
        seen.add(key)
    return entries


def _retrieved_item(item: Any, path: Path, number: int) -> dict[str, Any]:
    if not isinstance(item, dict) or not isinstance(item.get("doc_id"), str):
        raise DatasetError("each retrieved item needs a string doc_id", path, number, "retrieved")
    score = item.get("score")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not math.isfinite(score)
    ):
        raise DatasetError(f"score must be a finite number, got {score!r}", path, number, "retrieved")
    return {"line": number, **{key: item[key] for key in ("doc_id", "score", "chunk_id", "text") if key in item}}
