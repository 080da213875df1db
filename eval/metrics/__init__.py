"""Retrieval and answer metrics: the catalogue (`METRICS`), one module per family, and the statistics.

Families: `ranking` (document-level relevance, ranx-compatible, `name@k` cutoffs, graded relevance),
`answer` (retrieved chunks containing the answer; generated-answer quality), `diversity`, `latency`,
`ragas` (context metrics) and `judge` (LLM-judged answer metrics); `statistics` aggregates over questions
(bootstrap CIs, paired tests). Per-question functions return plain dicts of floats; a question that cannot be
scored gets NaN, never 0. Adding a metric is declaring it in its family's module and listing the family below.
"""

from eval.metrics.answer import (
    ANSWER,
    ANSWER_METRIC_KEYS,
    GENERATED_ANSWER,
    answer_metric_columns,
    answer_metrics,
    answer_tokens,
    contains_answer,
    exact_match,
    normalize_text,
    token_f1,
)
from eval.metrics.catalogue import Catalogue, Metric, columns, names, parse_metric
from eval.metrics.diversity import (
    CONTEXT,
    DIVERSITY,
    DIVERSITY_METRIC_KEYS,
    context_chars,
    diversity_metric_columns,
    diversity_metrics,
)
from eval.metrics.judge import JUDGE, JUDGE_COLUMNS
from eval.metrics.latency import GENERATION_LATENCY, RETRIEVAL_LATENCY
from eval.metrics.passage import PASSAGE
from eval.metrics.ragas import RAGAS, RAGAS_METRIC_KEYS, ragas_context_metrics
from eval.metrics.ranking import DOC_METRIC_KEYS, RANKING, doc_metric_columns, doc_metrics
from eval.metrics.statistics import aggregate, bootstrap_ci, paired_differences, paired_test

# The order is the order of tables, exports and menus.
METRICS = Catalogue(
    RANKING, PASSAGE, RAGAS, ANSWER, GENERATED_ANSWER, JUDGE, DIVERSITY, CONTEXT, RETRIEVAL_LATENCY, GENERATION_LATENCY
)

__all__ = [
    "ANSWER",
    "ANSWER_METRIC_KEYS",
    "CONTEXT",
    "Catalogue",
    "DIVERSITY",
    "DIVERSITY_METRIC_KEYS",
    "DOC_METRIC_KEYS",
    "GENERATED_ANSWER",
    "GENERATION_LATENCY",
    "JUDGE",
    "JUDGE_COLUMNS",
    "METRICS",
    "Metric",
    "RAGAS",
    "RAGAS_METRIC_KEYS",
    "RANKING",
    "RETRIEVAL_LATENCY",
    "aggregate",
    "answer_metric_columns",
    "answer_metrics",
    "answer_tokens",
    "bootstrap_ci",
    "columns",
    "contains_answer",
    "context_chars",
    "diversity_metric_columns",
    "diversity_metrics",
    "doc_metric_columns",
    "doc_metrics",
    "exact_match",
    "names",
    "normalize_text",
    "paired_differences",
    "paired_test",
    "parse_metric",
    "ragas_context_metrics",
    "token_f1",
]
