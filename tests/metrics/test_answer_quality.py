"""Answer quality scores, on examples worked out by hand in English and Chinese."""

from __future__ import annotations

import math

import pytest

from eval.metrics import answer_tokens, contains_answer, exact_match, token_f1


def test_english_normalization_follows_squad() -> None:
    assert answer_tokens("The  Denver Broncos!") == ["denver", "broncos"]
    assert answer_tokens("Levi's Stadium, an arena") == ["levis", "stadium", "arena"]


def test_chinese_is_split_into_characters_and_words() -> None:
    assert answer_tokens("答案是：巴黎。") == ["答", "案", "是", "巴", "黎"]
    assert answer_tokens("RAG系统，2018年") == ["rag", "系", "统", "2018", "年"]


def test_english_scores() -> None:
    prediction = "The Denver Broncos won."
    assert exact_match(prediction, ["Denver Broncos"]) == 0.0
    assert exact_match("the denver broncos", ["Denver Broncos!"]) == 1.0
    # predicted {denver, broncos, won}, gold {denver, broncos}: P = 2/3, R = 1, F1 = 0.8
    assert token_f1(prediction, ["Denver Broncos"]) == pytest.approx(0.8)
    assert contains_answer(prediction, ["Denver Broncos"]) == 1.0
    assert contains_answer("Broncos of Denver", ["Denver Broncos"]) == 0.0  # order matters
    assert contains_answer("comparisons", ["Paris"]) == 0.0  # words, not substrings


def test_best_gold_answer_wins() -> None:
    golds = ["Santa Clara, California", "Levi's Stadium"]
    prediction = "Levi's Stadium in Santa Clara"
    # vs gold 1: 2 shared of 5 and 3 -> F1 0.5; vs gold 2: 2 shared of 5 and 2 -> P 0.4, R 1, F1 4/7
    assert token_f1(prediction, golds) == pytest.approx(4 / 7)
    assert contains_answer(prediction, golds) == 1.0
    assert exact_match("Levi's stadium", golds) == 1.0


def test_chinese_scores() -> None:
    # predicted 答 案 是 巴 黎, gold 巴 黎: P = 2/5, R = 1, F1 = 4/7
    assert token_f1("答案是巴黎。", ["巴黎"]) == pytest.approx(4 / 7)
    assert exact_match("答案是巴黎。", ["巴黎"]) == 0.0
    assert exact_match("巴黎。", "巴黎") == 1.0
    assert contains_answer("答案是巴黎。", ["巴黎"]) == 1.0
    assert contains_answer("巴是黎", ["巴黎"]) == 0.0
    # numbers stay whole: 1949 年 成 立 vs gold 1949 年: P = 2/4, R = 1, F1 = 2/3
    assert token_f1("1949年成立", ["1949年"]) == pytest.approx(2 / 3)
    assert token_f1("北京", ["上海"]) == 0.0


def test_no_gold_answers_gives_nan() -> None:
    for score in (exact_match, token_f1, contains_answer):
        assert math.isnan(score("anything", []))
