"""The sweep page's Reranker field takes a served reranker (`tei:URL`, `cohere:MODEL@URL`) as a sweep spec does,
and a malformed one gets the spec path's message."""

from __future__ import annotations

from support.dashboard_lab import page_opener


def test_the_reranker_field_takes_an_endpoint(tmp_path, monkeypatch):
    at = page_opener(tmp_path / "home", monkeypatch)("dashboard/pages/sweep.py")
    at.multiselect(key="grid-types").set_value(["similarity"])
    at.text_input(key="grid-k").set_value("3")
    at.toggle(key="grid-rerank").set_value(True).run()
    at.text_input(key="grid-rerank-model").set_value("tei:http://127.0.0.1:8080")
    at.selectbox(key="grid-rerank-base").set_value("similarity")
    at.text_input(key="grid-rerank-k").set_value("6")
    at.text_input(key="grid-rerank-n").set_value("2").run()
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    (grid,) = at.dataframe
    assert list(grid.value["config_id"]) == ["similarity-k3", "rerank-n2-tei-127.0.0.1-8080-similarity-k6"]
    at.text_input(key="grid-rerank-model").set_value("cohere:http://127.0.0.1:7997").run()
    assert at.error[0].value.startswith(
        "grid, configs entry 2: bad reranker endpoint 'cohere:http://127.0.0.1:7997': write cohere:MODEL@URL"
    )
