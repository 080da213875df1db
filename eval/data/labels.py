"""The label store: graded relevance judgements on document spans, from several sources, in one JSONL file.

A judgement says how relevant characters [start, end) of a document are to a question: grade 0 (not
relevant), 1 (relevant) or 2 (answers it). A whole-document judgement spans the whole text. Its source is
`gold` (from the question set), `generated` (a question generated from a chunk), `llm:<model>@<prompt
version>` (an LLM judge) or `human:<name>`; `time` is when it was made (ISO 8601, UTC).

Gold (`labels_from_questions`): every `relevant_ids` document of a question without an answer span in that
document is a whole-document judgement of grade 1, and every answer span (`Question.spans`, from
`answer_start` in SQuAD-style imports) a span of grade 1. Grade 1, not 2: these sets only say where an
answer is, not how well a passage answers, and grade 1 keeps every document-level number (graded nDCG too)
what `relevant_ids` gave.

The file: `<question file stem>.labels.jsonl` beside the question file (`label_path`), one judgement a line:
`{"question_id", "doc_id", "start", "end", "grade", "source", "time"}`, for every source but `gold`, whose one
home is the question set (`load_labels` joins both). `save_labels` merges by source: new
judgements replace nothing of another source; the same (question, document, span, source) with another grade
is an error unless `replace=True` (a human correcting a label); overlapping spans with different grades from
one source, for one question, are an error. The file is rewritten atomically, so a failed write loses
nothing. Reading checks every line against the question set and the corpus and names file, line and field.

Overlap rule and metrics: see `eval.metrics.passage` (a chunk takes the best grade of the judged spans of its
document it shares at least one character with; no overlap means unjudged, counted as not relevant).
Sources are not mixed: metrics are computed under one source at a time (`rescore(..., source=...)`), so
`judged@k` says how much of the top k that source has judged; `gold` and `generated` are complete
(`COMPLETE_SOURCES`: a chunk of a question they label that overlaps none of their spans is judged not
relevant). At document level a document's grade is the best grade that source gave any span of it.
"""

from __future__ import annotations

import fcntl
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from dataclasses import replace as with_fields
from datetime import UTC, datetime
from pathlib import Path

from eval.data.datasets import find_file, load_corpus, load_questions, load_squad
from eval.errors import DatasetError, LabError
from eval.io import atomic_write_bytes, iter_jsonl
from eval.schema import Document, Question, Span

GRADES = (0, 1, 2)
# Sources that mark every relevant passage of the questions they label: their unmarked text is not relevant.
COMPLETE_SOURCES = ("gold", "generated")
SOURCE_PATTERN = re.compile(r"^(gold|generated|llm:[^@\s]+@[^@\s]+|human:\S.*)$")
LABEL_SUFFIX = ".labels.jsonl"
FIELDS = ("question_id", "doc_id", "start", "end", "grade", "source", "time")


@dataclass(frozen=True)
class Judgement:
    question_id: str
    doc_id: str
    start: int
    end: int
    grade: int
    source: str
    time: str | None = None  # None until saved: `save_labels` stamps the time of saving

    @property
    def key(self) -> tuple[str, str, int, int, str]:
        """What identifies a judgement in the store: one grade per (question, document, span, source)."""
        return self.question_id, self.doc_id, self.start, self.end, self.source

    @property
    def span(self) -> Span:
        return Span(self.doc_id, self.start, self.end, self.grade)


@dataclass(frozen=True)
class Labels:
    """Judgements in file order."""

    judgements: tuple[Judgement, ...] = ()

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(j.source for j in self.judgements))

    def spans(self, source: str) -> dict[str, list[Span]]:
        """The judged spans of one source by question id; a source with no judgement is an error."""
        if source not in self.sources:
            raise LabError(f"no judgements from source '{source}' (sources here: {', '.join(self.sources) or 'none'})")
        by_question: dict[str, list[Span]] = {}
        for j in self.judgements:
            if j.source == source:
                by_question.setdefault(j.question_id, []).append(j.span)
        return by_question


def label_path(questions_file: str | Path) -> Path:
    """Where a question set's labels live: `questions.jsonl` -> `questions.labels.jsonl` in the same folder
    (`questions_zh.jsonl` -> `questions_zh.labels.jsonl`, a SQuAD `dev.json` -> `dev.labels.jsonl`)."""
    path = Path(questions_file)
    return path.with_name(path.stem + LABEL_SUFFIX)


def labels_from_questions(questions: Iterable[Question], corpus: Iterable[Document]) -> Labels:
    """The question set's own labels as `gold` judgements (see the module docstring)."""
    questions = list(questions)
    lengths = {d.id: len(d.text) for d in corpus}
    judgements = []
    for q in questions:
        missing = [doc_id for doc_id in q.relevant_ids if doc_id not in lengths]
        if missing:
            raise LabError(f"question '{q.id}' names documents absent from the corpus: {', '.join(missing[:5])}")
        spanned = {s.doc_id for s in q.spans}
        judgements += [
            Judgement(q.id, doc_id, 0, lengths[doc_id], 1, "gold") for doc_id in q.relevant_ids if doc_id not in spanned
        ]
        judgements += [Judgement(q.id, s.doc_id, s.start, s.end, 1, "gold") for s in q.spans]
    _check(judgements, [None] * len(judgements), {q.id for q in questions}, lengths, None)
    return Labels(tuple(judgements))


def load_labels(path: str | Path) -> Labels:
    """Every label of a question set: `gold` from the question set itself, the other sources from its label
    file (when there is one). `path` is the label file, a question file (JSONL, CSV or SQuAD-style JSON) or a
    native dataset folder (see `open_question_set`)."""
    questions_file, questions, corpus = open_question_set(path)
    gold = labels_from_questions(questions, corpus)
    labels_file = label_path(questions_file)
    others = read_labels(labels_file, questions, corpus) if labels_file.is_file() else Labels()
    return Labels(gold.judgements + others.judgements)


def with_labelled_documents(questions: Sequence[Question], path: str | Path) -> tuple[list[Question], str | None]:
    """Questions that name no relevant document (a generated or imported set) with the documents the first
    label source of their label file graded relevant (grade 1 or more), and that source; unchanged (and None)
    when some question names relevant documents already, or when there is no such label file or source."""
    if any(q.relevant_ids for q in questions):
        return list(questions), None
    try:
        labels = load_labels(path)
    except LabError:
        return list(questions), None
    for source in (s for s in labels.sources if s != "gold"):
        relevant: dict[str, list[str]] = {}
        for question_id, spans in labels.spans(source).items():
            relevant[question_id] = list(dict.fromkeys(span.doc_id for span in spans if span.grade >= 1))
        if any(relevant.values()):
            return [with_fields(q, relevant_ids=tuple(relevant.get(q.id, ()))) for q in questions], source
    return list(questions), None


def check_beside_corpus(path: str | Path) -> None:
    """Refuse a question set whose spans or relevant ids its corpus (the one beside it, see `open_question_set`)
    contradicts, with the line `rescore` would later refuse it with. A question set with no corpus beside it is
    not checked here (`run` checks its ids against the index)."""
    try:
        corpus_beside(Path(path))
    except DatasetError:
        return
    open_question_set(path)


def corpus_beside(path: Path) -> Path:
    """The corpus file beside the question set at `path` (a file or a dataset folder)."""
    questions_file = find_file(path, "questions") if path.is_dir() else path
    language = questions_file.stem.removeprefix("questions").removeprefix("_") or None
    return find_file(questions_file.parent, "corpus", language)


def open_question_set(path: str | Path) -> tuple[Path, list[Question], list[Document]]:
    """The question file, questions and corpus that a label file, question file or dataset folder names: the
    corpus is the one beside the question set (`corpus.jsonl`, or `corpus_zh.jsonl` for `questions_zh.jsonl`;
    a SQuAD-style file holds its own)."""
    path = Path(path)
    if path.name.endswith(LABEL_SUFFIX):
        stem = path.name[: -len(LABEL_SUFFIX)]
        found = [path.with_name(stem + suffix) for suffix in (".jsonl", ".csv", ".json")]
        found = [f for f in found if f.is_file()]
        if not found:
            raise DatasetError(f"no question set {stem}.jsonl, {stem}.csv or {stem}.json beside this label file", path)
        questions_file = found[0]
    elif path.is_dir():
        questions_file = find_file(path, "questions")
    else:
        questions_file = path
    if questions_file.suffix.lower() == ".json":
        dataset = load_squad(questions_file)
        return questions_file, dataset.questions, dataset.corpus
    corpus = load_corpus(corpus_beside(questions_file))
    return questions_file, load_questions(questions_file, corpus), corpus


def read_labels(path: str | Path, questions: Iterable[Question], corpus: Iterable[Document]) -> Labels:
    """A label file, checked line by line against the question set and the corpus."""
    _, judgements = _read(Path(path), questions, corpus)
    return Labels(tuple(judgements))


def _read(path: Path, questions: Iterable[Question], corpus: Iterable[Document]) -> tuple[list[int], list[Judgement]]:
    lines, judgements = [], []
    for line, record in iter_jsonl(path):
        judgements.append(_judgement(record, path, line))
        lines.append(line)
    _check(judgements, lines, {q.id for q in questions}, {d.id: len(d.text) for d in corpus}, path)
    return lines, judgements


@contextmanager
def label_lock(path: str | Path) -> Iterator[None]:
    """Hold the label file's lock (`<file>.lock`, an advisory `flock`): writers in other processes and
    threads (two browser tabs, the CLI) wait, so none of them saves over another's judgements."""
    lock_file = Path(path).with_name(Path(path).name + ".lock")
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def save_labels(
    path: str | Path,
    new: Iterable[Judgement],
    questions: Iterable[Question],
    corpus: Iterable[Document],
    *,
    replace: bool = False,
    remove: Iterable[tuple[str, str, int, int, str]] = (),
) -> Labels:
    """Merge `new` judgements into the label file at `path` (created if absent) and write it atomically,
    under its lock.

    Judgements of other sources are kept as they are; an identical judgement is kept with its first time;
    the same (question, document, span, source) with another grade raises `LabError` unless `replace`.
    `remove` lists keys (`Judgement.key`) to delete first. Nothing is written when anything is wrong. Returns
    the labels as saved."""
    with label_lock(path):
        return save_labels_locked(path, new, questions, corpus, replace=replace, remove=remove)


def save_labels_locked(
    path: str | Path,
    new: Iterable[Judgement],
    questions: Iterable[Question],
    corpus: Iterable[Document],
    *,
    replace: bool = False,
    remove: Iterable[tuple[str, str, int, int, str]] = (),
) -> Labels:
    """`save_labels` for a caller that holds `label_lock(path)`."""
    path = Path(path)
    questions, corpus = list(questions), list(corpus)
    lines, existing = _read(path, questions, corpus) if path.is_file() else ([], [])
    removed = set(remove)
    merged = {j.key: j for j in existing if j.key not in removed}
    now = datetime.now(UTC).isoformat(timespec="seconds")
    for number, judgement in enumerate(new, start=1):
        judgement = _judgement(
            asdict(with_fields(judgement, time=judgement.time or now)), path, None, f"new judgement {number}: "
        )
        old = merged.get(judgement.key)
        if old is not None and old.grade != judgement.grade and not replace:
            raise LabError(
                f"{path.name}: {_describe(judgement)} already has grade {old.grade}, not "
                f"{judgement.grade}; pass replace=True to correct it"
            )
        if old is None or old.grade != judgement.grade:
            merged[judgement.key] = judgement
    judgements = list(merged.values())
    line_of = {id(j): line for j, line in zip(existing, lines)}
    _check(
        judgements,
        [line_of.get(id(j)) for j in judgements],
        {q.id for q in questions},
        {d.id: len(d.text) for d in corpus},
        path,
    )
    atomic_write_bytes(path, "".join(json.dumps(asdict(j), ensure_ascii=False) + "\n" for j in judgements).encode())
    return Labels(tuple(judgements))


def _describe(j: Judgement) -> str:
    return f"the judgement of question '{j.question_id}', document '{j.doc_id}' {j.start}-{j.end} by {j.source}"


def _judgement(record: Mapping, file: Path, line: int | None, prefix: str = "") -> Judgement:
    """One record's fields, type-checked (ids and spans are checked against the data in `_check`)."""

    def fail(problem: str, field: str) -> DatasetError:
        return DatasetError(prefix + problem, file, line, field)

    for name in ("question_id", "doc_id", "source", "time"):
        if not isinstance(record.get(name), str) or not record[name].strip():
            raise fail("missing or not a non-empty string", name)
    for name in ("start", "end", "grade"):
        if isinstance(record.get(name), bool) or not isinstance(record.get(name), int):
            raise fail("missing or not an integer", name)
    if record["grade"] not in GRADES:
        raise fail(f"grade {record['grade']} is not 0, 1 or 2", "grade")
    if record["source"] == "gold":
        raise fail("gold labels come from the question set (relevant_ids and spans), not from a label file", "source")
    if not SOURCE_PATTERN.match(record["source"]):
        raise fail(
            f"'{record['source']}' is not gold, generated, llm:<model>@<prompt version> or human:<name>", "source"
        )
    try:
        datetime.fromisoformat(record["time"])
    except ValueError:
        raise fail(f"'{record['time']}' is not an ISO 8601 time", "time") from None
    extra = sorted(set(record) - set(FIELDS))
    if extra:
        raise fail(f"unknown field(s) {', '.join(extra)}", extra[0])
    return Judgement(**{name: record[name] for name in FIELDS})


def _check(
    judgements: Sequence[Judgement],
    lines: Sequence[int | None],
    question_ids: set[str],
    lengths: Mapping[str, int],
    file: Path | None,
) -> None:
    """Ids known, spans inside their documents, keys unique, and no overlapping spans with different grades
    from one source for one question. `lines[i]` is judgement i's line in `file`, None for a new one (the
    message then describes it)."""

    def fail(i: int, problem: str, field: str | None = None) -> DatasetError:
        where = "" if lines[i] else f"{_describe(judgements[i])}: "
        return DatasetError(where + problem, file, lines[i], field)

    groups: dict[tuple[str, str, str], list[int]] = {}
    first: dict[tuple, int] = {}
    for i, j in enumerate(judgements):
        if j.question_id not in question_ids:
            raise fail(i, f"unknown question id '{j.question_id}'", "question_id")
        if j.doc_id not in lengths:
            raise fail(i, f"unknown document id '{j.doc_id}'", "doc_id")
        if not 0 <= j.start < j.end <= lengths[j.doc_id]:
            raise fail(
                i,
                f"span {j.start}-{j.end} is not inside document '{j.doc_id}' ({lengths[j.doc_id]} "
                "characters; needs 0 <= start < end <= length)",
                "end" if j.end > j.start >= 0 else "start",
            )
        if j.key in first:
            raise fail(i, "duplicate judgement" + (f" (first on line {lines[first[j.key]]})" if lines[i] else ""))
        first[j.key] = i
        groups.setdefault((j.source, j.question_id, j.doc_id), []).append(i)
    for members in groups.values():
        members.sort(key=lambda i: judgements[i].start)
        for n, i in enumerate(members):
            for other in members[n + 1 :]:
                a, b = judgements[i], judgements[other]
                if b.start >= a.end:
                    break
                if a.grade != b.grade:
                    early, late = sorted((i, other), key=lambda m: (lines[m] is None, lines[m] or 0))
                    e = judgements[early]
                    seen = f"line {lines[early]}" if lines[early] else _describe(e)
                    raise fail(
                        late,
                        f"span {judgements[late].start}-{judgements[late].end} with grade "
                        f"{judgements[late].grade} overlaps {seen} (span {e.start}-{e.end}, grade "
                        f"{e.grade}) from the same source {a.source}",
                        "grade",
                    )
