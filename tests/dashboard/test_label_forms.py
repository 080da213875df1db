"""The Labels page's two LLM forms (AppTest): no default model (the bundled 135M model is a smoke test, not a
labeller), the smoke-test warning beside each field, and a form sent without a model says what to do and
starts no job. The old name of the bundled model still works."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from support.paths import APP

from eval.generation.generators import SMOKE_TEST_WARNING
from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.jobs.store import JobStore
from eval.retrievers.llm_rerank import check_spec


@pytest.fixture
def labels_page(tmp_path, tiny_dataset, monkeypatch):
    IndexStore(tmp_path / "indexes").build(tiny_dataset, "tiny", "minilm", ChunkingParams(120, 20))
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(tmp_path))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("dashboard/pages/labels.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at, tmp_path


def test_the_generate_form_has_no_default_model_and_warns_about_the_smoke_test_model(labels_page):
    at, home = labels_page
    assert at.text_input(key="gen-llm").value == ""
    assert sum(SMOKE_TEST_WARNING in c.value for c in at.caption) == 1  # the judge tab has no run to judge yet
    next(b for b in at.button if b.label == "Generate").click().run()
    assert any("Name the LLM that writes the questions" in e.value for e in at.error)
    assert JobStore(home).list() == []


def test_the_bundled_model_keeps_its_old_name_beside_the_smoke_test_name():
    assert check_spec("llm:bundled:smollm2-smoke-test", "x") == "llm:bundled:smollm2-smoke-test"
    assert check_spec("llm:bundled:smollm2", "x") == "llm:bundled:smollm2"
    assert "bundled:smollm2-smoke-test" in SMOKE_TEST_WARNING and "smoke tests only" in SMOKE_TEST_WARNING
