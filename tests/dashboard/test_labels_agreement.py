"""The Labels page's agreement view (AppTest): beside kappa, the two leaderboards with Kendall tau, the random
labels' tau and whether both recommend the same config, and the grades by chunk length; and the corrected
label source ("JUDGE corrected by human:NAME") offered where label sources are chosen."""

import pytest
from streamlit.testing.v1 import AppTest
from support.label_source_lab import MMR, SOURCE
from support.paths import APP

from eval.labels.pooled_judging import pool, save_judgements

JUDGE = "llm:reverse@judge-v1"


@pytest.fixture
def app(unlabelled_lab, monkeypatch):
    """A judge that grades relevant every pooled chunk ann did not mark (and hers not): it ranks the configs the
    other way round."""
    lab = unlabelled_lab
    items = pool(lab.run)
    save_judgements(lab.labels_file, [(i, int(lab.labelled.get(i.question_id) != i.doc_id)) for i in items], JUDGE)
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(lab.home))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("dashboard/pages/labels.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_agreement_shows_both_leaderboards_tau_its_baseline_and_the_recommendation(app, unlabelled_lab):
    app.selectbox(key="agree-a").set_value(SOURCE).run()
    app.selectbox(key="agree-b").set_value(JUDGE).run()
    assert not app.exception, [e.value for e in app.exception]
    metrics = {m.label: m.value for m in app.metric}
    assert float(metrics["Kendall tau"]) <= 0  # the judge puts similarity first, mmr not above the empty config
    assert metrics["Same recommendation"] == "no"
    assert "Random labels' tau" in metrics
    boards, lengths = app.dataframe[1].value, app.dataframe[2].value  # after the confusion matrix
    assert boards["config_id"].iloc[0] == MMR and list(boards.columns[1:3]) == [f"ndcg {SOURCE}", f"rank {SOURCE}"]
    assert f"relevant {JUDGE}" in lengths.columns and lengths["chunks"].sum() == len(pool(unlabelled_lab.run))


def test_the_corrected_source_is_offered_and_says_when_the_sample_is_too_small(app):
    app.switch_page("dashboard/pages/compare.py").run()
    corrected = f"{JUDGE} corrected by {SOURCE}"
    assert corrected in app.selectbox(key="compare-labels").options
    app.selectbox(key="compare-labels").set_value(corrected).run()
    errors = [e.value for e in app.error]
    assert any("the correction needs at least 5 fully graded questions" in e for e in errors), errors
