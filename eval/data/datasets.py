"""Datasets: a corpus of documents and a question set, loaded from the native layout or imported.

Native layout (as in `../shared/datasets/`): `corpus.jsonl` `{id, text, title?, source?, metadata?}` and
`questions.jsonl` `{id, question, answer?, answers?, relevant_ids?, spans?, weight?}`, where `spans` (optional) lists
the gold answer spans `{"doc_id", "start", "end"}` (characters [start, end) of the document's text) and `weight`
(optional, a positive number) is how much the question counts in a weighted mean. Importers:
SQuAD-style JSON (SQuAD, CMRC 2018, DRCD, XQuAD; each answer's `answer_start` becomes a gold span), BEIR
folders, CSV question sets and plain documents (.txt/.md/.pdf). Every problem raises `DatasetError` naming
the file, line and field.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from eval.errors import DatasetError
from eval.io import fingerprint, iter_jsonl, read_text, text_lines
from eval.schema import AnswerSpan, Document, Question

DOC_SUFFIXES = (".txt", ".md", ".pdf")


@dataclass
class Dataset:
    name: str
    corpus: list[Document]
    questions: list[Question] = field(default_factory=list)
    source: str = ""  # the path it was loaded from (absolute), "" when built in memory

    def corpus_fingerprint(self) -> str:
        return fingerprint(asdict(d) for d in self.corpus)

    def questions_fingerprint(self) -> str:
        """Over every field; a question without a weight fingerprints as it did before weights existed."""
        return fingerprint(
            {k: v for k, v in asdict(q).items() if k != "weight" or v is not None} for q in self.questions
        )


# ---------------------------------------------------------------- reading text


# ---------------------------------------------------------------- field checks


def _id(value: Any, file: Path, line: int | None, name: str = "id") -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise DatasetError("missing or not a string" if value is None else "must be a string", file, line, name)
    text = str(value).strip()
    if not text:
        raise DatasetError("empty", file, line, name)
    return text


def _text(value: Any, file: Path, line: int | None, name: str) -> str:
    if value is None:
        raise DatasetError("missing", file, line, name)
    if not isinstance(value, str):
        raise DatasetError(f"must be a string, got {type(value).__name__}", file, line, name)
    if not value.strip():
        raise DatasetError("empty text", file, line, name)
    return value


def _optional_str(value: Any, file: Path, line: int | None, name: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise DatasetError(f"must be a string, got {type(value).__name__}", file, line, name)
    return value


def _str_list(value: Any, file: Path, line: int | None, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, (str, int)) and not isinstance(v, bool) for v in value):
        raise DatasetError("must be a list of strings", file, line, name)
    return tuple(dict.fromkeys(str(v) for v in value if str(v).strip()))


def _spans(value: Any, file: Path, line: int | None) -> tuple[AnswerSpan, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise DatasetError("must be a list of {doc_id, start, end} objects", file, line, "spans")
    spans = []
    for i, item in enumerate(value):
        where = f"spans[{i}]"
        if not isinstance(item, dict):
            raise DatasetError("must be an object {doc_id, start, end}", file, line, where)
        start, end = item.get("start"), item.get("end")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)):
            raise DatasetError("start and end must be integers", file, line, where)
        if not 0 <= start < end:
            raise DatasetError(f"needs 0 <= start < end, got start {start}, end {end}", file, line, where)
        spans.append(AnswerSpan(_id(item.get("doc_id"), file, line, f"{where}.doc_id"), start, end))
    return tuple(dict.fromkeys(spans))


def check_spans(spans: tuple[AnswerSpan, ...], lengths: dict[str, int]) -> str | None:
    """What is wrong with `spans` against the corpus's document lengths (`{doc_id: len(text)}`), or None."""
    for span in spans:
        if span.doc_id not in lengths:
            return f"names a document absent from the corpus: {span.doc_id}"
        if span.end > lengths[span.doc_id]:
            return (
                f"span {span.start}-{span.end} ends past the end of document '{span.doc_id}' "
                f"({lengths[span.doc_id]} characters)"
            )
    return None


def _check_unique(ids: list[tuple[str, int | None]], file: Path) -> None:
    seen: dict[str, int | None] = {}
    for item_id, line in ids:
        if item_id in seen:
            raise DatasetError(f"duplicate id '{item_id}' (first seen on line {seen[item_id]})", file, line, "id")
        seen[item_id] = line


def make_document(record: dict[str, Any], file: Path, line: int | None) -> Document:
    metadata = record.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise DatasetError("must be an object", file, line, "metadata")
    extra = {k: v for k, v in record.items() if k not in {"id", "text", "title", "source", "metadata"}}
    return Document(
        id=_id(record.get("id"), file, line),
        text=_text(record.get("text"), file, line, "text"),
        title=_optional_str(record.get("title"), file, line, "title"),
        source=_optional_str(record.get("source"), file, line, "source"),
        metadata={**extra, **metadata},
    )


def _weight(value: Any, file: Path, line: int | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise DatasetError(f"must be a positive number, got {value!r}", file, line, "weight")
    return value


def make_question(record: dict[str, Any], file: Path, line: int | None) -> Question:
    answer = _optional_str(record.get("answer"), file, line, "answer")
    answers = _str_list(record.get("answers"), file, line, "answers")
    return Question(
        id=_id(record.get("id"), file, line),
        question=_text(record.get("question"), file, line, "question"),
        answers=tuple(dict.fromkeys(([answer] if answer and answer.strip() else []) + list(answers))),
        relevant_ids=_str_list(record.get("relevant_ids"), file, line, "relevant_ids"),
        spans=_spans(record.get("spans"), file, line),
        weight=_weight(record.get("weight"), file, line),
    )


def question_record(question: Question) -> dict[str, Any]:
    """A question as one line of `questions.jsonl` (what `make_question` reads back); empty fields left out."""
    record: dict[str, Any] = {
        "id": question.id,
        "question": question.question,
        "answers": list(question.answers),
        "relevant_ids": list(question.relevant_ids),
        "spans": [{"doc_id": s.doc_id, "start": s.start, "end": s.end} for s in question.spans],
        "weight": question.weight,
    }
    return {key: value for key, value in record.items() if value not in ([], None)}


# ---------------------------------------------------------------- native layout


def load_corpus(path: str | Path) -> list[Document]:
    path = Path(path)
    rows = [(make_document(record, path, line), line) for line, record in iter_jsonl(path)]
    if not rows:
        raise DatasetError("the corpus is empty", path)
    _check_unique([(doc.id, line) for doc, line in rows], path)
    return [doc for doc, _ in rows]


def load_questions(path: str | Path, corpus: list[Document] | None = None) -> list[Question]:
    """Load a question set (JSONL or CSV); with a corpus, every `relevant_ids` entry must exist in it and
    every span must lie inside its document."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        rows = list(_csv_questions(path))
    else:
        rows = [(make_question(record, path, line), line) for line, record in iter_jsonl(path)]
    if not rows:
        raise DatasetError("the question set is empty", path)
    _check_unique([(q.id, line) for q, line in rows], path)
    if corpus is not None:
        lengths = {doc.id: len(doc.text) for doc in corpus}
        for question, line in rows:
            missing = [rid for rid in question.relevant_ids if rid not in lengths]
            if missing:
                raise DatasetError(
                    f"names documents absent from the corpus: {', '.join(missing[:5])}", path, line, "relevant_ids"
                )
            problem = check_spans(question.spans, lengths)
            if problem:
                raise DatasetError(problem, path, line, "spans")
    return [q for q, _ in rows]


def _csv_questions(path: Path) -> Iterator[tuple[Question, int]]:
    """CSV with a header: id, question, answer?, answers?, relevant_ids? (lists separated by `|`), weight?."""
    reader = csv.DictReader(io.StringIO(read_text(path)))
    if not reader.fieldnames or "question" not in reader.fieldnames:
        raise DatasetError("the header must name a 'question' column", path, 1)
    for number, row in enumerate(reader, start=2):
        record: dict[str, Any] = {
            "id": row.get("id") or f"q{number - 1}",
            "question": row.get("question"),
            "answer": row.get("answer") or None,
            "answers": _split_cell(row.get("answers")),
            "relevant_ids": _split_cell(row.get("relevant_ids")),
            "weight": _number_cell(row.get("weight"), path, number, "weight"),
        }
        yield make_question(record, path, number), number


def _split_cell(cell: str | None) -> list[str]:
    return [part.strip() for part in (cell or "").split("|") if part.strip()]


def _number_cell(cell: str | None, file: Path, line: int, name: str) -> float | None:
    if not (cell or "").strip():
        return None
    try:
        return float(cell)
    except ValueError:
        raise DatasetError(f"'{cell}' is not a number", file, line, name) from None


def find_file(folder: Path, stem: str, language: str | None = None) -> Path:
    names = [f"{stem}_{language}.jsonl"] if language else []
    names += [f"{stem}.jsonl", f"{stem}.csv"]
    for name in names:
        if (folder / name).is_file():
            return folder / name
    matches = sorted(folder.glob(f"{stem}_*.jsonl"))
    if len(matches) == 1:
        return matches[0]
    hint = f" (several found: {', '.join(m.name for m in matches)}; pick a language)" if matches else ""
    raise DatasetError(f"no {stem}.jsonl in this folder{hint}", folder)


# ---------------------------------------------------------------- importers


def load_squad(path: str | Path) -> Dataset:
    """SQuAD-style JSON (SQuAD 1.1, CMRC 2018, DRCD, XQuAD): each paragraph becomes one document, and each
    answer found in it a gold span of its question (`Question.spans`; identical spans once)."""
    path = Path(path)
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as error:
        raise DatasetError(f"invalid JSON ({error.msg})", path, error.lineno) from None
    articles = data.get("data") if isinstance(data, dict) else None
    if not isinstance(articles, list):
        raise DatasetError("not SQuAD format: expected an object with a 'data' list", path, None, "data")
    corpus, questions = [], []
    for a_index, article in enumerate(articles):
        title = str(article.get("title") or f"article{a_index}")
        title_slug = re.sub(r"\s+", "_", title)
        for p_index, paragraph in enumerate(article.get("paragraphs") or []):
            where = f"data[{a_index}].paragraphs[{p_index}]"
            doc_id = str(paragraph.get("id") or f"{title_slug}__p{p_index:03d}")
            context = paragraph.get("context")
            if not isinstance(context, str) or not context.strip():
                raise DatasetError("missing or empty", path, None, f"{where}.context")
            corpus.append(Document(id=doc_id, text=context, title=title, source=path.name))
            for q_index, qa in enumerate(paragraph.get("qas") or []):
                answers = [a for a in qa.get("answers") or [] if isinstance(a, dict)]
                spans = [
                    _answer_span(context, a, path, f"{where}.qas[{q_index}].answers[{i}]")
                    for i, a in enumerate(answers)
                ]
                record = {
                    "id": qa.get("id") or f"{doc_id}_q{q_index}",
                    "question": qa.get("question"),
                    "answers": [a.get("text", "") for a in answers],
                    "relevant_ids": [doc_id],
                    "spans": [{"doc_id": doc_id, "start": s, "end": e} for s, e in spans if e],
                }
                try:
                    questions.append(make_question(record, path, None))
                except DatasetError as error:
                    raise DatasetError(error.problem, path, None, f"{where}.qas[{q_index}].{error.field}") from None
    if not corpus:
        raise DatasetError("no paragraphs found", path)
    _check_unique([(d.id, None) for d in corpus], path)
    _check_unique([(q.id, None) for q in questions], path)
    return Dataset(name=path.stem, corpus=corpus, questions=questions)


def _answer_span(context: str, answer: dict[str, Any], file: Path, where: str) -> tuple[int, int]:
    """The gold span of a SQuAD-style answer: its text at `answer_start`, else the occurrence of its text
    nearest to `answer_start` (CMRC 2018 dev has 7 of 9,657 answers 1-2 characters off); (0, 0) when the text is
    not in the context at all (193 CMRC answers, most with `answer_start` -1): such an answer has no span."""
    text, start = answer.get("text"), answer.get("answer_start", 0)
    if isinstance(start, bool) or not isinstance(start, int):
        raise DatasetError("must be an integer", file, None, f"{where}.answer_start")
    if not isinstance(text, str) or not text.strip():
        return 0, 0
    if context.startswith(text, start):
        return start, start + len(text)
    found = [m.start() for m in re.finditer(re.escape(text), context)]
    if not found:
        return 0, 0
    nearest = min(found, key=lambda offset: abs(offset - start))
    return nearest, nearest + len(text)


def load_beir(folder: str | Path, split: str = "test") -> Dataset:
    """A BEIR folder: corpus.jsonl (`_id`, `title`, `text`), queries.jsonl (`_id`, `text`), qrels/SPLIT.tsv."""
    folder = Path(folder)
    corpus_path, queries_path = folder / "corpus.jsonl", folder / "queries.jsonl"
    corpus = [
        make_document({**r, "id": r.get("_id", r.get("id"))}, corpus_path, line) for line, r in iter_jsonl(corpus_path)
    ]
    _check_unique([(d.id, None) for d in corpus], corpus_path)
    qrels_path = folder / "qrels" / f"{split}.tsv"
    relevant: dict[str, list[str]] = {}
    for number, line in enumerate(text_lines(read_text(qrels_path)), start=1):
        cells = line.split("\t")
        if number == 1 and cells[0] in {"query-id", "query_id", "qid"}:
            continue
        if len(cells) < 3:
            raise DatasetError("expected query-id, corpus-id, score separated by tabs", qrels_path, number)
        try:
            score = float(cells[2])
        except ValueError:
            raise DatasetError(f"score '{cells[2]}' is not a number", qrels_path, number, "score") from None
        if score > 0:
            relevant.setdefault(cells[0], []).append(cells[1])
    questions = []
    for line, record in iter_jsonl(queries_path):
        qid = _id(record.get("_id", record.get("id")), queries_path, line)
        if qid in relevant:
            questions.append(
                make_question(
                    {"id": qid, "question": record.get("text"), "relevant_ids": relevant[qid]}, queries_path, line
                )
            )
    dataset = Dataset(name=folder.name, corpus=corpus, questions=questions)
    validate_relevant_ids(dataset, qrels_path)
    return dataset


def load_documents(paths: list[Path] | Path) -> Dataset:
    """Plain documents (.txt, .md, .pdf, or a folder of them) as a corpus; ids are relative file names."""
    if isinstance(paths, Path):
        root = paths
        paths = sorted(p for p in paths.rglob("*") if p.suffix.lower() in DOC_SUFFIXES) if paths.is_dir() else [paths]
        base = root if root.is_dir() else root.parent
    else:
        base = None
    if not paths:
        raise DatasetError("no .txt, .md or .pdf files found", str(paths))
    corpus = []
    for path in paths:
        doc_id = str(path.relative_to(base)) if base else path.name
        text = _pdf_text(path) if path.suffix.lower() == ".pdf" else read_text(path)
        if not text.strip():
            raise DatasetError("the document has no text", path)
        corpus.append(Document(id=doc_id, text=text, title=path.stem, source=path.name))
    _check_unique([(d.id, None) for d in corpus], paths[0])
    return Dataset(name=(base or paths[0]).stem if base else paths[0].stem, corpus=corpus)


def _pdf_text(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        return "\n\n".join(page.extract_text() or "" for page in PdfReader(path).pages)
    except (PdfReadError, ValueError, OSError) as error:
        raise DatasetError(f"cannot read this PDF ({error})", path) from None


def validate_relevant_ids(dataset: Dataset, file: str | Path | None = None) -> None:
    known = {doc.id for doc in dataset.corpus}
    for question in dataset.questions:
        missing = [rid for rid in question.relevant_ids if rid not in known]
        if missing:
            raise DatasetError(
                f"question '{question.id}' names documents absent from the corpus: {', '.join(missing[:5])}",
                file,
                None,
                "relevant_ids",
            )


def detect_format(path: Path) -> str:
    if path.is_dir():
        if (path / "queries.jsonl").is_file() and (path / "qrels").is_dir():
            return "beir"
        if list(path.glob("corpus*.jsonl")):
            return "native"
        return "docs"
    suffix = path.suffix.lower()
    if suffix == ".json":
        return "squad"
    if suffix == ".jsonl":
        return "native"
    if suffix in DOC_SUFFIXES:
        return "docs"
    raise DatasetError(
        f"unknown dataset format for '{path.name}' (expected a folder, .jsonl, .json, .txt, .md or .pdf)", path
    )


def load_dataset(path: str | Path, fmt: str = "auto", language: str | None = None) -> Dataset:
    """Load a dataset in any supported format; `fmt` is auto, native, squad, beir or docs."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"no such file or folder: {path.absolute()}", path)
    return replace(
        _read_dataset(path, detect_format(path) if fmt == "auto" else fmt, language), source=str(path.absolute())
    )


def _read_dataset(path: Path, fmt: str, language: str | None) -> Dataset:
    if fmt == "squad":
        return load_squad(path)
    if fmt == "beir":
        return load_beir(path)
    if fmt == "docs":
        return load_documents(path)
    if fmt != "native":
        raise DatasetError(f"unknown format '{fmt}' (use auto, native, squad, beir or docs)", path)
    if path.is_file():
        return Dataset(name=path.stem, corpus=load_corpus(path))
    corpus = load_corpus(find_file(path, "corpus", language))
    try:
        questions_path = find_file(path, "questions", language)
    except DatasetError:
        return Dataset(name=path.name, corpus=corpus)
    return Dataset(name=path.name, corpus=corpus, questions=load_questions(questions_path, corpus))


def load_question_set(path: str | Path) -> list[Question]:
    """Questions from a questions file (JSONL/CSV), a SQuAD file, or any dataset folder (a folder holding only
    a questions file, as `questions import` writes, too)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError(f"no such file or folder: {path.absolute()}", path)
    if path.is_dir() and (
        detect_format(path) == "native" or any((path / name).is_file() for name in ("questions.jsonl", "questions.csv"))
    ):
        questions = load_questions(find_file(path, "questions"))
    elif path.is_dir() or path.suffix.lower() == ".json":
        questions = load_dataset(path).questions
    else:
        questions = load_questions(path)
    if not questions:
        raise DatasetError("no questions found", path)
    return questions
