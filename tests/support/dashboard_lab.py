"""The dashboard under streamlit.testing.v1.AppTest against a lab home: `dashboard_lab` (a data folder, the tiny
index and one complete run of SWEEP, one per test module) and `app` (opens a page of the app on that home)."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest
from support.paths import APP
from support.tiny_corpus import write_dataset

from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [2, 3]},
        {"search_type": "mmr", "k": [2], "fetch_k": [4, 6], "lambda_mult": [0.5]},
    ]
}


@pytest.fixture(scope="module")
def dashboard_lab(tmp_path_factory, tiny_dataset):
    """A data folder with the tiny index and one complete run."""
    home = tmp_path_factory.mktemp("home")
    data = write_dataset(tmp_path_factory.mktemp("data") / "tiny", tiny_dataset)
    store = IndexStore(home / "indexes")
    store.build(tiny_dataset, "tiny", "minilm", ChunkingParams(120, 20))
    runs = RunStore(home / "runs")
    run_id = run_sweep(
        runs, store.open("tiny"), parse_sweep(SWEEP), tiny_dataset.questions, str(data), SweepOptions(latency_sample=2)
    )
    return {"home": home, "data": data, "run_id": run_id}


@pytest.fixture
def app(dashboard_lab, monkeypatch):
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(dashboard_lab["home"]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    def open_page(page: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=120)
        at.run()
        if page != "dashboard/pages/compare.py":  # the default page
            at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_page


def comparison_table(at):
    """The table of the paired changes (a display-only dataframe: AppTest finds it by its columns)."""
    (table,) = [d.value for d in at.dataframe if any(c.endswith(" change") for c in d.value.columns)]
    return table
