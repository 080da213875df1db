"""Answer-level metrics: do the retrieved chunks contain a gold answer, and how good is the generated answer.

Retrieved chunks (`answer_metrics`, computed for every row): a chunk is relevant when its normalized text
(`normalize_text`: NFKC, lowercase, no punctuation, Chinese included) contains a normalized gold answer.

Generated answers (`exact_match`, `token_f1`, `contains_answer`, computed by `eval.pipeline`), in [0, 1]:
English follows the SQuAD evaluation script: lowercase, drop ASCII punctuation and the articles a/an/the,
split on whitespace. Text with CJK characters is compared character by character, as CMRC 2018 does: each CJK
character is a token, runs of other characters (English words, numbers) are tokens, and Unicode punctuation
goes too. Each score is the best over the gold answers.

A question without (non-empty) gold answers cannot be scored: NaN.
"""

from __future__ import annotations

import math
import re
import string
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache

import numpy as np

from eval.metrics.catalogue import Metric, names
from eval.metrics.ranking import RankedLists, hit_rates, precisions, reciprocal_ranks
from eval.text import CJK_CHAR, CJK_RANGES

ANSWER = (
    Metric(
        "answer_hit_rate",
        "Answer hit rate",
        "answer",
        True,
        "1 if any retrieved chunk contains a gold answer (normalized), else 0",
    ),
    Metric(
        "answer_precision", "Answer precision", "answer", True, "chunks containing a gold answer / retrieved chunks"
    ),
    Metric(
        "answer_mrr", "Answer MRR", "answer", True, "1 / rank of the first chunk containing a gold answer (0 if none)"
    ),
)
GENERATED_ANSWER = (
    Metric(
        "exact_match",
        "Exact match",
        "answer",
        True,
        "1 if the normalized generated answer equals a normalized gold answer",
    ),
    Metric("f1", "Answer F1", "answer", True, "best token-overlap F1 between the generated answer and a gold answer"),
    Metric(
        "contains_answer",
        "Contains answer",
        "answer",
        True,
        "1 if the normalized generated answer contains a normalized gold answer",
    ),
)
ANSWER_METRIC_KEYS = names(ANSWER)


# --- retrieved chunks ---


@lru_cache(maxsize=1)
def _punctuation_table() -> dict[int, None]:
    """str.translate table deleting ASCII punctuation and every Unicode P* character (，。、《》…)."""
    unicode_punct = (c for c in map(chr, range(sys.maxunicode + 1)) if unicodedata.category(c).startswith("P"))
    return dict.fromkeys(map(ord, {*string.punctuation, *unicode_punct}))


@lru_cache(maxsize=65536)  # a sweep normalizes the same chunks for every config
def normalize_text(s: str) -> str:
    """NFKC (full-width -> ASCII), lowercase, delete punctuation (incl. Chinese), collapse whitespace."""
    text = unicodedata.normalize("NFKC", s).lower().translate(_punctuation_table())
    return " ".join(text.split())


def answer_metrics(chunk_texts: Sequence[str], answers: Iterable[str]) -> dict[str, float]:
    """answer_hit_rate (any chunk relevant), answer_precision (relevant chunks / chunks),
    answer_mrr (1 / rank of the first relevant chunk). Empty list: 0; no (non-empty) answers: NaN.
    """
    return {name: values[0] for name, values in answer_metric_columns([chunk_texts], [answers]).items()}


def answer_metric_columns(
    chunk_texts: Sequence[Sequence[str]], answers: Sequence[Iterable[str]]
) -> dict[str, list[float]]:
    """`answer_metrics` of many lists at once (list i against answers[i]): one column of values per metric."""
    rel, unanswerable = [], []
    for texts, golds in zip(chunk_texts, answers, strict=True):
        gold = {a for a in map(normalize_text, golds) if a}
        unanswerable.append(not gold)
        rel.append([float(any(g in text for g in gold)) for text in map(normalize_text, texts)])
    lists = RankedLists.of(rel)
    columns = {}
    for name, compute in (
        ("answer_hit_rate", hit_rates),
        ("answer_precision", precisions),
        ("answer_mrr", reciprocal_ranks),
    ):
        values = compute(lists, None)
        values[unanswerable] = np.nan
        columns[name] = values.tolist()
    return columns


# --- generated answers ---

ARTICLES = re.compile(r"\b(a|an|the)\b")
CJK_TEXT_TOKEN = re.compile(f"[{CJK_RANGES}]|[^\\s{CJK_RANGES}]+")
ASCII_PUNCTUATION = frozenset(string.punctuation)


def answer_tokens(text: str) -> list[str]:
    """The normalized tokens that the scores compare."""
    has_cjk = CJK_CHAR.search(text) is not None
    kept = (
        char
        for char in text.lower()
        if char not in ASCII_PUNCTUATION and not (has_cjk and unicodedata.category(char).startswith("P"))
    )
    text = ARTICLES.sub(" ", "".join(kept))
    return CJK_TEXT_TOKEN.findall(text) if has_cjk else text.split()


def exact_match(prediction: str, answers: str | Sequence[str]) -> float:
    """1.0 when the prediction equals a gold answer after normalization."""
    return _best(prediction, answers, lambda predicted, gold: float(predicted == gold))


def token_f1(prediction: str, answers: str | Sequence[str]) -> float:
    """The F1 of the tokens the prediction shares with a gold answer (bags of tokens, as in SQuAD)."""
    return _best(prediction, answers, _f1)


def contains_answer(prediction: str, answers: str | Sequence[str]) -> float:
    """1.0 when a gold answer's tokens occur, in order and adjacent, in the prediction."""
    return _best(prediction, answers, _contains)


def _best(prediction: str, answers: str | Sequence[str], score: Callable[[list[str], list[str]], float]) -> float:
    golds = [answers] if isinstance(answers, str) else list(answers)
    if not golds:
        return math.nan
    predicted = answer_tokens(prediction)
    return max(score(predicted, answer_tokens(gold)) for gold in golds)


def _f1(predicted: list[str], gold: list[str]) -> float:
    if not predicted or not gold:
        return float(predicted == gold)
    shared = sum((Counter(predicted) & Counter(gold)).values())
    if shared == 0:
        return 0.0
    share_of_predicted, share_of_gold = shared / len(predicted), shared / len(gold)
    return 2 * share_of_predicted * share_of_gold / (share_of_predicted + share_of_gold)


def _contains(predicted: list[str], gold: list[str]) -> float:
    size = len(gold)
    return float(any(predicted[start : start + size] == gold for start in range(len(predicted) - size + 1)))
