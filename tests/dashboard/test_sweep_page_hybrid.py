"""The sweep page's BM25, hybrid and rerank widgets: the grid is what the YAML spec path gives for the same
spec, and bad values get the YAML path's messages (both go through `eval.config.parse_sweep`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from support.dashboard_lab import page_opener

from eval.errors import ConfigError
from eval.retrievers.registry import load_sweep


@pytest.fixture
def sweep_page(tmp_path, monkeypatch, cross_encoder):
    """The sweep page with similarity k 3 and every BM25 / hybrid / rerank widget set."""
    at = page_opener(tmp_path / "home", monkeypatch)("dashboard/pages/sweep.py")
    at.multiselect(key="grid-types").set_value(["similarity"])
    at.text_input(key="grid-k").set_value("3")
    for key in ("grid-bm25", "grid-hybrid", "grid-rerank"):
        at.toggle(key=key).set_value(True)
    at.run()
    at.text_input(key="grid-bm25-k").set_value("4, 8")
    at.multiselect(key="grid-bm25-tok").set_value(["words", "jieba"])
    at.text_area(key="grid-weights").set_value("0.3, 0.7\n0.6 0.4")
    at.text_input(key="grid-hybrid-k").set_value("5")
    at.text_input(key="grid-c").set_value("60, 10")
    at.text_input(key="grid-rerank-model").set_value(cross_encoder)
    at.selectbox(key="grid-rerank-base").set_value("hybrid")
    at.text_input(key="grid-rerank-k").set_value("6")
    at.text_input(key="grid-rerank-n").set_value("2, 4").run()
    return at


def spec_yaml(model: str, weights: str = "[[0.3, 0.7], [0.6, 0.4]]", base: str = "", top_n: str = "[2, 4]") -> str:
    """What a user writes in a sweep spec for the widget values of `sweep_page`."""
    base = base or (
        f"{{search_type: ensemble, weights: {weights}, c: [60, 10], retrievers: ["
        "{search_type: bm25, k: 6, tokenizer: [words, jieba]}, {search_type: similarity, k: 6}]}"
    )
    return f"""configs:
  - {{search_type: similarity, k: 3}}
  - {{search_type: bm25, k: [4, 8], tokenizer: [words, jieba]}}
  - search_type: ensemble
    weights: {weights}
    c: [60, 10]
    retrievers: [{{search_type: bm25, k: [4, 8], tokenizer: [words, jieba]}}, {{search_type: similarity, k: 5}}]
  - {{search_type: rerank, model: "{model}", top_n: {top_n}, base: {base}}}
"""


def test_the_grid_has_the_configs_the_spec_gives(sweep_page, tmp_path, cross_encoder):
    at = sweep_page
    assert not at.exception and not at.error, [e.value for e in [*at.exception, *at.error]]
    spec = tmp_path / "sweep.yaml"
    spec.write_text(spec_yaml(cross_encoder), encoding="utf-8")
    expected = [c.config_id for c in load_sweep(spec)]
    kinds = {config_id.split("-")[0] for config_id in expected}
    assert kinds == {"similarity", "bm25", "hybrid", "rerank"} and len(expected) == 1 + 4 + 16 + 16
    (grid,) = at.dataframe  # the page's one table: the configurations
    assert list(grid.value["config_id"]) == expected
    assert any(f"**{len(expected)} configurations**" in info.value for info in at.info)


def spec_error(folder: Path, text: str) -> str:
    (folder / "sweep.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as error:
        load_sweep(folder / "sweep.yaml")
    return str(error.value).replace("sweep.yaml", "grid", 1)


def test_bad_values_get_the_spec_paths_messages(sweep_page, tmp_path, cross_encoder):
    at = sweep_page
    at.text_area(key="grid-weights").set_value("0.3, 0.7\n0.2, 0.3, 0.5").run()
    expected = spec_error(tmp_path, spec_yaml(cross_encoder, weights="[[0.3, 0.7], [0.2, 0.3, 0.5]]"))
    assert "do not match the 2 retrievers" in expected and at.error[0].value.startswith(expected)
    at.text_area(key="grid-weights").set_value("0.3, 0.7\n0.6 0.4")
    at.selectbox(key="grid-rerank-base").set_value("similarity")
    at.text_input(key="grid-rerank-n").set_value("2, 9").run()
    expected = spec_error(tmp_path, spec_yaml(cross_encoder, base="{search_type: similarity, k: 6}", top_n="[2, 9]"))
    assert "top_n 9 is more than the 6 candidates" in expected and at.error[0].value.startswith(expected)
    at.text_input(key="grid-rerank-n").set_value("2")
    at.text_input(key="grid-rerank-model").set_value(str(tmp_path / "no-such-model")).run()
    expected = spec_error(
        tmp_path, spec_yaml(str(tmp_path / "no-such-model"), base="{search_type: similarity, k: 6}", top_n="[2]")
    )
    assert "cross-encoder folder" in expected and at.error[0].value.startswith(expected)
    at.multiselect(key="grid-bm25-tok").set_value([]).run()
    assert at.error[0].value.startswith("grid, configs entry 2: 'tokenizer' has an empty list")
