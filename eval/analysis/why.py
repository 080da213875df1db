"""Why each question missed: for every (question, config) where a relevant document was not retrieved, the
cause, and what-ifs ("k 12 would recover 8 of 14 misses") computed from the same candidates.

A miss is a relevant document of a question (a document with a span of grade >= 1 under the label source)
none of whose relevant spans any retrieved chunk of the config overlaps (for a whole-document label: none of
its chunks was retrieved). Its target chunks are the index's chunks that overlap those spans.

A run's rows keep each config's final chunks only, not the candidate lists behind them. So the candidates
are recomputed on the run's index with the sweep's own fast path (`fast_retrieve_mixed`), exactly as the run
made them (the index must be the build the run used): for vector configs the search Chroma ran (width
max(ef_search, fetch_k or k); below ef_search every width is one search whose top-n are prefixes), for BM25
the whole ranking, for ensembles each first stage, for rerankers the base list and the model's scores. Only
a target past that search is looked up in a deeper, wider query (`DEEP_RANK` candidates): its rank then comes
from a re-query, and the report says so.

Causes, in the order they are checked (the first that holds names the miss):
- `filtered`: no target chunk passes the config's metadata filter;
- `split`: not in the search, and a relevant span crosses a chunk boundary (no chunk holds it whole);
- `not_in_pool`: not in the search (vector: past its width; BM25: no query term in it), its rank when the
  deeper query finds it;
- `below_k`: in the search but ranked past `k` (past `fetch_k` for MMR), with its rank;
- `threshold`: within `k`, but its score is under `score_threshold`;
- `mmr`: within `fetch_k`, not selected; the selected chunk most like it crowded it out (their cosine);
- `fusion`: an ensemble's first stage found it, and fusion dropped it (de-duplicated by text);
- `reranker`: in the reranker's candidates, cut by `top_n` (its position after reranking);
- `unexplained`: the recomputation retrieves it (the index or a model changed since the run).
An ensemble's miss takes the cause of its best first stage; a reranker's miss the cause of its base when
the base missed it too.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from langchain_chroma.vectorstores import maximal_marginal_relevance

from eval.data.labels import Labels, load_labels
from eval.errors import LabError
from eval.index.bm25 import bm25_side
from eval.index.store import Index, IndexStore
from eval.labels.pooled_judging import run_label_file
from eval.metrics.passage import overlaps, relevant_passages
from eval.retrievers.base import Config, Results
from eval.retrievers.bm25 import BM25Config
from eval.retrievers.ensemble import EnsembleConfig
from eval.retrievers.registry import KINDS, config_from_params, fast_retrieve_mixed, kind_of, with_dependencies
from eval.retrievers.rerank import RerankConfig, rerank, reranker
from eval.retrievers.vector import RetrieverConfig
from eval.runs.store import Run
from eval.schema import Chunk, Question, Span

CAUSES = ("filtered", "split", "not_in_pool", "below_k", "threshold", "mmr", "fusion", "reranker", "unexplained")
CAUSE_NAMES = {
    "filtered": "excluded by the metadata filter",
    "split": "answer split across chunks",
    "not_in_pool": "not in the candidate pool",
    "below_k": "ranked below k",
    "threshold": "removed by score_threshold",
    "mmr": "dropped by MMR",
    "fusion": "lost in fusion",
    "reranker": "cut by the reranker",
    "unexplained": "unexplained (retrieved when recomputed)",
}
DEEP_RANK = 1000  # how deep the re-query looks for a target past the config's own search
BLOCK = 50
LAMBDAS = (0.0, 0.25, 0.5, 0.75, 1.0)
THRESHOLD_STEPS = (0.05, 0.1, 0.2)


@dataclass(frozen=True)
class Miss:
    """One relevant document a config did not retrieve for a question, and why."""

    question_id: str
    config_id: str
    doc_id: str
    cause: str
    detail: str
    rank: int | None = None  # the best target chunk's rank in the stage that lost it (None: past every search)
    requeried: bool = False  # the rank comes from the deeper re-query


@dataclass(frozen=True)
class WhatIf:
    """One changed parameter of a config, replayed on the same candidates."""

    config_id: str
    change: str  # e.g. "k 12", "score_threshold 0.25", "lambda_mult 0.7", "top_n 6"
    recovered: int
    misses: int
    admitted: int | None = None  # irrelevant chunks it would add (k, threshold, top_n)
    lost: int | None = None  # relevant documents it would lose (lambda_mult)

    @property
    def text(self) -> str:
        text = f"{self.change} would recover {self.recovered} of {self.misses} misses"
        if self.admitted is not None:
            text += f" and admit {self.admitted} irrelevant chunks"
        if self.lost:
            text += f" and lose {self.lost} found documents"
        return text


@dataclass
class WhyReport:
    run_id: str
    source: str
    misses: list[Miss]
    what_ifs: list[WhatIf]
    configs: list[str]  # the diagnosed configs, in run order
    skipped: dict[str, str] = field(default_factory=dict)  # config id -> why it has no diagnosis
    requeried: int = 0  # misses whose rank needed the deeper re-query

    def counts(self) -> pd.DataFrame:
        """One row per diagnosed config: `misses` and one column per cause (they add up to `misses`)."""
        table = pd.DataFrame(0, index=pd.Index(self.configs, name="config_id"), columns=list(CAUSES))
        for miss in self.misses:
            table.loc[miss.config_id, miss.cause] += 1
        table.insert(0, "misses", table.sum(axis=1))
        return table

    def to_json(self) -> dict[str, Any]:
        """Per config id: the misses and their count per cause (causes with none left out)."""
        counts = self.counts()
        return {
            "run_id": self.run_id,
            "source": self.source,
            "configs": {
                config_id: {
                    "misses": int(row["misses"]),
                    "causes": {c: int(row[c]) for c in CAUSES if row[c]},
                    "what_ifs": [w.text for w in self.what_ifs if w.config_id == config_id],
                }
                for config_id, row in counts.iterrows()
            },
            "skipped": self.skipped,
            "requeried": self.requeried,
        }

    def for_row(self, question_id: str, config_id: str) -> list[Miss]:
        return [m for m in self.misses if m.question_id == question_id and m.config_id == config_id]


# ---------------------------------------------------------------- the candidates, recomputed


@dataclass
class _Question:
    """What one question's diagnosis needs: its relevant spans by document, the recomputed results (with the
    search pools), its query vector and the target chunks of each relevant document."""

    question: Question
    spans: dict[str, list[Span]]
    results: Results
    vector: np.ndarray | None
    targets: dict[str, list[str]]  # doc id -> target chunk ids
    split: set[str]  # docs with a relevant span no chunk holds whole


class _Lab:
    """The index side of a diagnosis: chunk layout, pool configs and the re-query, cached."""

    def __init__(self, index: Index, configs: list[Config]) -> None:
        self.index = index
        self.everything = with_dependencies(configs)
        self.pools = {c: self.pool_of(c) for c in self.everything if isinstance(c, RetrieverConfig)}
        self._chunks: dict[str, list[Chunk]] = {}
        self._texts: dict[str, str] = {}
        self._deep: dict[tuple[str, str | None], list[str]] = {}

    def pool_of(self, config: RetrieverConfig) -> RetrieverConfig:
        """The similarity config whose list is the search Chroma ran for `config` (same filter, same width)."""
        width = max(config.candidates, self.index.ef_search)
        return RetrieverConfig.create("similarity", k=width, filter=config.filter)

    def chunks_of(self, doc_id: str) -> list[Chunk]:
        if doc_id not in self._chunks:
            self._chunks[doc_id] = self.index.chunks(where={"doc_id": doc_id})
            self._texts.update((c.chunk_id, c.text) for c in self._chunks[doc_id])
        return self._chunks[doc_id]

    def text(self, chunk_id: str) -> str:
        return self._texts[chunk_id]

    def prepare(self, questions: list[Question], spans: dict[str, list[Span]]) -> list[_Question]:
        vector_stage = any(kind_of(c).stage == "vector" for c in self.everything)
        vectors = self.index.embeddings.embed_queries([q.question for q in questions]) if vector_stage else None
        results = fast_retrieve_mixed(self.index, self.everything + list(set(self.pools.values())), questions, vectors)
        prepared = []
        for number, question in enumerate(questions):
            relevant = relevant_passages(spans.get(question.id, []))
            by_doc: dict[str, list[Span]] = defaultdict(list)
            for span in relevant:
                by_doc[span.doc_id].append(span)
            targets, split = {}, set()
            for doc_id, doc_spans in by_doc.items():
                chunks = [_span(c) for c in self.chunks_of(doc_id)]
                targets[doc_id] = [
                    c.chunk_id
                    for c, where in zip(self.chunks_of(doc_id), chunks)
                    if any(overlaps(where, s) for s in doc_spans)
                ]
                if _split(chunks, doc_spans):
                    split.add(doc_id)
            own = {key[1]: value for key, value in results.items() if key[0] == question.id}
            prepared.append(
                _Question(question, dict(by_doc), own, None if vectors is None else vectors[number], targets, split)
            )
        return prepared

    def deep_rank(self, item: _Question, config: RetrieverConfig, targets: list[str]) -> int | None:
        """The best target's rank in a query `DEEP_RANK` wide (a re-query: a wider search than the run's)."""
        key = (item.question.id, config.filter_json)
        if key not in self._deep:
            got = self.index.collection.query(
                query_embeddings=[item.vector],
                n_results=min(DEEP_RANK, self.index.collection.count()),
                where=config.filter,
                include=[],
            )
            self._deep[key] = got["ids"][0]
        return _best_rank(self._deep[key], targets)

    def passing(self, config: RetrieverConfig, targets: list[str]) -> list[str]:
        """The targets that pass the config's metadata filter."""
        if not config.filter_json or not targets:
            return targets
        return self.index.collection.get(ids=targets, where=config.filter, include=[])["ids"]


def _span(chunk: Chunk) -> Span:
    return Span(chunk.doc_id, chunk.start, chunk.start + len(chunk.text))


def _split(chunks: list[Span], spans: list[Span]) -> bool:
    """A relevant span no chunk holds whole, though it is no longer than the document's longest chunk (a span
    longer than every chunk, a whole-document label for one, is split by any chunking)."""
    longest = max((c.end - c.start for c in chunks), default=0)
    return any(
        s.end - s.start <= longest and not any(c.start <= s.start and s.end <= c.end for c in chunks) for s in spans
    )


def _best_rank(ranking: Sequence[str], targets: Sequence[str]) -> int | None:
    ranks = [n for n, chunk_id in enumerate(ranking, start=1) if chunk_id in set(targets)]
    return min(ranks) if ranks else None


# ---------------------------------------------------------------- causes


def _diagnose(lab: _Lab, item: _Question, config: Config, doc_id: str) -> tuple[str, str, int | None, bool]:
    """(cause, detail, rank, re-queried) of a relevant document `config` did not retrieve."""
    targets = item.targets[doc_id]
    final = item.results[config.config_id]
    if set(targets) & set(final.chunk_ids):
        return (
            "unexplained",
            "the recomputed list retrieves it: the index or a model changed since the run",
            None,
            False,
        )
    if isinstance(config, RerankConfig):
        return _diagnose_rerank(lab, item, config, doc_id)
    if isinstance(config, EnsembleConfig):
        return _diagnose_ensemble(lab, item, config, doc_id)
    if isinstance(config, BM25Config):
        return _diagnose_bm25(lab, item, config, doc_id)
    return _diagnose_vector(lab, item, config, doc_id)


def _not_found(item: _Question, doc_id: str, where: str, rank: int | None, requeried: bool) -> tuple:
    found = f"rank {rank} in a deeper search" if rank is not None else f"past rank {DEEP_RANK} even in a deeper search"
    if doc_id in item.split:
        return "split", f"a relevant span crosses a chunk boundary; not in {where} ({found})", rank, requeried
    return "not_in_pool", f"not in {where} ({found})", rank, requeried


def _diagnose_vector(lab: _Lab, item: _Question, config: RetrieverConfig, doc_id: str) -> tuple:
    targets = lab.passing(config, item.targets[doc_id])
    if not targets:
        return "filtered", f"no chunk of {doc_id} passes the filter {config.filter_json}", None, False
    pool = item.results[lab.pools[config].config_id]
    rank = _best_rank(pool.chunk_ids, targets)
    if rank is None:
        deep = lab.deep_rank(item, config, targets)
        return _not_found(item, doc_id, f"the {len(pool.chunk_ids)} candidates Chroma searched", deep, True)
    score = pool.scores[rank - 1]
    if rank > config.candidates:
        limit = f"fetch_k {config.fetch_k}" if config.search_type == "mmr" else f"k {config.k}"
        return "below_k", f"rank {rank}, past {limit} (score {score:.3f})", rank, False
    if config.search_type == "similarity_score_threshold":
        return "threshold", f"score {score:.3f} < score_threshold {config.score_threshold:g} (rank {rank})", rank, False
    if config.search_type == "mmr":
        final = item.results[config.config_id]
        target = pool.embeddings[rank - 1]
        cosines = [_cosine(target, e) for e in final.embeddings]
        if not cosines:
            return "mmr", f"rank {rank} within fetch_k, not selected (MMR selected nothing)", rank, False
        best = int(np.argmax(cosines))
        return (
            "mmr",
            f"rank {rank} within fetch_k {config.fetch_k}, crowded out by {final.chunk_ids[best]} "
            f"(cosine {cosines[best]:.3f})",
            rank,
            False,
        )
    return "unexplained", f"rank {rank} within k but not retrieved by the run", rank, False


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def _bm25_ranking(lab: _Lab, item: _Question, config: BM25Config) -> tuple[np.ndarray, np.ndarray]:
    """(chunk positions best first, as the BM25 retriever orders them; the scores)."""
    scores = bm25_side(lab.index).scores(config.tokenizer, config.k1, config.b, item.question.question)
    return np.argsort(scores)[::-1], scores


def _diagnose_bm25(lab: _Lab, item: _Question, config: BM25Config, doc_id: str) -> tuple:
    side = bm25_side(lab.index)
    order, scores = _bm25_ranking(lab, item, config)
    positions = [side.position[t] for t in item.targets[doc_id] if t in side.position]
    best = max(positions, key=lambda p: scores[p], default=None)
    if best is None or scores[best] <= 0:
        return _not_found(item, doc_id, "BM25's matches (no query term in it)", None, False)
    rank = int(np.nonzero(order == best)[0][0]) + 1
    return "below_k", f"rank {rank}, past k {config.k} (BM25 score {scores[best]:.2f})", rank, False


def _diagnose_ensemble(lab: _Lab, item: _Question, config: EnsembleConfig, doc_id: str) -> tuple:
    texts = {lab.text(t) for t in item.targets[doc_id]} if item.targets[doc_id] else set()
    found = [
        f"{r.config_id} #{n}"
        for r in config.retrievers
        for n, (chunk_id, text) in enumerate(
            zip(item.results[r.config_id].chunk_ids, item.results[r.config_id].texts), start=1
        )
        if chunk_id in item.targets[doc_id]
    ]
    if found:
        kept = texts & set(item.results[config.config_id].texts)
        why = "its text is kept once, under another chunk" if kept else "fusion did not keep it"
        return "fusion", f"found by {', '.join(found)}; {why}", None, False
    stages = [(r, _diagnose(lab, item, r, doc_id)) for r in config.retrievers]
    stage, (cause, detail, rank, requeried) = min(stages, key=lambda s: _closeness(s[1]))
    return cause, f"no first stage found it; closest {stage.config_id}: {detail}", rank, requeried


def _closeness(diagnosis: tuple) -> tuple[int, int]:
    """How near a stage came to retrieving: later causes are nearer; then the better rank."""
    cause, _, rank, _ = diagnosis
    return -CAUSES.index(cause), rank if rank is not None else DEEP_RANK + 1


def _reranked(item: _Question, config: RerankConfig) -> list[str]:
    """The base's chunks in the reranker's order (all of them, not only top_n)."""
    base = item.results[config.base.config_id]
    scores = reranker(config.model).scores(item.question.question, base.texts)
    return rerank(base, scores, len(base.chunk_ids)).chunk_ids


def _diagnose_rerank(lab: _Lab, item: _Question, config: RerankConfig, doc_id: str) -> tuple:
    base = item.results[config.base.config_id]
    rank = _best_rank(base.chunk_ids, item.targets[doc_id])
    if rank is None:
        cause, detail, deep, requeried = _diagnose(lab, item, config.base, doc_id)
        return cause, f"the base {config.base.config_id} missed it: {detail}", deep, requeried
    position = _best_rank(_reranked(item, config), item.targets[doc_id])
    return (
        "reranker",
        f"base rank {rank}, reranked to {position} of {len(base.chunk_ids)}, past top_n {config.top_n}",
        position,
        False,
    )


# ---------------------------------------------------------------- what-ifs


def _found_docs(chunk_ids: Sequence[str], item: _Question) -> set[str]:
    chosen = set(chunk_ids)
    return {doc for doc, targets in item.targets.items() if chosen & set(targets)}


def _relevant_chunks(item: _Question) -> set[str]:
    return {t for targets in item.targets.values() for t in targets}


def _replay(lab: _Lab, item: _Question, config: Config, change: str, value: Any) -> list[str] | None:
    """The config's chunk ids with one parameter changed, from the recomputed candidates (None: not replayable)."""
    if isinstance(config, RetrieverConfig):
        pool = item.results[lab.pools[config].config_id]
        if change == "k":
            top = range(min(value, len(pool.chunk_ids)))
            if config.search_type == "similarity_score_threshold":
                return [pool.chunk_ids[i] for i in top if pool.scores[i] >= config.score_threshold]
            return [pool.chunk_ids[i] for i in top]
        if change == "score_threshold":
            return [pool.chunk_ids[i] for i in range(min(config.k, len(pool.chunk_ids))) if pool.scores[i] >= value]
        if change == "lambda_mult":
            candidates = pool.embeddings[: min(config.fetch_k, len(pool.chunk_ids))]
            if not len(candidates):
                return []
            picks = maximal_marginal_relevance(item.vector, candidates, k=config.k, lambda_mult=value)
            return [pool.chunk_ids[i] for i in picks]
    if isinstance(config, BM25Config) and change == "k":
        order, _ = _bm25_ranking(lab, item, config)
        return [bm25_side(lab.index).chunk_ids[p] for p in order[:value]]
    if isinstance(config, RerankConfig) and change == "top_n":
        return _reranked(item, config)[:value]
    return None


def _what_if_values(config: Config) -> list[tuple[str, Any, str]]:
    """(parameter, value, label) to replay for a config."""
    values: list[tuple[str, Any, str]] = []
    if isinstance(config, (RetrieverConfig, BM25Config)) and getattr(config, "search_type", "") != "mmr":
        values += [("k", k, f"k {k}") for k in sorted({config.k * 2, config.k * 4, 50}) if k > config.k]
    if isinstance(config, RetrieverConfig) and config.search_type == "similarity_score_threshold":
        lower = sorted({round(config.score_threshold - s, 2) for s in THRESHOLD_STEPS if config.score_threshold >= s})
        values += [("score_threshold", t, f"score_threshold {t:g}") for t in reversed(lower)]
    if isinstance(config, RetrieverConfig) and config.search_type == "mmr":
        values += [("lambda_mult", lam, f"lambda_mult {lam:g}") for lam in LAMBDAS if lam != config.lambda_mult]
    if isinstance(config, RerankConfig):
        most = config.base.most_returned()
        values += [("top_n", n, f"top_n {n}") for n in sorted({config.top_n * 2, most}) if config.top_n < n <= most]
    return values


def _what_ifs(lab: _Lab, prepared: list[_Question], config: Config, misses: list[Miss]) -> list[WhatIf]:
    """Each parameter's values from the mildest change on; a value that recovers no more misses than a milder
    one of the same parameter (k 20 and k 50 both recovering what k 10 does) is left out: it only admits more.
    lambda_mult's values are alternatives, not steps, so each is kept."""
    missed = defaultdict(set)
    for miss in misses:
        missed[miss.question_id].add(miss.doc_id)
    answers = []
    most: dict[str, int] = defaultdict(int)  # the most misses a milder value of the parameter recovered
    for change, value, label in _what_if_values(config):
        recovered = admitted = lost = 0
        for item in prepared:
            now = item.results[config.config_id].chunk_ids
            replayed = _replay(lab, item, config, change, value)
            found = _found_docs(replayed, item)
            recovered += len(found & missed[item.question.id])
            lost += len(_found_docs(now, item) - found)
            admitted += len(set(replayed) - set(now) - _relevant_chunks(item))
        if change != "lambda_mult" and 0 < recovered <= most[change]:
            continue
        most[change] = max(most[change], recovered)
        answers.append(
            WhatIf(
                config.config_id,
                label,
                recovered,
                len(misses),
                admitted if change != "lambda_mult" else None,
                lost if change == "lambda_mult" else None,
            )
        )
    return answers


# ---------------------------------------------------------------- the report


def why_missed(
    run: Run, index: Index, labels: Labels, source: str = "gold", config_ids: Sequence[str] | None = None
) -> WhyReport:
    """Every miss of the run's configs (or of `config_ids`) under `source`, with its cause, and the what-ifs."""
    check_index(run, index)
    if run.rows.empty or "chunk_ids" not in run.rows:
        raise LabError(f"run {run.run_id} has no retrieved lists to diagnose (it holds no rows)")
    stored = {c["config_id"]: c for c in run.configs}
    unknown = [c for c in config_ids or () if c not in stored]
    if unknown:
        raise LabError(f"run {run.run_id} has no config '{unknown[0]}' (its configs: {', '.join(stored)})")
    chosen = list(config_ids or stored)
    skipped = {
        c: "an external retriever: the lab never sees its candidates"
        for c in chosen
        if KINDS[stored[c]["search_type"]].external
    }
    configs = [config_from_params(stored[c], f"config {c}") for c in chosen if c not in skipped]
    if not configs:
        raise LabError(
            f"run {run.run_id} has no candidates for the misses and what-ifs: its configs "
            f"({', '.join(skipped)}) are external retrievers, whose candidate lists the lab never sees"
        )
    spans = labels.spans(source)
    lab = _Lab(index, configs)
    rows = run.rows.set_index(["question_id", "config_id"])["chunk_ids"]
    questions = [q for q in run.questions if q.id in spans]
    misses: list[Miss] = []
    prepared: list[_Question] = []
    for start in range(0, len(questions), BLOCK):
        for item in lab.prepare(questions[start : start + BLOCK], spans):
            prepared.append(item)
            for config in configs:
                found = _found_docs(list(rows[item.question.id, config.config_id]), item)
                for doc_id in sorted(set(item.targets) - found):
                    cause, detail, rank, requeried = _diagnose(lab, item, config, doc_id)
                    misses.append(Miss(item.question.id, config.config_id, doc_id, cause, detail, rank, requeried))
    what_ifs = [
        w for c in configs for w in _what_ifs(lab, prepared, c, [m for m in misses if m.config_id == c.config_id])
    ]
    return WhyReport(
        run.run_id,
        source,
        misses,
        what_ifs,
        [c.config_id for c in configs],
        skipped,
        sum(m.requeried for m in misses),
    )


def why_for_run(
    run: Run,
    indexes: IndexStore,
    labels_file: str | Path | None = None,
    source: str | None = None,
    config_ids: Sequence[str] | None = None,
) -> WhyReport:
    """`why_missed` on the run's own index, under `source` (default gold) with the labels of `labels_file`
    (default: the label file beside the run's question set)."""
    labels = load_labels(labels_file if labels_file is not None else run_label_file(run))
    return why_missed(run, indexes.open(run.info.index.name), labels, source or "gold", config_ids)


def check_index(run: Run, index: Index) -> None:
    """The index is the build the run used: otherwise the candidates would be other chunks."""
    if index.manifest.created_at != run.info.index.created_at:
        raise LabError(
            f"index '{index.manifest.name}' was rebuilt after run {run.run_id} (built {index.manifest.created_at}, "
            f"the run used the build of {run.info.index.created_at}): the misses cannot be diagnosed"
        )
