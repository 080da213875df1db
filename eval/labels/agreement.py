"""How far two label sources agree: weighted Cohen's kappa, a confusion matrix and the disagreements.

The units compared are a run's pooled (question, chunk) pairs (`eval.pooled_judge.pool`): each source grades
a chunk by the overlap rule (`eval.metrics.passage.chunk_grades`). For `gold` and `generated`, which mark
where the answers are, a chunk of a question the source labels but that overlaps none of its spans is grade
0; for LLM and human sources an unjudged chunk has no grade. Only pairs both sources grade count.

Beside kappa (pair by pair), what decides: whether the two sources rank the configs alike
(`ranking_agreement`: Kendall's tau of the two leaderboards with a bootstrap interval over questions, against
the tau that as many randomly placed positive labels give, and whether both recommend the same config); how a
source's grades follow chunk length (`grade_by_length`); and a judge's self-consistency (`flip_rate` of a
sample judged twice).

Kappa is linearly weighted by default (grades are ordered: 0 vs 2 is a worse disagreement than 0 vs 1), as
`sklearn.metrics.cohen_kappa_score(weights="linear")` computes it; `weights=None` gives the unweighted kappa.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from scipy.stats import kendalltau

from eval.data.labels import COMPLETE_SOURCES, Judgement, Labels
from eval.errors import LabError
from eval.generation.generators import GenerationSettings, Generator
from eval.labels.pooled_judging import PoolItem, grade_pair, judge_prompt, reads_probabilities
from eval.labels.rescore import rescore
from eval.metrics.passage import chunk_grades
from eval.runs.store import Run
from eval.schema import Span

GRADES = (0, 1, 2)


@dataclass(frozen=True)
class Agreement:
    source_a: str
    source_b: str
    kappa: float
    weights: str | None
    pairs: int
    exact: float  # share of pairs with the same grade
    confusion: pd.DataFrame  # rows: source_a grades, columns: source_b grades
    disagreements: pd.DataFrame  # question_id, chunk_id, grade_a, grade_b, text

    def summary(self) -> str:
        kind = f"{self.weights}-weighted " if self.weights else ""
        return (
            f"{self.source_a} vs {self.source_b}: {kind}kappa {self.kappa:.3f} on {self.pairs} pairs, "
            f"{self.exact:.1%} identical grades, {len(self.disagreements)} disagreements"
        )


def cohen_kappa(a: np.ndarray, b: np.ndarray, weights: Literal["linear", "quadratic"] | None = "linear") -> float:
    """Cohen's kappa of two integer grade vectors over grades 0..2 (NaN when it is undefined)."""
    observed = np.zeros((len(GRADES), len(GRADES)))
    np.add.at(observed, (a, b), 1)
    expected = np.outer(observed.sum(1), observed.sum(0)) / max(observed.sum(), 1)
    i, j = np.indices(observed.shape)
    cost = {None: (i != j).astype(float), "linear": np.abs(i - j), "quadratic": (i - j) ** 2}[weights]
    denominator = (cost * expected).sum()
    return float(1 - (cost * observed).sum() / denominator) if denominator else float("nan")


def source_grades(labels: Labels, source: str, items: list[PoolItem]) -> list[int | None]:
    """Each pooled chunk's grade under one source (see the module docstring for unjudged chunks)."""
    spans = labels.spans(source)
    grades = []
    for item in items:
        chunk = Span(item.doc_id, item.start, item.end)
        grades.append(chunk_grades([chunk], spans.get(item.question_id, []), source in COMPLETE_SOURCES)[0])
    return grades


def agreement(
    labels: Labels,
    source_a: str,
    source_b: str,
    items: list[PoolItem],
    weights: Literal["linear", "quadratic"] | None = "linear",
) -> Agreement:
    """Agreement of two sources on the pooled chunks `items`."""
    if source_a == source_b:
        raise LabError("compare two different label sources")
    grades_a, grades_b = source_grades(labels, source_a, items), source_grades(labels, source_b, items)
    both = [(item, a, b) for item, a, b in zip(items, grades_a, grades_b) if a is not None and b is not None]
    if not both:
        raise LabError(
            f"no pooled chunk is graded by both {source_a} and {source_b}: judge the same run's pool with both first"
        )
    a = np.array([x for _, x, _ in both])
    b = np.array([y for _, _, y in both])
    confusion = pd.crosstab(pd.Categorical(a, GRADES), pd.Categorical(b, GRADES), dropna=False)
    confusion.index.name, confusion.columns.name = source_a, source_b
    disagreements = pd.DataFrame(
        [
            {"question_id": item.question_id, "chunk_id": item.chunk_id, "grade_a": x, "grade_b": y, "text": item.text}
            for item, x, y in both
            if x != y
        ],
        columns=["question_id", "chunk_id", "grade_a", "grade_b", "text"],
    )
    return Agreement(
        source_a,
        source_b,
        cohen_kappa(a, b, weights),
        weights,
        len(both),
        float(np.mean(a == b)),
        confusion,
        disagreements,
    )


@dataclass(frozen=True)
class RankingAgreement:
    """Whether two sources rank the run's configs alike: the two leaderboards, Kendall's tau between them with a
    bootstrap interval over questions, the tau that as many randomly placed positive labels give, and whether
    both put the same config first."""

    source_a: str
    source_b: str
    metric: str
    leaderboards: pd.DataFrame  # config_id, mean and rank under each source, best first under source_a
    tau: float
    tau_low: float
    tau_high: float
    random_tau: float  # mean tau of source_a's leaderboard against random labels (as many positives as source_b's)
    positives: int  # pooled pairs source_b grades relevant

    @property
    def same_pick(self) -> bool:
        ranks = self.leaderboards.set_index("config_id")
        return bool((ranks[f"rank {self.source_a}"] == 1).eq(ranks[f"rank {self.source_b}"] == 1).all())

    def summary(self) -> str:
        return (
            f"{self.metric} leaderboards of {self.source_a} and {self.source_b}: Kendall tau {self.tau:.3f} "
            f"[{self.tau_low:.3f}, {self.tau_high:.3f}] (95% bootstrap over questions); {self.positives} randomly "
            f"placed positive labels give {self.random_tau:.3f} on average; "
            + ("both recommend the same config" if self.same_pick else "they recommend different configs")
        )


def ranking_agreement(
    per_question: pd.DataFrame,
    random_means: Sequence[pd.Series],
    source_a: str,
    source_b: str,
    metric: str,
    positives: int,
    resamples: int = 1000,
    seed: int = 0,
) -> RankingAgreement:
    """`per_question`: one row per question, columns (source, config_id) holding the metric under source_a and
    source_b; `random_means`: each config's mean under random labels, one Series per draw."""
    means = {s: per_question[s].mean() for s in (source_a, source_b)}
    order = means[source_a].sort_values(ascending=False, kind="stable").index
    boards = pd.DataFrame({"config_id": order})
    for source in (source_a, source_b):
        boards[f"{metric} {source}"] = means[source].reindex(order).to_numpy()
        boards[f"rank {source}"] = means[source].rank(ascending=False, method="min").reindex(order).to_numpy(int)
    tau = _tau(means[source_a], means[source_b])
    rng = np.random.default_rng(seed)
    draws = [
        _tau(*(per_question[s].iloc[rows].mean() for s in (source_a, source_b)))
        for rows in rng.integers(0, len(per_question), size=(resamples, len(per_question)))
    ]
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    random_taus = [_tau(means[source_a], m) for m in random_means]
    random_tau = float(np.nanmean(random_taus)) if random_taus else float("nan")
    return RankingAgreement(source_a, source_b, metric, boards, tau, float(low), float(high), random_tau, positives)


def _tau(a: pd.Series, b: pd.Series) -> float:
    """Kendall's tau-b of two configs' means (NaN when either is constant)."""
    both = pd.concat([a, b], axis=1).dropna()
    return float(kendalltau(both.iloc[:, 0], both.iloc[:, 1]).statistic) if len(both) > 1 else float("nan")


def random_positive_labels(
    items: Sequence[PoolItem], positives: int, seed: int, source: str = "human:random"
) -> Labels:
    """`positives` pooled chunks drawn at random, each judged relevant (grade 1) by `source`: the permutation
    baseline of a source with that many positive labels."""
    rng = random.Random(seed)
    return Labels(
        tuple(
            Judgement(i.question_id, i.doc_id, i.start, i.end, 1, source)
            for i in rng.sample(list(items), min(positives, len(items)))
        )
    )


def grade_by_length(labels: Labels, sources: Sequence[str], items: list[PoolItem], bins: int = 4) -> pd.DataFrame:
    """Each source's mean grade and share graded relevant by chunk length (quantile bins of the pooled chunks'
    characters): a judge whose grade follows length rather than content shows it here."""
    lengths = pd.Series([i.end - i.start for i in items])
    bucket = pd.qcut(lengths, q=min(bins, lengths.nunique()), duplicates="drop")
    table = pd.DataFrame({"chunk characters": bucket.astype(str)})
    for source in sources:
        grades = pd.Series(source_grades(labels, source, items), dtype=float)
        table[f"mean grade {source}"] = grades
        table[f"relevant {source}"] = (grades >= 1).where(grades.notna())
    grouped = table.groupby("chunk characters", sort=False)
    return grouped.mean().assign(chunks=grouped.size()).reset_index()


def flip_rate(first: Sequence[int | None], second: Sequence[int | None]) -> tuple[float, int]:
    """(share of pairs graded twice whose grades differ, pairs graded both times): a judge's self-consistency."""
    both = [(a, b) for a, b in zip(first, second) if a is not None and b is not None]
    return (float(np.mean([a != b for a, b in both])) if both else float("nan")), len(both)


def leaderboard_agreement(
    run: Run,
    labels: Labels,
    source_a: str,
    source_b: str,
    items: list[PoolItem],
    metric: str = "ndcg",
    draws: int = 20,
    seed: int = 0,
) -> RankingAgreement:
    """`ranking_agreement` of the run's configs under two sources; the random baseline places as many positive
    labels as `source_b` gives on the pooled chunks `items`, `draws` times."""
    per_question = pd.concat(
        {
            s: rescore(run, labels, s, [metric]).pivot(index="question_id", columns="config_id", values=metric)
            for s in (source_a, source_b)
        },
        axis=1,
    )
    positives = sum(1 for g in source_grades(labels, source_b, items) if g is not None and g >= 1)
    random_means = [
        rescore(run, random_positive_labels(items, positives, seed + d), "human:random", [metric])
        .groupby("config_id")[metric]
        .mean()
        for d in range(draws)
    ]
    return ranking_agreement(per_question, random_means, source_a, source_b, metric, positives, seed=seed)


def self_consistency(
    run: Run, generator: Generator, items: Sequence[PoolItem], sample: int = 50, seed: int = 0
) -> tuple[float, int]:
    """A judge's flip rate: `sample` random pooled pairs judged twice by `generator` (no cache), as `flip_rate`."""
    chosen = random.Random(seed).sample(list(items), min(sample, len(items)))
    if not chosen:
        raise LabError("the pool is empty: nothing to judge twice")
    questions = run.questions_by_id
    by_probability = reads_probabilities(generator, judge_prompt(questions, chosen[0]))
    settings = GenerationSettings(max_new_tokens=4)
    first, second = (
        [grade_pair(generator, judge_prompt(questions, i), settings, by_probability)[0] for i in chosen]
        for _ in range(2)
    )
    return flip_rate(first, second)
