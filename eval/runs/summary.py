"""Per-configuration summaries of a run: metric means with 95% CIs (and p-values against a baseline),
parameters and latency, kept in the run folder once computed for a complete run.
"""

from __future__ import annotations

import json
from hashlib import sha256

import numpy as np
import pandas as pd

from eval.errors import LabError
from eval.io import atomic_write_parquet
from eval.metrics import METRICS, aggregate, parse_metric
from eval.metrics.latency import percentile_intervals
from eval.runs.store import Run

LATENCY_COLUMNS = ("retrieval_ms", "ttft_ms", "total_ms", "tokens_per_s")


PARAMETER_COLUMNS = ("search_type", "k", "fetch_k", "lambda_mult", "score_threshold", "filter")


# Rows rescored under a label source (`eval.labels.rescore`) name it and carry each retrieved chunk's grade under
# it (aligned with `chunk_ids`, None = unjudged); a run's own rows are scored under gold and have neither.
SOURCE_COLUMN, GRADES_COLUMN = "label_source", "grades"

SUMMARY_VERSION = 2  # raise it when `summarize` changes what it computes: stored summaries are then recomputed


def quality_metrics(rows: pd.DataFrame) -> list[str]:
    """Metrics of the registry present in the rows with at least one value (latency excluded)."""
    return [
        name for name, info in METRICS.items() if info.group != "latency" and name in rows and rows[name].notna().any()
    ]


def label_source(rows: pd.DataFrame) -> str:
    """The label source a run's rows were scored under (`gold` for a run's own rows)."""
    return str(rows[SOURCE_COLUMN].iloc[0]) if SOURCE_COLUMN in rows and len(rows) else "gold"


def scored_questions(rows: pd.DataFrame, metric: str) -> tuple[int, int]:
    """(questions with a value of `metric` under at least one config, questions in the rows). A question
    without one (no relevant label, no reference answer) is left out of every mean of that metric."""
    return int(rows.loc[rows[metric].notna(), "question_id"].nunique()), int(rows["question_id"].nunique())


def scored_text(rows: pd.DataFrame, metric: str, source: str = "gold") -> str:
    """How many questions the means of `metric` are over, and why the others are not: "scored on 14 of 20
    questions: 6 have no relevant label under human:ann"."""
    scored, total = scored_questions(rows, metric)
    text = f"{METRICS[metric].label} scored on {scored} of {total} questions"
    if scored == total:
        return text
    missing = total - scored
    info = METRICS[metric]
    if parse_metric(metric)[0] == "judged":
        why = "nothing retrieved"
    else:
        why = {"relevance": f"no relevant label under {source}", "answer": "no reference answer"}.get(
            info.group, f"no value of {info.label}"
        )
    return f"{text}: {missing} {'has' if missing == 1 else 'have'} {why}"


def config_table(run: Run) -> pd.DataFrame:
    """One row per config with its LangChain parameters as columns (filter as JSON text)."""
    records = []
    for config in run.configs:
        record = {"config_id": config["config_id"], **{c: config.get(c) for c in PARAMETER_COLUMNS}}
        record["filter"] = json.dumps(record["filter"], ensure_ascii=False) if record["filter"] else ""
        records.append(record)
    return pd.DataFrame(records)


def latency_table(run: Run) -> pd.DataFrame:
    """p50/p95 per config for retriever latency (from the samples, each with its bootstrap interval,
    `retrieval_ms_p50_low` ...) and the answer latencies (from rows)."""
    out = pd.DataFrame({"config_id": [c["config_id"] for c in run.configs]})
    if len(run.latency):
        out = out.merge(percentile_intervals(run.latency), on="config_id", how="left")
    for column in [c for c in LATENCY_COLUMNS[1:] if c in run.rows and run.rows[c].notna().any()]:
        grouped = run.rows.groupby("config_id")[column]
        stats = pd.DataFrame({f"{column}_p50": grouped.median(), f"{column}_p95": grouped.quantile(0.95)})
        out = out.merge(stats, left_on="config_id", right_index=True, how="left")
    for column in ("retrieval_ms_p50", "retrieval_ms_p95"):  # a run without latency samples still has them
        if column not in out:
            out[column] = np.nan
    return out


def run_weights(run: Run, weighted: bool) -> dict[str, float] | None:
    """The question weights a weighted summary of `run` uses, or None when it is not weighted."""
    if not weighted:
        return None
    weights = run.question_weights()
    if not weights:
        raise LabError(
            f"run {run.run_id}'s questions have no weights: a weighted mean needs a question set with a `weight` "
            "field (as `python -m eval questions import` writes); leave weighting off"
        )
    return weights


def weighting_note(run: Run, weighted: bool) -> str:
    """Which mean a leaderboard shows, in words, for every place that shows one ("" for a run whose questions
    have no weights: there is only one mean)."""
    if not weighted:
        return "Unweighted means: each question counts once, whatever its weight." if run.question_weights() else ""
    weights = run_weights(run, weighted) or {}
    return (
        f"Weighted means: each question counts by its weight (for imported questions, how many lines of the "
        f"log it stands for: {sum(weights.values()):g} over {len(weights)} questions)."
    )


def summarize(
    run: Run, baseline: str | None = None, metrics: list[str] | None = None, weighted: bool = False
) -> pd.DataFrame:
    """The leaderboard: parameters, metric means and CIs (+ p-values against `baseline`), latency; with
    `weighted`, means and intervals weighted by the questions' weights (`eval.metrics.statistics.aggregate`)."""
    metrics = metrics or quality_metrics(run.rows)
    stats = aggregate(run.rows, metrics, baseline=baseline, weights=run_weights(run, weighted))
    return config_table(run).merge(stats, on="config_id").merge(latency_table(run), on="config_id")


def stored_summary(
    run: Run, baseline: str | None = None, metrics: list[str] | None = None, weighted: bool = False
) -> pd.DataFrame:
    """`summarize`, kept in the run folder (`summaries/`) once computed for a complete run.

    A summary of a million rows takes seconds (bootstrap CIs of every config and metric); a sweep
    stores its default summary when it finishes, so the Compare page opens a big run at once. The key
    holds everything the summary depends on; a run that is not complete is never cached."""
    metrics = metrics or quality_metrics(run.rows)
    if run.status != "complete":
        return summarize(run, baseline, metrics, weighted)
    key = json.dumps([run.manifest.get("finished_at"), baseline, metrics, SUMMARY_VERSION, *(["weighted"] * weighted)])
    path = run.folder / "summaries" / f"{sha256(key.encode()).hexdigest()[:16]}.parquet"
    if path.is_file():
        return pd.read_parquet(path)
    summary = summarize(run, baseline, metrics, weighted)
    try:
        atomic_write_parquet(path, summary)
    except OSError:  # a read-only run folder still gets its summary, just not kept
        pass
    return summary
