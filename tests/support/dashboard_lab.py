"""The dashboard under streamlit.testing.v1.AppTest against a lab home: `dashboard_lab` (a data folder, the tiny
index and one complete run of SWEEP, one per test module, made by `home_with_a_run`) and `app` (opens a page of the
app on that home, as `page_opener` opens one on any home)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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


def home_with_a_run(tmp_path_factory, dataset, sweep: dict, latency_sample: int, source_is_file: bool = False) -> dict:
    """A lab home with `dataset` indexed as 'tiny' (MiniLM), its data folder (`write_dataset`) and one complete run
    of `sweep`: {"home", "data", "run_id"}. The run's question source is the data folder, or its `questions.jsonl`
    with `source_is_file` (where labels are kept beside that file)."""
    home = tmp_path_factory.mktemp("home")
    data = write_dataset(tmp_path_factory.mktemp("data") / "tiny", dataset)
    store = IndexStore(home / "indexes")
    store.build(dataset, "tiny", "minilm", ChunkingParams(120, 20))
    source = data / "questions.jsonl" if source_is_file else data
    run_id = run_sweep(
        RunStore(home / "runs"),
        store.open("tiny"),
        parse_sweep(sweep),
        dataset.questions,
        str(source),
        SweepOptions(latency_sample=latency_sample),
    )
    return {"home": home, "data": data, "run_id": run_id}


def run_on_a_coarser_index(home: Path, dataset, sweep: dict, source: str) -> str:
    """The same sweep in the lab home `home` over `dataset` indexed again as 'coarse' (chunks of 240 characters, no
    overlap: twice as coarse as 'tiny'): the new run's id. Run b of a comparison between two runs."""
    store = IndexStore(home / "indexes")
    store.build(dataset, "coarse", "minilm", ChunkingParams(240, 0))
    coarse = store.open("coarse")
    return run_sweep(
        RunStore(home / "runs"), coarse, parse_sweep(sweep), dataset.questions, source, SweepOptions(latency_sample=0)
    )


@pytest.fixture(scope="module")
def dashboard_lab(tmp_path_factory, tiny_dataset):
    """A data folder with the tiny index and one complete run."""
    return home_with_a_run(tmp_path_factory, tiny_dataset, SWEEP, latency_sample=2)


def page_opener(home: Path, monkeypatch: pytest.MonkeyPatch, timeout: float = 120) -> Callable[[str], AppTest]:
    """`open_page(page)`: the app run on the lab home `home` and switched to `page` (a path such as
    "dashboard/pages/labels.py"), asserted free of exceptions."""
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(home))

    def open_page(page: str) -> AppTest:
        at = AppTest.from_file(APP, default_timeout=timeout)
        at.run()
        if page != "dashboard/pages/compare.py":  # the default page
            at.switch_page(page).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_page


@pytest.fixture
def app(dashboard_lab, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return page_opener(dashboard_lab["home"], monkeypatch)


def comparison_table(at):
    """The table of the paired changes (a display-only dataframe: AppTest finds it by its columns)."""
    (table,) = [d.value for d in at.dataframe if any(c.endswith(" change") for c in d.value.columns)]
    return table
