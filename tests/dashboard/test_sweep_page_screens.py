"""The sweep page after leaving it and coming back, and its defaults for an index of the user's own documents
(AppTest): the grid values the user typed stay; the question set offered is the one the Labels page generated
from this index, never the sample's; and the score_threshold seed of a generated set comes from its labels."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from support.lab_llm_responder import respond
from support.openai_stub_server import OpenAIStubServer
from support.paths import APP

from eval.generation.generators import OpenAIGenerator
from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.labels.question_generation import generate_questions

SWEEP, LABELS = "dashboard/pages/sweep.py", "dashboard/pages/labels.py"


@pytest.fixture
def home(tmp_path, tiny_dataset, monkeypatch):
    IndexStore(tmp_path / "indexes").build(tiny_dataset, "tiny", "minilm", ChunkingParams(120, 20))
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(tmp_path))
    return tmp_path


def open_app(page: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_grid_values_survive_leaving_the_page_and_coming_back(home):
    at = open_app(SWEEP)
    at.radio(key="sweep-questions-source").set_value("Bundled sample").run()  # questions to seed thresholds from
    assert any(c.value.startswith("Seeded from the score distribution") for c in at.caption)
    at.text_input(key="grid-threshold").input("0.2, 0.25").run()
    at.text_input(key="grid-fetch").input("30").run()
    at.text_input(key="grid-lambda").input("0.1").run()
    at.switch_page("dashboard/pages/indexes.py").run()
    at.switch_page(SWEEP).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.text_input(key="grid-threshold").value == "0.2, 0.25"
    assert at.text_input(key="grid-fetch").value == "30"
    assert at.text_input(key="grid-lambda").value == "0.1"
    assert not any(c.value.startswith("Seeded") for c in at.caption)  # the seed is not what is shown
    assert any(c.value.startswith("Your values; the seed from the score distribution") for c in at.caption)


def test_an_index_of_other_documents_is_not_offered_the_samples_questions(home):
    at = open_app(SWEEP)
    assert at.selectbox(key="sweep-index").value == "tiny"
    assert at.radio(key="sweep-questions-source").value == "Folder or file path"
    assert at.text_input(key="sweep-questions-path").value == ""


def test_the_set_generated_on_the_labels_page_is_offered_with_a_seed_from_its_labels(home):
    with OpenAIStubServer(responder=respond) as server:
        llm = f"openai:lab@{server.base_url}"
        at = open_app(LABELS)
        at.text_input(key="gen-llm").input(llm)
        next(b for b in at.button if b.label == "Generate").click().run()
        assert any("runs in the background" in s.value for s in at.success)
        out = home / "question_sets" / "tiny-generated"  # the page's default folder
        at.switch_page(SWEEP).run()
        assert at.radio(key="sweep-questions-source").value == "Folder or file path"
        assert at.text_input(key="sweep-questions-path").value == str(out)  # pre-filled before the job ends
        report = generate_questions(
            IndexStore(home / "indexes").open("tiny"),
            OpenAIGenerator("lab", server.base_url),
            3,
            home / "other-generated",
        )
    assert report.kept > 0
    at.text_input(key="sweep-questions-path").input(str(home / "other-generated")).run()
    captions = [c.value for c in at.caption]
    assert not any("no labels for this index" in c for c in captions), captions
    assert any(
        c.startswith(f"Seeded from the calibration of {report.kept} labelled questions")
        and c.endswith("(labels: generated).")
        for c in captions
    ), captions
