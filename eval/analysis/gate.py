"""The regression gate: is a candidate run's retrieval worse than a baseline's, beyond tolerance and noise?

One metric of one config is compared question by question (paired by question id, on the questions both sides
scored). The gate fails only when the candidate is worse by more than `max_drop` AND the paired randomization
test (`eval.metrics.paired_test`) finds the difference significant at `alpha`; a larger drop that the test cannot
tell from noise (typically: few questions) passes with a warning. "Worse" follows the metric's direction in the
catalogue (lower is worse for nDCG, higher for a latency).

The baseline is a run or a small JSON file written by `write_baseline` (per-question values, so pairing works
without the old run: CI can commit it). Both sides are scored under one label source (`gold`, the runs' own
scores, unless another is chosen: `eval.labels.rescore.run_under_source`); a baseline file records its source.
Every bad input raises `LabError` (exit code 2 in the CLI).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from eval.errors import LabError
from eval.io import atomic_write_bytes
from eval.labels.rescore import run_under_source
from eval.metrics import DOC_METRIC_KEYS, METRICS, bootstrap_ci, doc_metrics, paired_test, parse_metric
from eval.runs.store import RUN_ID_PATTERN, Run, RunStore
from eval.runs.summary import label_source

BASELINE_KIND = "retriever-lab-baseline"
BASELINE_VERSION = 1
EXIT_PASS, EXIT_FAIL = 0, 1
N_RESAMPLES = 10_000  # sign flips of the paired randomization test: p has a resolution of 1 / N_RESAMPLES


@dataclass(frozen=True)
class Scores:
    """One config's per-question values of one metric (NaN: the question cannot be scored) and their origin."""

    source: str  # the run id, or the baseline file's path
    run_id: str
    config_id: str
    metric: str
    questions_fingerprint: str
    values: dict[str, float]
    label_source: str = "gold"


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise LabError(
            f"unknown metric '{metric}' (use a catalogue name such as {', '.join(DOC_METRIC_KEYS)}, "
            f"optionally at a cutoff: ndcg@10)"
        )


def pick_config(run: Run, config_id: str | None) -> str:
    """`config_id` if the run has it; without one, the run's only config. Several configs and no `config_id` is
    an error: choosing "the best" would let the gate compare different configs from one run to the next."""
    ids = [c["config_id"] for c in run.configs]
    if config_id is None:
        if len(ids) == 1:
            return ids[0]
        raise LabError(f"run {run.run_id} has {len(ids)} configs: choose one with --config ({', '.join(ids)})")
    if config_id not in ids:
        raise LabError(f"run {run.run_id} has no config '{config_id}' (it has: {', '.join(ids)})")
    return config_id


def metric_values(run: Run, config_id: str, metric: str) -> dict[str, float]:
    """Question id -> value of `metric` for one config: the stored column, or for a ranking metric the rows lack
    (a cutoff such as `ndcg@10`), computed from each row's retrieved doc ids and the run's stored question set."""
    check_metric(metric)
    rows = run.rows[run.rows["config_id"] == config_id]
    if metric in rows:
        return dict(zip(rows["question_id"], rows[metric].astype(float)))
    if parse_metric(metric)[0] not in DOC_METRIC_KEYS:
        raise LabError(f"run {run.run_id} has no values of metric '{metric}'")
    questions = run.questions_by_id
    missing = set(rows["question_id"]) - set(questions)
    if missing:
        raise LabError(
            f"run {run.run_id} does not store questions {', '.join(sorted(missing)[:5])}: cannot compute '{metric}'"
        )
    return {
        qid: doc_metrics(list(doc_ids), questions[qid].relevant_ids, [metric])[metric]
        for qid, doc_ids in zip(rows["question_id"], rows["doc_ids"])
    }


def run_scores(run: Run, config_id: str | None, metric: str) -> Scores:
    """The per-question scores of a complete run (a partial run would be gated on the questions it reached)."""
    if run.status != "complete":
        raise LabError(f"run {run.run_id} is {run.status}, not complete: resume it before gating")
    config = pick_config(run, config_id)
    fingerprint, values = run.info.questions.fingerprint, metric_values(run, config, metric)
    return Scores(run.run_id, run.run_id, config, metric, fingerprint, values, label_source(run.rows))


def write_baseline(scores: Scores, path: str | Path) -> Path:
    """Write a baseline file: a small JSON with the run id, config, metric, question-set fingerprint and the
    per-question values (null where a question cannot be scored)."""
    data = {
        "kind": BASELINE_KIND,
        "version": BASELINE_VERSION,
        "run_id": scores.run_id,
        "config_id": scores.config_id,
        "metric": scores.metric,
        "questions_fingerprint": scores.questions_fingerprint,
        "label_source": scores.label_source,
        "values": {q: None if math.isnan(v) else v for q, v in scores.values.items()},
    }
    path = Path(path)
    atomic_write_bytes(path, (json.dumps(data, ensure_ascii=False, indent=1) + "\n").encode("utf-8"))
    return path


def read_baseline(path: str | Path) -> Scores:
    """A baseline file as `Scores`; anything else raises `LabError` naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise LabError(f"{path}: cannot read the baseline file ({error})") from None
    if not isinstance(data, dict) or data.get("kind") != BASELINE_KIND:
        raise LabError(f"{path}: not a Retriever Lab baseline file (write one with `gate --write-baseline`)")
    if data.get("version") != BASELINE_VERSION:
        raise LabError(f"{path}: baseline file version {data.get('version')!r} is not {BASELINE_VERSION}")
    values = data.get("values")
    text_fields = ("run_id", "config_id", "metric", "questions_fingerprint")
    if (
        not all(isinstance(data.get(f), str) for f in text_fields)
        or not isinstance(values, dict)
        or not values
        or not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in values.values())
    ):
        raise LabError(
            f"{path}: malformed baseline file (it needs {', '.join(text_fields)} as text and "
            f"non-empty 'values' mapping question ids to numbers or null)"
        )
    check_metric(data["metric"])
    low, high = value_range(data["metric"])
    wrong = next(((q, v) for q, v in values.items() if v is not None and not low <= v <= high), None)
    if wrong is not None:
        raise LabError(
            f"{path}: question {wrong[0]} has {data['metric']} {wrong[1]!r}, outside [{low:g}, {high:g}]: "
            "not a value the metric takes (rewrite the file with `gate --write-baseline`)"
        )
    return Scores(
        str(path),
        data["run_id"],
        data["config_id"],
        data["metric"],
        data["questions_fingerprint"],
        {str(q): np.nan if v is None else float(v) for q, v in values.items()},
        str(data.get("label_source", "gold")),  # files written before label sources were recorded: gold
    )


def value_range(metric: str) -> tuple[float, float]:
    """The values a metric can take: shares and ranking scores in [0, 1], intra-list diversity (1 - cosine)
    in [0, 2], counts, characters and times from 0 up."""
    name = parse_metric(metric)[0]
    if name == "ild":
        return 0.0, 2.0
    if METRICS[metric].group in ("relevance", "answer") or name in ("near_duplicate_rate", "distinct_doc_ratio"):
        return 0.0, 1.0
    return 0.0, math.inf


def candidate_config(run: Run, baseline_config: str, chosen: str | None) -> str:
    """The candidate's config to compare: `chosen` (`--candidate-config`), else the baseline's config id, else
    the run's only config (two one-config runs with different ids, e.g. `similarity-k10` then
    `similarity-k1`, compare; `gate` says so in a warning)."""
    if chosen is not None:
        return pick_config(run, chosen)
    ids = [c["config_id"] for c in run.configs]
    if baseline_config in ids:
        return baseline_config
    if len(ids) == 1:
        return ids[0]
    raise LabError(
        f"run {run.run_id} has no config '{baseline_config}' (the baseline's): choose one with "
        f"--candidate-config ({', '.join(ids)})"
    )


def load_baseline(
    store: RunStore,
    spec: str,
    config_id: str | None,
    metric: str,
    source: str | None = None,
    labels_file: str | Path | None = None,
) -> Scores:
    """The baseline named by `spec`: an existing file is a baseline file, a run id a run of `store` (scored under
    `source`, see `run_under_source`).

    A file fixes its config, metric and label source: a different one is an error, not a silent switch."""
    if Path(spec).is_file():
        scores = read_baseline(spec)
        if metric != scores.metric:
            raise LabError(f"{spec} is a baseline of '{scores.metric}', not '{metric}'")
        if config_id not in (None, scores.config_id):
            raise LabError(f"{spec} is a baseline of config '{scores.config_id}', not '{config_id}'")
        if (source or "gold") != scores.label_source:
            raise LabError(f"{spec} is a baseline under label source '{scores.label_source}', not '{source or 'gold'}'")
        return scores
    if not RUN_ID_PATTERN.match(spec):
        raise LabError(f"baseline '{spec}' is neither a file nor a run id")
    return run_scores(run_under_source(store.load(spec), source, labels_file, [metric]), config_id, metric)


@dataclass
class GateResult:
    """The gate's numbers and verdict; `difference` and its CI are candidate minus baseline."""

    metric: str
    baseline: str
    candidate: str
    config_id: str  # the baseline's
    candidate_config_id: str
    n_questions: int
    baseline_mean: float
    candidate_mean: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    max_drop: float
    alpha: float
    verdict: str
    failed: bool
    warnings: list[str] = field(default_factory=list)
    label_source: str = "gold"

    @property
    def exit_code(self) -> int:
        return EXIT_FAIL if self.failed else EXIT_PASS

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def markdown(self) -> str:
        """The result as a Markdown table for a pull-request comment, warnings quoted below it."""
        p = f"{self.p_value:.4f}" if self.p_value > 0 else f"< {1 / N_RESAMPLES:g}"  # no flip as extreme
        config = f"config `{self.config_id}`" + (
            f" vs `{self.candidate_config_id}`" if self.candidate_config_id != self.config_id else ""
        )
        lines = [
            f"Retriever Lab gate: baseline `{self.baseline}` vs candidate `{self.candidate}`, {config}, "
            f"{self.n_questions} paired questions, label source `{self.label_source}`, max drop {self.max_drop:g}, "
            f"alpha {self.alpha:g}",
            "",
            "| metric | baseline | candidate | difference [95% CI] | p-value | verdict |",
            "|---|---|---|---|---|---|",
            f"| {self.metric} | {self.baseline_mean:.4f} | {self.candidate_mean:.4f} | {self.difference:+.4f} "
            f"[{self.ci_low:+.4f}, {self.ci_high:+.4f}] | {p} | {self.verdict} |",
        ]
        lines += ["", *(f"> warning: {w}" for w in self.warnings)] if self.warnings else []
        return "\n".join(lines)


def gate(baseline: Scores, candidate: Scores, max_drop: float = 0.01, alpha: float = 0.05) -> GateResult:
    """Compare candidate with baseline on the questions both scored (see the module docstring for the rule)."""
    if not (math.isfinite(max_drop) and max_drop >= 0 and 0 < alpha < 1):
        raise LabError(f"--max-drop must be >= 0 (a finite number) and --alpha in (0, 1), got {max_drop} and {alpha}")
    if baseline.label_source != candidate.label_source:
        raise LabError(
            f"the baseline {baseline.source} is scored under label source '{baseline.label_source}' and the "
            f"candidate {candidate.source} under '{candidate.label_source}': gate both under one source"
        )
    shared = [q for q in baseline.values if q in candidate.values]
    if not shared:
        raise LabError(
            f"the candidate {candidate.source} shares no question with the baseline {baseline.source} "
            f"(question sets {baseline.questions_fingerprint} and {candidate.questions_fingerprint})"
        )
    pairs = np.array([(baseline.values[q], candidate.values[q]) for q in shared], dtype=float)
    pairs = pairs[~np.isnan(pairs).any(axis=1)]
    if not len(pairs):
        raise LabError(f"none of the {len(shared)} shared questions has a value of '{candidate.metric}' on both sides")
    base, cand = pairs[:, 0], pairs[:, 1]
    difference = float(cand.mean() - base.mean())
    _, low, high = bootstrap_ci(cand - base)
    p = paired_test(cand, base, n_resamples=N_RESAMPLES)
    worse_by = -difference if METRICS[candidate.metric].higher_is_better else difference
    significant = p < alpha
    warnings = []
    if baseline.config_id != candidate.config_id:
        warnings.append(
            f"compared the baseline's config {baseline.config_id} with the candidate's {candidate.config_id}"
        )
    if baseline.questions_fingerprint != candidate.questions_fingerprint:
        warnings.append(
            f"the question sets differ ({baseline.questions_fingerprint} vs "
            f"{candidate.questions_fingerprint}): compared on the {len(shared)} shared question ids"
        )
    failed = worse_by > max_drop and significant
    if failed:
        verdict = "FAIL (significant drop)"
    elif worse_by > max_drop:
        verdict = "pass (drop not significant)"
        warnings.append(
            f"the candidate is worse by {worse_by:.4f}, more than the allowed {max_drop:g}, but the paired "
            f"test cannot tell it from noise (p = {p:.4f} >= {alpha:g} on {len(pairs)} questions): "
            f"gate on more questions"
        )
    else:
        verdict = "pass (within tolerance)" if worse_by > 0 else "pass (no drop)"
    return GateResult(
        candidate.metric,
        baseline.source,
        candidate.source,
        baseline.config_id,
        candidate.config_id,
        len(pairs),
        float(base.mean()),
        float(cand.mean()),
        difference,
        low,
        high,
        p,
        max_drop,
        alpha,
        verdict,
        failed,
        warnings,
        candidate.label_source,
    )
