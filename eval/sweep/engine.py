"""The sweep engine: run a question set through a grid of retriever configs and score every row.

Two retrieval paths give identical chunks, order and scores:
- the fast path (default) embeds each question exactly as LangChain does, queries Chroma once per block
  of questions for each distinct search (metadata filter x search width, see `fast_retrieve`), and derives
  every configuration from those candidate lists with LangChain's own relevance function and MMR;
- the reference path calls LangChain's `VectorStoreRetriever` for every config and question.
Retriever latency is measured separately, as users see it: the real `as_retriever(...).invoke(question)`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import partial
from importlib.metadata import version
from typing import Any, Protocol

import numpy as np
import pandas as pd

from eval.errors import LabError
from eval.index.store import Index, check_relevant_ids
from eval.io import fingerprint, out_of_space
from eval.metrics import answer_metric_columns, context_chars, diversity_metric_columns, doc_metric_columns
from eval.metrics.scorer import RunScorer, ScoringContext
from eval.retrievers.base import Config
from eval.retrievers.external.client import (
    DEFAULT_CONCURRENCY,
    ExternalRetriever,
    annotate_rows,
    check_imported,
    latency_frame,
    read_block_chunks,
    write_block_chunks,
)
from eval.retrievers.registry import (
    check_ready,
    fast_retrieve_mixed,
    is_external,
    langchain_retriever,
    reference_retrieve,
)
from eval.runs.store import RunStore
from eval.runs.summary import stored_summary
from eval.schema import Question, Retrieved
from eval.sweep.timing import time_interleaved

SweepProgress = Callable[[str, int, int], None]
DEFAULT_BLOCK = 50
DEFAULT_LATENCY_SAMPLE = 50


class SweepCancelled(LabError):
    """Raised when a sweep is cancelled; its finished blocks are kept and it can be resumed."""


class Answerer(Protocol):
    """Generates an answer for a row; see `eval.pipeline`. Returns the answer columns of the row."""

    deterministic: bool

    def answer(
        self, question: Question, chunk_texts: list[str], on_text: Callable[[str], None] | None
    ) -> dict[str, Any]: ...

    def describe(self) -> dict[str, Any]: ...


@dataclass
class SweepOptions:
    reference: bool = False
    block_size: int = DEFAULT_BLOCK
    latency_sample: int = DEFAULT_LATENCY_SAMPLE
    progress: SweepProgress | None = None
    cancel: threading.Event | None = None
    answerer: Answerer | None = None
    on_answer: Callable[[str, str, str], None] | None = None  # (question_id, config_id, answer so far)
    generation_concurrency: int = 1  # parallel requests (for OpenAI-compatible endpoints)
    external_concurrency: int = DEFAULT_CONCURRENCY  # calls at once to external retrievers (`eval.external`)
    scorers: list[RunScorer] = field(default_factory=list)  # run over the finished rows, in order
    on_start: Callable[[str], None] | None = None  # told the run id once the run exists (new or resumed)
    extra_manifest: dict[str, Any] = field(default_factory=dict)
    # racing: given the rows so far and the configs still running, the configs that go on to the next block
    contenders: Callable[[pd.DataFrame, list[str]], list[str]] | None = None


# ---------------------------------------------------------------- the fast path


# ---------------------------------------------------------------- the reference path


# ---------------------------------------------------------------- rows


def _chunk_metrics(pairs: list[tuple[Question, Retrieved]]) -> list[dict[str, Any]]:
    """Every metric of each (question, retrieved chunks): they depend only on those two. Scored as columns,
    all lists at once."""
    columns = {
        **doc_metric_columns([r.doc_ids for _, r in pairs], [set(q.relevant_ids) for q, _ in pairs]),
        **answer_metric_columns([r.texts for _, r in pairs], [list(q.answers) for q, _ in pairs]),
        **diversity_metric_columns([r.embeddings for _, r in pairs], [r.doc_ids for _, r in pairs]),
        "context_chars": [context_chars(r.texts) for _, r in pairs],
    }
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def score_rows(
    questions: list[Question], configs: list[Config], retrieved: dict[tuple[str, str], Retrieved]
) -> list[dict[str, Any]]:
    """A scored row for every (question, config). Configs that retrieved the same chunks (ids and texts) for a
    question share one scoring: every metric depends only on the question and those chunks, and a quarter
    to a third of a typical grid's rows repeat another config's list. Only the config id and the retriever's
    scores are the row's own."""
    distinct: dict[tuple, tuple[Question, Retrieved]] = {}
    listed = []  # (question id, config id, result, its scoring's key) in row order
    for question in questions:
        for config in configs:
            result = retrieved[question.id, config.config_id]
            key = (question.id, tuple(result.chunk_ids), tuple(result.texts))
            distinct.setdefault(key, (question, result))
            listed.append((question.id, config.config_id, result, key))
    scored = dict(zip(distinct, _chunk_metrics(list(distinct.values()))))
    return [
        {
            "question_id": question_id,
            "config_id": config_id,
            "chunk_ids": result.chunk_ids,
            "doc_ids": result.doc_ids,
            "scores": np.asarray(result.scores, dtype=np.float64),  # an array: NaN scores stay NaN on disk
            **scored[key],
        }
        for question_id, config_id, result, key in listed
    ]


def _answer_rows(
    rows: list[dict[str, Any]],
    questions: dict[str, Question],
    texts: dict[tuple[str, str], list[str]],
    options: SweepOptions,
    rows_before: int,
    rows_total: int,
) -> None:
    """Add generated answers; identical prompts (same chunks, same order) are generated once when
    decoding is deterministic, and the reused rows keep the original's measured latency.

    With `generation_concurrency` > 1 (an OpenAI-compatible endpoint), a block's prompts are sent in
    parallel and answers are not streamed to `on_answer`."""
    reuse = options.answerer.deterministic
    keys = [(row["question_id"], tuple(row["chunk_ids"])) if reuse else id(row) for row in rows]
    first_row: dict[Any, dict[str, Any]] = {}
    for key, row in zip(keys, rows):
        first_row.setdefault(key, row)

    def generate(key) -> tuple[Any, dict[str, Any]]:
        _check_cancel(options)
        row = first_row[key]
        streams = options.on_answer is not None and options.generation_concurrency == 1
        on_text = partial(_streamed, options, row["question_id"], row["config_id"]) if streams else None
        return key, options.answerer.answer(
            questions[row["question_id"]], texts[row["question_id"], row["config_id"]], on_text
        )

    answers = {}
    for number, (key, answer) in enumerate(
        _ordered_map(generate, list(first_row), options.generation_concurrency), start=1
    ):
        answers[key] = answer
        if options.progress:
            options.progress("answers", rows_before + number * len(rows) // len(first_row), rows_total)
    for key, row in zip(keys, rows):
        row.update(answers[key], answer_reused=first_row[key] is not row)


def _streamed(options: SweepOptions, question_id: str, config_id: str, text: str) -> None:
    """Show the answer so far; a cancel stops the sweep here, between two tokens, not after the whole answer."""
    _check_cancel(options)
    options.on_answer(question_id, config_id, text)


def _ordered_map(function: Callable, items: list, workers: int) -> Iterator:
    """`map`, in threads when `workers` > 1; with one worker it stays in the calling thread, where a
    dashboard's streaming callback must run."""
    if workers <= 1:
        yield from map(function, items)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(function, items)


# ---------------------------------------------------------------- latency


def measure_latency(
    index: Index,
    configs: list[Config],
    questions: list[Question],
    options: SweepOptions,
    seed: int = 0,
    timed_before: int = 0,
    sample_size: int | None = None,
) -> pd.DataFrame:
    """Time the real `as_retriever(...).invoke(question)` of every config on these questions, interleaved
    (`eval.timing.time_interleaved`: per question all configs in a shuffled order, after a warm-up call).
    Progress counts from `timed_before` questions already timed, out of `sample_size` (these questions)."""
    retrievers = {c.config_id: langchain_retriever(index, c) for c in configs}
    calls = {
        config_id: (lambda question, r=retriever: r.invoke(question.question))
        for config_id, retriever in retrievers.items()
    }
    total = (len(questions) if sample_size is None else sample_size) * len(configs)

    def progress(timed: int) -> None:
        if options.progress:
            options.progress("latency", (timed_before + timed) * len(configs), total)

    return time_interleaved(
        calls, questions, seed=seed, before_each=partial(_check_cancel, options), after_question=progress
    )


def _check_cancel(options: SweepOptions) -> None:
    if options.cancel is not None and options.cancel.is_set():
        raise SweepCancelled("the sweep was cancelled; resume it to finish")


# ---------------------------------------------------------------- the run


def run_manifest(
    index: Index, configs: list[Config], questions: list[Question], questions_source: str, options: SweepOptions
) -> dict[str, Any]:
    return {
        "index": asdict(index.manifest),
        "query_encoder": index.embeddings.identity,  # the index's `encoder` unless the library changed since
        "questions": {
            "source": questions_source,
            "count": len(questions),
            # a weight joins the fingerprint only where one is set: unweighted sets keep their old fingerprints
            "fingerprint": fingerprint(
                [q.id, q.question, q.answers, q.relevant_ids, *([q.weight] if q.weight is not None else [])]
                for q in questions
            ),
        },
        "sweep": {"configs": [{"config_id": c.config_id, **c.params()} for c in configs]},
        "path": "reference" if options.reference else "fast",
        "block_size": options.block_size,
        "latency_sample": options.latency_sample,
        "generation": options.answerer.describe() if options.answerer else None,
        "scorers": [scorer.describe() for scorer in options.scorers],
        "versions": {name: version(name) for name in ("chromadb", "langchain-core", "langchain-chroma")},
        **options.extra_manifest,
    }


def run_sweep(
    store: RunStore,
    index: Index,
    configs: list[Config],
    questions: list[Question],
    questions_source: str = "",
    options: SweepOptions | None = None,
    resume: str | None = None,
) -> str:
    """Run (or resume) a sweep and return its run id. Finished blocks are on disk as soon as they end.

    Once the run exists, `options.on_start` is told its id. However the sweep stops, the run records why:
    "cancelled" (the cancel event), "failed" (an exception, kept in `error`) or "interrupted" (Ctrl-C, or a
    dashboard script stopped by a click); its finished blocks stay, and it can be resumed."""
    options = options or SweepOptions()
    if not configs or not questions:
        raise LabError("a sweep needs at least one retriever config and one question")
    check_relevant_ids(index, questions)
    check_ready(configs)
    check_imported(index, configs, questions)
    for scorer in options.scorers:
        if "answers" in scorer.needs and options.answerer is None:
            raise LabError(f"the {scorer.describe()['name']} scorer scores generated answers: add an answerer")
    manifest = run_manifest(index, configs, questions, questions_source, options)
    run_id = _start_or_resume(store, manifest, questions, resume)
    try:
        if options.on_start is not None:
            options.on_start(run_id)
        _execute(store, run_id, index, configs, questions, options)
    except SweepCancelled:
        store.mark_stopped(run_id, "cancelled")
        raise
    except Exception as error:
        store.mark_stopped(run_id, "failed", error=f"{type(error).__name__}: {error}")
        if out_of_space(error, store.root):
            raise LabError(
                f"no space left on the disk of {store.root}: run {run_id} stopped (marked failed; its finished "
                f"blocks are kept): free some space and resume it (run ... --resume {run_id})"
            ) from None
        raise
    except BaseException:  # Ctrl-C, or SIGTERM raised as KeyboardInterrupt by the CLI
        store.mark_stopped(run_id, "interrupted")
        raise
    # After the try: the run is complete, and a failure here must not mark it failed.
    if options.progress:
        options.progress("summary", 0, 1)
    stored_summary(store.load(run_id, scores_only=True))  # the Compare page then opens the run at once
    if options.progress:
        options.progress("summary", 1, 1)
    return run_id


def _start_or_resume(store: RunStore, manifest: dict[str, Any], questions: list[Question], resume: str | None) -> str:
    if resume is None:
        return store.create(manifest, questions)
    previous = {"scorers": [], **store.manifest(resume)}  # runs written before scorers existed have none
    for key in ("index", "questions", "sweep", "path", "block_size", "generation", "scorers"):
        if not json_equal(previous.get(key), manifest.get(key)):
            raise LabError(f"run {resume} was started with a different {key}; start a new run instead")
    if previous["status"] == "complete":
        raise LabError(f"run {resume} is already complete")
    try:
        store.hold_reserve(resume)
    except OSError as error:
        if out_of_space(error, store.root):
            raise LabError(f"no space left on the disk of {store.root}: free some space and resume again") from None
        raise
    store.update(resume, status="running", error=None)
    return resume


def json_equal(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _execute(
    store: RunStore, run_id: str, index: Index, configs: list[Config], questions: list[Question], options: SweepOptions
) -> None:
    started = time.perf_counter()
    done = {row for part in store.parts(run_id) for row in part["question_id"].unique()}
    blocks = [questions[i : i + options.block_size] for i in range(0, len(questions), options.block_size)]
    by_id = {q.id: q for q in questions}
    retrieval_seconds = store.manifest(run_id).get("retrieval_seconds", 0.0)
    timed = {q.id for q in questions[: options.latency_sample]}
    todo = [(number, block) for number, block in enumerate(blocks) if not all(q.id in done for q in block)]
    local = [c for c in configs if not is_external(c)]
    services = (
        ExternalRetriever(index, [c for c in configs if is_external(c)], options.external_concurrency)
        if len(local) < len(configs)
        else None
    )
    so_far = list(store.parts(run_id))
    for (number, block), vectors in zip(todo, _prefetched_query_vectors(index, [b for _, b in todo], options)):
        _check_cancel(options)
        racing = _racing(configs, so_far, options)
        block_started = time.perf_counter()
        rows, texts = _retrieve_block(index, racing, block, options, vectors, services, store.folder(run_id), number)
        retrieval_seconds += time.perf_counter() - block_started
        if options.answerer is not None:
            answered = [row for row in rows if not row.get("call_error")]  # a failed call gets no answer
            _answer_rows(
                answered,
                by_id,
                texts,
                options,
                sum(len(b) for b in blocks[:number]) * len(configs),
                len(questions) * len(configs),
            )
        _time_block(
            store,
            run_id,
            number,
            index,
            [c for c in local if c in racing],
            [q for q in block if q.id in timed],
            options,
            sum(q.id in timed for b in blocks[:number] for q in b),
            len(timed),
        )
        store.write_part(run_id, number, pd.DataFrame(rows))
        so_far.append(pd.DataFrame(rows))
        store.update(run_id, retrieval_seconds=retrieval_seconds)
        if options.progress and options.answerer is None:
            options.progress("questions", min((number + 1) * options.block_size, len(questions)), len(questions))
    if services is not None:
        services.close()
    rows = pd.concat(store.parts(run_id), ignore_index=True)
    external_rows = rows["config_id"].isin([c.config_id for c in configs if is_external(c)])
    chunks = pd.concat(
        [retrieved_chunks(index, rows[~external_rows]), read_block_chunks(store.folder(run_id))], ignore_index=True
    ).drop_duplicates("chunk_id")
    context = ScoringContext(by_id, dict(zip(chunks["chunk_id"], chunks["text"])), index, options.progress)
    for scorer in options.scorers:
        rows = pd.concat([rows, _scored(scorer, rows, context)], axis=1)
    latency = store.latency_parts(run_id)
    if services is not None:  # every external call was timed as it ran
        latency = pd.concat([latency, latency_frame(rows)], ignore_index=True) if len(latency) else latency_frame(rows)
    store.finish(
        run_id,
        rows,
        latency,
        chunks,
        identical_configs=identical_configs(rows),
        retrieval_seconds=round(retrieval_seconds, 3),
        wall_seconds=round(time.perf_counter() - started, 3),
    )


def _racing(configs: list[Config], so_far: list[pd.DataFrame], options: SweepOptions) -> list[Config]:
    """The configs that run the next block: all of them, or under racing the contenders among those that ran
    the last block (a config once stopped stays stopped, also when a run is resumed)."""
    if options.contenders is None or not so_far:
        return configs
    running = set(so_far[-1]["config_id"])
    staying = set(
        options.contenders(
            pd.concat(so_far, ignore_index=True), [c.config_id for c in configs if c.config_id in running]
        )
    )
    return [c for c in configs if c.config_id in staying]


def _time_block(
    store: RunStore,
    run_id: str,
    number: int,
    index: Index,
    configs: list[Config],
    sampled: list[Question],
    options: SweepOptions,
    timed_before: int,
    sample_size: int,
) -> None:
    """Time the block's questions of the latency sample and store the samples beside the block's rows
    (before them: a block whose rows are on disk has its samples too, so a resumed run never re-times it)."""
    if sampled:
        store.write_latency_part(
            run_id,
            number,
            measure_latency(
                index, configs, sampled, options, seed=number, timed_before=timed_before, sample_size=sample_size
            ),
        )


def _scored(scorer: RunScorer, rows: pd.DataFrame, context: ScoringContext) -> pd.DataFrame:
    """The scorer's columns for the rows, checked against what it declares."""
    scored = scorer.score(rows, context)
    if list(scored.columns) != list(scorer.columns) or len(scored) != len(rows):
        raise LabError(
            f"the {scorer.describe()['name']} scorer returned {len(scored)} rows with columns "
            f"{list(scored.columns)}, not {len(rows)} rows with {list(scorer.columns)}"
        )
    return scored.set_axis(rows.index)


def retrieved_chunks(index: Index, rows: pd.DataFrame) -> pd.DataFrame:
    """Every distinct chunk the run retrieved, with its text, so reports need no index."""
    ids = list(dict.fromkeys(c for chunk_ids in rows["chunk_ids"] for c in chunk_ids))
    records = []
    for start in range(0, len(ids), 5000):
        got = index.collection.get(ids=ids[start : start + 5000], include=["documents", "metadatas"])
        records += [
            (i, m["doc_id"], int(m["start"]), text)
            for i, m, text in zip(got["ids"], got["metadatas"], got["documents"])
        ]
    return pd.DataFrame(records, columns=["chunk_id", "doc_id", "start", "text"])


def _prefetched_query_vectors(
    index: Index, blocks: list[list[Question]], options: SweepOptions
) -> Iterator[np.ndarray | None]:
    """The fast path's query vectors (`embed_query`'s, bit for bit), block by block; the next block is
    embedded in a background thread while the current one is queried and scored (both encoders release
    the GIL while they compute)."""
    if options.reference:
        yield from (None for _ in blocks)
        return

    def embed(block: list[Question]) -> np.ndarray:
        return index.embeddings.embed_queries([q.question for q in block])

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="embed-questions") as pool:
        pending = pool.submit(embed, blocks[0]) if blocks else None
        for position in range(len(blocks)):
            vectors = pending.result()
            if position + 1 < len(blocks):
                pending = pool.submit(embed, blocks[position + 1])
            yield vectors


def _retrieve_block(
    index: Index,
    configs: list[Config],
    block: list[Question],
    options: SweepOptions,
    vectors: np.ndarray | None,
    services: ExternalRetriever | None = None,
    folder=None,
    number: int = 0,
) -> tuple[list[dict[str, Any]], dict[tuple[str, str], list[str]]]:
    local = [c for c in configs if not is_external(c)]
    if options.reference:
        retrieved = reference_retrieve(index, local, block)
    else:
        retrieved = fast_retrieve_mixed(index, local, block, vectors)
    called = services.retrieve(block) if services is not None else {}
    retrieved.update(called)
    rows = score_rows(block, configs, retrieved)
    if called:
        annotate_rows(rows, called)
        write_block_chunks(folder, number, called)
    return rows, {key: value.texts for key, value in retrieved.items()}


def identical_configs(rows: pd.DataFrame) -> list[list[str]]:
    """Groups (two or more, in order of appearance) of configs whose retrieved chunk lists are the same, in
    the same order, for every question. `rows` needs question_id, config_id and chunk_ids."""
    lists = rows["chunk_ids"].map(lambda ids: "\x1f".join(ids))  # one string per list: fast to compare
    ordered = rows[["question_id", "config_id"]].assign(_list=lists).sort_values("question_id", kind="stable")
    signatures: dict[tuple, list[str]] = {}
    for config_id, group in ordered.groupby("config_id", sort=False):
        signature = tuple(zip(group["question_id"], group["_list"]))
        signatures.setdefault(signature, []).append(str(config_id))
    return [group for group in signatures.values() if len(group) > 1]
