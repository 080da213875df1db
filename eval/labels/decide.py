"""Decide: label the (question, chunk) pairs that settle the choice of a config, and say when it is settled.

The pool of a run is the union of every config's retrieved chunks per question (each pair once, with its best
rank over the configs). The metric is the ranking rule's document-level nDCG (`eval.metrics.ranking`): a
document's grade is the best grade of its pooled chunks, unjudged chunks count 0, exactly what `rescore`
computes under a label source that graded those chunks.

After each label:
- `bounds`: each config's metric with the unjudged pairs at their worst and at their best for it (its own
  retrieved unjudged documents graded 0 and the others 2, then the reverse), so every completion of the
  unjudged pairs lies within. A choice is *certain* only when it holds at these bounds.
- `evaluate`: a Monte Carlo over completions of the unjudged pairs, drawn from a `RelevanceModel` (a logistic
  regression on the pair's best rank, whether another document of its question is judged relevant, and an
  automatic judge's grade where there is one, with a weak prior, its coefficients drawn from their
  posterior). Each config's estimate is its mean over the completions; its 95% interval adds a bootstrap of
  the questions.
- Rules: `pick` (default): a config within `epsilon` of the best on the run's questions in >= 95% of the
  completions (settled: more labels would not change the pick; how far the result carries to other questions
  is the interval's and the tie set's business: with every pair judged, a bootstrap of 60 questions can leave a
  pick within 0.02 below 95%, so a rule on it could only settle by judging the whole pool); `tie-set`: the best
  config and those a paired randomization test cannot tell apart from it (alpha 0.05), the same set in >= 95%
  of the completions. No decision before 5 relevant and 5 irrelevant labels.
- `next_pair`: `active` (as in minimal test collections: the pair whose grade would most separate the
  contenders' nDCG, i.e. retrieved high by one and low or not by another, and, once its question has an
  answer, also through the ideal DCG it would raise (a second answer lowers the nDCG of a config that found
  the first and leaves one that did not at 0), weighted by its chance of relevance and of raising its
  document's grade; for the tie set, each config's separation from the best weighted by how unsure its
  membership is; plus, found relevant, what it would settle of its question's other pairs, which then become
  "answer found" pairs: so a pair every config ranks first in a question with no answer found is asked too;
  every third label, for the tie set every second, drawn at random among the pairs whose grade could move the
  decision, with a chance of 1 / its best rank), `random` (uniform), or `questions` (whole questions in a
  seeded order).

The relevance model learns from every label, each with its features as they were when it was asked. A
completion draws a question's unjudged pairs best rank first, each as the model expects given the pairs drawn
before it: once one is drawn relevant, the rest are drawn as pairs of a question whose answer is found. Drawn
independently, a question with no answer found yet got several relevant documents at once, which favours
whichever config retrieves the most (a hybrid that merges two lists); together with a model fitted on the
active picks (chosen for their chance of relevance) that settled the tie set on the hybrid alone in 2 of 20
SQuAD runs at 75-100 labels, the tie set of 5 configs under gold. With both, 100 of 100 runs were right (see
BENCHMARKS.md). The random labels keep the fit honest, drawn with a chance of 1 / best rank, the model's own
feature, so the first-ranked pairs, where relevance is decided, get most of them; only among the pairs whose
grade could move the decision, so that the fit is honest where completions matter (SQuAD's tie set: 837.5
labels -> 750). No feature says "how many configs retrieved it": that mirrors the grid (a grid of mostly
vector configs would make vector chunks look relevant).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from eval.data.labels import COMPLETE_SOURCES, Labels
from eval.errors import LabError
from eval.labels.pooled_judging import PoolItem, pool
from eval.metrics.catalogue import parse_metric
from eval.metrics.passage import chunk_grades
from eval.metrics.statistics import indistinguishable_from_best
from eval.runs.store import Run
from eval.schema import Span

RULES = ("pick", "tie-set")
ORDERS = ("active", "random", "questions")
EPSILON = 0.02
CONFIDENCE = 0.95
MIN_EACH = 5  # relevant and irrelevant labels needed before any decision
MAX_GRADE = 2
PRIOR_SCALES = np.array([2.0, 1.5, 2.0, 4.0, 2.0, 2.0])  # intercept, -log(rank), rank 1, sibling, judge: relevant, none
SIBLING = 3  # the feature column: another document of the question judged relevant
RANDOM_EVERY = {"pick": 3, "tie-set": 2}  # active order: every third (tie set: second) label drawn at random


def _relevance_features(log_ranks: np.ndarray, sibling: np.ndarray, judge: np.ndarray | None) -> np.ndarray:
    """Each pair's features (pairs x features, in `PRIOR_SCALES`' order): intercept, -log(best rank), best rank
    1, another document of its question judged relevant, and with an automatic judge, whether it graded the
    pair relevant and whether it graded the pair at all."""
    log_ranks = np.asarray(log_ranks, float)
    columns = [np.ones(len(log_ranks)), -log_ranks, log_ranks == 0, sibling]
    if judge is not None:
        columns += [np.nan_to_num(judge, nan=0.0) >= 1, np.isnan(judge)]
    return np.column_stack(columns).astype(float)


class RelevanceModel:
    """P(pair relevant) = sigmoid(features @ w) (`_relevance_features`: a + b * -log(best rank) + c * [best
    rank is 1] + d * [another document of the question judged relevant], plus the automatic judge's grade
    where there is one), fitted by maximum a posteriori under a normal prior (`PRIOR_SCALES`) with a Laplace
    approximation of the posterior, so that draws of w carry the uncertainty of a fit on few labels. A judge
    enters as a feature whose weight the human labels fit: a judge that is often wrong gets little weight
    instead of deciding. The step at rank 1: on sets with one relevant passage a question, about half the
    first-ranked pairs are relevant and under 1% of the second, a drop no slope in log rank follows (it imputed
    ten times too many relevant pairs at rank 2). The "answer found" weight has a wider prior (scale 4): once
    every question is answered, what keeps a tie set unsettled is the second answers imputed to answered
    questions, and with no relevant pair among hundreds of such labels a scale-2 prior held the weight near 0
    (SQuAD, 900 labels: 3.0 second answers a completion, every one that changed the tie set among them; a
    Beta(1/2, 1/2) rate on the same zeros gives 0.8)."""

    def __init__(self, x: np.ndarray, relevant: np.ndarray) -> None:
        y = np.asarray(relevant, float)
        precision = np.diag(1 / PRIOR_SCALES[: x.shape[1]] ** 2)
        w = np.zeros(x.shape[1])
        for _ in range(50):
            p = _sigmoid(x @ w)
            gradient = x.T @ (y - p) - precision @ w
            hessian = (x * (p * (1 - p))[:, None]).T @ x + precision
            step = np.linalg.solve(hessian, gradient)
            w += step
            if np.abs(step).max() < 1e-8:
                break
        p = _sigmoid(x @ w)
        self.mean = w
        self.cov = np.linalg.inv((x * (p * (1 - p))[:, None]).T @ x + precision)

    def probability(self, x: np.ndarray) -> np.ndarray:
        """The chance of relevance of pairs with features x at the fitted coefficients."""
        return _sigmoid(x @ self.mean)

    def draw(self, x: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
        """n draws (n x pairs) of the chances of relevance, each from one posterior draw of the coefficients."""
        w = rng.multivariate_normal(self.mean, self.cov, size=n)
        return _sigmoid(w @ x.T)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-z)), computed in z's own memory (callers pass a fresh product; a completion's is
    samples x 2 pairs, 120,000 pairs at k 100)."""
    np.exp(np.negative(z, out=z), out=z)
    z += 1
    return np.reciprocal(z, out=z)


def _answer_found(features: np.ndarray) -> np.ndarray:
    """A copy of these pairs' features as they would be once another document of their question is relevant."""
    found = features.copy()
    found[:, SIBLING] = 1
    return found


class DecidePool:
    """A run's pool with each config's ranking of it as arrays, to score many completions at once."""

    def __init__(self, run: Run, metric: str = "ndcg") -> None:
        name, self.k = parse_metric(metric)
        if name != "ndcg":
            raise LabError(f"decide ranks by nDCG (ndcg or ndcg@k), not {metric}")
        self.metric, self.run = metric, run
        rows = run.rows
        self.configs = list(pd.unique(rows["config_id"]))
        self.questions = list(pd.unique(rows["question_id"]))
        depth = max(1, int(rows["chunk_ids"].map(len).max()))
        self.items: list[PoolItem] = pool(run, depth)
        self.index = {(item.question_id, item.chunk_id): n for n, item in enumerate(self.items)}
        docs: dict[tuple[str, str], int] = {}
        self.pair_doc = np.array([docs.setdefault((i.question_id, i.doc_id), len(docs)) for i in self.items])
        self.doc_question = np.array([self.questions.index(q) for q, _ in docs])
        self.best_rank = np.full(len(self.items), np.inf)
        # discount[d, c]: 1 / log2(1 + rank) of document d in config c's list for its question, else 0
        self.discount = np.zeros((len(docs), len(self.configs)))
        for question_id, config_id, chunk_ids, doc_ids in rows[
            ["question_id", "config_id", "chunk_ids", "doc_ids"]
        ].itertuples(index=False):
            c = self.configs.index(config_id)
            for rank, chunk_id in enumerate(chunk_ids, start=1):
                n = self.index[question_id, chunk_id]
                self.best_rank[n] = min(self.best_rank[n], rank)
            for position, doc_id in enumerate(dict.fromkeys(doc_ids), start=1):
                if self.k is None or position <= self.k:
                    self.discount[docs[question_id, doc_id], c] = 1 / math.log2(position + 1)
        self.log_rank = np.log(self.best_rank)
        # the same as docs x (questions x configs), sparse: a document belongs to one question (dense, 200
        # questions of 20 configs at k 100 would take about 1 GB and seconds a completion batch)
        d, c = np.nonzero(self.discount)
        self._discount_by_column = sparse.csr_matrix(
            (self.discount[d, c], (d, self.doc_question[d] * len(self.configs) + c)),
            shape=(len(docs), len(self.questions) * len(self.configs)),
        )
        self._order = np.argsort(self.pair_doc, kind="stable")
        self._starts = np.flatnonzero(np.r_[True, np.diff(self.pair_doc[self._order]) != 0])
        self._question_docs = _members(self.doc_question, len(self.questions))
        self.pair_question = self.doc_question[self.pair_doc]
        self.question_pairs = _members(self.pair_question, len(self.questions))

    def __len__(self) -> int:
        return len(self.items)

    def doc_gains(self, grades: np.ndarray) -> np.ndarray:
        """Each document's grade (samples x docs) from pair grades (samples x pairs): the best of its chunks."""
        return np.maximum.reduceat(grades[:, self._order], self._starts, axis=1)

    def ndcg(self, gains: np.ndarray) -> np.ndarray:
        """nDCG (samples x questions x configs) from document grades (samples x docs); NaN for a question with
        no relevant document."""
        dcg, ideal = self.dcg(gains), self.ideal(gains)[:, :, None]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(ideal > 0, dcg / ideal, np.nan)

    def dcg(self, gains: np.ndarray) -> np.ndarray:
        """DCG (samples x questions x configs) of every config's list."""
        dcg = np.asarray((self._discount_by_column.T @ np.asarray(gains, float).T).T)
        return dcg.reshape(len(gains), len(self.questions), len(self.configs))

    def ideal(self, gains: np.ndarray) -> np.ndarray:
        """Each question's ideal DCG (samples x questions): its relevant documents best first."""
        out = np.zeros((len(gains), len(self.questions)))
        for q, docs in enumerate(self._question_docs):
            out[:, q] = self._ideal_of(gains[:, docs])
        return out

    def _ideal_of(self, gains: np.ndarray) -> np.ndarray:
        """The ideal DCG of each row of one question's document gains."""
        best = -np.sort(-gains, axis=1)[:, : self.k]
        return best @ (1 / np.log2(np.arange(2, best.shape[1] + 2)))

    def ndcg_change(self, doc_grades: np.ndarray, docs: np.ndarray) -> np.ndarray:
        """docs x configs: how much each config's nDCG on the document's question would change if the document
        were one grade higher than judged (unjudged: 0; a question with no relevant document scores 0 before).
        It counts the ideal too: a relevant document that a config did not retrieve lowers its nDCG, most for
        a config that had found the question's answer."""
        gains = np.maximum(np.asarray(doc_grades, float), 0.0)
        dcg, ideal = self.dcg(gains[None])[0], self.ideal(gains[None])[0]
        old = gains[docs]
        raised = np.minimum(old + 1, MAX_GRADE)
        question = self.doc_question[docs]
        cases, case = np.unique(question * (MAX_GRADE + 1) + old.astype(int), return_inverse=True)
        new_ideal = np.empty(len(cases))
        for n, key in enumerate(cases):  # one new ideal per question and grade raised
            q, grade = divmod(int(key), MAX_GRADE + 1)
            here = gains[self._question_docs[q]].copy()
            here[np.flatnonzero(here == grade)[0]] = min(grade + 1, MAX_GRADE)
            new_ideal[n] = self._ideal_of(here[None])[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            before = np.where(ideal[question, None] > 0, dcg[question] / ideal[question, None], 0.0)
            after = (dcg[question] + (raised - old)[:, None] * self.discount[docs]) / new_ideal[case.ravel(), None]
        return after - before

    def metric_matrix(self, grades: np.ndarray) -> np.ndarray:
        """questions x configs: the metric with the given pair grades (NaN = unjudged, counted 0)."""
        filled = np.nan_to_num(np.asarray(grades, float), nan=0.0)[None, :]
        return self.ndcg(self.doc_gains(filled))[0]

    def grades_from(self, labels: Labels, source: str) -> np.ndarray:
        """Each pair's grade under a label source (NaN where it has not judged the pair)."""
        if source not in labels.sources:
            raise LabError(
                f"the labels have no source '{source}' (sources here: {', '.join(labels.sources) or 'none'})"
            )
        spans = labels.spans(source)
        complete = source in COMPLETE_SOURCES
        out = np.full(len(self.items), np.nan)
        for n, item in enumerate(self.items):
            (grade,) = chunk_grades(
                [Span(item.doc_id, item.start, item.end)], spans.get(item.question_id, []), complete
            )
            if grade is not None:
                out[n] = grade
        return out

    def bounds(self, grades: np.ndarray) -> pd.DataFrame:
        """Each config's metric (`lower`, `upper`) over every completion of the unjudged pairs: a sound
        bound, not the tightest one (nDCG's ideal grows with a relevant document the config did not retrieve)."""
        unjudged = np.isnan(grades)
        low_pairs = np.where(unjudged, 0.0, grades)[None, :]
        high_pairs = np.where(unjudged, float(MAX_GRADE), grades)[None, :]
        low, high = self.doc_gains(np.vstack([low_pairs, high_pairs]))
        dcg_min, dcg_max = self.dcg(np.vstack([low, high]))  # a config's DCG involves only its own documents
        ideal_min, ideal_max = self.ideal(np.vstack([low, high]))
        with np.errstate(invalid="ignore", divide="ignore"):
            q_low = dcg_min / ideal_max[:, None]
            q_high = np.where(ideal_min[:, None] > 0, np.minimum(1.0, dcg_max / ideal_min[:, None]), 1.0)
        always, maybe = ideal_min > 0, (ideal_min == 0) & (ideal_max > 0)
        return pd.DataFrame(
            {
                "config_id": self.configs,
                "lower": [_extreme_mean(q_low[always, c], q_low[maybe, c], min) for c in range(len(self.configs))],
                "upper": [_extreme_mean(q_high[always, c], q_high[maybe, c], max) for c in range(len(self.configs))],
            }
        )


def _members(group: np.ndarray, groups: int) -> list[np.ndarray]:
    """For each group 0 .. groups - 1, the indices (ascending) of the elements `group` puts in it."""
    order = np.argsort(group, kind="stable")
    return np.split(order, np.cumsum(np.bincount(group, minlength=groups))[:-1])


def _extreme_mean(fixed: np.ndarray, optional: np.ndarray, side: Callable) -> float:
    """The lowest (`side=min`) or highest mean of `fixed` plus any subset of `optional` (questions that are
    scored only under some completions): add optional values from the most extreme while they move the mean."""
    values = list(fixed)
    for value in sorted(optional, reverse=side is max):
        if not values or side(value, np.mean(values)) == value:
            values.append(value)
    return float(np.mean(values)) if values else math.nan


@dataclass
class Decision:
    rule: str
    labels: int
    settled: bool
    certain: bool
    recommended: str | None
    indistinguishable: list[str]
    table: pd.DataFrame  # config_id, lower, upper, estimate, low, high, probability
    evidence: tuple[int, int]  # relevant and irrelevant labels
    expected_more: int | None = None
    text: str = ""

    def as_json(self, order: str) -> dict:
        return {
            "settled": self.settled,
            "rule": self.rule,
            "labels": self.labels,
            "recommended": self.recommended,
            "indistinguishable": self.indistinguishable,
            "order": order,
            "certain": self.certain,
            "expected_more": self.expected_more,
        }


def rule_text(rule: str, epsilon: float = EPSILON) -> str:
    """What a rule decides, in words."""
    if rule == "pick":
        return f"a config whose nDCG is within {epsilon:g} of the best, at 95%"
    return "the best config and the configs a paired test cannot tell apart from it, at 95%"


def decision_text(decision: Decision) -> str:
    """The decision in words: settled or how many more labels, and the recommendation with its interval."""
    row = decision.table.set_index("config_id").loc[decision.recommended]
    pick = f"{decision.recommended} (nDCG {row['estimate']:.3f}, 95% interval {row['low']:.3f}-{row['high']:.3f})"
    if decision.settled:
        head = f"settled after {decision.labels} labels" + (
            " (certain under every completion)" if decision.certain else ""
        )
    elif min(decision.evidence) < 5:
        relevant, irrelevant = decision.evidence
        head = f"not settled: needs 5 relevant and 5 irrelevant labels first (has {relevant} and {irrelevant})"
    else:
        head = f"not settled after {decision.labels} labels: about {decision.expected_more} more labels expected"
    tied = "" if decision.rule == "pick" else f"; tie set: {', '.join(decision.indistinguishable)}"
    return f"{head} ({decision.rule}): {pick}{tied}"


@dataclass
class Decider:
    """The state of one decision: the pool, its grades so far, how each label was picked, and the rule."""

    pool: DecidePool
    grades: np.ndarray
    rule: str = "pick"
    epsilon: float = EPSILON
    order: str = "active"
    seed: int = 0
    samples: int = 200
    judge: np.ndarray | None = None  # an automatic judge's grade of each pair (NaN: not graded), a model feature
    skipped: set[int] = field(default_factory=set)
    made: int = 0  # labels made in this decision (the existing ones not counted)
    seen: dict[int, np.ndarray] = field(default_factory=dict)  # each labelled pair's features when it was asked
    last: Decision | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise LabError(f"unknown rule '{self.rule}': use {' or '.join(RULES)}")
        if self.order not in ORDERS:
            raise LabError(f"unknown order '{self.order}': use {', '.join(ORDERS)}")
        if not 0 <= self.epsilon < 1:
            raise LabError(f"--epsilon must be in [0, 1), got {self.epsilon}")
        self._question_order = list(np.random.default_rng(self.seed).permutation(len(self.pool.questions)))

    def label(self, n: int, grade: int | None) -> None:
        """Record pair n's grade (None: undo it)."""
        if grade is not None and grade not in (0, 1, 2):
            raise LabError(f"grade {grade} is not 0, 1 or 2")
        if grade is None:
            self.seen.pop(n, None)
        else:
            self.seen[n] = self.features(np.array([n]))[0]
        self.grades[n] = np.nan if grade is None else grade
        self.made += 1 if grade is not None else -1
        self.last = None

    def doc_grades(self) -> np.ndarray:
        """Each pooled document's judged grade (the best of its judged chunks; -1: none judged)."""
        best = np.full(len(self.pool.doc_question), -1.0)
        np.maximum.at(best, self.pool.pair_doc, np.nan_to_num(self.grades, nan=-1.0))
        return best

    def features(self, pairs: np.ndarray | None = None) -> np.ndarray:
        """The model features (`_relevance_features`) of these pairs (default: all) with the labels so far.
        Whether another document of its question is judged relevant: most questions have one or two relevant
        documents, so a question whose answer is found makes its other pairs unlikely (it uses other pairs'
        labels only, never the pair's own). Reads only the pairs' own questions (one pair: cheap)."""
        pairs = np.arange(len(self.pool)) if pairs is None else np.asarray(pairs)
        questions = self.pool.pair_question[pairs]
        near = np.concatenate([self.pool.question_pairs[q] for q in np.unique(questions)])
        relevant_docs = np.unique(self.pool.pair_doc[near[np.nan_to_num(self.grades[near], nan=0.0) >= 1]])
        per_question = np.bincount(self.pool.doc_question[relevant_docs], minlength=len(self.pool.questions))
        sibling = per_question[questions] - np.isin(self.pool.pair_doc[pairs], relevant_docs) > 0
        judge = None if self.judge is None else self.judge[pairs]
        return _relevance_features(self.pool.log_rank[pairs], sibling, judge)

    def model(self, features: np.ndarray) -> RelevanceModel:
        """The relevance model fitted on every label, given every pair's `features()`. A labelled pair enters
        with its features as they were when it was asked (labels that existed before: as they are now), which
        is what the model must predict for an unjudged pair: with today's features, a question's one relevant
        document is the only pair without a relevant sibling, so the model learnt "no answer found yet: likely
        relevant" and carried it to questions with no answer in the pool (on SQuAD after 900 labels: 15
        relevant pairs imputed to the 42 pairs of the questions whose answer was not found, against 7 to 53
        with the features as asked)."""
        fitted = np.flatnonzero(~np.isnan(self.grades))
        x = np.array([self.seen.get(n, features[n]) for n in fitted]).reshape(len(fitted), features.shape[1])
        return RelevanceModel(x, self.grades[fitted] >= 1)

    def evaluate(self) -> Decision:
        """The decision with the labels so far (see the module docstring)."""
        judged = self.grades[~np.isnan(self.grades)]
        evidence = (int((judged >= 1).sum()), int((judged == 0).sum()))
        rng = np.random.default_rng([self.seed, len(judged)])
        cube = self._completions(rng)
        counts = rng.multinomial(
            len(self.pool.questions), np.full(len(self.pool.questions), 1 / len(self.pool.questions)), size=len(cube)
        )
        scored = ~np.isnan(cube[:, :, 0])
        with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a completion with no relevant pair: all NaN
            full = np.nanmean(cube, axis=1)
            boot = np.einsum("sq,sqc->sc", counts * scored, np.nan_to_num(cube)) / (counts * scored).sum(1)[:, None]
        boot = np.nan_to_num(boot)  # a completion with no relevant pair scores every config 0
        completed = np.nan_to_num(full)  # each completion's metric on the run's own questions
        probability = np.mean(completed >= completed.max(axis=1, keepdims=True) - self.epsilon, axis=0)
        table = self.pool.bounds(self.grades).assign(
            estimate=completed.mean(axis=0),
            low=np.nanpercentile(boot, 2.5, axis=0),
            high=np.nanpercentile(boot, 97.5, axis=0),
            probability=probability,
        )
        enough = min(evidence) >= MIN_EACH
        if self.rule == "pick":
            decision = self._pick(table, enough, evidence)
        else:
            decision = self._tie_set(table, cube, enough, evidence)
        self.last = decision
        return decision

    def _completions(self, rng: np.random.Generator) -> np.ndarray:
        """nDCG (samples x questions x configs) under completions of the unjudged pairs drawn from the model."""
        unjudged = np.flatnonzero(np.isnan(self.grades))
        grades = np.tile(np.nan_to_num(self.grades, nan=0.0), (self.samples, 1))
        if len(unjudged):
            features = self.features()
            unjudged = unjudged[np.lexsort((self.pool.best_rank[unjudged], self.pool.pair_question[unjudged]))]
            chance = self.model(features).draw(
                np.vstack([features[unjudged], _answer_found(features[unjudged])]), self.samples, rng
            )
            before, after = chance[:, : len(unjudged)], chance[:, len(unjudged) :]
            draws = self._draw_in_question_order(rng.random(before.shape), before, after, unjudged)
            relevant = self.grades[~np.isnan(self.grades)]
            twos = rng.beta(1 + (relevant == 2).sum(), 1 + (relevant == 1).sum(), size=(self.samples, 1))
            grades[:, unjudged] = draws * (1 + (rng.random(draws.shape) < twos))
        return self.pool.ndcg(self.pool.doc_gains(grades))

    def _draw_in_question_order(
        self, uniform: np.ndarray, before: np.ndarray, after: np.ndarray, pairs: np.ndarray
    ) -> np.ndarray:
        """Relevance draws (samples x pairs) for unjudged `pairs` sorted by question and best rank: a pair
        follows its chance `before` until a pair of its question is drawn relevant, then its chance `after`
        (with another document relevant), so a completion keeps the model's "one answer found, the rest
        unlikely" within each question instead of drawing a question's pairs as if none were found."""
        hits = uniform < before
        question = self.pool.pair_question[pairs]
        starts = np.flatnonzero(np.r_[True, question[1:] != question[:-1]])
        earlier = np.cumsum(hits, axis=1, dtype=np.int32)  # int32: at k 100 a matrix is samples x 60,000
        earlier -= hits
        earlier -= np.repeat(earlier[:, starts], np.diff(np.r_[starts, len(pairs)]), axis=1)
        return np.where(earlier == 0, hits, uniform < after)

    def _pick(self, table: pd.DataFrame, enough: bool, evidence: tuple[int, int]) -> Decision:
        ranked = table.sort_values(["probability", "estimate"], ascending=False)
        top = ranked.iloc[0]
        others = table[table["config_id"] != top["config_id"]]
        certain = bool(enough and top["lower"] >= float(others["upper"].max()) - self.epsilon)
        settled = bool(enough and (certain or top["probability"] >= CONFIDENCE))
        return Decision(
            "pick",
            self.made,
            settled,
            certain,
            str(top["config_id"]),
            [str(top["config_id"])],
            table,
            evidence,
            None if settled else self._expected_more(top["probability"], evidence),
        )

    def _tie_set(self, table: pd.DataFrame, cube: np.ndarray, enough: bool, evidence: tuple[int, int]) -> Decision:
        tied = indistinguishable_from_best(cube)  # one sign-flip matrix: the same grades give the same tie set
        sets, counts = np.unique(tied, axis=0, return_counts=True)
        modal = sets[np.argmax(counts)]
        share = counts.max() / len(tied)
        table = table.assign(in_tie_set=tied.mean(axis=0))
        certain = bool(enough and not np.isnan(self.grades).any())
        members = table[modal]
        best = str(members.sort_values("estimate", ascending=False)["config_id"].iloc[0])
        settled = bool(enough and (certain or share >= CONFIDENCE))
        return Decision(
            "tie-set",
            self.made,
            settled,
            certain,
            best,
            [str(c) for c in members["config_id"]],
            table,
            evidence,
            None if settled else self._expected_more(share, evidence),
        )

    def _expected_more(self, confidence: float, evidence: tuple[int, int]) -> int:
        """A rough extrapolation of the labels still needed: the evidence minimum, then the labels that would
        bring the confidence to 95% if its z-score grew with the square root of the labels."""
        unjudged = int(np.isnan(self.grades).sum())
        needed = max(0, MIN_EACH - evidence[0]) + max(0, MIN_EACH - evidence[1])
        from scipy.stats import norm

        z_now, z_target = norm.ppf(min(max(confidence, 0.5), 0.999)), norm.ppf(CONFIDENCE)
        labels = max(self.made, 10)
        more = labels * ((z_target / z_now) ** 2 - 1) if z_now > 0.05 else unjudged
        return int(min(unjudged, max(needed, math.ceil(more))))

    def next_pair(self, decision: Decision | None = None) -> tuple[int, str] | None:
        """The next pair to label and how it was picked (`active`, `random` or `questions`); None when every
        pair is judged or skipped. The active order takes its contenders from `decision` (default: the decision
        with the labels so far)."""
        open_ = np.flatnonzero(np.isnan(self.grades))
        open_ = open_[~np.isin(open_, list(self.skipped))]
        if not len(open_):
            return None
        rng = np.random.default_rng([self.seed, self.made, len(self.skipped)])  # a resumed session asks alike
        if self.order == "questions":
            return self._next_question_pair(open_, rng), "questions"
        if self.order == "random":
            return int(rng.choice(open_)), "random"
        weights = self._active_weights(open_, decision or self.last or self.evaluate())
        if not weights.max() > 0:
            return int(rng.choice(open_)), "random"
        if self.made % RANDOM_EVERY[self.rule] == RANDOM_EVERY[self.rule] - 1:
            return self._random_pair(open_[weights > 0], rng), "random"
        return int(open_[np.argmax(weights)]), "active"

    def _random_pair(self, candidates: np.ndarray, rng: np.random.Generator) -> int:
        """The active order's random label: among the pairs whose grade could move the decision, with a chance
        of 1 / best rank (the model's own feature, so its fit stays unbiased there). A pair that could move
        nothing (one only the random config retrieved, in a question where the contenders score alike) would
        teach the model about pairs whose completions do not matter."""
        chance = 1 / self.pool.best_rank[candidates]
        return int(rng.choice(candidates, p=chance / chance.sum()))

    def _next_question_pair(self, open_: np.ndarray, rng: np.random.Generator) -> int:
        question = self.pool.doc_question[self.pool.pair_doc[open_]]
        for q in self._question_order:
            here = open_[question == q]
            if len(here):
                return int(here[rng.integers(len(here))])
        raise AssertionError("an open pair has a question")

    def _active_weights(self, open_: np.ndarray, decision: Decision) -> np.ndarray:
        """Chance of relevance x (how far apart the contenders' nDCG would move if it were relevant (MTC's idea,
        with nDCG's ideal counted: by ranks alone a second answer that the configs rank alike separated nothing,
        yet it lowers the nDCG of a config that found the first answer, and SQuAD's tie set took 1,075 labels
        instead of 837.5) + the separating weight its question's other pairs would lose if it were relevant,
        their chance falling to that of a question whose answer is found). The contenders are the configs the
        decision is still unsure about, at least the two best estimates. Without the second term a question's
        answer that every config ranks first was never asked (PubMedQA: 13 of 60 questions answered after 100
        labels), and the question's other pairs kept the chance of an unanswered one."""
        table = decision.table
        column = "in_tie_set" if "in_tie_set" in table else "probability"
        unsure = table[(table[column] > 1 - CONFIDENCE) & (table[column] < CONFIDENCE)]["config_id"]
        top = table.sort_values("estimate", ascending=False)["config_id"].head(2)
        contenders = [self.pool.configs.index(c) for c in dict.fromkeys([*top, *unsure])]
        docs = self.pool.pair_doc[open_]
        changes = self.pool.ndcg_change(self.doc_grades(), docs)[:, contenders]
        if self.rule == "tie-set":  # membership is a test against the best (the first contender) only
            names = [self.pool.configs[c] for c in contenders[1:]]
            shares = table.set_index("config_id")["in_tie_set"].reindex(names).to_numpy()
            unsure = np.minimum(shares, 1 - shares) + 0.01  # most weight where membership is least sure
            spread = np.abs(changes[:, 1:] - changes[:, :1]) @ unsure
        else:
            spread = changes.max(axis=1) - changes.min(axis=1)
        features = self.features()
        model = self.model(features)
        chance = model.probability(features[open_])
        own = spread * self._raise_chance(docs)
        # found relevant, a pair also answers its question: its other pairs drop to the "answer found" chance
        released = (chance - model.probability(_answer_found(features[open_]))) * own
        question = self.pool.pair_question[open_]
        elsewhere = np.bincount(question, weights=released, minlength=len(self.pool.questions))[question] - released
        return chance * (own + elsewhere)

    def _raise_chance(self, docs: np.ndarray) -> np.ndarray:
        """For pairs of these documents, the chance that a relevant grade raises its document's gain: 1 for a
        document not judged relevant yet, the share of grade-2 labels for one at 1, 0 for one at 2."""
        judged = self.grades[~np.isnan(self.grades)]
        twos = (1 + (judged == 2).sum()) / (2 + (judged >= 1).sum())
        best = self.doc_grades()[docs]
        return np.select([best >= MAX_GRADE, best >= 1], [0.0, twos], 1.0)


@dataclass
class OracleResult:
    settled: bool
    labels: int
    decision: Decision
    history: list[tuple[int, str]]


def decide_with_oracle(
    run: Run,
    labels: Labels,
    oracle: str,
    *,
    rule: str = "pick",
    order: str = "active",
    seed: int = 0,
    budget: int | None = None,
    check_every: int = 1,
    epsilon: float = EPSILON,
    samples: int = 200,
    decide_pool: DecidePool | None = None,
    judge: str | None = None,
) -> OracleResult:
    """Label the pool as `order` asks, each grade from the `oracle` source, until the rule settles or
    `budget` labels are made (a pair the oracle has not judged is skipped). Starts from no label. `judge`: an
    automatic judge's label source, a feature of the relevance model. The rule is evaluated every
    `check_every` labels (the count is then rounded up to a multiple of it); in between, the active order
    keeps the last evaluation's contenders."""
    if budget is not None and budget < 1:
        raise LabError(f"--budget must be at least 1, got {budget}")
    decide_pool = decide_pool or DecidePool(run)
    answers = decide_pool.grades_from(labels, oracle)
    decider = Decider(
        decide_pool,
        np.full(len(decide_pool), np.nan),
        rule,
        epsilon,
        order,
        seed,
        samples=samples,
        judge=decide_pool.grades_from(labels, judge) if judge else None,
    )
    history: list[tuple[int, str]] = []
    decision = decider.evaluate()
    while not decision.settled and (budget is None or decider.made < budget):
        picked = decider.next_pair(decision)
        if picked is None:
            break
        n, kind = picked
        if np.isnan(answers[n]):
            decider.skipped.add(n)
            continue
        decider.label(n, int(answers[n]))
        history.append((n, kind))
        if decider.made % check_every == 0:
            decision = decider.evaluate()
    decision = decider.last or decider.evaluate()
    return OracleResult(decision.settled, decider.made, decision, history)


def run_truth(decide_pool: DecidePool, grades: np.ndarray, epsilon: float = EPSILON) -> tuple[set[str], set[str]]:
    """With every pair graded: the configs within `epsilon` of the best mean, and the tie set (the best and
    the configs a paired randomization test cannot tell apart from it)."""
    matrix = decide_pool.metric_matrix(grades)
    means = np.nanmean(matrix, axis=0)
    within = {c for c, m in zip(decide_pool.configs, means) if m >= means.max() - epsilon}
    tied = indistinguishable_from_best(matrix[None])[0]
    return within, {c for c, t in zip(decide_pool.configs, tied) if t}


def pair_of(decide_pool: DecidePool, question_id: str, chunk_id: str) -> int:
    """The pool index of a (question, chunk) pair; a pair not in the pool is an error."""
    n = decide_pool.index.get((question_id, chunk_id))
    if n is None:
        raise LabError(f"question '{question_id}', chunk '{chunk_id}' is not in the run's pool: no config retrieved it")
    return n
