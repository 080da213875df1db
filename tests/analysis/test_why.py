"""Why each question missed (`eval.analysis.why`): one hand-built case of each cause on real indexes, each
expectation taken from Chroma, rank_bm25 or the stored rows directly; and on a real sample run (English and
Chinese questions, vector, MMR, threshold, BM25, hybrid and rerank configs) the causes add up to the misses."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

from eval.analysis.why import CAUSES, why_missed
from eval.cli.main import main
from eval.data.datasets import Dataset
from eval.data.labels import Judgement, Labels, load_labels
from eval.errors import LabError
from eval.index.bm25 import bm25_side, word_tokens
from eval.index.chunking import ChunkingParams
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.schema import Document
from eval.sweep.engine import SweepOptions, run_sweep

SOURCE = "human:t"
TINY_SPEC = {
    "configs": [
        {"search_type": "similarity", "k": 1},
        {"search_type": "similarity_score_threshold", "k": 3, "score_threshold": 0.99},
        {"search_type": "mmr", "k": 1, "fetch_k": 5, "lambda_mult": 1.0},
        {"search_type": "similarity", "k": 3, "filter": {"lang": "zh"}},
        {"search_type": "bm25", "k": 1, "tokenizer": "words"},
    ]
}


def make_run(index, configs, questions, folder):
    runs = RunStore(folder)
    return runs.load(run_sweep(runs, index, configs, questions, "test", SweepOptions(latency_sample=0)))


def labels_for(question_id: str, *doc_ids: str, lengths: dict[str, int], spans=()) -> Labels:
    """Whole-document labels of grade 1 (and any extra `spans` as (doc, start, end)) under SOURCE."""
    whole = [Judgement(question_id, d, 0, lengths[d], 1, SOURCE) for d in doc_ids]
    return Labels(tuple(whole + [Judgement(question_id, d, s, e, 1, SOURCE) for d, s, e in spans]))


def ranking(index, question: str, where=None) -> dict:
    """Chroma's full ranking for the question: chunk ids, docs, relevance (1 - cosine distance), embeddings."""
    got = index.collection.query(
        query_embeddings=index.embeddings.embed_queries([question]),
        n_results=index.collection.count(),
        where=where,
        include=["distances", "metadatas", "embeddings"],
    )
    return {
        "ids": got["ids"][0],
        "docs": [m["doc_id"] for m in got["metadatas"][0]],
        "scores": [1 - d for d in got["distances"][0]],
        "embeddings": np.asarray(got["embeddings"][0]),
    }


def first_new_doc(docs: list[str], after: int) -> tuple[str, int]:
    """The first document at a 1-based rank above `after` that no better rank holds, and that rank."""
    for rank, doc in enumerate(docs, start=1):
        if rank > after and doc not in docs[: rank - 1]:
            return doc, rank
    raise AssertionError("no such document")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, tiny_index_store, tiny_dataset, cross_encoder):
    index = tiny_index_store.open("tiny")
    spec = {
        "configs": [
            *TINY_SPEC["configs"],
            {
                "search_type": "rerank",
                "model": cross_encoder,
                "top_n": 1,
                "base": {"search_type": "similarity", "k": 3},
            },
        ]
    }
    run = make_run(index, parse_sweep(spec), tiny_dataset.questions, tmp_path_factory.mktemp("why-runs"))
    lengths = {d.id: len(d.text) for d in tiny_dataset.corpus}
    questions = {q.id: q.question for q in tiny_dataset.questions}
    return index, run, lengths, questions


def only_miss(report, config_id: str, doc_id: str):
    misses = [m for m in report.misses if m.config_id == config_id and m.doc_id == doc_id]
    assert len(misses) == 1, misses
    return misses[0]


@pytest.mark.parametrize("question_id", ["q1", "q5"])
def test_ranked_below_k_names_the_rank_chroma_gives(tiny, question_id):
    index, run, lengths, questions = tiny
    doc, rank = first_new_doc(ranking(index, questions[question_id])["docs"], after=1)
    report = why_missed(run, index, labels_for(question_id, doc, lengths=lengths), SOURCE, ["similarity-k1"])
    miss = only_miss(report, "similarity-k1", doc)
    assert (miss.cause, miss.rank) == ("below_k", rank)
    assert f"rank {rank}, past k 1" in miss.detail


def test_removed_by_the_threshold_shows_score_against_threshold(tiny):
    index, run, lengths, questions = tiny
    chroma = ranking(index, questions["q3"])
    report = why_missed(
        run, index, labels_for("q3", chroma["docs"][0], lengths=lengths), SOURCE, ["threshold-k3-t0.99"]
    )
    miss = only_miss(report, "threshold-k3-t0.99", chroma["docs"][0])
    assert miss.cause == "threshold"
    assert f"score {chroma['scores'][0]:.3f} < score_threshold 0.99" in miss.detail
    # lowering the threshold to the chunk's score recovers it: the mildest step that does is the one shown
    recovering = [w.change for w in report.what_ifs if w.change.startswith("score_threshold") and w.recovered]
    mildest = [f"score_threshold {t:g}" for t in (0.94, 0.89, 0.79) if chroma["scores"][0] >= t][:1]
    assert recovering == mildest


def test_a_larger_k_that_recovers_no_more_than_a_smaller_one_is_not_offered(tiny):
    index, run, lengths, questions = tiny
    doc, rank = first_new_doc(ranking(index, questions["q1"])["docs"], after=1)
    assert rank <= 4  # so k 2 or k 4 recovers it, and k 50 as well
    report = why_missed(run, index, labels_for("q1", doc, lengths=lengths), SOURCE, ["similarity-k1"])
    offered = [(w.change, w.recovered) for w in report.what_ifs if w.recovered]
    assert offered == [("k 2" if rank <= 2 else "k 4", 1)]


def test_dropped_by_mmr_names_the_chunk_that_crowded_it_out(tiny):
    index, run, lengths, questions = tiny
    chroma = ranking(index, questions["q1"])
    doc, rank = first_new_doc(chroma["docs"][:5], after=1)
    report = why_missed(run, index, labels_for("q1", doc, lengths=lengths), SOURCE, ["mmr-k1-f5-l1"])
    miss = only_miss(report, "mmr-k1-f5-l1", doc)
    a, b = chroma["embeddings"][rank - 1], chroma["embeddings"][0]  # lambda_mult 1 selects the nearest chunk
    cosine = float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))
    assert miss.cause == "mmr"
    assert f"crowded out by {chroma['ids'][0]} (cosine {cosine:.3f})" in miss.detail


def test_excluded_by_the_metadata_filter(tiny):
    index, run, lengths, _ = tiny
    config = [c["config_id"] for c in run.configs if c.get("filter")][0]
    report = why_missed(run, index, labels_for("q1", "mmr", lengths=lengths), SOURCE, [config])
    assert only_miss(report, config, "mmr").cause == "filtered"


def test_bm25_not_in_pool_without_a_shared_term_and_below_k_with_its_rank(tiny):
    index, run, lengths, questions = tiny
    side = bm25_side(index)
    scores = BM25Okapi(side.tokens["words"]).get_scores(word_tokens(questions["q1"]))
    order = np.argsort(scores)[::-1]
    docs = [side.metadatas[p]["doc_id"] for p in order]
    doc, rank = first_new_doc(docs, after=1)
    assert scores[order[rank - 1]] > 0
    report = why_missed(run, index, labels_for("q1", doc, "zh-kv", lengths=lengths), SOURCE, ["bm25-k1-words"])
    assert (only_miss(report, "bm25-k1-words", doc).cause, only_miss(report, "bm25-k1-words", doc).rank) == (
        "below_k",
        rank,
    )
    assert only_miss(report, "bm25-k1-words", "zh-kv").cause == "not_in_pool"


def test_cut_by_the_reranker(tiny):
    index, run, lengths, _ = tiny
    config = [c["config_id"] for c in run.configs if c["search_type"] == "rerank"][0]
    row = run.rows.set_index(["question_id", "config_id"])
    base = ranking(index, "How many chunks does k return?")["docs"][:3]
    kept = set(row.loc[("q2", config), "doc_ids"])
    cut = [d for d in base if d not in kept][0]
    report = why_missed(run, index, labels_for("q2", cut, lengths=lengths), SOURCE, [config])
    miss = only_miss(report, config, cut)
    assert miss.cause == "reranker" and "past top_n 1" in miss.detail
    # top_n 3 keeps the whole base; the cut document is offered once, at the smallest top_n that keeps it
    offered = [(w.change, w.recovered) for w in report.what_ifs if w.change.startswith("top_n") and w.recovered]
    assert offered in ([("top_n 2", 1)], [("top_n 3", 1)])


def test_a_row_the_index_no_longer_gives_is_unexplained(tiny):
    index, run, lengths, questions = tiny
    top = ranking(index, questions["q4"])["docs"][0]
    rows = run.rows.copy()
    at = rows.index[(rows["question_id"] == "q4") & (rows["config_id"] == "similarity-k1")][0]
    rows.at[at, "chunk_ids"] = []
    report = why_missed(
        replace(run, rows=rows), index, labels_for("q4", top, lengths=lengths), SOURCE, ["similarity-k1"]
    )
    assert only_miss(report, "similarity-k1", top).cause == "unexplained"


def test_lost_in_fusion_when_a_duplicate_text_keeps_another_chunk(tmp_path, tiny_dataset):
    from support.paths import SESSION_EMBEDDING_CACHE

    from eval.index.embedding_cache import EmbeddingCache

    k_doc = next(d for d in tiny_dataset.corpus if d.id == "k")
    corpus = [*tiny_dataset.corpus, Document("k-copy", k_doc.text, "k-copy", "tiny", dict(k_doc.metadata))]
    store = IndexStore(tmp_path / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    store.build(Dataset("dup", corpus, tiny_dataset.questions), "dup", "minilm", ChunkingParams(120, 20))
    index = store.open("dup")
    first = [{"search_type": "bm25", "k": 4, "tokenizer": "words"}, {"search_type": "similarity", "k": 4}]
    configs = parse_sweep({"configs": [{"search_type": "ensemble", "weights": [0.5, 0.5], "retrievers": first}]})
    run = make_run(index, configs, tiny_dataset.questions[1:2], tmp_path / "runs")
    stored = set(run.rows.iloc[0]["doc_ids"])
    assert len(stored & {"k", "k-copy"}) == 1  # the ensemble keeps one of two identical texts
    lost = ({"k", "k-copy"} - stored).pop()
    report = why_missed(run, index, labels_for("q2", lost, lengths={d.id: len(d.text) for d in corpus}), SOURCE)
    assert only_miss(report, configs[0].config_id, lost).cause == "fusion"


@pytest.fixture(scope="module")
def sample_whole(sample_run, sample_index):
    """A similarity-k2 run on the first ten sample questions, and each question's Chroma ranking."""
    run = sample_run({"configs": [{"search_type": "similarity", "k": 2}]}, latency_sample=0)
    return run, sample_index


def test_not_in_pool_and_split_across_chunks_past_the_search(sample_whole, sample_dataset):
    run, index = sample_whole

    def far(question):  # (doc, its best rank) for the document whose best chunk Chroma ranks last
        docs = ranking(index, question.question)["docs"]
        best = {d: docs.index(d) + 1 for d in set(docs)}
        return max(best.items(), key=lambda item: item[1])

    question, (last_doc, rank) = next((q, far(q)) for q in run.questions if far(q)[1] > index.ef_search)
    chunks = sorted(index.chunks(where={"doc_id": last_doc}), key=lambda c: c.start)
    boundary = chunks[0].start + len(chunks[0].text)
    lengths = {d.id: len(d.text) for d in sample_dataset.corpus}
    whole = labels_for(question.id, last_doc, lengths=lengths)
    miss = only_miss(why_missed(run, index, whole, SOURCE), "similarity-k2", last_doc)
    assert (miss.cause, miss.rank, miss.requeried) == ("not_in_pool", rank, True)
    across = Labels((Judgement(question.id, last_doc, boundary - 5, chunks[1].start + 5, 1, SOURCE),))
    assert only_miss(why_missed(run, index, across, SOURCE), "similarity-k2", last_doc).cause == "split"


@pytest.mark.slow
def test_on_a_real_run_the_causes_add_up_to_the_misses(sample_run, sample_index, cross_encoder, tmp_path, capsys):
    from eval import SAMPLE_DIR

    bm25 = {"search_type": "bm25", "k": 3, "tokenizer": "jieba"}
    similarity = {"search_type": "similarity", "k": 3}
    spec = {
        "configs": [
            similarity,
            {"search_type": "mmr", "k": 3, "fetch_k": 10, "lambda_mult": 0.25},
            {"search_type": "similarity_score_threshold", "k": 4, "score_threshold": 0.85},
            bm25,
            {"search_type": "ensemble", "weights": [0.5, 0.5], "retrievers": [bm25, similarity]},
            {
                "search_type": "rerank",
                "model": cross_encoder,
                "top_n": 2,
                "base": {"search_type": "similarity", "k": 6},
            },
        ]
    }
    run = sample_run(spec, questions=slice(24, 40), latency_sample=0)  # 8 Chinese, 8 English questions
    report = why_missed(run, sample_index, load_labels(SAMPLE_DIR), "gold")
    relevant = {q.id: set(q.relevant_ids) for q in run.questions}
    expected = {
        config_id: sum(len(relevant[q] - set(docs)) for q, docs in zip(group["question_id"], group["doc_ids"]))
        for config_id, group in run.rows.groupby("config_id")
    }
    counts = report.counts()
    assert counts["misses"].to_dict() == expected
    assert (counts[list(CAUSES)].sum(axis=1) == counts["misses"]).all()
    assert {"mmr", "reranker", "below_k"} <= {c for c in CAUSES if counts[c].sum() > 0}
    languages = {m.question_id.split("-")[1] for m in report.misses}
    assert languages == {"zh", "en"}
    # the CLI's --json: per config, misses and causes adding up to them
    (tmp_path / "runs").symlink_to(run.folder.parent)
    capsys.readouterr()
    args = ["--home", str(tmp_path), "--indexes", str(sample_index.folder.parent), "why", run.run_id]
    assert main([*args, "--labels", str(SAMPLE_DIR), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {c: v["misses"] for c, v in data["configs"].items()} == expected
    assert all(sum(v["causes"].values()) == v["misses"] for v in data["configs"].values())


def test_a_rebuilt_index_is_one_clear_line(sample_whole):
    run, index = sample_whole
    changed = replace(run, manifest={**run.manifest, "index": {**run.manifest["index"], "created_at": "2000-01-01"}})
    with pytest.raises(LabError, match="rebuilt after run .*cannot be diagnosed"):
        why_missed(changed, index, Labels((Judgement("q", "d", 0, 1, 1, SOURCE),)), SOURCE)


def test_both_reports_carry_the_section(tiny):
    from eval.report.render import report_html, report_markdown

    index, run, lengths, questions = tiny
    doc, rank = first_new_doc(ranking(index, questions["q1"])["docs"], after=1)
    report = why_missed(run, index, labels_for("q1", doc, lengths=lengths), SOURCE, ["similarity-k1"])
    markdown = report_markdown(run, why=report)
    assert "## Why configs missed" in markdown
    assert "| similarity-k1 | 1 | 1 |" in markdown  # one miss, ranked below k
    assert f"k 2 would recover {int(rank <= 2)} of 1 misses" in markdown
    html = report_html(run, why=report)
    assert "<h2>Why configs missed</h2>" in html and "ranked below k" in html
    assert "Not computed" in report_markdown(run, why="Not computed: index gone")


def test_a_run_of_imported_results_only_has_no_candidates_one_line(tiny_index_store, tiny_dataset, tmp_path):
    trec = tmp_path / "results.run"
    trec.write_text("".join(f"{q.id} Q0 mmr 1 1.0 sys\n" for q in tiny_dataset.questions))
    configs = parse_sweep({"configs": [{"search_type": "imported", "name": "sys", "path": str(trec)}]})
    index = tiny_index_store.open("tiny")
    run = make_run(index, configs, tiny_dataset.questions, tmp_path / "runs")
    labels = labels_for("q2", "k", lengths={d.id: len(d.text) for d in tiny_dataset.corpus})
    with pytest.raises(LabError, match=r"has no candidates for the misses and what-ifs: .* external") as error:
        why_missed(run, index, labels, SOURCE)
    assert "\n" not in str(error.value)
