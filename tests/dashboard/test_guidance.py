"""The Compare page guides the choice: a recommendation under constraints, and a per-question drill-down that
opens a question on Inspect."""

import pytest
from support.dashboard_lab import comparison_table

from eval.analysis.drilldown import FILTERS, question_table
from eval.analysis.recommend import recommend
from eval.runs.store import RunStore
from eval.runs.summary import summarize


def test_question_table_orders_worst_first_and_filters():
    import pandas as pd

    from eval.schema import Question

    rows = pd.DataFrame(
        {
            "question_id": ["q1", "q2", "q3"] * 2,
            "config_id": ["a"] * 3 + ["b"] * 3,
            "hit_rate": [1.0, 0.0, 0.0, 1.0, 1.0, 0.0],
        }
    )
    questions = {"q1": Question("q1", "one"), "q2": Question("q2", "two")}
    table = question_table(rows, questions, "a", "hit_rate")
    assert table.question_id.tolist() == ["q2", "q3", "q1"]  # misses first; q2 (b hits it) before q3
    assert table.columns.tolist() == ["question_id", "question", "a", "b", "configs_hit", "disagree"]
    assert table.question.tolist() == ["two", "", "one"] and table.disagree.tolist() == [True, False, False]
    assert question_table(rows, questions, "a", "hit_rate", show=FILTERS[1]).question_id.tolist() == ["q2"]
    assert question_table(rows, questions, "b", "hit_rate", show=FILTERS[2]).question_id.tolist() == ["q3"]


def test_compare_recommends_and_drills_down_to_inspect(app, dashboard_lab):
    run = RunStore(dashboard_lab["home"] / "runs").load(dashboard_lab["run_id"])
    at = app("dashboard/pages/compare.py")
    at.selectbox(key="compare-run").set_value(dashboard_lab["run_id"]).run()
    expected = recommend(run, summarize(run))
    assert at.success[0].value == expected.text
    assert at.selectbox(key="drill-config").value == expected.config_id  # the drill-down opens on the pick

    at.number_input(key="rec-budget").set_value(0.000001).run()
    assert "No configuration meets the constraints" in at.warning[0].value

    at.selectbox(key="drill-config").set_value("mmr-k2-f4-l0.5")
    at.radio(key="drill-show").set_value(FILTERS[2]).run()
    shown = at.dataframe(key="drill-table").value
    config_ids = [c["config_id"] for c in run.configs]
    wanted = question_table(run.rows, run.questions_by_id, "mmr-k2-f4-l0.5", "hit_rate", config_ids, FILTERS[2])
    assert shown.reset_index(drop=True).equals(wanted) and len(wanted) > 0

    question = wanted.question_id.iloc[0]
    at.selectbox(key="drill-question").set_value(question)
    at.button(key="drill-open").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.title[0].value == "Inspect a question"
    assert at.selectbox(key="inspect-question").value == question
    assert at.multiselect(key="inspect-configs").value[0] == "mmr-k2-f4-l0.5"
    assert [s.value for s in at.subheader][0] == "mmr-k2-f4-l0.5"
    marker = at.selectbox(key="inspect-question").format_func(question)
    hits = int((run.rows[run.rows.question_id == question].hit_rate > 0).sum())
    assert marker.startswith(f"{'●' if hits else '○'} {hits}/{len(config_ids)} hit")


def test_a_missing_path_error_shows_the_whole_path(app, tmp_path):
    at = app("dashboard/pages/indexes.py")
    at.radio(key="index-source").set_value("Folder or file path").run()
    missing = tmp_path / "nested folder" / "missing"
    at.text_input(key="index-path").set_value(str(missing)).run()
    at.button(key="build").click().run()
    assert f"no such file or folder: {missing}" in at.error[0].value


def test_compare_shows_the_paired_change_against_another_run(dashboard_lab, tiny_dataset, tmp_path, monkeypatch):
    """Run b: the same sweep on the same questions over an index chunked twice as coarsely, in a copy of the lab.
    Compare shows, per config, both means and the paired change that `compare_runs` computes."""
    import shutil

    from streamlit.testing.v1 import AppTest
    from support.dashboard_lab import SWEEP, run_on_a_coarser_index
    from support.paths import APP

    from eval.analysis.leaderboard import compare_runs
    from eval.report.render import comparison_frame

    home = tmp_path / "home"
    shutil.copytree(dashboard_lab["home"], home)
    other = run_on_a_coarser_index(home, tiny_dataset, SWEEP, str(dashboard_lab["data"]))
    runs = RunStore(home / "runs")
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(home))
    at = AppTest.from_file(APP, default_timeout=120).run()
    at.selectbox(key="compare-run").set_value(dashboard_lab["run_id"]).run()
    assert at.selectbox(key="compare-other-run").value == "(none)"
    at.selectbox(key="compare-other-run").set_value(other).run()
    metric = at.selectbox(key="compare-other-metric").value
    assert metric == "ndcg"  # the ranking metric first
    expected = compare_runs(runs.load(dashboard_lab["run_id"]), runs.load(other), [metric])
    shown = comparison_table(at)
    assert shown.to_dict("records") == comparison_frame(expected, [metric]).to_dict("records")
    a, b = (runs.load(r).rows.set_index(["config_id", "question_id"])[metric] for r in (dashboard_lab["run_id"], other))
    changes = (b - a).groupby("config_id").mean()
    assert changes.abs().max() > 0  # the coarser index changes something, so the test shows a real change
    for _, row in shown.iterrows():  # "+0.123 [low, high]": the mean of the per-question differences
        assert float(row["nDCG change"].split(" ")[0]) == pytest.approx(changes[row.config_id], abs=5e-4)
    at.selectbox(key="compare-other-metric").set_value("recall").run()
    assert "Recall a" in comparison_table(at).columns
    assert not at.exception
