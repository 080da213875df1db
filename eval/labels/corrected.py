"""An automatic judge corrected by a person's random sample: prediction-powered inference (PPI, PPI++).

An automatic source (an LLM judge, a reranker used as a judge) grades every pooled chunk of every question; a
person grades every pooled chunk of a uniformly random sample of the questions (whole-question sampling). The
judge alone is biased in an unknown way; the person alone sees too few questions. The corrected estimate of a
config's metric is the judge's value plus the person's measured correction of it on the sample (PPI,
Angelopoulos et al. 2023, as ARES uses it). PPI++ weighs the judge by `lam` (1 is plain PPI, 0 ignores the
judge; any `lam` is unbiased) and tunes `lam` on the sample to the judge's agreement (`weight=None`). The
default is plain PPI, `lam` = 1: on the shared sets (benchmarks/bench_corrected.py, 60 of 300 questions) the
tuned weight, estimated from 60 questions, fell near 0 where the metric is nearly constant under the person
(nDCG about 0.98): a sample with no miss then gives a zero-width interval, and the tuned intervals covered
the all-gold value only about 80% of the time, plain PPI's at least 90%.

A config's metric is a mean over the questions a source scores (a question with no relevant label under it
leaves the mean: NaN), so it is a ratio A/B of two means, each corrected, with a delta-method interval. Each
question gets a linearised pseudo-value whose mean over the N questions is the corrected estimate:

    psi(q) = R + (lam * fJ(q) + (N/n) * [q sampled] * (fH(q) - lam * fJ(q))) / B,   f = a - R * b

(a: the metric, 0 where NaN; b: 1 where scored). The variance of the mean of psi is the estimator's, both the
sampling of the person's questions without replacement and the questions' own sampling (how the metric would
differ on other questions like these), so the 95% interval is mean(psi) +- 1.96 sd(psi)/sqrt(N), and a paired
difference between two configs is the same on psi_c - psi_leader. The pseudo-values are also the rows of the
label source "JUDGE corrected by HUMAN" (`eval.labels.rescore.run_under`), so every leaderboard, paired test
and gate shows the corrected means. The judge's own grades are what such rows mark chunks with.

Why not the `ppi-python` package: its mean estimator assumes the labelled sample is separate from the
unlabelled set and has no ratio metric; here the sample is drawn from the pool itself.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from eval.errors import LabError

# Measured on 60-question runs of a shared set with gold: with a 20-question sample the 95% intervals covered the
# all-gold value only 78% of the time (a few questions' corrections are skewed, so their mean is far from normal);
# with 40, 94%. Below this the interval is not trustworthy.
MIN_HUMAN_QUESTIONS = 40
Z95 = 1.959964
CORRECTED = re.compile(r"^(?P<judge>\S.*?) corrected by (?P<human>\S.*)$")


def corrected_name(judge: str, human: str) -> str:
    """The label source name of `judge` corrected by `human`."""
    return f"{judge} corrected by {human}"


def parse_corrected(source: str) -> tuple[str, str] | None:
    """(judge, human) of a corrected source name, None for any other source."""
    match = CORRECTED.match(source)
    return (match["judge"], match["human"]) if match else None


def corrected_sources(sources: Sequence[str]) -> list[str]:
    """The corrected sources offered beside the store's `sources`: every automatic (llm:) source corrected by
    every human one."""
    judges = [s for s in sources if s.startswith("llm:")]
    humans = [s for s in sources if s.startswith("human:")]
    return [corrected_name(j, h) for j in judges for h in humans]


def sampled_questions(human_rows: pd.DataFrame) -> set[str]:
    """The questions whose retrieved chunks the person graded all of: the human sample (a config that retrieved
    nothing has NaN `judged` and does not count against its question)."""
    judged = human_rows.groupby("question_id")["judged"].min()
    return set(judged.index[judged >= 1.0])


def check_sample(n: int, total: int, human: str) -> None:
    """One line when the human sample is too small for a valid interval (see `MIN_HUMAN_QUESTIONS`)."""
    if n < min(MIN_HUMAN_QUESTIONS, total):
        raise LabError(
            f"{human} has graded every pooled chunk of {n} of {total} questions: the correction needs at least "
            f"{min(MIN_HUMAN_QUESTIONS, total)} fully graded questions, drawn at random (with fewer, its 95% "
            "intervals cover the truth too rarely)"
        )


def pseudo_values(judge: np.ndarray, human: np.ndarray, sampled: np.ndarray, weight: float | None = 1.0) -> np.ndarray:
    """Each question's pseudo-value (see the module docstring) of one config's metric: `judge` per question
    (NaN = not scored), `human` per question (read only where `sampled`); `weight` is `lam`, None to tune it
    (PPI++). All NaN when neither source scores any question."""
    n_all, n = len(judge), int(sampled.sum())
    a_j, b_j = np.nan_to_num(judge), (~np.isnan(judge)).astype(float)
    a_h, b_h = np.nan_to_num(human), (~np.isnan(human)).astype(float)
    lam = _tuned_weight(a_j, b_j, a_h, b_h, sampled) if weight is None else weight
    big_a, big_b = _corrected_means(lam, a_j, b_j, a_h, b_h, sampled)
    if big_b <= 0:
        return np.full(n_all, np.nan)
    f_j, f_h = a_j - big_a / big_b * b_j, a_h - big_a / big_b * b_h
    return big_a / big_b + (lam * f_j + np.where(sampled, (n_all / n) * (f_h - lam * f_j), 0.0)) / big_b


def _corrected_means(
    lam: float, a_j: np.ndarray, b_j: np.ndarray, a_h: np.ndarray, b_h: np.ndarray, sampled: np.ndarray
) -> tuple[float, float]:
    """The corrected means of the numerator A and the denominator B."""
    return tuple(float(lam * x.mean() + (y - lam * x)[sampled].mean()) for x, y in ((a_j, a_h), (b_j, b_h)))


def _tuned_weight(a_j: np.ndarray, b_j: np.ndarray, a_h: np.ndarray, b_h: np.ndarray, sampled: np.ndarray) -> float:
    """PPI++'s weight: cov(fH, fJ) / var(fJ) on the sample, within [0, 1], with the residuals f at the plain PPI
    estimate (it minimises the variance of the estimate)."""
    big_a, big_b = _corrected_means(1.0, a_j, b_j, a_h, b_h, sampled)
    if big_b <= 0:
        return 1.0
    f_j, f_h = (a_j - big_a / big_b * b_j)[sampled], (a_h - big_a / big_b * b_h)[sampled]
    spread = f_j.var()
    return float(np.clip(np.cov(f_h, f_j, bias=True)[0, 1] / spread, 0.0, 1.0)) if spread > 0 else 0.0


def interval(values: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): the normal 95% interval of a mean of pseudo-values (or any per-question values)."""
    values = values[~np.isnan(values)]
    if not len(values):
        return np.nan, np.nan, np.nan
    mean, half = float(values.mean()), Z95 * float(values.std(ddof=1)) / np.sqrt(len(values)) if len(values) > 1 else 0
    return mean, mean - half, mean + half


def corrected_rows(
    judge_rows: pd.DataFrame,
    human_rows: pd.DataFrame,
    metrics: Sequence[str],
    sampled: Collection[str],
    human: str = "the human source",
    weight: float | None = 1.0,
) -> pd.DataFrame:
    """`judge_rows` with each metric of `metrics` replaced by its pseudo-values, config by config. Both row sets
    are one run's rows (one per config and question), rescored under the judge and the human source; `sampled`
    are the human sample's question ids; `weight` as for `pseudo_values`."""
    rows = judge_rows.copy()
    questions = pd.Index(judge_rows["question_id"].unique())
    check_sample(len(set(sampled) & set(questions)), len(questions), human)
    is_sampled = questions.isin(list(sampled))
    for config_id, group in judge_rows.groupby("config_id", sort=False):
        human = human_rows[human_rows["config_id"] == config_id].set_index("question_id")
        judge = group.set_index("question_id")
        for metric in metrics:
            psi = pseudo_values(
                judge[metric].reindex(questions).to_numpy(float),
                human[metric].reindex(questions).to_numpy(float),
                is_sampled,
                weight,
            )
            rows.loc[group.index, metric] = pd.Series(psi, index=questions).reindex(group["question_id"]).to_numpy()
    return rows


@dataclass(frozen=True)
class Corrected:
    """Every config's corrected estimate and the judge's own, and the paired difference to the leader."""

    judge: str
    human: str
    metric: str
    questions: int
    sampled: int
    table: pd.DataFrame  # config_id, estimate, low, high, judge, judge_low, judge_high, diff, diff_low, diff_high

    @property
    def leader(self) -> str:
        return str(self.table["config_id"].iloc[0])

    def report(self) -> str:
        lines = [
            f"{corrected_name(self.judge, self.human)}: {self.metric} on {self.questions} questions, "
            f"{self.sampled} graded by {self.human} (a uniform random sample), 95% intervals",
            f"{'config':<28} {'corrected':>24} {'judge alone':>24} {'difference to ' + self.leader:>30}",
        ]
        for row in self.table.itertuples():
            own, diff = _cell(row.judge, row.judge_low, row.judge_high), _cell(row.diff, row.diff_low, row.diff_high)
            lines.append(f"{row.config_id:<28} {_cell(row.estimate, row.low, row.high):>24} {own:>24} {diff:>30}")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {
            "source": corrected_name(self.judge, self.human),
            "metric": self.metric,
            "questions": self.questions,
            "sampled": self.sampled,
            "leader": self.leader,
            "configs": self.table.replace({np.nan: None}).to_dict(orient="records"),
        }


def _cell(mean: float, low: float, high: float) -> str:
    return "n/a" if np.isnan(mean) else f"{mean:.3f} [{low:.3f}, {high:.3f}]"


def corrected_table(
    judge_rows: pd.DataFrame,
    human_rows: pd.DataFrame,
    metric: str,
    sampled: Collection[str],
    names: tuple[str, str] = ("judge", "human"),
    weight: float | None = 1.0,
) -> Corrected:
    """Each config's corrected `metric` with its 95% interval, the judge's own mean and interval, and the paired
    difference to the leader (the best corrected estimate; higher is better), best first."""
    psi = corrected_rows(judge_rows, human_rows, [metric], sampled, names[1], weight).pivot(
        index="question_id", columns="config_id", values=metric
    )
    own = judge_rows.pivot(index="question_id", columns="config_id", values=metric)
    estimates = {c: interval(psi[c].to_numpy()) for c in psi.columns}
    order = sorted(psi.columns, key=lambda c: -np.nan_to_num(estimates[c][0], nan=-np.inf))
    leader = order[0]
    table = pd.DataFrame(
        [
            {
                "config_id": c,
                **dict(zip(("estimate", "low", "high"), estimates[c])),
                **dict(zip(("judge", "judge_low", "judge_high"), interval(own[c].to_numpy()))),
                **dict(zip(("diff", "diff_low", "diff_high"), interval((psi[c] - psi[leader]).to_numpy()))),
            }
            for c in order
        ]
    )
    n = len(set(sampled) & set(psi.index))
    return Corrected(*names, metric, len(psi), n, table)
