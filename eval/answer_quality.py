"""Answer quality against gold answers: exact match, token F1 and contains-answer, in [0, 1].

English follows the SQuAD evaluation script: lowercase, drop ASCII punctuation and the articles a/an/the,
split on whitespace. Text with CJK characters is compared character by character, as CMRC 2018 does: each CJK
character is a token, runs of other characters (English words, numbers) are tokens, and Unicode punctuation
goes too. Each score is the best over the gold answers; NaN when there are none.
"""
from __future__ import annotations

import math
import re
import string
import unicodedata
from collections import Counter
from typing import Callable, Sequence

from eval.prompts import CJK_CHAR, CJK_RANGES

ARTICLES = re.compile(r"\b(a|an|the)\b")
CJK_TEXT_TOKEN = re.compile(f"[{CJK_RANGES}]|[^\\s{CJK_RANGES}]+")
ASCII_PUNCTUATION = frozenset(string.punctuation)


def answer_tokens(text: str) -> list[str]:
    """The normalized tokens that the scores compare."""
    has_cjk = CJK_CHAR.search(text) is not None
    kept = (char for char in text.lower() if char not in ASCII_PUNCTUATION
            and not (has_cjk and unicodedata.category(char).startswith("P")))
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


def _best(prediction: str, answers: str | Sequence[str],
          score: Callable[[list[str], list[str]], float]) -> float:
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
    precision, recall = shared / len(predicted), shared / len(gold)
    return 2 * precision * recall / (precision + recall)


def _contains(predicted: list[str], gold: list[str]) -> float:
    size = len(gold)
    return float(any(predicted[start:start + size] == gold for start in range(len(predicted) - size + 1)))
