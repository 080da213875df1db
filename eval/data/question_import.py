"""Real questions without labels: read a plain list or a chat platform's query log, drop what is not a user's
question, de-duplicate (exactly after normalising, then near-duplicates by embedding cosine) and write a question
set whose `weight` is how many imported lines each kept question stands for.

What is read (the formats of `FORMATS`; `auto` tells them apart by content where that is unambiguous):
- txt: one question a line (blank lines skipped). csv: a column (`question`, `query` or `问题` unless named).
  jsonl: a field of each line (the same default names unless named), or a JSON list of strings.
- dify: message lists of the service API `GET /v1/messages` and of the console (`{"data": [{"query", "answer",
  ...}]}`: the question is `query`, or `inputs.query` when that is empty, as Dify's own export does; the console's
  `message` field is the prompt sent to the model and is never read), the console's chat-app logs (`{"data":
  [{"message": {"query", ...}}]}`), the feedback export (CSV or JSON, `user_query`), the annotation export (CSV
  `Question,Answer` / `问题,答案`; JSONL `{"messages": [system, user, assistant]}`) and annotation hit histories
  (`question`, beside `match` and `response`).
- ragflow: chat sessions (`GET /api/v1/chats/{id}/sessions`: `{"code": 0, "data": [{"messages": [{"role",
  "content"}, ...]}]}`; agent sessions name the list `message`): `user` messages are questions; the first
  assistant message (the greeting), later assistant replies and system prompts are not.
- chatchat: Langchain-Chatchat's `message` table (its SQLite `info.db`, or the table as CSV / JSON lines with
  `query` and `response`; a row whose `response` is empty never finished and is skipped, as Chatchat's own
  history does) and the WebUI's Markdown export (`User` rows; `AI` rows, the first of them the greeting, are not).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
import sqlite3
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from eval.data.datasets import question_record
from eval.errors import DatasetError
from eval.io import atomic_write_bytes, decode_bytes, text_lines
from eval.schema import Question
from eval.text import CJK_RANGES

FORMATS = ("txt", "csv", "jsonl", "dify", "ragflow", "chatchat")
QUESTION_NAMES = ("question", "query", "问题")  # a column or field with one of these names (any case) by default
SQLITE_MAGIC = b"SQLite format 3\x00"
EXPECTED = (
    "expected one question a line (.txt), a CSV column, JSON lines with a question field, or a Dify, RAGFlow or "
    "Langchain-Chatchat export"
)
# Why a record was not imported: the counts a read reports.
ASSISTANT, SYSTEM, GREETING, OTHER, UNFINISHED, EMPTY = (
    "assistant replies",
    "system prompts",
    "greetings",
    "messages of other roles",
    "unanswered rows (empty response)",
    "empty questions",
)
Embed = Callable[[list[str]], np.ndarray]  # texts -> L2-normalised vectors, one row each
EMBED_BATCH = 256  # questions encoded between two progress reports


@dataclass
class FileRead:
    """The questions read from one file, in file order, and how many records were skipped and why."""

    path: Path
    format: str
    questions: list[str]
    skipped: Counter[str]


# ---------------------------------------------------------------- reading


def read_questions(
    path: str | Path, fmt: str = "auto", column: str | None = None, field: str | None = None
) -> FileRead:
    """The user questions in one file; `fmt` is auto or one of `FORMATS`; `column` names a CSV column and
    `field` a JSON field (dotted for a nested one: `message.query`). A shape it cannot read is a DatasetError
    naming the file, line and what was expected."""
    path = Path(path)
    if fmt != "auto" and fmt not in FORMATS:
        raise DatasetError(f"unknown format '{fmt}' (use auto, {', '.join(FORMATS)})", path)
    if not path.is_file():
        raise DatasetError("file not found", path)
    data = path.read_bytes()
    if data.startswith(SQLITE_MAGIC):
        if fmt not in ("auto", "chatchat"):
            raise DatasetError(f"a SQLite database, not a {fmt} file (Chatchat's info.db is --format chatchat)", path)
        return _chatchat_database(path)
    text = decode_bytes(data, path)
    if not text.strip():
        raise DatasetError(f"the file is empty: {EXPECTED}", path)
    read = _read_text(path, text, fmt, column, field)
    if not read.questions:
        skipped = ", ".join(f"{n} {why}" for why, n in read.skipped.items())
        raise DatasetError(f"no question in this {read.format} file" + (f" ({skipped})" if skipped else ""), path)
    return read


def _read_text(path: Path, text: str, fmt: str, column: str | None, field: str | None) -> FileRead:
    suffix = path.suffix.lower()
    starts_as_json = text.lstrip().startswith(("{", "["))
    json_like = starts_as_json or suffix in (".json", ".jsonl")
    if fmt == "txt" or (fmt == "auto" and suffix == ".txt" and not starts_as_json):
        return FileRead(path, "txt", *_lines(text))
    if fmt == "csv" or (fmt in ("auto", "dify", "chatchat") and suffix == ".csv"):
        return _csv(path, text, fmt, column)
    if fmt in ("auto", "chatchat") and CHATBOX_ROW.search(text):
        return _chatbox_markdown(path, text)
    if not json_like:
        if fmt != "auto":
            raise DatasetError(f"not a {fmt} export: {_EXPECTED_JSON.get(fmt, EXPECTED)}", path, 1)
        if suffix == ".md":
            raise DatasetError(f"a Markdown file that is not a Langchain-Chatchat chat export: {EXPECTED}", path)
        return FileRead(path, "txt", *_lines(text))
    return _records(path, _json_records(path, text), fmt, field)


def _lines(text: str) -> tuple[list[str], Counter[str]]:
    return [line.strip().strip("\ufeff") for line in text.splitlines() if line.strip().strip("\ufeff")], Counter()


def _named(names: list[str], wanted: str | None, what: str, path: Path, line: int | None) -> str:
    """The column or field to read: `wanted` (exactly, else in any case), or the first of `QUESTION_NAMES`."""
    folded = {name.strip().casefold(): name for name in names}
    if wanted is not None:
        if wanted in names or wanted.casefold() in folded:
            return wanted if wanted in names else folded[wanted.casefold()]
        raise DatasetError(f"no {what} '{wanted}' (there are: {', '.join(names) or 'none'})", path, line)
    for name in QUESTION_NAMES:
        if name in folded:
            return folded[name]
    option = "--column" if what == "column" else "--field"
    raise DatasetError(
        f"no {what} named {' / '.join(QUESTION_NAMES)} (there are: {', '.join(names) or 'none'}): name the "
        f"{what} that holds the questions ({option}), or {EXPECTED}",
        path,
        line,
    )


# ---------------------------------------------------------------- CSV


def _csv(path: Path, text: str, fmt: str, column: str | None) -> FileRead:
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    folded = {name.casefold() for name in header}
    platform = "csv"
    if column is None and fmt != "csv":
        if {"feedback_id", "user_query"} <= folded:  # Dify's feedback export
            platform, column = "dify", "user_query"
        elif [name.casefold() for name in header] in (["question", "answer"], ["问题", "答案"]):  # annotations
            platform = "dify"
        elif {"query", "response"} <= folded:  # Chatchat's message table
            platform = "chatchat"
    if fmt in ("dify", "chatchat") and platform != fmt:
        raise DatasetError(
            f"not a {fmt} CSV export: {_PLATFORM_CSV[fmt]} (the header is: {', '.join(header)})", path, 1
        )
    name = _named(header, column, "column", path, 1)
    questions, skipped = [], Counter()
    for row in reader:
        if platform == "chatchat" and not (row.get(_cased(header, "response")) or "").strip():
            skipped[UNFINISHED] += 1
        elif (row.get(name) or "").strip():
            questions.append(row[name].strip())
        else:
            skipped[EMPTY] += 1
    return FileRead(path, platform, questions, skipped)


_PLATFORM_CSV = {
    "dify": "expected the feedback export (user_query) or the annotation export (Question,Answer / 问题,答案)",
    "chatchat": "expected the message table (query, response)",
}


def _cased(header: list[str], name: str) -> str:
    return next(h for h in header if h.casefold() == name)


# ---------------------------------------------------------------- Chatchat: the database and the Markdown export


def _chatchat_database(path: Path) -> FileRead:
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            tables = [row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            if "message" not in tables:
                raise DatasetError(
                    f"a SQLite database without Langchain-Chatchat's `message` table (tables: {', '.join(tables)})",
                    path,
                )
            columns = [row[1] for row in db.execute("PRAGMA table_info(message)")]
            if not {"query", "response"} <= set(columns):
                raise DatasetError(
                    f"the `message` table has no query and response columns ({', '.join(columns)})", path
                )
            order = " ORDER BY create_time" if "create_time" in columns else ""
            rows = db.execute(f"SELECT query, response FROM message{order}").fetchall()
    except sqlite3.DatabaseError as error:
        raise DatasetError(f"cannot read this SQLite database ({error})", path) from None
    questions, skipped = [], Counter()
    for query, response in rows:
        if not (response or "").strip():
            skipped[UNFINISHED] += 1
        elif isinstance(query, str) and query.strip():
            questions.append(query.strip())
        else:
            skipped[EMPTY] += 1
    return FileRead(path, "chatchat", questions, skipped)


# streamlit-chatbox's `export2md`, which Chatchat's "导出记录" button writes: one table row per message,
# `|<div style="background-color:#DCFDC8">User</div>|<div style="...">text, newlines as <br></div>|`.
CHATBOX_ROW = re.compile(r'^\|<div style="background-color:[^"]*">(User|AI)</div>\|(.*)\|$', re.MULTILINE)
_CHATBOX_CELL = re.compile(r'<div style="background-color:[^"]*">(.*?)</div>', re.DOTALL)


def _chatbox_markdown(path: Path, text: str) -> FileRead:
    questions, skipped = [], Counter()
    for number, match in enumerate(CHATBOX_ROW.finditer(text)):
        if match.group(1) == "AI":
            skipped[GREETING if number == 0 else ASSISTANT] += 1
            continue
        parts = [part.replace("<br>", "\n").strip() for part in _CHATBOX_CELL.findall(match.group(2))]
        question = "\n".join(part for part in parts if part)
        if question:
            questions.append(question)
        else:
            skipped[EMPTY] += 1
    return FileRead(path, "chatchat", questions, skipped)


# ---------------------------------------------------------------- JSON and JSON lines


@dataclass(frozen=True)
class _Record:
    value: Any
    line: int | None  # JSON lines: the line; a JSON document: None, and `where` is the path inside it
    where: str | None


def _json_records(path: Path, text: str) -> list[_Record]:
    """The records of a JSON document (unwrapped from the platforms' envelopes) or of JSON lines."""
    try:
        records = _unwrap(path, json.loads(text))
    except json.JSONDecodeError as error:
        document_error = error
    else:  # a document on one line (one JSON line, or one page of an API) is line 1
        return records if "\n" in text.strip() else [_Record(r.value, 1, r.where) for r in records]
    records = []
    for number, line in enumerate(text_lines(text), start=1):
        if not line.strip():
            continue
        try:
            records.append(_Record(json.loads(line), number, None))
        except json.JSONDecodeError as error:
            # on the first line the document's own error says where a JSON document (not JSON lines) breaks
            error, number = (error, number) if records else (document_error, document_error.lineno)
            raise DatasetError(f"invalid JSON ({error.msg} at column {error.colno})", path, number) from None
    return records


def _unwrap(path: Path, document: Any) -> list[_Record]:
    if isinstance(document, dict) and document.get("code", 0) != 0 and set(document) <= {"code", "message", "data"}:
        raise DatasetError(f"a RAGFlow error response (code {document['code']}: {document.get('message', '')})", path)
    for key in ("feedback_data", "data"):  # Dify's feedback export; paged lists of Dify and RAGFlow
        if isinstance(document, dict) and isinstance(document.get(key), (list, dict)):
            items = document[key] if isinstance(document[key], list) else [document[key]]
            return [_Record(item, None, f"{key}[{i}]") for i, item in enumerate(items)]
    if isinstance(document, list):
        return [_Record(item, None, f"[{i}]") for i, item in enumerate(document)]
    return [_Record(document, None, None)]


def _shape(value: Any) -> str:
    """Which export a record comes from (see the module docstring)."""
    if isinstance(value, str):
        return "string"
    if not isinstance(value, dict):
        return "unknown"
    if "query" in value and "response" in value:
        return "chatchat"
    if "query" in value:
        return "dify-message"
    if isinstance(value.get("message"), dict) and "query" in value["message"]:
        return "dify-log"
    if "user_query" in value:
        return "dify-feedback"
    if isinstance(value.get("messages"), list) or isinstance(value.get("message"), list):
        return "chat"
    return "plain"


def _platform(shape: str, value: Any) -> str:
    if shape == "chat":  # RAGFlow sessions carry ids and times; Dify's annotation lines only `messages`
        return "ragflow" if {"chat_id", "id", "create_time", "reference", "dsl", "source"} & set(value) else "dify"
    return {"chatchat": "chatchat", "string": "jsonl", "plain": "jsonl"}.get(shape, "dify" if "dify" in shape else "")


def _records(path: Path, records: list[_Record], fmt: str, field: str | None) -> FileRead:
    if not records:
        raise DatasetError(f"the file is empty: {EXPECTED}", path)
    first = records[0]
    shape = "plain" if field is not None or fmt == "jsonl" else _shape(first.value)
    platform = "jsonl" if shape == "plain" else _platform(shape, first.value)
    if fmt not in ("auto", "jsonl") and platform != fmt:
        raise _error(path, first, f"not a {fmt} export: {_EXPECTED_JSON[fmt]}")
    if shape == "unknown":
        raise _error(path, first, f"a JSON {type(first.value).__name__} where a record was expected: {EXPECTED}")
    read = FileRead(path, platform, [], Counter())
    for record in records:
        for text in _extract(path, record, shape, field):
            if text in _SKIPS:
                read.skipped[text] += 1
            elif text.strip():
                read.questions.append(text.strip())
            else:
                read.skipped[EMPTY] += 1
    return read


_SKIPS = (ASSISTANT, SYSTEM, GREETING, OTHER, UNFINISHED)
_EXPECTED_JSON = {
    "jsonl": "expected JSON lines with a question field",
    "dify": "expected messages with `query`, chat-app logs, the feedback export (`user_query`) or annotation lines "
    "(`messages` with roles)",
    "ragflow": "expected chat sessions with `messages` of {role, content}",
    "chatchat": "expected rows of the message table with `query` and `response`",
}


def _error(path: Path, record: _Record, problem: str) -> DatasetError:
    keys = f" (keys: {', '.join(list(record.value)[:12])})" if isinstance(record.value, dict) else ""
    return DatasetError(problem + keys, path, record.line, record.where)


def _extract(path: Path, record: _Record, shape: str, field: str | None) -> Iterator[str]:
    """A record's question texts, or the skip reasons (`_SKIPS`) of what is not a question."""
    value = record.value
    if shape == "chat":
        yield from _chat_messages(path, record)
        return
    if shape == "chatchat" and isinstance(value, dict) and not (value.get("response") or "").strip():
        yield UNFINISHED
        return
    if shape == "string":
        text = value
    elif not isinstance(value, dict):
        raise _error(path, record, f"expected a record like the first one: {EXPECTED}")
    elif shape == "dify-message":
        text = value.get("query") or (value.get("inputs") or {}).get("query") or ""
    elif shape == "dify-log":
        text = (value.get("message") or {}).get("query") or ""
    elif shape == "dify-feedback":
        text = value.get("user_query") or ""
    elif shape == "chatchat":
        text = value.get("query") or ""
    else:
        text = _field(path, record, field)
    if not isinstance(text, str):
        raise _error(path, record, f"the question must be text, got {type(text).__name__}")
    yield text


def _field(path: Path, record: _Record, field: str | None) -> Any:
    value = record.value
    if field is not None and "." in field and field not in value:
        for part in field.split("."):
            if not isinstance(value, dict) or part not in value:
                raise _error(path, record, f"no field '{field}'")
            value = value[part]
        return value
    return value.get(_named(list(value), field, "field", path, record.line)) or ""


def _chat_messages(path: Path, record: _Record) -> Iterator[str]:
    messages = record.value.get("messages", record.value.get("message"))
    for index, message in enumerate(messages if isinstance(messages, list) else []):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user":
            yield message.get("content") or ""
        elif role == "assistant":
            yield GREETING if index == 0 else ASSISTANT
        elif role == "system":
            yield SYSTEM
        else:
            yield OTHER


# ---------------------------------------------------------------- de-duplication

_TRAILING_PUNCTUATION = "?!.,;:~…。、？！，；：～．"
_CJK_SPACE = re.compile(f"(?<=[{CJK_RANGES}])\\s+|\\s+(?=[{CJK_RANGES}])")


def normalise(text: str) -> str:
    """The key of exact de-duplication: Unicode NFKC (full-width letters, digits and punctuation become
    half-width), case folded, runs of whitespace as one space and none beside a CJK character, trailing
    punctuation of either language dropped."""
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    text = _CJK_SPACE.sub("", text)
    return text.rstrip(_TRAILING_PUNCTUATION + " ")


@dataclass
class ImportedQuestion:
    id: str
    question: str
    weight: int  # how many imported lines it stands for (its own, its exact and its near duplicates)
    first: int  # where it first appeared among the imported lines (ties of weight keep that order)


@dataclass(frozen=True)
class Duplicate:
    """Imported lines dropped as a duplicate of a kept question."""

    text: str
    count: int  # how many imported lines it was
    kept_id: str
    kept: str
    cosine: float | None  # None: the same question after normalising


@dataclass
class QuestionImport:
    files: list[FileRead]
    questions: list[ImportedQuestion]  # most asked first
    exact: list[Duplicate]
    near: list[Duplicate]
    threshold: float | None  # the cosine above which two questions were merged; None: near duplicates not sought
    encoder: str | None

    @property
    def lines(self) -> int:
        return sum(len(read.questions) for read in self.files)

    def as_questions(self) -> list[Question]:
        return [Question(id=q.id, question=q.question, weight=q.weight) for q in self.questions]

    def summary(self) -> list[str]:
        """What was read, dropped and kept, in a few lines (the CLI prints them, the page shows them)."""
        lines = []
        for read in self.files:
            skipped = "; ".join(f"{n} {why}" for why, n in read.skipped.most_common())
            lines.append(
                f"read {_count(len(read.questions), 'question')} from {read.path.name} ({read.format})"
                + (f", skipped {skipped}" if skipped else "")
            )
        near = (
            f"{sum(d.count for d in self.near)} lines as near duplicates (cosine >= {self.threshold:g}, {self.encoder})"
            if self.threshold is not None
            else "no near duplicates sought"
        )
        lines.append(
            f"dropped {sum(d.count for d in self.exact)} lines as exact duplicates (after normalising), {near}"
        )
        lines.append(f"kept {len(self.questions)} questions standing for {self.lines} lines (weight = lines)")
        return lines


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def deduplicate(
    files: list[FileRead],
    embed: Embed | None = None,
    threshold: float | None = None,
    encoder: str | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> QuestionImport:
    """Merge the questions of `files`: exactly equal after `normalise` first (the most frequent spelling is kept),
    then, with `embed` and `threshold`, any question whose cosine to a more frequent kept one is at least
    `threshold` (each into the kept question it is closest to). Weights add up to the lines read. `progress` is
    told ("embedding", done, total) as the questions are encoded."""
    texts = [text for read in files for text in read.questions]
    groups: dict[str, Counter[str]] = {}
    for text in texts:
        groups.setdefault(normalise(text), Counter())[text] += 1
    kept = [
        ImportedQuestion(_question_id(key), spellings.most_common(1)[0][0], spellings.total(), first)
        for first, (key, spellings) in enumerate(groups.items())
    ]
    exact = [
        Duplicate(spelling, count - (spelling == q.question), q.id, q.question, None)
        for q, spellings in zip(kept, groups.values())
        for spelling, count in spellings.items()
        if count - (spelling == q.question) > 0
    ]
    kept.sort(key=lambda q: (-q.weight, q.first))
    near: list[Duplicate] = []
    if embed is not None and threshold is not None and len(kept) > 1:
        kept, near = _merge_near(kept, _embed_all(embed, [q.question for q in kept], progress), threshold)
    return QuestionImport(files, kept, exact, near, threshold if embed is not None else None, encoder)


def _embed_all(embed: Embed, texts: list[str], progress: Callable[[str, int, int], None] | None) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), EMBED_BATCH):
        parts.append(np.asarray(embed(texts[start : start + EMBED_BATCH]), np.float32))
        if progress:
            progress("embedding", start + len(parts[-1]), len(texts))
    return np.concatenate(parts)


def _question_id(key: str) -> str:
    """An id from the normalised text: importing a longer log later gives a kept question the same id, so labels
    made on the first import still apply."""
    return "q-" + hashlib.sha256(key.encode()).hexdigest()[:12]


def _merge_near(
    questions: list[ImportedQuestion], vectors: np.ndarray, threshold: float
) -> tuple[list[ImportedQuestion], list[Duplicate]]:
    """Greedy, most asked first: a question joins the kept question it is most similar to when that cosine is at
    least `threshold`, else it is kept. Blocks of candidates go through one matrix product each."""
    kept_rows: list[int] = []
    merged: list[Duplicate] = []
    block = 256
    for start in range(0, len(questions), block):
        rows = list(range(start, min(start + block, len(questions))))
        before = vectors[rows] @ vectors[kept_rows].T if kept_rows else np.zeros((len(rows), 0))
        within = vectors[rows] @ vectors[rows].T
        new: list[int] = []
        for i, row in enumerate(rows):
            similarities = np.concatenate([before[i], within[i, [r - start for r in new]]])
            best = int(np.argmax(similarities)) if len(similarities) else -1
            if best >= 0 and similarities[best] >= threshold:
                target = questions[(kept_rows + new)[best]]
                target.weight += questions[row].weight
                merged.append(
                    Duplicate(
                        questions[row].question,
                        questions[row].weight,
                        target.id,
                        target.question,
                        float(similarities[best]),
                    )
                )
            else:
                new.append(row)
        kept_rows += new
    kept = sorted((questions[row] for row in kept_rows), key=lambda q: (-q.weight, q.first))
    return kept, merged


# ---------------------------------------------------------------- writing


def check_new_folder(out: str | Path) -> Path:
    """Where the question set goes, `out/questions.jsonl`; a folder that holds one already is refused (labels
    beside it belong to that set)."""
    target = Path(out) / "questions.jsonl"
    if target.exists():
        raise DatasetError(f"{target} already holds a question set: choose a new folder")
    return target


def write_question_set(result: QuestionImport, out: str | Path) -> Path:
    """Write `out/questions.jsonl` ({id, question, weight}, most asked first) in a new folder (`check_new_folder`)."""
    target = check_new_folder(out)
    lines = (json.dumps(question_record(q), ensure_ascii=False) + "\n" for q in result.as_questions())
    atomic_write_bytes(target, "".join(lines).encode("utf-8"))
    return target
