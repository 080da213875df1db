"""LLM-judged answer metrics (ragas through an OpenAI-compatible judge); `eval.judge` computes them.

Each writes its value and, when the value is NaN, the reason into the shared `judge_error` column."""

from __future__ import annotations

from eval.metrics.catalogue import Metric, columns

JUDGE = (
    Metric(
        "judge_faithfulness",
        "Faithfulness (LLM judge)",
        "answer",
        True,
        "ragas Faithfulness: statements of the answer supported by the retrieved chunks / statements",
        columns=("judge_faithfulness", "judge_error"),
    ),
    Metric(
        "judge_context_precision",
        "Context precision (LLM judge)",
        "answer",
        True,
        "ragas LLMContextPrecisionWithReference: average precision of the chunks the judge finds useful",
        columns=("judge_context_precision", "judge_error"),
    ),
    Metric(
        "judge_answer_relevancy",
        "Answer relevancy (LLM judge)",
        "answer",
        True,
        "ragas ResponseRelevancy: mean cosine of the question to questions generated from the answer",
        columns=("judge_answer_relevancy", "judge_error"),
    ),
)
JUDGE_COLUMNS = columns(JUDGE)
