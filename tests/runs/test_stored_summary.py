"""Scalar-row loading and stored summaries: what lets the Compare page open a run of a million rows at once."""

import pandas as pd
import pytest

from eval.runs.store import RETRIEVED_COLUMNS, RunStore
from eval.runs.summary import quality_metrics, stored_summary, summarize

GRID = {
    "configs": [
        {"search_type": "similarity", "k": [2, 4]},
        {"search_type": "mmr", "k": [3], "fetch_k": [10], "lambda_mult": [0.5]},
    ]
}


@pytest.fixture
def run(sample_run):
    return sample_run(GRID, 12, latency_sample=2, on_start=lambda run_id: None)  # a fresh run: tests write to it


def stored(run) -> list:
    return sorted((run.folder / "summaries").glob("*.parquet"))


def test_scores_only_rows_are_the_scalar_columns_of_the_full_rows(run):
    store = RunStore(run.folder.parent)
    full, scores = store.load(run.run_id).rows, store.load(run.run_id, scores_only=True).rows
    assert set(RETRIEVED_COLUMNS) <= set(full.columns)
    assert list(scores.columns) == [c for c in full.columns if c not in RETRIEVED_COLUMNS]
    pd.testing.assert_frame_equal(scores, full.drop(columns=list(RETRIEVED_COLUMNS)))


def test_the_sweep_stores_its_default_summary_and_the_page_reads_it(run):
    scores = RunStore(run.folder.parent).load(run.run_id, scores_only=True)
    [path] = stored(run)  # written when the sweep finished
    pd.testing.assert_frame_equal(pd.read_parquet(path), summarize(run))
    marker = pd.read_parquet(path).assign(n_questions=-1)  # prove the next call reads the file
    marker.to_parquet(path, index=False)
    assert (stored_summary(scores)["n_questions"] == -1).all()


def test_each_baseline_and_metric_set_has_its_own_summary(run):
    baseline = run.configs[0]["config_id"]
    with_baseline = stored_summary(run, baseline)
    pd.testing.assert_frame_equal(with_baseline, summarize(run, baseline))
    assert f"{quality_metrics(run.rows)[0]}_p" in with_baseline
    two = stored_summary(run, None, ["hit_rate", "ndcg"])
    pd.testing.assert_frame_equal(two, summarize(run, None, ["hit_rate", "ndcg"]))
    assert len(stored(run)) == 3


def test_a_run_that_is_not_complete_is_never_cached(run):
    store = RunStore(run.folder.parent)
    for path in stored(run):
        path.unlink()
    store.update(run.run_id, status="interrupted")
    summary = stored_summary(store.load(run.run_id, scores_only=True))
    pd.testing.assert_frame_equal(summary, summarize(run))
    assert stored(run) == []
