"""Retrieval metrics: per-question relevance, answer-level and diversity scores, the metric registry,
bootstrap confidence intervals, paired significance tests and a ragas cross-check.

Per-question functions return plain dicts of floats. A question that cannot be scored (no relevant
ids, no gold answers, too few chunks) gets NaN, never 0, and every aggregate ignores NaN.
Relevance metrics agree with ranx (no cutoff) to 1e-9; `tests/test_metrics.py` checks it.
"""
from __future__ import annotations

import os
import string
import sys
import unicodedata
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import numpy as np
import pandas as pd

NAN = float("nan")
DOC_METRIC_KEYS = ("hit_rate", "precision", "recall", "mrr", "ndcg", "map")
ANSWER_METRIC_KEYS = ("answer_hit_rate", "answer_precision", "answer_mrr")
DIVERSITY_METRIC_KEYS = ("ild", "near_duplicate_rate", "distinct_doc_ratio", "n_retrieved")
RAGAS_METRIC_KEYS = ("ragas_id_context_precision", "ragas_id_context_recall",
                     "ragas_nonllm_context_recall")
# Elements of one random matrix block in the randomization test (about 32 MB of float64).
_BLOCK_ELEMENTS = 4_000_000


# --- rank metrics on a binary relevance vector (rel[i] = 1 when the item at rank i+1 is relevant) ---

def _hit_rate(rel: np.ndarray) -> float:
    """1 if any item is relevant, else 0."""
    return float(rel.any())


def _precision(rel: np.ndarray) -> float:
    """relevant items / items (0 for an empty list)."""
    return float(rel.mean()) if rel.size else 0.0


def _recall(rel: np.ndarray, n_relevant: int) -> float:
    """relevant items / |relevant|."""
    return float(rel.sum() / n_relevant)


def _mrr(rel: np.ndarray) -> float:
    """1 / rank of the first relevant item (0 if none)."""
    hits = np.flatnonzero(rel)
    return 1.0 / float(hits[0] + 1) if hits.size else 0.0


def _ndcg(rel: np.ndarray, n_relevant: int) -> float:
    """DCG / IDCG, DCG = sum_i rel_i / log2(i + 1); IDCG = sum_{i <= |relevant|} 1 / log2(i + 1)."""
    dcg = np.sum(rel / np.log2(np.arange(2, rel.size + 2)))
    idcg = np.sum(1.0 / np.log2(np.arange(2, n_relevant + 2)))
    return float(dcg / idcg)


def _average_precision(rel: np.ndarray, n_relevant: int) -> float:
    """sum over relevant ranks i of precision@i, divided by |relevant|."""
    precision_at = np.cumsum(rel) / np.arange(1, rel.size + 1)
    return float(np.sum(precision_at * rel) / n_relevant)


def doc_metrics(retrieved_doc_ids: Sequence[str], relevant_ids: Iterable[str]) -> dict[str, float]:
    """Document-level relevance of one retrieved list, ranx-compatible (no cutoff).

    Chunks are first reduced to documents, each at the rank of its first chunk; then on that list:
    hit_rate, precision = relevant / len(list), recall = relevant / |relevant|, mrr,
    ndcg (binary gains, ideal DCG over all |relevant| documents, as ranx) and
    map (average precision). An empty list scores 0; no relevant ids gives NaN everywhere.
    """
    relevant = set(relevant_ids)
    if not relevant:
        return dict.fromkeys(DOC_METRIC_KEYS, NAN)
    docs = dict.fromkeys(retrieved_doc_ids)
    rel = np.array([doc in relevant for doc in docs], dtype=float)
    n_rel = len(relevant)
    return {"hit_rate": _hit_rate(rel), "precision": _precision(rel), "recall": _recall(rel, n_rel),
            "mrr": _mrr(rel), "ndcg": _ndcg(rel, n_rel), "map": _average_precision(rel, n_rel)}


# --- answer-level metrics ---

@lru_cache(maxsize=1)
def _punctuation_table() -> dict[int, None]:
    """str.translate table deleting ASCII punctuation and every Unicode P* character (，。、《》…)."""
    unicode_punct = (c for c in map(chr, range(sys.maxunicode + 1))
                     if unicodedata.category(c).startswith("P"))
    return dict.fromkeys(map(ord, {*string.punctuation, *unicode_punct}))


@lru_cache(maxsize=65536)  # a sweep normalizes the same chunks for every config
def normalize_text(s: str) -> str:
    """NFKC (full-width -> ASCII), lowercase, delete punctuation (incl. Chinese), collapse whitespace."""
    text = unicodedata.normalize("NFKC", s).lower().translate(_punctuation_table())
    return " ".join(text.split())


def answer_metrics(chunk_texts: Sequence[str], answers: Iterable[str]) -> dict[str, float]:
    """Answer-level relevance: a chunk is relevant when its normalized text contains a normalized answer.

    answer_hit_rate (any chunk relevant), answer_precision (relevant chunks / chunks),
    answer_mrr (1 / rank of the first relevant chunk). Empty list: 0; no (non-empty) answers: NaN.
    """
    gold = {a for a in map(normalize_text, answers) if a}
    if not gold:
        return dict.fromkeys(ANSWER_METRIC_KEYS, NAN)
    texts = map(normalize_text, chunk_texts)
    rel = np.array([any(g in text for g in gold) for text in texts], dtype=float)
    return {"answer_hit_rate": _hit_rate(rel), "answer_precision": _precision(rel),
            "answer_mrr": _mrr(rel)}


# --- diversity ---

def diversity_metrics(embeddings: np.ndarray, doc_ids: Sequence[str],
                      near_duplicate_threshold: float = 0.95) -> dict[str, float]:
    """Diversity of one retrieved list of n chunks (embeddings n x d, L2-normalized).

    ild = mean over pairs of (1 - cos), near_duplicate_rate = share of pairs with
    cos >= threshold (both NaN when n < 2), distinct_doc_ratio = distinct doc ids / n
    (NaN when n = 0), n_retrieved = n.
    """
    n = len(doc_ids)
    out = {"ild": NAN, "near_duplicate_rate": NAN,
           "distinct_doc_ratio": len(set(doc_ids)) / n if n else NAN, "n_retrieved": float(n)}
    if n >= 2:
        vectors = np.asarray(embeddings, dtype=float)
        if vectors.shape[0] != n:
            raise ValueError(f"{vectors.shape[0]} embeddings for {n} doc ids")
        cos = np.clip(vectors @ vectors.T, -1.0, 1.0)[np.triu_indices(n, 1)]
        out["ild"] = float(np.mean(1.0 - cos))
        out["near_duplicate_rate"] = float(np.mean(cos >= near_duplicate_threshold))
    return out


# --- registry ---

Group = Literal["relevance", "answer", "diversity", "latency"]


@dataclass(frozen=True)
class MetricInfo:
    """What the UI needs to show a metric: label, group, direction and formula."""

    name: str
    label: str
    group: Group
    higher_is_better: bool
    description: str


def _registry(*entries: tuple[str, str, Group, bool, str]) -> dict[str, MetricInfo]:
    return {entry[0]: MetricInfo(*entry) for entry in entries}


METRICS: dict[str, MetricInfo] = _registry(
    ("hit_rate", "Hit rate", "relevance", True, "1 if any retrieved document is relevant, else 0"),
    ("precision", "Precision", "relevance", True,
     "relevant retrieved documents / retrieved documents (chunks of one document count once)"),
    ("recall", "Recall", "relevance", True, "relevant retrieved documents / relevant documents"),
    ("mrr", "MRR", "relevance", True, "1 / rank of the first relevant document (0 if none)"),
    ("ndcg", "nDCG", "relevance", True,
     "sum rel_i / log2(i+1) over the retrieved documents, divided by the same sum for "
     "all relevant documents ranked first"),
    ("map", "MAP", "relevance", True,
     "sum of precision@i at the ranks i of relevant documents / relevant documents"),
    ("ragas_id_context_precision", "ragas ID context precision", "relevance", True,
     "ragas IDBasedContextPrecision: |retrieved ids ∩ reference ids| / |retrieved ids| (sets)"),
    ("ragas_id_context_recall", "ragas ID context recall", "relevance", True,
     "ragas IDBasedContextRecall: |retrieved ids ∩ reference ids| / |reference ids| (sets)"),
    ("ragas_nonllm_context_recall", "ragas non-LLM context recall", "relevance", True,
     "ragas NonLLMContextRecall: share of reference contexts whose best Levenshtein "
     "similarity to a retrieved context exceeds 0.5"),
    ("answer_hit_rate", "Answer hit rate", "answer", True,
     "1 if any retrieved chunk contains a gold answer (normalized), else 0"),
    ("answer_precision", "Answer precision", "answer", True,
     "chunks containing a gold answer / retrieved chunks"),
    ("answer_mrr", "Answer MRR", "answer", True,
     "1 / rank of the first chunk containing a gold answer (0 if none)"),
    ("exact_match", "Exact match", "answer", True,
     "1 if the normalized generated answer equals a normalized gold answer"),
    ("f1", "Answer F1", "answer", True,
     "best token-overlap F1 between the generated answer and a gold answer"),
    ("contains_answer", "Contains answer", "answer", True,
     "1 if the normalized generated answer contains a normalized gold answer"),
    ("judge_faithfulness", "Faithfulness (LLM judge)", "answer", True,
     "ragas Faithfulness: statements of the answer supported by the retrieved chunks / statements"),
    ("judge_context_precision", "Context precision (LLM judge)", "answer", True,
     "ragas LLMContextPrecisionWithReference: average precision of the chunks the judge finds useful"),
    ("judge_answer_relevancy", "Answer relevancy (LLM judge)", "answer", True,
     "ragas ResponseRelevancy: mean cosine of the question to questions generated from the answer"),
    ("ild", "Intra-list diversity", "diversity", True,
     "mean over pairs of retrieved chunks of 1 - cosine similarity"),
    ("near_duplicate_rate", "Near-duplicate rate", "diversity", False,
     "pairs of retrieved chunks with cosine similarity >= threshold / pairs"),
    ("distinct_doc_ratio", "Distinct documents", "diversity", True,
     "distinct documents / retrieved chunks"),
    ("n_retrieved", "Chunks retrieved", "diversity", True, "number of chunks returned"),
    ("retrieval_ms", "Retrieval (ms)", "latency", False, "wall time of the retriever call"),
    ("ttft_ms", "Time to first token (ms)", "latency", False,
     "from the start of generation to the first streamed answer token"),
    ("total_ms", "Total (ms)", "latency", False, "from the start of generation to the last answer token"),
    ("tokens_per_s", "Tokens / s", "latency", True,
     "generated tokens / (time of last token - time of first token)"),
)


# --- aggregates ---

def _resample_counts(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """How often each of n items is drawn in each bootstrap resample (n_resamples x n)."""
    draws = np.random.default_rng(seed).integers(0, n, size=(n_resamples, n))
    offsets = n * np.arange(n_resamples)[:, None]
    counts = np.bincount((draws + offsets).ravel(), minlength=n_resamples * n)
    return counts.reshape(n_resamples, n).astype(float)


def _bootstrap_matrix(values: np.ndarray, confidence: float, n_resamples: int,
                      seed: int) -> np.ndarray:
    """Rows mean, low, high (3 x k) of the columns of values (n x k), NaN dropped per column.

    Columns with the same NaN rows share one matrix product: counts (resamples x n) @ values;
    a given n always gets the same counts, so columns and configs see the same resamples.
    """
    out = np.full((3, values.shape[1]), NAN)
    counts: dict[int, np.ndarray] = {}
    valid = ~np.isnan(values)
    patterns: dict[bytes, list[int]] = {}
    for j in range(values.shape[1]):
        patterns.setdefault(valid[:, j].tobytes(), []).append(j)
    tail = (1.0 - confidence) / 2 * 100
    for cols in patterns.values():
        x = values[valid[:, cols[0]]][:, cols]
        if len(x):
            if len(x) not in counts:
                counts[len(x)] = _resample_counts(len(x), n_resamples, seed)
            means = counts[len(x)] @ x / len(x)
            out[0, cols] = x.mean(axis=0)
            out[1:, cols] = np.percentile(means, [tail, 100 - tail], axis=0)
    return out


def bootstrap_ci(values: Iterable[float], confidence: float = 0.95, n_resamples: int = 1000,
                 seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): percentile bootstrap CI of the mean; NaN values are dropped first.

    Resamples are one matrix of draw counts (n_resamples x n) times the values. All NaN: NaNs.
    """
    column = np.asarray(values, dtype=float).reshape(-1, 1)
    mean, low, high = _bootstrap_matrix(column, confidence, n_resamples, seed)[:, 0]
    return float(mean), float(low), float(high)


def _sign_flip_pvalues(diffs: np.ndarray, n_resamples: int, seed: int) -> np.ndarray:
    """Two-sided randomization p-value per column of paired differences (n x k; NaN = left out).

    p = share of random sign flips s with |sum s_i d_i| >= |sum d_i| (as ranx's Fisher test, which
    swaps each pair with probability 1/2). Signs come in blocks of rows to bound memory.
    """
    valid = ~np.isnan(diffs)
    d = np.where(valid, diffs, 0.0)
    observed = np.abs(d.sum(axis=0)) * (1 - 1e-9)  # tolerance for summation-order rounding
    rng = np.random.default_rng(seed)
    rows = max(1, _BLOCK_ELEMENTS // max(len(d), 1))
    extreme = np.zeros(d.shape[1])
    for start in range(0, n_resamples, rows):
        signs = rng.integers(0, 2, size=(min(rows, n_resamples - start), len(d))) * 2.0 - 1.0
        extreme += np.sum(np.abs(signs @ d) >= observed, axis=0)
    return np.where(valid.any(axis=0), extreme / n_resamples, NAN)


def _t_test_pvalues(diffs: np.ndarray) -> np.ndarray:
    """Paired t-test p-value per column (scipy.stats.ttest_rel, NaN pairs omitted)."""
    from scipy.stats import ttest_rel

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        p = np.asarray(ttest_rel(diffs, np.zeros_like(diffs), nan_policy="omit").pvalue, float)
    all_zero = np.all((diffs == 0) | np.isnan(diffs), axis=0) & ~np.all(np.isnan(diffs), axis=0)
    return np.where(all_zero, 1.0, p).reshape(-1)


def _paired_pvalues(diffs: np.ndarray, method: str, n_resamples: int, seed: int) -> np.ndarray:
    if method == "randomization":
        return _sign_flip_pvalues(diffs, n_resamples, seed)
    if method == "t-test":
        return _t_test_pvalues(diffs)
    raise ValueError(f"unknown paired test {method!r}: use 'randomization' or 't-test'")


def paired_test(a: Iterable[float], b: Iterable[float],
                method: Literal["randomization", "t-test"] = "randomization",
                n_resamples: int = 10_000, seed: int = 0) -> float:
    """Two-sided p-value that paired samples a and b have the same mean (pairs with a NaN dropped).

    randomization: random sign flips of the differences (ranx's "fisher"); t-test: ttest_rel.
    All differences zero gives 1.0; no complete pair gives NaN.
    """
    diffs = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    diffs = diffs[~np.isnan(diffs)]
    if diffs.size == 0:
        return NAN
    return float(_paired_pvalues(diffs[:, None], method, n_resamples, seed)[0])


def aggregate(df: pd.DataFrame, metrics: Sequence[str], by: str = "config_id",
              baseline: str | None = None, alpha: float = 0.05, *, confidence: float = 0.95,
              n_bootstrap: int = 1000, n_randomization: int = 2000,
              method: Literal["randomization", "t-test"] = "randomization",
              seed: int = 0) -> pd.DataFrame:
    """One row per config (in order of appearance): n_questions, <m>_mean, <m>_low, <m>_high.

    With a baseline config: <m>_p (paired by question_id against the baseline) and <m>_sig (p < alpha).
    All configs x metrics go through one bootstrap and one randomization matrix product. Defaults
    (1000 bootstrap, 2000 randomization resamples) keep 30 configs x 1000 questions well under a
    second; p then has a resolution of 1/2000, below a Bonferroni 0.05 / 30.
    """
    metrics = list(metrics)
    if df.duplicated([by, "question_id"]).any():
        raise ValueError(f"several rows for one ({by}, question_id)")
    configs = list(pd.unique(df[by]))
    wide = df.pivot(index="question_id", columns=by, values=metrics)
    wide = wide.reindex(columns=pd.MultiIndex.from_product([metrics, configs])).astype(float)
    stats = _bootstrap_matrix(wide.to_numpy(), confidence, n_bootstrap, seed)
    stats = stats.reshape(3, len(metrics), len(configs))
    out = pd.DataFrame({by: configs, "n_questions": df[by].value_counts().reindex(configs).to_numpy()})
    p = None if baseline is None else _baseline_pvalues(
        wide.to_numpy(), configs, baseline, method, n_randomization, seed)
    for j, m in enumerate(metrics):
        out[f"{m}_mean"], out[f"{m}_low"], out[f"{m}_high"] = stats[:, j]
        if p is not None:
            out[f"{m}_p"], out[f"{m}_sig"] = p[j], p[j] < alpha
    return out


def _baseline_pvalues(wide: np.ndarray, configs: list, baseline: str, method: str,
                      n_resamples: int, seed: int) -> np.ndarray:
    """p-values (metrics x configs) against the baseline; wide is questions x (metrics x configs)."""
    if baseline not in configs:
        raise ValueError(f"baseline config {baseline!r} is not in the results")
    cube = wide.reshape(len(wide), -1, len(configs))
    diffs = cube - cube[:, :, [configs.index(baseline)]]
    p = _paired_pvalues(diffs.reshape(len(wide), -1), method, n_resamples, seed)
    return p.reshape(-1, len(configs))


# --- ragas cross-check ---

_RAGAS_FIELDS = ("retrieved_context_ids", "reference_context_ids",
                 "retrieved_contexts", "reference_contexts")


def ragas_context_metrics(rows: Sequence[dict]) -> pd.DataFrame:
    """ragas IDBasedContextPrecision, IDBasedContextRecall, NonLLMContextRecall per row, offline.

    Rows carry retrieved_context_ids, reference_context_ids (doc ids), retrieved_contexts and
    reference_contexts (texts). Runs ragas.evaluate with no LLM and telemetry off. ragas' own
    conventions hold: ids are compared as sets; an empty retrieved list gives NaN precision and
    NaN non-LLM recall (ragas logs the error), and recall 0.
    """
    if not rows:
        return pd.DataFrame(columns=list(RAGAS_METRIC_KEYS), dtype=float)
    os.environ["RAGAS_DO_NOT_TRACK"] = "true"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from ragas import EvaluationDataset, RunConfig, SingleTurnSample, evaluate
        from ragas._analytics import do_not_track
        from ragas.metrics import IDBasedContextPrecision, IDBasedContextRecall, NonLLMContextRecall

        do_not_track.cache_clear()  # ragas caches the flag at its first call
        samples = [SingleTurnSample(**{f: [str(v) for v in row[f]] for f in _RAGAS_FIELDS})
                   for row in rows]
        metrics = [IDBasedContextPrecision(), IDBasedContextRecall(), NonLLMContextRecall()]
        result = evaluate(EvaluationDataset(samples=samples), metrics=metrics, show_progress=False,
                          run_config=RunConfig(timeout=60, max_retries=1, max_wait=1))
    names = [m.name for m in metrics]
    return pd.DataFrame(result.scores)[names].set_axis(list(RAGAS_METRIC_KEYS), axis=1)
