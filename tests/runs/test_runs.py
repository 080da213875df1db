"""The run store's typed manifest: new runs carry a schema version; runs written before it still load."""

import json
import shutil

import pytest

from eval.report.render import report_markdown
from eval.runs.export import jsonl_records
from eval.runs.store import RUN_SCHEMA_VERSION, RunManifest, RunStore
from eval.runs.summary import summarize

LEGACY_ID = "20261120-101500-abc123"
SWEEP = {"configs": [{"search_type": "similarity", "k": [2, 4]}]}


def legacy_manifest(questions: int) -> dict:
    """A manifest.json exactly as the release before `RunManifest` wrote it (no schema_version)."""
    return {
        "index": {
            "name": "sample",
            "slug": "sample",
            "dataset": "sample",
            "corpus_fingerprint": "3f2a",
            "input_key": "9c1e",
            "documents": 48,
            "chunks": 120,
            "chunk_size": 400,
            "chunk_overlap": 40,
            "separators": ["\n\n", "\n", " ", ""],
            "embedding_model": "e5-small",
            "dimension": 384,
            "space": "cosine",
            "build_seconds": 3.2,
            "created_at": "2026-11-20T10:14:02+00:00",
            "versions": {"chromadb": "1.5.9"},
        },
        "questions": {"source": "datasets/sample", "count": questions, "fingerprint": "77ab"},
        "sweep": {
            "configs": [
                {"config_id": "similarity-k2", "search_type": "similarity", "k": 2},
                {"config_id": "similarity-k4", "search_type": "similarity", "k": 4},
            ]
        },
        "path": "fast",
        "block_size": 50,
        "latency_sample": 0,
        "generation": None,
        "judge": None,
        "ragas_context": False,
        "versions": {"chromadb": "1.5.9", "langchain-core": "1.8.3"},
        "run_id": LEGACY_ID,
        "status": "complete",
        "created_at": "2026-11-20T10:15:00+00:00",
        "retrieval_seconds": 0.412,
        "finished_at": "2026-11-20T10:15:03+00:00",
        "wall_seconds": 2.9,
    }


@pytest.fixture
def legacy(sample_run, tmp_path):
    """A finished run's tables under a manifest in the old shape."""
    source = sample_run(SWEEP, 6, latency_sample=0)
    folder = tmp_path / "runs" / LEGACY_ID
    shutil.copytree(source.folder, folder)
    (folder / "manifest.json").write_text(json.dumps(legacy_manifest(6)), encoding="utf-8")
    return RunStore(tmp_path / "runs")


def test_a_run_written_before_the_schema_version_loads(legacy):
    run = legacy.load(LEGACY_ID)
    info = run.info
    assert info.schema_version == 1 and info.status == "complete" and info.wall_seconds == 2.9
    assert info.index.name == "sample" and info.index.embedding_model == "e5-small"
    assert info.questions.count == 6 and info.questions.source == "datasets/sample"
    # the old scorer flags have no field now: they are kept as they were
    assert info.scorers == [] and info.extra == {"judge": None, "ragas_context": False}
    assert (
        [c["config_id"] for c in info.configs]
        == ["similarity-k2", "similarity-k4"]
        == [c["config_id"] for c in run.configs]
    )
    assert [m.run_id for m in legacy.manifests()] == [LEGACY_ID]
    # what a reader does with a run works on it
    assert summarize(run).config_id.tolist() == ["similarity-k2", "similarity-k4"]
    assert len(jsonl_records(run)) == len(run.rows) and "similarity-k4" in report_markdown(run)


def test_the_typed_manifest_writes_back_what_it_read(legacy):
    stored = legacy.manifest(LEGACY_ID)
    written = RunManifest.from_dict({**stored, "added_later": {"x": 1}}).to_dict()
    # every key read comes back with its value; fields the old shape lacks are added with their defaults
    index = written.pop("index")
    assert stored.pop("index").items() <= index.items()
    assert {**stored, "added_later": {"x": 1}, "schema_version": 1}.items() <= written.items()
    assert RunManifest.from_dict({**written, "index": index}).to_dict() == {**written, "index": index}


def test_a_new_run_records_the_schema_version_and_keeps_unknown_keys(sample_run, tmp_path):
    template = legacy_manifest(6)
    per_run = ("run_id", "status", "created_at", "finished_at", "retrieval_seconds", "wall_seconds")
    settings = {k: v for k, v in template.items() if k not in (*per_run, "judge", "ragas_context")}
    settings["scorers"] = [{"name": "ragas-context"}]  # what eval.sweep.run_manifest writes now
    store = RunStore(tmp_path)
    run_id = store.create({**settings, "benchmark": {"repeat": 2}}, sample_run(SWEEP, 6).questions)
    stored = store.manifest(run_id)
    assert stored["schema_version"] == RUN_SCHEMA_VERSION and stored["status"] == "running"
    assert stored["benchmark"] == {"repeat": 2} and template["index"].items() <= stored["index"].items()
    typed = RunManifest.from_dict(stored)
    assert typed.run_id == run_id and typed.extra == {"benchmark": {"repeat": 2}}
    assert typed.scorers == [{"name": "ragas-context"}] and typed.error is None
    assert [q.id for q in store.load(run_id).questions] == [q.id for q in sample_run(SWEEP, 6).questions]


def test_a_manifest_missing_its_index_is_skipped_by_the_typed_listing(legacy):
    broken = legacy_manifest(6) | {"run_id": "20261120-101600-def456"}
    del broken["index"]
    (legacy.root / broken["run_id"]).mkdir()
    (legacy.root / broken["run_id"] / "manifest.json").write_text(json.dumps(broken), encoding="utf-8")
    assert len(legacy.list()) == 2 and [m.run_id for m in legacy.manifests()] == [LEGACY_ID]


@pytest.mark.slow
def test_runs_compare_prints_each_configs_paired_change(tiny_dataset, tmp_path, capsys):
    """Two runs of one grid over a fine and a coarse index of one corpus, compared by the CLI as a user would."""
    import re

    from eval.cli.main import main
    from eval.index.chunking import ChunkingParams
    from eval.index.store import IndexStore
    from eval.retrievers.registry import parse_sweep
    from eval.sweep.engine import SweepOptions, run_sweep

    home = tmp_path / "home"
    indexes, runs = IndexStore(home / "indexes"), RunStore(home / "runs")
    configs = parse_sweep(
        {
            "configs": [
                {"search_type": "similarity", "k": [1, 2]},
                {"search_type": "mmr", "k": [2], "fetch_k": [4, 6], "lambda_mult": [0.5]},
            ]
        }
    )
    a, b = (
        run_sweep(
            runs,
            indexes.build(tiny_dataset, name, "minilm", chunking) and indexes.open(name),
            configs,
            tiny_dataset.questions,
            options=SweepOptions(latency_sample=0),
        )
        for name, chunking in (("fine", ChunkingParams(120, 20)), ("coarse", ChunkingParams(240, 0)))
    )
    assert main(["--home", str(home), "runs", "compare", a, b]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"a = {a}, b = {b}" and lines[1].split() == [
        "config_id",
        "nDCG",
        "a",
        "nDCG",
        "b",
        "nDCG",
        "change",
    ]
    rows = [runs.load(r).rows.set_index(["config_id", "question_id"])["ndcg"] for r in (a, b)]
    changes = (rows[1] - rows[0]).groupby("config_id").mean()
    assert changes.abs().max() > 0  # the coarser index changes something
    shown = {
        m.group(1): float(m.group(2))
        for m in (re.match(r"(\S+)\s+\S+\s+\S+\s+([+-]\d\.\d{3}) \[", line.strip()) for line in lines[2:])
        if m
    }
    assert shown.keys() == set(changes.index)
    for config_id, change in shown.items():
        assert change == pytest.approx(changes[config_id], abs=5e-4)
    assert "paired by question" in lines[-1]

    assert main(["--home", str(home), "runs", "compare", a, b, "--metric", "recall", "--metric", "mrr"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split().count("change") == 2
    assert main(["--home", str(home), "runs", "compare", a, b, "--metric", "bogus"]) == 2
    assert "--metric bogus: not a metric of both runs (they share: " in capsys.readouterr().err
