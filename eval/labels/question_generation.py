"""Generate a question set from an index's chunks with an LLM, for corpora that come without questions.

Chunks are sampled spread over documents (documents in a seeded random order, one chunk of each in turn, so
200 questions from 50 documents take 4 chunks of each). For every chunk the model is asked (Chinese or English
template, by `--language` or by the chunk's own language) for one question a user would ask that the chunk
answers, and its short answer copied from the chunk. A reply is kept only if it passes every filter, else it
is counted under the first reason it fails:

- `unparsable`: no question and answer in the reply (a `{"question", "answer"}` JSON object, or the lines
  `Question: ...` / `Answer: ...`, `问题：` / `答案：`);
- `answer_not_in_chunk`: the answer does not occur in the chunk (case and whitespace ignored);
- `copies_chunk`: more than `max_copied` of the question's character n-grams (3 for Chinese, 5 otherwise)
  occur in the chunk: a question that copies its source is too easy for any retriever;
- `near_duplicate`: its embedding (the index's model) has cosine >= `max_cosine` with a kept question's;
- `generation_failed`: the model call failed (the reason is kept in the log).

The output folder is a normal question set in the native layout: `corpus.jsonl` (the index's documents,
rebuilt from its chunks: offsets are exact, whitespace the splitter dropped between chunks becomes spaces),
`questions.jsonl` (no `relevant_ids`: these questions have no gold labels) and `questions.labels.jsonl` with
one `generated` judgement per question, grade 1 on the answer's span inside its source chunk (grade 1 as for
gold answer spans: it says where an answer is). `generation.json` records the model, prompt version, seed and
counts. `attempts.jsonl` logs every attempt as it happens, so an interrupted generation resumes where it
stopped (same index, model, seed and language) and never asks about a chunk twice.
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eval.data.labels import Judgement, label_path, save_labels
from eval.errors import LabError
from eval.generation.generators import GenerationCancelled, GenerationSettings, Generator
from eval.index.store import Index
from eval.io import atomic_write_bytes, iter_jsonl
from eval.labels.failure_streak import DEFAULT_MAX_FAILURES, FailureStreak, LabelJobFailed, nothing_produced, one_line
from eval.schema import Chunk, Document, Question
from eval.settings import short_name
from eval.text import detect_language

PROMPT_VERSION = "qgen-v1"
REJECTION_REASONS = ("unparsable", "answer_not_in_chunk", "copies_chunk", "near_duplicate", "generation_failed")
MIN_CHUNK_CHARS = 80  # shorter chunks (titles, table fragments) rarely answer a question
MAX_ATTEMPTS_PER_QUESTION = 3  # stop after n * 3 chunks even if fewer questions were kept

TEMPLATES = {
    "zh": (
        "请阅读下面的段落，提出一个用户可能会问、并且这段文字能够回答的问题，然后给出简短的答案。"
        "答案必须是从段落中原样摘录的一小段文字。问题不要照抄段落原文。\n"
        "只按下面的格式输出两行：\n问题：……\n答案：……\n\n段落：\n{chunk}"
    ),
    "en": (
        "Read the passage below. Write one question a user might ask that this passage answers, then its "
        "short answer. The answer must be a short phrase copied exactly from the passage. Do not copy the "
        "passage's wording into the question.\nReply with exactly two lines:\nQuestion: ...\nAnswer: ...\n\n"
        "Passage:\n{chunk}"
    ),
}
_LINE = re.compile(r"^\s*(?:\*\*)?(question|answer|问题|答案)(?:\*\*)?\s*[:：]\s*(?:\*\*)?\s*(.+?)\s*$", re.I | re.M)
_JSON_OBJECT = re.compile(r"\{.*?\}", re.S)

ProgressCallback = Callable[..., None]  # (stage, done, total, failed=, last_failure=)


@dataclass(frozen=True)
class GenerationFilters:
    max_copied: float = 0.7
    max_cosine: float = 0.95


@dataclass
class GenerationReport:
    kept: int = 0
    attempts: int = 0
    rejected: Counter = field(default_factory=Counter)
    folder: Path | None = None
    last_failure: str | None = None

    def summary(self) -> str:
        reasons = ", ".join(
            f"{reason} {self.rejected[reason]}" for reason in REJECTION_REASONS if self.rejected[reason]
        )
        return f"{self.kept} questions kept of {self.attempts} chunks tried" + (
            f"; rejected: {reasons}" if reasons else ""
        )


def parse_reply(reply: str) -> tuple[str, str] | None:
    """The (question, answer) in a model reply, or None."""
    for candidate in _JSON_OBJECT.findall(reply):
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict) and str(data.get("question", "")).strip() and str(data.get("answer", "")).strip():
            return str(data["question"]).strip(), str(data["answer"]).strip()
    found: dict[str, str] = {}
    for label, value in _LINE.findall(reply):
        kind = "question" if label.lower() in ("question", "问题") else "answer"
        found.setdefault(kind, value.strip().strip('"“”「」'))
    if found.get("question") and found.get("answer"):
        return found["question"], found["answer"]
    return None


def find_answer(answer: str, text: str) -> tuple[int, int] | None:
    """Where `answer` occurs in `text`, ignoring case and runs of whitespace: (start, end) in `text`, or None."""
    words = answer.strip().strip("。.!！?？").split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(word) for word in words)
    match = re.search(pattern, text, re.I)
    return (match.start(), match.end()) if match else None


def copied_share(question: str, chunk: str) -> float:
    """The share of the question's character n-grams (3 for Chinese, 5 otherwise) that occur in the chunk."""
    n = 3 if detect_language(question) == "zh" else 5
    normal_q, normal_c = " ".join(question.lower().split()), " ".join(chunk.lower().split())
    grams = {normal_q[i : i + n] for i in range(len(normal_q) - n + 1)}
    return sum(gram in normal_c for gram in grams) / len(grams) if grams else 0.0


def write_index_corpus(folder: Path, index: Index) -> list[Document]:
    """The index's documents as `folder/corpus.jsonl`, so that a question set there can be labelled (labels are
    spans of these documents); returns them."""
    corpus = documents_from_index(index)
    lines = (
        json.dumps({k: v for k, v in asdict(d).items() if v not in (None, {})}, ensure_ascii=False) + "\n"
        for d in corpus
    )
    atomic_write_bytes(folder / "corpus.jsonl", "".join(lines).encode())
    return corpus


def documents_from_index(index: Index) -> list[Document]:
    """The index's documents, rebuilt from its chunks (offsets exact; dropped whitespace becomes spaces)."""
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in index.chunks():
        by_doc.setdefault(chunk.doc_id, []).append(chunk)
    documents = []
    for doc_id, chunks in by_doc.items():
        end = max(c.start + len(c.text) for c in chunks)
        text = [" "] * end
        for chunk in chunks:
            text[chunk.start : chunk.start + len(chunk.text)] = chunk.text
        meta = chunks[0].metadata
        documents.append(Document(id=doc_id, text="".join(text), title=meta.get("title"), source=meta.get("source")))
    return sorted(documents, key=lambda d: d.id)


def sample_chunks(chunks: list[Chunk], seed: int) -> Iterator[Chunk]:
    """Chunks spread over documents: documents in a seeded order, one random unused chunk of each in turn."""
    rng = random.Random(seed)
    by_doc: dict[str, list[Chunk]] = {}
    for chunk in sorted(chunks, key=lambda c: c.chunk_id):
        if len(chunk.text.strip()) >= MIN_CHUNK_CHARS:
            by_doc.setdefault(chunk.doc_id, []).append(chunk)
    queues = [rng.sample(group, len(group)) for _, group in sorted(by_doc.items())]
    rng.shuffle(queues)
    while queues:
        for queue in list(queues):
            yield queue.pop()
            if not queue:
                queues.remove(queue)


def generate_questions(
    index: Index,
    generator: Generator,
    n: int,
    out: str | Path,
    *,
    language: str | None = None,
    seed: int = 0,
    filters: GenerationFilters = GenerationFilters(),
    settings: GenerationSettings = GenerationSettings(max_new_tokens=96),
    progress: ProgressCallback | None = None,
    on_text: Callable[[str], None] | None = None,
    max_failures: int = DEFAULT_MAX_FAILURES,
) -> GenerationReport:
    """Generate up to `n` questions from `index` into folder `out` (see the module docstring); resumes an
    interrupted generation into the same folder.

    Progress counts kept questions (with `failed` and the `last_failure` reason); after `max_failures`
    rejections in a row (0: never) it raises `LabelJobFailed`, after writing the questions kept so far. With
    no question kept it writes no question set and raises `LabelJobFailed`."""
    if n < 1:
        raise LabError(f"--n must be at least 1, got {n}")
    if language not in (None, "zh", "en"):
        raise LabError(f"language must be zh or en, got '{language}'")
    out = Path(out)
    identity = {
        "index": index.manifest.name,
        "index_key": index.manifest.input_key,
        "model": generator.name,
        "prompt_version": PROMPT_VERSION,
        "seed": seed,
        "language": language,
    }
    log_path = out / "attempts.jsonl"
    done = _resume(log_path, identity, out)
    report = GenerationReport(folder=out)
    kept: list[dict[str, Any]] = []
    vectors: list[np.ndarray] = []
    for record in done.values():
        _count(report, record, kept, vectors)
    out.mkdir(parents=True, exist_ok=True)
    if not log_path.is_file():
        _append(log_path, {"identity": identity})
    streak = FailureStreak("question generation", short_name(generator.name), max_failures)
    stopped: LabelJobFailed | None = None
    with log_path.open("a", encoding="utf-8") as log:
        try:
            _generate(
                index,
                generator,
                n,
                seed,
                done,
                log,
                report,
                kept,
                vectors,
                streak,
                progress,
                on_text,
                (language, settings, filters),
            )
        except LabelJobFailed as failure:
            stopped = failure
    if report.kept == 0:
        raise stopped or nothing_produced(
            "question generation", short_name(generator.name), report.attempts, report.last_failure
        )
    _write_question_set(out, index, kept, identity, report)
    if stopped:
        raise LabelJobFailed(f"{stopped} ({report.kept} questions kept before it were saved to {out})")
    return report


def _generate(
    index: Index,
    generator: Generator,
    n: int,
    seed: int,
    done: dict[str, dict[str, Any]],
    log: Any,
    report: GenerationReport,
    kept: list[dict[str, Any]],
    vectors: list[np.ndarray],
    streak: FailureStreak,
    progress: ProgressCallback | None,
    on_text: Callable[[str], None] | None,
    options: tuple[str | None, GenerationSettings, GenerationFilters],
) -> None:
    """Attempt chunks until `n` are kept or `n * MAX_ATTEMPTS_PER_QUESTION` were tried, logging each attempt."""
    language, settings, filters = options
    max_attempts = n * MAX_ATTEMPTS_PER_QUESTION
    for chunk in sample_chunks(index.chunks(), seed):
        if report.kept >= n or report.attempts >= max_attempts:
            break
        if chunk.chunk_id in done:
            continue
        record = _attempt(chunk, generator, language, settings, filters, vectors, index, on_text)
        log.write(json.dumps(record, ensure_ascii=False) + "\n")
        log.flush()
        _count(report, record, kept, vectors)
        if progress:
            progress(
                "generate questions",
                min(report.kept, n),
                n,
                failed=sum(report.rejected.values()),
                last_failure=report.last_failure,
            )
        streak.record(_failure(record))


def _failure(record: dict[str, Any]) -> str | None:
    """Why an attempt was rejected, in one line with what the model said, or None when it was kept."""
    if "rejected" not in record:
        return None
    said = record.get("detail") or record.get("reply")
    return record["rejected"] + (f": {one_line(said, 80)!r}" if said else "")


def _attempt(
    chunk: Chunk,
    generator: Generator,
    language: str | None,
    settings: GenerationSettings,
    filters: GenerationFilters,
    vectors: list[np.ndarray],
    index: Index,
    on_text: Callable[[str], None] | None,
) -> dict[str, Any]:
    lang = language or detect_language(chunk.text)
    record: dict[str, Any] = {"chunk_id": chunk.chunk_id, "doc_id": chunk.doc_id, "language": lang}
    try:
        reply = ""
        for reply in generator.stream(TEMPLATES[lang].format(chunk=chunk.text), settings):
            if on_text:
                on_text(reply)
    except GenerationCancelled:
        raise
    except Exception as error:  # a failed call is a recorded rejection, never a crashed generation
        return {**record, "rejected": "generation_failed", "detail": f"{type(error).__name__}: {error}"[:200]}
    record["reply"] = reply
    parsed = parse_reply(reply)
    if parsed is None:
        return {**record, "rejected": "unparsable"}
    question, answer = parsed
    record.update(question=question, answer=answer)
    where = find_answer(answer, chunk.text)
    if where is None:
        return {**record, "rejected": "answer_not_in_chunk"}
    if copied_share(question, chunk.text) > filters.max_copied:
        return {**record, "rejected": "copies_chunk"}
    vector = np.asarray(index.embeddings.embed_query(question), np.float32)
    vector /= np.linalg.norm(vector) or 1.0
    if vectors and float(np.max(np.stack(vectors) @ vector)) >= filters.max_cosine:
        return {**record, "rejected": "near_duplicate"}
    return {
        **record,
        "start": chunk.start + where[0],
        "end": chunk.start + where[1],
        "answer": chunk.text[where[0] : where[1]],
        "vector": vector.round(6).tolist(),
    }


def _count(report: GenerationReport, record: dict[str, Any], kept: list, vectors: list) -> None:
    report.attempts += 1
    if "rejected" in record:
        report.rejected[record["rejected"]] += 1
        report.last_failure = _failure(record)
        return
    report.kept += 1
    kept.append(record)
    vectors.append(np.asarray(record["vector"], np.float32))


def _resume(log_path: Path, identity: dict[str, Any], out: Path) -> dict[str, dict[str, Any]]:
    """The attempts already logged in `out` by a generation with the same identity."""
    if not log_path.is_file():
        if out.is_dir() and any(out.iterdir()):
            raise LabError(f"{out} is not empty and holds no generation to resume: choose a new folder")
        return {}
    records = [record for _, record in iter_jsonl(log_path)]
    if not records or records[0].get("identity") != identity:
        raise LabError(
            f"{out} holds a generation with other settings ({records[0].get('identity') if records else 'none'})"
            ": choose a new folder, or the same index, model, seed and language to resume it"
        )
    return {r["chunk_id"]: r for r in records[1:]}


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(json.dumps(record, ensure_ascii=False) + "\n")


def _write_question_set(
    out: Path, index: Index, kept: list[dict[str, Any]], identity: dict[str, Any], report: GenerationReport
) -> None:
    corpus = write_index_corpus(out, index)
    questions = [
        Question(id=f"gen-{number:04d}", question=r["question"], answers=(r["answer"],))
        for number, r in enumerate(kept, start=1)
    ]
    atomic_write_bytes(
        out / "questions.jsonl",
        "".join(
            json.dumps(
                {"id": q.id, "question": q.question, "answer": q.answer, "source_chunk": r["chunk_id"]},
                ensure_ascii=False,
            )
            + "\n"
            for q, r in zip(questions, kept)
        ).encode(),
    )
    save_labels(
        label_path(out / "questions.jsonl"),
        [Judgement(q.id, r["doc_id"], r["start"], r["end"], 1, "generated") for q, r in zip(questions, kept)],
        questions,
        corpus,
    )
    atomic_write_bytes(
        out / "generation.json",
        json.dumps(
            {
                **identity,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "kept": report.kept,
                "attempts": report.attempts,
                "rejected": dict(report.rejected),
            },
            ensure_ascii=False,
            indent=2,
        ).encode(),
    )
