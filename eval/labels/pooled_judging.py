"""Pooled LLM relevance judgements of a run's retrieved chunks (TREC pooling).

The pool of a question is the union of every config's top-`depth` chunks for it, so a (question, chunk) pair
is judged once however many configs retrieved it. The model grades each pair with a short prompt (Chinese or
English, by the question's language): 0 irrelevant, 1 partly relevant, 2 answers the question.

Where the backend gives token probabilities (a local transformers model: its next-token logits; an
OpenAI-compatible endpoint that returns `top_logprobs`), the grade is read from them, not from free text:
each grade's probability is the summed probability of the next tokens that read "0", "1" or "2" (over the
whole vocabulary locally, over the top 20 from an endpoint), the grade is the most probable one and its
confidence its share of the three. So every pair gets a grade with a confidence; a pair whose confidence is
below `abstain_below` is left ungraded (a recorded abstention), as is one with no grade token among an
endpoint's top 20. An endpoint that returns no logprobs is judged by its text instead. Otherwise the reply's
grade is its first character among 0, 1, 2 once the reply is stripped, unless the digit starts a rubric line
("1 = not relevant" echoes the prompt: not a grade); any other reply is a recorded failure ("the reply is not
a grade"), as is a failed call, and never stops the judging.

Judgements are cached in `<home>/cache/judgements.jsonl` by (model, prompt version, question text, chunk text
hash): a rerun, another run over the same chunks, or a deeper pool judges nothing twice.

Saving (`save_judgements`, also used by the labelling page for `human:<name>`): a judgement is of a whole
chunk, kept in `<stem>.chunk-labels.jsonl` beside the label file; the label file gets the source's spans
derived from them: each judged chunk's range minus the ranges of the source's chunks of a lower grade in the
same document (neighbouring chunks share their overlap). So one source's spans never overlap with different
grades, and every judged chunk of the index still takes exactly its own grade under the overlap rule (its
shared characters carry the lower of the two grades, and a chunk takes the best grade it overlaps). The
source is `llm:<model>@<prompt version>`.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd

from eval.data.datasets import find_file
from eval.data.labels import (
    LABEL_SUFFIX,
    Judgement,
    Labels,
    label_lock,
    label_path,
    open_question_set,
    read_labels,
    save_labels_locked,
)
from eval.errors import LabError
from eval.generation.generators import (
    GenerationCancelled,
    GenerationSettings,
    Generator,
    OpenAIGenerator,
    TransformersGenerator,
)
from eval.io import atomic_write_bytes, iter_jsonl, text_lines
from eval.labels.failure_streak import (
    DEFAULT_MAX_FAILURES,
    FailureStreak,
    LabelJobFailed,
    nothing_produced,
    refuse_chinese_on_smoke_test,
)
from eval.runs.store import Run
from eval.settings import short_name
from eval.text import detect_language

PROMPT_VERSION = "judge-v1"
CHUNK_LABEL_SUFFIX = ".chunk-labels.jsonl"
_CHUNK_FIELDS = ("question_id", "doc_id", "start", "end", "grade", "source")
TEMPLATES = {
    "zh": (
        "判断下面的段落与问题的相关程度，只输出一个数字：\n0 = 不相关；1 = 部分相关，但不能回答问题；"
        "2 = 能够回答问题。\n\n问题：{question}\n\n段落：{chunk}\n\n数字："
    ),
    "en": (
        "How relevant is the passage to the question? Reply with one digit only:\n0 = not relevant; "
        "1 = partly relevant, but does not answer it; 2 = answers the question.\n\n"
        "Question: {question}\n\nPassage: {chunk}\n\nDigit:"
    ),
}
_GRADE = re.compile(r"^\W*([012])(?!\d)(?!\s*[=＝])")  # "1 = not relevant" is the rubric echoed, not a grade
GRADE_TEXTS = ("0", "1", "2")
TOP_LOGPROBS = 20  # the OpenAI API's maximum and vLLM's default --max-logprobs
ProgressCallback = Callable[..., None]  # (stage, done, total, failed=, last_failure=)


@dataclass(frozen=True)
class PoolItem:
    question_id: str
    chunk_id: str
    doc_id: str
    start: int
    end: int
    text: str


@dataclass
class JudgeReport:
    pool: int = 0
    judged: int = 0  # new judgements made now
    cached: int = 0
    failures: list[dict[str, str]] = field(default_factory=list)
    source: str = ""
    label_file: Path | None = None

    def summary(self) -> str:
        saved = f"saved as {self.source} to {self.label_file}" if self.label_file else "nothing saved"
        return (
            f"pool of {self.pool} (question, chunk) pairs: {self.judged} judged now, {self.cached} from the "
            f"cache, {len(self.failures)} failed; {saved}"
        )


def judge_source(generator: Generator) -> str:
    """The label source of a judge model: `llm:<model>@<prompt version>` (an endpoint's URL left out)."""
    name = short_name(generator.name).removeprefix("openai:")
    label = re.sub(r"[@\s]+", "-", name)
    return f"llm:{label}@{PROMPT_VERSION}"


def pool(run: Run, depth: int = 10) -> list[PoolItem]:
    """Every config's top-`depth` chunks per question, each (question, chunk) pair once, in question order."""
    if depth < 1:
        raise LabError(f"--depth must be at least 1, got {depth}")
    chunks_file = run.folder / "chunks.parquet"
    if not chunks_file.is_file():
        raise LabError(f"run {run.run_id} has no chunks.parquet (it did not finish): finish it first (--resume)")
    table = pd.read_parquet(chunks_file, columns=["chunk_id", "doc_id", "start", "text"])
    chunks = {chunk_id: (doc_id, int(start), text) for chunk_id, doc_id, start, text in table.itertuples(index=False)}
    seen: dict[tuple[str, str], PoolItem] = {}
    for question_id, chunk_ids in zip(run.rows["question_id"], run.rows["chunk_ids"]):
        for chunk_id in list(chunk_ids)[:depth]:
            if (question_id, chunk_id) not in seen:
                doc_id, start, text = chunks[chunk_id]
                seen[question_id, chunk_id] = PoolItem(question_id, chunk_id, doc_id, start, start + len(text), text)
    order = {q.id: n for n, q in enumerate(run.questions)}
    return sorted(seen.values(), key=lambda item: order.get(item.question_id, len(order)))


def parse_grade(reply: str) -> int | None:
    """The grade a free-text reply starts with, None when it starts with none (or echoes a rubric line)."""
    match = _GRADE.match(reply.strip())
    return int(match[1]) if match else None


def grade_probabilities(generator: Generator, prompt: str) -> list[float] | None:
    """The probabilities that the answer's first token reads "0", "1" and "2" (see the module docstring), None
    when the backend gives no token probabilities."""
    if isinstance(generator, OpenAIGenerator):
        top = generator.next_token_logprobs(prompt, TOP_LOGPROBS)
        return [sum(math.exp(logprob) for token, logprob in top if token.strip() == g) for g in GRADE_TEXTS]
    if isinstance(generator, TransformersGenerator):
        import torch  # heavy: only for a local model

        if generator.cancel is not None and generator.cancel.is_set():  # a job's cancel, honoured pair by pair
            raise GenerationCancelled(f"{generator.name} was cancelled while judging")
        ids = _grade_token_ids(generator.tokenizer)
        with torch.inference_mode():
            logits = generator.model(input_ids=generator.encode(prompt)).logits[0, -1].float()
        probabilities = logits.softmax(-1)
        return [float(probabilities[ids[g]].sum()) for g in GRADE_TEXTS]
    return None


def _grade_token_ids(tokenizer: Any) -> dict[str, list[int]]:
    """Every vocabulary token that reads "0", "1" or "2" (with or without spaces), by grade text."""
    ids: dict[str, list[int]] = {g: [] for g in GRADE_TEXTS}
    for token, i in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([token]).strip()
        if text in ids:
            ids[text].append(i)
    return ids


def grade_of(probabilities: Sequence[float]) -> tuple[int, float] | None:
    """(grade, confidence) from the grade tokens' probabilities: the most probable grade and its share of the
    three; None when no grade token has any probability."""
    total = sum(probabilities)
    if total <= 0:
        return None
    grade = max(range(len(probabilities)), key=lambda g: probabilities[g])
    return grade, probabilities[grade] / total


def judge_prompt(questions: Mapping[str, Any], item: PoolItem) -> str:
    """The judging prompt of a pooled pair, in its question's language."""
    question = questions[item.question_id].question
    return TEMPLATES[detect_language(question)].format(question=question, chunk=item.text)


def reads_probabilities(generator: Generator, prompt: str) -> bool:
    """Whether `generator` gives the grade tokens' probabilities: a local transformers model does; an endpoint
    does if it answers `prompt` with top logprobs. An endpoint that fails this probe in any way (no logprobs, a
    server that answers in another shape, an error) is judged by its text."""
    if isinstance(generator, TransformersGenerator):
        return True
    if not isinstance(generator, OpenAIGenerator):
        return False
    try:
        generator.next_token_logprobs(prompt, TOP_LOGPROBS)
    except Exception:  # the text path records whatever fails there, pair by pair
        return False
    return True


def grade_pair(
    generator: Generator, prompt: str, settings: GenerationSettings, by_probability: bool, abstain_below: float = 0.0
) -> tuple[int | None, float | None, str]:
    """(grade, confidence, "") of one judging prompt, or (None, None, why not): from the grade tokens'
    probabilities when `by_probability`, else from the reply's text (confidence None). A failed call is a
    reason, never an exception."""
    try:
        if by_probability:
            graded = grade_of(grade_probabilities(generator, prompt) or [])
            if graded is None:
                return None, None, f"no grade token among the top {TOP_LOGPROBS} next tokens"
            if graded[1] < abstain_below:
                return None, graded[1], f"abstained: confidence {graded[1]:.2f} < {abstain_below:g}"
            return graded[0], graded[1], ""
        reply, _ = generator.complete(prompt, settings)
    except GenerationCancelled:
        raise
    except Exception as error:  # recorded, never a crashed judging
        return None, None, f"{type(error).__name__}: {error}"[:200]
    grade = parse_grade(reply)
    return (
        (grade, None, "")
        if grade is not None
        else (None, None, f"the reply is not a grade: {' '.join(reply.split())[:80]!r}")
    )


class JudgementCache:
    """Grades by (model, prompt version, question text, chunk text hash), in an append-only JSONL file."""

    def __init__(self, path: Path) -> None:
        self.path, self.lock = path, threading.Lock()
        self.grades: dict[str, int] = {}
        if path.is_file():
            for line in text_lines(path.read_text(encoding="utf-8")):
                try:
                    record = json.loads(line)
                    self.grades[record["key"]] = int(record["grade"])
                except (json.JSONDecodeError, KeyError, TypeError, ValueError):
                    continue  # a line cut by a crash: that pair is judged again

    @staticmethod
    def key(source: str, question: str, chunk_text: str) -> str:
        chunk_hash = hashlib.sha256(chunk_text.encode()).hexdigest()
        return hashlib.sha256(json.dumps([source, question, chunk_hash]).encode()).hexdigest()

    def add(self, key: str, grade: int, confidence: float | None = None) -> None:
        """Record a grade (and the confidence of a grade read from token probabilities)."""
        record = {"key": key, "grade": grade} | ({} if confidence is None else {"confidence": round(confidence, 4)})
        with self.lock:
            self.grades[key] = grade
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self.path.open("a", encoding="utf-8") as file:
                file.write(json.dumps(record) + "\n")


def judge_run(
    run: Run,
    generator: Generator,
    home: Path,
    *,
    depth: int = 10,
    concurrency: int = 1,
    labels_file: Path | None = None,
    progress: ProgressCallback | None = None,
    abstain_below: float = 0.0,
    max_failures: int = DEFAULT_MAX_FAILURES,
) -> JudgeReport:
    """Judge the run's pool with `generator` and save the judgements (see the module docstring).

    The label file is the one beside the run's question set unless `labels_file` is given; a grade read from
    token probabilities with a confidence below `abstain_below` is an abstention. Progress counts graded pairs
    (with `failed` and the `last_failure` reason). After `max_failures` failures in a row (0: never) it saves
    the grades so far and raises `LabelJobFailed`; with no pair graded it saves nothing and raises
    `LabelJobFailed`."""
    questions = run.questions_by_id
    items = pool(run, depth)
    source = judge_source(generator)
    cache = JudgementCache(home / "cache" / "judgements.jsonl")
    report = JudgeReport(pool=len(items), source=source)
    keys = [cache.key(source, questions[item.question_id].question, item.text) for item in items]
    todo = [item for item, key in zip(items, keys) if key not in cache.grades]
    report.cached = len(items) - len(todo)
    refuse_chinese_on_smoke_test(
        generator.name, (detect_language(questions[i.question_id].question) for i in todo), "judging"
    )
    streak = FailureStreak("judging", short_name(generator.name), max_failures)
    stopped: LabelJobFailed | None = None
    try:
        by_probability = bool(todo) and reads_probabilities(generator, judge_prompt(questions, todo[0]))
        grade = partial(grade_pair, generator, by_probability=by_probability, abstain_below=abstain_below)
        _judge_pool(todo, grade, questions, cache, report, progress, concurrency, streak)
    except LabelJobFailed as failure:
        stopped = failure
    graded = [(item, cache.grades[key]) for item, key in zip(items, keys) if key in cache.grades]
    if not graded:
        last = report.failures[-1]["reason"] if report.failures else None
        raise stopped or nothing_produced("judging", streak.model, len(todo), last)
    report.label_file = labels_file or run_label_file(run)
    save_judgements(report.label_file, graded, source, replace=True)  # the model's latest word
    if stopped:
        raise LabelJobFailed(f"{stopped} ({len(graded)} grades so far were saved as {source})")
    return report


def _judge_pool(
    todo: Sequence[PoolItem],
    grade: Callable[..., tuple[int | None, float | None, str]],
    questions: Mapping[str, Any],
    cache: JudgementCache,
    report: JudgeReport,
    progress: ProgressCallback | None,
    concurrency: int,
    streak: FailureStreak,
) -> None:
    """Grade the pairs of `todo` with `grade` (see `grade_pair`) into `cache`, failures into `report`; progress
    and the streak are kept in this thread (a page's progress bar belongs to its thread; progress may raise to
    cancel)."""
    settings = GenerationSettings(max_new_tokens=4)

    def judge_one(item: PoolItem) -> str | None:
        question = questions[item.question_id].question
        graded, confidence, failure = grade(judge_prompt(questions, item), settings)
        if graded is None:
            return failure
        cache.add(cache.key(report.source, question, item.text), graded, confidence)
        return None

    def tell() -> None:
        if progress:
            last = report.failures[-1]["reason"] if report.failures else None
            progress(
                "judge", report.cached + report.judged, report.pool, failed=len(report.failures), last_failure=last
            )

    tell()
    workers = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="judge")
    try:
        for item, failure in zip(todo, workers.map(judge_one, todo)):
            if failure is None:
                report.judged += 1
            else:
                report.failures.append({"question_id": item.question_id, "chunk_id": item.chunk_id, "reason": failure})
            tell()
            streak.record(failure)
    finally:
        workers.shutdown(cancel_futures=True)


def run_label_file(run: Run) -> Path:
    """The label file beside the question set the run was made from."""
    source = Path(run.info.questions.source)
    if not source.exists():
        raise LabError(f"the question set of run {run.run_id} ({source}) is gone: pass --labels FILE")
    if source.is_dir():
        source = find_file(source, "questions")
    return label_path(source)


def chunk_label_path(label_file: Path) -> Path:
    """The chunk judgements a label file's pooled spans are derived from: `questions.chunk-labels.jsonl`."""
    return label_file.with_name(label_file.name.removesuffix(LABEL_SUFFIX) + CHUNK_LABEL_SUFFIX)


def chunk_judgements(label_file: Path, source: str | None = None) -> dict[tuple[str, str, int, int, str], int]:
    """The saved chunk judgements: {(question_id, doc_id, start, end, source): grade}, of one source or all."""
    sidecar = chunk_label_path(label_file)
    if not sidecar.is_file():
        return {}
    return {
        (r["question_id"], r["doc_id"], r["start"], r["end"], r["source"]): r["grade"]
        for _, r in iter_jsonl(sidecar)
        if source is None or r["source"] == source
    }


def save_judgements(
    label_file: Path, graded: Sequence[tuple[PoolItem, int | None]], source: str, replace: bool = False
) -> Labels:
    """Save judgements of whole chunks (grade None deletes a chunk's judgement: undo) and rewrite the spans
    of `source` for the questions and documents they touch (see the module docstring).

    A chunk already judged by `source` with another grade raises `LabError` unless `replace` (a correction).
    The whole read-change-write holds the label file's lock."""
    with label_lock(label_file):
        return _save_judgements(label_file, graded, source, replace)


def _save_judgements(
    label_file: Path, graded: Sequence[tuple[PoolItem, int | None]], source: str, replace: bool
) -> Labels:
    _, questions, corpus = open_question_set(label_file)
    records = chunk_judgements(label_file)
    for item, grade in graded:
        key = (item.question_id, item.doc_id, item.start, item.end, source)
        if grade is None:
            records.pop(key, None)
        elif records.get(key, grade) != grade and not replace:
            raise LabError(
                f"{source} already graded chunk {item.chunk_id} of question '{item.question_id}' "
                f"{records[key]}, not {grade}: correct it explicitly (replace)"
            )
        else:
            records[key] = grade
    touched = {(item.question_id, item.doc_id) for item, _ in graded}
    existing = read_labels(label_file, questions, corpus) if label_file.is_file() else Labels()
    stale = [j.key for j in existing.judgements if j.source == source and (j.question_id, j.doc_id) in touched]
    spans = [
        Judgement(q, d, start, end, grade, source)
        for (q, d) in touched
        for start, end, grade in resolve_overlaps(
            [(k[2], k[3], g) for k, g in records.items() if k[0] == q and k[1] == d and k[4] == source]
        )
    ]
    labels = save_labels_locked(label_file, spans, questions, corpus, replace=True, remove=stale)
    atomic_write_bytes(
        chunk_label_path(label_file),
        "".join(
            json.dumps(dict(zip(_CHUNK_FIELDS, (*key[:4], grade, key[4]))), ensure_ascii=False) + "\n"
            for key, grade in records.items()
        ).encode(),
    )
    return labels


def resolve_overlaps(chunks: Sequence[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
    """Chunk ranges with grades -> non-overlapping spans: each range minus every range of a lower grade."""
    resolved = []
    for start, end, grade in sorted(chunks):
        lower = [(s, e) for s, e, g in chunks if g < grade]
        resolved += [(s, e, grade) for s, e in _subtract((start, end), lower)]
    return resolved


def _subtract(span: tuple[int, int], others: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """`span` minus every range of `others`: the pieces left, in order."""
    pieces = [span]
    for o_start, o_end in others:
        pieces = [
            piece
            for start, end in pieces
            for piece in ((start, min(end, o_start)), (max(start, o_end), end))
            if piece[0] < piece[1]
        ]
    return pieces


def blind_order(items: Sequence[PoolItem], seed: int = 0) -> list[PoolItem]:
    """Pooled chunks for a human: question by question in a seeded random order, so that the questions a person
    has labelled so far are a uniform random sample (what a judge's correction needs, `eval.labels.corrected`),
    and each question's chunks in a seeded shuffle, so their order says nothing about which config ranked them
    where."""
    by_question: dict[str, list[PoolItem]] = {}
    for item in items:
        by_question.setdefault(item.question_id, []).append(item)
    ordered = []
    for question_id in random.Random(f"{seed}:questions").sample(list(by_question), len(by_question)):
        group = by_question[question_id]
        rng = random.Random(f"{seed}:{question_id}")
        ordered += rng.sample(group, len(group))
    return ordered


def labelling_progress(items: Sequence[PoolItem], judged: Mapping[tuple, int], source: str) -> tuple[int, int, int]:
    """(questions whose pooled chunks `source` has all judged, questions, chunks judged) over `items`."""
    done: dict[str, bool] = {}
    chunks = 0
    for item in items:
        hit = (item.question_id, item.doc_id, item.start, item.end, source) in judged
        chunks += hit
        done[item.question_id] = done.get(item.question_id, True) and hit
    return sum(done.values()), len(done), chunks
