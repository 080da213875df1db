"""Numeric values of every kind of sweep spec entry: infinities and NaN (YAML `.inf`, `-.inf`, `.nan`) are
refused in one line, by `parse_sweep` and by `python -m eval run --sweep`, before anything runs."""

import pytest
import yaml

from eval.cli.main import main
from eval.errors import ConfigError
from eval.retrievers.registry import parse_sweep

ENSEMBLE = "search_type: ensemble, retrievers: [{search_type: bm25, k: 3}, {search_type: similarity, k: 3}]"
CHATCHAT = "search_type: chatchat, url: 'http://127.0.0.1:9', knowledge_base_name: kb"
RAGFLOW = "search_type: ragflow, url: 'http://127.0.0.1:9', dataset_ids: [d]"
DIFY = "search_type: dify, url: 'http://127.0.0.1:9', knowledge_id: kb, top_k: 3"
HTTP_JSON = "search_type: http_json, url: 'http://127.0.0.1:9', results: hits, text: t, map_by: span"

CASES = [
    ("search_type: bm25, k: .inf", "k must be a whole number of at least 1, got inf"),
    ("search_type: bm25, k: 5, k1: .inf", "k1 must be a finite number, got inf"),
    ("search_type: bm25, k: 5, k1: -.inf", "k1 must be a finite number, got -inf"),
    ("search_type: bm25, k: 5, b: .nan", "b must be a finite number, got nan"),
    (f"{ENSEMBLE}, weights: [.inf, 1]", "weight must be a finite number, got inf"),
    (f"{ENSEMBLE}, weights: [[0.5, 0.5], [1, .nan]]", "weight must be a finite number, got nan"),
    (f"{ENSEMBLE}, c: .inf", "c must be a whole number of at least 0, got inf"),
    ("search_type: similarity, k: .inf", "k must be a whole number, got inf"),
    ("search_type: similarity, k: .nan", "k must be a whole number, got nan"),
    ("search_type: mmr, k: 3, fetch_k: .inf", "fetch_k must be a whole number, got inf"),
    ("search_type: mmr, k: 3, lambda_mult: .nan", "lambda_mult must be a number in [0, 1], got nan"),
    ("search_type: similarity_score_threshold, k: 3, score_threshold: .inf", "score_threshold must be in [0, 1]"),
    ("search_type: similarity, k: 3, filter: {year: {$gt: .nan}}", "filter holds nan: a JSON value takes finite"),
    ("search_type: mmr, k: 3, filter: {$and: [{lang: zh}, {year: {$lt: .inf}}]}", "filter holds inf"),
    (f"{CHATCHAT}, top_k: .inf", "top_k must be a whole number of at least 1, got inf"),
    (f"{CHATCHAT}, top_k: 3, score_threshold: .nan", "score_threshold must be a finite number, got nan"),
    (f"{CHATCHAT}, top_k: 3, timeout: .inf", "timeout must be a finite number, got inf"),
    (f"{CHATCHAT}, top_k: 3, backoff: .inf", "backoff must be a finite number, got inf"),
    (f"{CHATCHAT}, top_k: 3, retries: .inf", "retries must be a whole number of at least 0, got inf"),
    (f"{RAGFLOW}, page_size: .inf", "page_size must be a whole number of at least 1, got inf"),
    (f"{RAGFLOW}, top_k: .nan", "top_k must be a whole number of at least 1, got nan"),
    (f"{RAGFLOW}, vector_similarity_weight: .nan", "vector_similarity_weight must be a finite number, got nan"),
    (f"{RAGFLOW}, similarity_threshold: -.inf", "similarity_threshold must be a finite number, got -inf"),
    (f"{DIFY}, score_threshold: .nan", "score_threshold must be a finite number, got nan"),
    (f"{DIFY}, metadata_condition: {{conditions: [{{value: .nan}}]}}", "metadata_condition holds nan"),
    (
        f"{HTTP_JSON}, request: {{q: '{{question}}', n: '{{top_k}}'}}, params: {{top_k: .inf}}",
        "params.top_k must be a whole number of at least 1, got inf",
    ),
    (
        f"{HTTP_JSON}, request: {{q: '{{question}}', boost: '{{boost}}'}}, params: {{boost: [1.5, .nan]}}",
        "params holds nan: a JSON value takes finite numbers only",
    ),
    (f"{HTTP_JSON}, request: {{q: '{{question}}', min_score: .inf}}", "request holds inf"),
    ("search_type: imported, path: run.trec, k: .inf", "k must be a whole number of at least 1, got inf"),
]


def entry_of(text: str) -> dict:
    return yaml.safe_load("{" + text + "}")


@pytest.mark.parametrize("text, message", CASES, ids=[f"case{n}" for n in range(len(CASES))])
def test_parse_sweep_refuses_infinite_and_nan_values(text, message):
    with pytest.raises(ConfigError) as error:
        parse_sweep({"configs": [entry_of(text)]})
    assert f"sweep spec, configs entry 1: {message}" in str(error.value)


def test_a_rerank_top_n_must_be_finite(tmp_path):
    (tmp_path / "config.json").write_text("{}")  # top_n is checked once the folder is found
    entry = {
        "search_type": "rerank",
        "model": str(tmp_path),
        "top_n": float("inf"),
        "base": {"search_type": "similarity", "k": 5},
    }
    with pytest.raises(ConfigError, match="top_n must be a whole number of at least 1, got inf"):
        parse_sweep({"configs": [entry]})


def case(fragment: str) -> tuple[str, str]:
    (found,) = [c for c in CASES if fragment in c[0]]
    return found


@pytest.mark.parametrize(
    "text, message",
    [
        case("bm25, k: .inf"),
        case("k1: .inf"),
        case("weights: [.inf, 1]"),
        case("timeout: .inf"),
        case("params: {top_k: .inf}"),
        case("filter: {year"),
    ],
    ids=["bm25-k", "bm25-k1", "ensemble-weight", "chatchat-timeout", "http-json-top-k", "vector-filter"],
)
def test_cli_run_refuses_them_in_one_line(text, message, tmp_path, capsys):
    spec = tmp_path / "sweep.yaml"
    spec.write_text(f"configs:\n  - {{{text}}}\n", encoding="utf-8")
    code = main(
        [
            "--home",
            str(tmp_path / "home"),
            "run",
            "--index",
            "sample",
            "--questions",
            str(tmp_path / "questions.jsonl"),
            "--sweep",
            str(spec),
        ]
    )
    out, err = capsys.readouterr()
    assert (code, out) == (2, "")
    assert err.startswith(f"error: sweep.yaml, configs entry 1: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "home" / "runs").exists()


KIND_NAMES = [
    "similarity",
    "mmr",
    "similarity_score_threshold",
    "bm25",
    "ensemble",
    "rerank",
    "chatchat",
    "ragflow",
    "dify",
    "http_json",
    "imported",
]


@pytest.mark.parametrize(
    "entry, unknown",
    [
        ({"search_type": "hybrid", "c": 60, "k": 5}, "hybrid"),  # `c` is an ensemble key: the message names the type
        ({"search_type": ["similarity", "hybird"], "k": 5}, "hybird"),
    ],
)
def test_an_unknown_search_type_is_named_with_every_kind(entry, unknown):
    with pytest.raises(ConfigError) as error:
        parse_sweep({"configs": [entry]})
    assert str(error.value) == (
        f"sweep spec, configs entry 1: unknown search_type '{unknown}' (use one of: {', '.join(KIND_NAMES)})"
    )
