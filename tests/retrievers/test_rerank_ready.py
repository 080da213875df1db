"""A reranker folder that passes the spec check (it exists, it has a config.json) but that transformers cannot
load is refused in one line before the run exists, through `run_sweep` and through `python -m eval run`: no
failed run is left behind."""

import json

import pytest
from support.lab_cli import run_cli, write_questions
from support.tiny_cross_encoder import build_cross_encoder

from eval.cli.main import main
from eval.errors import ConfigError
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep


@pytest.fixture(scope="module")
def broken_folders(tmp_path_factory) -> dict[str, str]:
    """Two folders a user may have: a config.json naming a model type transformers does not know, and a real
    cross-encoder whose weights file was cut short (an interrupted copy)."""
    root = tmp_path_factory.mktemp("broken-rerankers")
    unknown = root / "unknown-type"
    unknown.mkdir()
    (unknown / "config.json").write_text(json.dumps({"model_type": "no-such-model", "num_labels": 1}))
    truncated = build_cross_encoder(root / "truncated")
    weights = truncated / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    return {"unknown": str(unknown), "truncated": str(truncated)}


MESSAGES = {
    "unknown": "has model type `no-such-model` but Transformers does not recognize this architecture",
    "truncated": "Error while deserializing header",
}


def rerank_spec(folder: str) -> dict:
    return {
        "configs": [
            {"search_type": "similarity", "k": 3},
            {"search_type": "rerank", "model": folder, "top_n": 2, "base": {"search_type": "similarity", "k": 4}},
        ]
    }


@pytest.mark.parametrize("broken", ["unknown", "truncated"])
def test_run_sweep_refuses_the_folder_before_the_run_exists(
    broken, broken_folders, tiny_index_store, tiny_dataset, tmp_path
):
    configs = parse_sweep(rerank_spec(broken_folders[broken]))  # the spec check alone cannot tell
    store = RunStore(tmp_path / "runs")
    with pytest.raises(ConfigError) as error:
        run_sweep(store, tiny_index_store.open("tiny"), configs, tiny_dataset.questions, "tiny", SweepOptions())
    message = str(error.value)
    assert message.startswith(f"reranker '{broken_folders[broken]}' cannot be loaded: ") and "\n" not in message
    assert MESSAGES[broken] in message
    assert store.list() == [] and list((tmp_path / "runs").glob("*")) == []


@pytest.mark.parametrize("broken", ["unknown", "truncated"])
def test_cli_run_refuses_it_in_one_line_and_leaves_no_run(
    broken, broken_folders, tiny_index_store, tiny_dataset, tmp_path, capsys
):
    questions = write_questions(tiny_dataset, tmp_path / "questions.jsonl")
    spec = tmp_path / "sweep.yaml"
    spec.write_text(json.dumps(rerank_spec(broken_folders[broken])), encoding="utf-8")  # JSON is YAML
    code = run_cli(tmp_path / "home", tiny_index_store, "tiny", questions, spec)
    out, err = capsys.readouterr()
    assert code == 2, err
    assert err.startswith(f"error: reranker '{broken_folders[broken]}' cannot be loaded: ") and err.count("\n") == 1
    assert MESSAGES[broken] in err and "Traceback" not in err
    assert main(["--home", str(tmp_path / "home"), "runs", "list"]) == 0
    assert capsys.readouterr().out.startswith("no runs yet")
