import pytest

from eval.errors import ConfigError
from eval.retrievers.registry import DEFAULT_SWEEP, config_from_params, load_sweep, parse_sweep
from eval.retrievers.vector import RetrieverConfig


@pytest.mark.parametrize(
    "params, message",
    [
        ({"search_type": "hybrid"}, "unknown search_type 'hybrid'"),
        ({"k": 0}, "k must be at least 1, got 0"),
        ({"k": 2.5}, "k must be a whole number, got 2.5"),
        ({"k": True}, "k must be a whole number, got True"),
        ({"search_type": "mmr", "k": 5, "fetch_k": 4}, r"fetch_k \(4\) must be at least k \(5\)"),
        ({"search_type": "mmr", "lambda_mult": 1.5}, r"lambda_mult must be in \[0, 1\], got 1.5"),
        ({"search_type": "mmr", "lambda_mult": "high"}, "lambda_mult must be a number"),
        ({"search_type": "similarity_score_threshold", "score_threshold": -0.1}, "score_threshold must be in"),
        ({"search_type": "similarity_score_threshold"}, "needs a score_threshold"),
        ({"search_type": "similarity", "fetch_k": 20}, "'fetch_k' is not used by search_type 'similarity'"),
        (
            {"search_type": "similarity", "score_threshold": 0.5},
            "'score_threshold' is not used by search_type 'similarity'",
        ),
        ({"search_type": "mmr", "score_threshold": 0.5}, "'score_threshold' is not used by search_type 'mmr'"),
        (
            {"search_type": "similarity_score_threshold", "score_threshold": 0.5, "lambda_mult": 0.5},
            "'lambda_mult' is not used",
        ),
        ({"top_k": 3}, "unknown parameter 'top_k'"),
        ({"filter": "lang=zh"}, "filter must be a non-empty mapping"),
        ({"filter": {"lang": ["zh"]}}, "invalid metadata filter"),
    ],
)
def test_invalid_configs_get_a_clear_message(params, message):
    with pytest.raises(ConfigError, match=message):
        RetrieverConfig.create(**params)


def test_int_threshold_is_converted_and_defaults_are_langchains():
    config = RetrieverConfig.create("similarity_score_threshold", k=5, score_threshold=1)
    assert config.search_kwargs() == {"k": 5, "score_threshold": 1.0}
    assert isinstance(config.search_kwargs()["score_threshold"], float)
    mmr = RetrieverConfig.create("mmr")
    assert mmr.search_kwargs() == {"k": 4, "fetch_k": 20, "lambda_mult": 0.5}
    assert mmr.config_id == "mmr-k4-f20-l0.5"


def test_filter_is_kept_and_gives_a_distinct_id():
    plain = RetrieverConfig.create("similarity", k=3)
    filtered = RetrieverConfig.create("similarity", k=3, filter={"lang": "zh"})
    assert filtered.search_kwargs() == {"k": 3, "filter": {"lang": "zh"}}
    assert filtered.config_id.startswith("similarity-k3-flt") and filtered.config_id != plain.config_id
    assert config_from_params(filtered.params(), "test") == filtered


def test_grid_expands_list_values_in_order():
    configs = parse_sweep(DEFAULT_SWEEP)
    assert len(configs) == 3 + 1 * 2 * 3 + 2
    assert [c.k for c in configs[:3]] == [3, 5, 10]
    mmr = [c for c in configs if c.search_type == "mmr"]
    assert {(c.fetch_k, c.lambda_mult) for c in mmr} == {(f, lam) for f in (20, 50) for lam in (0.25, 0.5, 0.75)}
    assert len(set(configs)) == len(configs)


def test_duplicate_configs_are_dropped():
    configs = parse_sweep({"configs": [{"search_type": "similarity", "k": [3, 3]}, {"k": 3}]})
    assert [c.config_id for c in configs] == ["similarity-k3"]


@pytest.mark.parametrize(
    "spec, message",
    [
        ({"config": []}, "expected a mapping with a 'configs' list"),
        ({"configs": []}, "'configs' must be a non-empty list"),
        ({"configs": [{"search_type": "mmr", "k": [5], "fetchk": [20]}]}, "configs entry 1: unknown key 'fetchk'"),
        ({"configs": [{"k": []}]}, "configs entry 1: 'k' has an empty list"),
        (
            {"configs": [{"k": [3]}, {"search_type": "mmr", "k": [10], "fetch_k": [5]}]},
            r"configs entry 2: fetch_k \(5\) must be at least k \(10\)",
        ),
        ({"configs": ["similarity"]}, "configs entry 1: expected a mapping"),
        ({"configs": [{"k": 3}], "extra": 1}, "unknown top-level key 'extra'"),
        ([1, 2], "expected a mapping"),
    ],
)
def test_bad_sweep_specs(spec, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweep(spec)


def test_yaml_sweep_file(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text(
        "configs:\n  - {search_type: similarity_score_threshold, k: [5], score_threshold: [1, 0.5]}\n"
        "  - {search_type: similarity, k: 4, filter: {lang: zh}}\n",
        encoding="utf-8",
    )
    configs = load_sweep(path)
    assert [c.config_id for c in configs][:2] == ["threshold-k5-t1", "threshold-k5-t0.5"]
    assert configs[2].filter == {"lang": "zh"}
    path.write_text("configs: [\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="sweep.yaml: not valid YAML"):
        load_sweep(path)
    with pytest.raises(ConfigError, match="sweep spec not found"):
        load_sweep(tmp_path / "missing.yaml")
