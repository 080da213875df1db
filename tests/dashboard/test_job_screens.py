"""Jobs on screen (AppTest): a job a page has just started is in the sidebar in the same run, and the Indexes
page reruns itself once a build it saw running has ended, so the new index shows without a reload."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from support.paths import APP

from eval.jobs.store import JobStore
from eval.settings import DEFAULT_EMBEDDING


@pytest.mark.slow  # a build job in a process of its own
def test_a_build_started_on_the_indexes_page_is_in_the_sidebar_at_once_and_listed_when_it_ends(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("dashboard/pages/indexes.py").run()
    at.text_input(key="index-name").input("fresh")
    at.selectbox(key="embedding-model").set_value("minilm")
    at.button(key="build").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "index build 'fresh'" in [t.value for t in at.sidebar.text]  # the same run that started it
    (job,) = JobStore(tmp_path).list()
    assert at.session_state["indexes-page-builds"] == {job.job_id}  # the page saw it running
    assert JobStore(tmp_path).wait(job.job_id, timeout=300).status == "done"
    at.run()  # what the page's timer does: it notices the build ended and reruns the whole page
    assert at.session_state["indexes-page-builds"] == set()
    assert not at.exception, [e.value for e in at.exception]
    assert "fresh" in at.dataframe[0].value["name"].tolist()  # the list of indexes


def test_the_indexes_page_offers_the_engines_default_encoder_first(tmp_path, monkeypatch):
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("dashboard/pages/indexes.py").run()
    assert at.selectbox(key="embedding-model").value == DEFAULT_EMBEDDING == "onnx-int8:e5-small"
    assert at.selectbox(key="embedding-model").options[0] == DEFAULT_EMBEDDING
