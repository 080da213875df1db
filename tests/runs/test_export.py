import io
import json
import zipfile

import pandas as pd
import pytest
from support.openai_stub_server import OpenAIStubServer

from eval.analysis.leaderboard import leaderboard_text
from eval.cli.main import main as cli
from eval.errors import LabError
from eval.generation.generators import GenerationSettings, load_generator
from eval.generation.pipeline import GeneratingAnswerer
from eval.metrics.ragas import RagasContextScorer
from eval.retrievers.registry import parse_sweep
from eval.runs.export import export_bytes, export_run, jsonl_records, trec_files
from eval.runs.store import RunStore
from eval.runs.summary import summarize
from eval.sweep.engine import SweepOptions, run_sweep

GRID = parse_sweep(
    {
        "configs": [
            {"search_type": "similarity", "k": [2, 6]},
            {"search_type": "mmr", "k": 4, "fetch_k": 12, "lambda_mult": 0.3},
            {"search_type": "similarity_score_threshold", "k": 5, "score_threshold": 0.86},
        ]
    }
)


@pytest.fixture(scope="module")
def run(tmp_path_factory, sample_index, sample_dataset):
    """A run in the CLI's layout (`HOME/runs`), so `python -m eval --home HOME export` finds it."""
    store = RunStore(tmp_path_factory.mktemp("home") / "runs")
    run_id = run_sweep(
        store, sample_index, GRID, sample_dataset.questions[:16], "sample", SweepOptions(latency_sample=3)
    )
    return store.load(run_id)


@pytest.fixture(scope="module")
def answered(sample_run):
    """A run with answers from the echoing stub; threshold 0 keeps all of k = 3, so those rows reuse the
    similarity-k3 answers."""
    grid = parse_sweep(
        {
            "configs": [
                {"search_type": "similarity", "k": [3, 2]},
                {"search_type": "similarity_score_threshold", "k": 3, "score_threshold": 0.0},
            ]
        }
    )
    with OpenAIStubServer() as server:
        answerer = GeneratingAnswerer(load_generator(f"openai:stub@{server.base_url}"), GenerationSettings())
        return sample_run(grid, 4, latency_sample=0, answerer=answerer)


def jsonl_fields(record: dict) -> set[str]:
    """The row fields a JSON Lines record carries, wherever the documented shape puts them."""
    fields = set(record) - {"retrieved", "config", "metrics", "latency", "generation"}
    fields |= {"chunk_ids", "doc_ids", "scores"} if "retrieved" in record else set()
    return fields | set(record["metrics"]) | set(record["latency"]) | set(record.get("generation", {}))


def test_jsonl_export_shape(run, tmp_path):
    (path,) = export_run(run, "jsonl", tmp_path / "run.jsonl")
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(records) == len(GRID) * 16
    first = records[0]
    assert set(first) >= {"question_id", "config_id", "config", "retrieved", "metrics", "latency"}
    assert first["config"] == {"search_type": "similarity", "k": 2}
    assert set(first["retrieved"][0]) == {"chunk_id", "doc_id", "score"}
    assert {"hit_rate", "precision", "recall", "mrr", "ndcg", "map"} <= set(first["metrics"])
    row = run.rows.iloc[0]
    assert first["metrics"]["ndcg"] == pytest.approx(row["ndcg"])
    assert [r["chunk_id"] for r in first["retrieved"]] == list(row["chunk_ids"])
    timed = [r for r in records if r["latency"]["retrieval_ms"] is not None]
    assert len(timed) == len(GRID) * 3 and all(r["latency"]["retrieval_ms"] > 0 for r in timed)


def test_csv_and_parquet_exports_round_trip(run, tmp_path):
    (csv_path,) = export_run(run, "csv", tmp_path / "run.csv")
    frame = pd.read_csv(csv_path, encoding="utf-8-sig")
    assert len(frame) == len(run.rows)
    assert json.loads(frame.chunk_ids[0]) == list(run.rows.chunk_ids[0])
    (parquet_path,) = export_run(run, "parquet", tmp_path / "run.parquet")
    assert pd.read_parquet(parquet_path).ndcg.tolist() == pytest.approx(run.rows.ndcg.tolist(), nan_ok=True)


def test_trec_export_rescored_by_ranx_matches_our_metrics(run, tmp_path, sample_dataset):
    """`python -m eval export RUN --format trec` of a real run, re-scored by ranx from the written files alone."""
    from ranx import Qrels, Run, evaluate

    out = tmp_path / "trec"
    assert (
        cli(["--home", str(run.folder.parent.parent), "export", run.run_id, "--format", "trec", "--out", str(out)]) == 0
    )
    assert {p.name for p in out.iterdir()} == {f"{c.config_id}.run" for c in GRID} | {"qrels.txt"}
    qrels = Qrels.from_file(str(out / "qrels.txt"), kind="trec")
    labelled = [q for q in sample_dataset.questions[:16] if q.relevant_ids]
    assert labelled and qrels.to_dict() == {q.id: dict.fromkeys(q.relevant_ids, 1) for q in labelled}
    for config in GRID:
        ours = run.rows[run.rows.config_id == config.config_id][["ndcg", "recall", "mrr"]].mean()
        theirs = evaluate(
            qrels,
            Run.from_file(str(out / f"{config.config_id}.run"), kind="trec"),
            ["ndcg", "recall", "mrr"],
            make_comparable=True,
        )
        assert theirs == pytest.approx(ours.to_dict(), abs=1e-9)


def test_trec_download_zips_the_exported_files(run):
    with zipfile.ZipFile(io.BytesIO(export_bytes(run, "trec"))) as archive:
        assert {name: archive.read(name).decode() for name in archive.namelist()} == trec_files(run)


def test_jsonl_carries_every_column_of_the_csv_export_and_the_generation_fields(answered, tmp_path):
    records = jsonl_records(answered)
    (csv_path,) = export_run(answered, "csv", tmp_path / "run.csv")
    columns = set(pd.read_csv(csv_path, encoding="utf-8-sig").columns)
    assert {"answer_reused", "prompt_tokens", "completion_tokens"} <= columns
    for record in records:
        assert columns <= jsonl_fields(record), columns - jsonl_fields(record)
    rows = answered.rows.set_index(["question_id", "config_id"])
    for record in records:
        row = rows.loc[(record["question_id"], record["config_id"])]
        assert record["generation"] == {
            "answer_reused": bool(row.answer_reused),
            "prompt_tokens": int(row.prompt_tokens),
            "completion_tokens": int(row.completion_tokens),
        }
    reused = [r for r in records if r["generation"]["answer_reused"]]
    assert reused and len(reused) < len(records)  # a user can tell measured rows from reused ones


def test_unknown_format_and_incomplete_runs_are_rejected(run, tmp_path):
    with pytest.raises(LabError, match="unknown export format 'xml'"):
        export_run(run, "xml", tmp_path / "x")
    store = RunStore(run.folder.parent)
    store.update(run.run_id, status="interrupted")
    try:
        with pytest.raises(LabError, match="is interrupted, not complete"):
            export_run(store.load(run.run_id), "csv", tmp_path / "x.csv")
    finally:
        store.update(run.run_id, status="complete")
    assert not (tmp_path / "x.csv").exists()


def test_leaderboard_has_ci_significance_and_latency(run):
    summary = summarize(run, baseline=GRID[0].config_id, metrics=["ndcg", "recall", "ild"])
    assert summary.config_id.tolist() == [c.config_id for c in GRID]
    assert (summary.ndcg_low <= summary.ndcg_mean).all() and (summary.ndcg_mean <= summary.ndcg_high).all()
    assert summary.set_index("config_id").loc[GRID[0].config_id, "ndcg_p"] == 1.0
    assert summary.retrieval_ms_p50.notna().all() and (summary.retrieval_ms_p95 >= summary.retrieval_ms_p50).all()
    means = run.rows.groupby("config_id").ndcg.mean()
    assert summary.set_index("config_id").ndcg_mean.to_dict() == pytest.approx(means.to_dict())
    text = leaderboard_text(summary, ["ndcg", "recall"])
    assert text.splitlines()[0].split()[:3] == ["config", "ndcg", "recall"]


def test_ragas_context_metrics_in_a_run_agree_with_ours(tmp_path, sample_index, sample_dataset):
    store = RunStore(tmp_path)
    run = store.load(
        run_sweep(
            store,
            sample_index,
            GRID[:2],
            sample_dataset.questions[:6],
            "sample",
            SweepOptions(latency_sample=0, scorers=[RagasContextScorer()]),
        )
    )
    assert [s["name"] for s in run.manifest["scorers"]] == ["ragas_context"]
    # ragas compares ids as sets, as our deduplicated document-level precision and recall do
    assert run.rows.ragas_id_context_precision.tolist() == pytest.approx(run.rows.precision.tolist())
    assert run.rows.ragas_id_context_recall.tolist() == pytest.approx(run.rows.recall.tolist())
    recall = run.rows.ragas_nonllm_context_recall
    assert recall.between(0, 1).all() and (recall[run.rows.recall == 0] == 0).all()


def test_compare_two_runs(tmp_path, sample_index, sample_dataset, run):
    from eval.analysis.leaderboard import compare_runs

    store = RunStore(tmp_path)
    other = store.load(
        run_sweep(
            store, sample_index, GRID[:2], sample_dataset.questions[:10], "sample", SweepOptions(latency_sample=0)
        )
    )
    table = compare_runs(run, other, ["ndcg", "recall"]).set_index("config_id")
    parts = ["a", "b", "delta", "delta_low", "delta_high", "delta_p", "delta_sig"]
    assert list(table.columns) == [f"{m}_{part}" for m in ("ndcg", "recall") for part in parts]
    first_ten = run.rows[run.rows.question_id.isin(other.rows.question_id)]
    for config_id, expected in first_ten.groupby("config_id").ndcg.mean().items():
        assert table.loc[config_id, "ndcg_a"] == pytest.approx(expected)
    shared = table.dropna()
    assert (shared.ndcg_delta.abs() < 1e-9).all()  # same index, same questions: same results
    assert (shared.ndcg_delta_p == 1).all() and not shared.ndcg_delta_sig.any()  # no change is no evidence
    assert table.loc[GRID[2].config_id, ["ndcg_b"]].isna().all()  # only in the first run
