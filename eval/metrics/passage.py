"""Passage-level relevance: retrieved chunks graded by their overlap with judged document spans.

The overlap rule: a chunk is the characters [start, end) of its document, end = start + len(text); a judged
span is [start, end) too. A chunk overlaps a span when both are of the same document and they share at least
one character (`chunk.start < span.end and span.start < chunk.end`: spans that only touch do not overlap).
A chunk takes the best grade of the judged spans it overlaps; a chunk that overlaps none is unjudged, and
counts as not relevant (as in TREC). A span is relevant when its grade is >= 1; overlapping relevant spans
(e.g. three annotators marking the same answer a word apart) are one relevant passage, their union, at their
best grade.

`passage_precision` counts every chunk with grade >= 1, `passage_recall` the relevant passages that a
retrieved chunk overlaps. `passage_ndcg` credits each relevant passage once, to its highest-ranked
overlapping chunk, with the passage's grade as gain (a second chunk over the same answer adds nothing, as a
second chunk of one document adds nothing at document level); the ideal ranking is every relevant passage by
grade. It is the ranking family's nDCG over that list, so it agrees with ranx on span qrels.

`judged` (`judged_share`, the one definition) is the share of the retrieved chunks that carry a grade under the
source, of any grade. Under a complete source (`complete=True`: `gold` and `generated`, which mark every relevant
passage of a question they label) a chunk of a labelled question that overlaps none of its spans is judged not
relevant (grade 0), so `judged` is 1 there; under an LLM or human source an unmarked chunk is unjudged. An
empty list has nothing to judge: its `judged` is NaN (not 0), so it stays out of a config's judged share.
Cutoffs `@k` count chunks and divide precision and judged by k, as ranx and ir_measures do. A question without
a relevant passage gets NaN, except `judged`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from eval.metrics.catalogue import Metric, names, parse_metric
from eval.metrics.ranking import doc_metrics, precision
from eval.schema import Span

PASSAGE = (
    Metric(
        "passage_precision",
        "Passage precision",
        "relevance",
        True,
        "retrieved chunks overlapping a relevant judged span / retrieved chunks",
        at_cutoff="chunks among the first {k} retrieved that overlap a relevant judged span / {k}",
    ),
    Metric(
        "passage_recall",
        "Passage recall",
        "relevance",
        True,
        "relevant judged spans overlapped by a retrieved chunk / relevant judged spans",
        at_cutoff="relevant judged spans overlapped by one of the first {k} retrieved chunks / relevant spans",
    ),
    Metric(
        "passage_ndcg",
        "Passage nDCG",
        "relevance",
        True,
        "nDCG over the retrieved chunks, each relevant span credited once (to its first overlapping chunk) "
        "with its grade as gain",
        at_cutoff="passage nDCG of the first {k} retrieved chunks",
    ),
    Metric(
        "judged",
        "Judged",
        "relevance",
        True,
        "share of the retrieved chunks the label source has graded (unjudged chunks count as not relevant; "
        "under gold and generated labels every chunk of a labelled question is judged; NaN when nothing was "
        "retrieved)",
        at_cutoff="chunks among the first {k} retrieved that the label source has graded / {k}",
    ),
)
PASSAGE_METRIC_KEYS = names(PASSAGE)


def overlaps(a: Span, b: Span) -> bool:
    """Same document and at least one shared character."""
    return a.doc_id == b.doc_id and a.start < b.end and b.start < a.end


def chunk_grades(chunks: Sequence[Span], judged: Sequence[Span], complete: bool = False) -> list[int | None]:
    """The grade of each chunk under the overlap rule: the best grade of the judged spans it overlaps; a chunk
    that overlaps none is unjudged (None), or grade 0 under a `complete` source that labels this question."""
    by_doc: dict[str, list[Span]] = {}
    for span in judged:
        by_doc.setdefault(span.doc_id, []).append(span)
    unmarked = 0 if complete and judged else None
    return [max((s.grade for s in by_doc.get(c.doc_id, ()) if overlaps(c, s)), default=unmarked) for c in chunks]


def judged_share(grades: Sequence[int | None], k: int | None = None) -> float:
    """`judged@k` of a list of chunk grades (`chunk_grades`): graded chunks among the first k / k (without a
    cutoff: / the list's length). NaN for an empty list: nothing retrieved is not "unjudged"."""
    if not len(grades):
        return np.nan
    return precision(np.array([g is not None for g in grades], dtype=float), k)


def relevant_passages(judged: Sequence[Span]) -> list[Span]:
    """The relevant spans (grade >= 1), overlapping ones merged into their union at their best grade."""
    merged: list[Span] = []
    for span in sorted((s for s in judged if s.grade >= 1), key=lambda s: (s.doc_id, s.start)):
        if merged and overlaps(merged[-1], span):
            last = merged[-1]
            merged[-1] = Span(last.doc_id, last.start, max(last.end, span.end), max(last.grade, span.grade))
        else:
            merged.append(span)
    return merged


def passage_metrics(
    chunks: Sequence[Span], judged: Sequence[Span], metrics: Sequence[str] = PASSAGE_METRIC_KEYS, complete: bool = False
) -> dict[str, float]:
    """Passage-level relevance of one ranked list of chunks against one source's judged spans of its question,
    one value per requested metric (names of `PASSAGE`, optionally `@k`); `complete`: see `chunk_grades`."""
    plan = [(spec, *parse_metric(spec)) for spec in metrics]
    unknown = [spec for spec, name, _ in plan if name not in PASSAGE_METRIC_KEYS]
    if unknown:
        raise ValueError(
            f"unknown passage metric {unknown[0]!r}: use one of {', '.join(PASSAGE_METRIC_KEYS)}, optionally @k"
        )
    grades = chunk_grades(chunks, judged, complete)
    passages = relevant_passages(judged)
    found = [[i for i, p in enumerate(passages) if overlaps(c, p)] for c in chunks]
    ndcg_specs = [spec.replace("passage_", "", 1) for spec, name, _ in plan if name == "passage_ndcg"]
    ndcg = (
        doc_metrics(_credited(found, passages), {str(i): p.grade for i, p in enumerate(passages)}, ndcg_specs)
        if ndcg_specs
        else {}
    )
    values = {}
    for spec, name, k in plan:
        if name == "judged":
            values[spec] = judged_share(grades, k)
        elif not passages:
            values[spec] = np.nan
        elif name == "passage_precision":
            values[spec] = precision(np.array([(g or 0) >= 1 for g in grades], dtype=float), k)
        elif name == "passage_recall":
            values[spec] = len({i for hits in found[:k] for i in hits}) / len(passages)
        else:
            values[spec] = ndcg[spec.replace("passage_", "", 1)]
    return values


def _credited(found: list[list[int]], passages: list[Span]) -> list[str]:
    """One item per chunk in rank order: the best relevant passage it is the first to overlap (its index as
    id), or a unique miss id; `doc_metrics` over this list and the passages' grades is the passage nDCG."""
    credited: set[int] = set()
    items = []
    for rank, hits in enumerate(found):
        new = [i for i in hits if i not in credited]
        if new:
            best = max(new, key=lambda i: passages[i].grade)
            credited.add(best)
            items.append(str(best))
        else:
            items.append(f"miss{rank}")
    return items
