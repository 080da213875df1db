"""BM25, ensemble and rerank configs: the sweep's fast path equals LangChain's own retrievers row by row.

The expected results come from the real LangChain classes built here (`BM25Retriever`, `EnsembleRetriever`,
`ContextualCompressionRetriever` + `CrossEncoderReranker` + `HuggingFaceCrossEncoder`), on the bundled
bilingual sample index (Chinese and English questions). No cross-encoder ships in a package we can
install, so the reranker is a small CrossEncoder folder the session builds (tests/support/tiny_cross_encoder.py).
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pytest
from support.langchain_reference import langchain_retriever

from eval.errors import ConfigError, LabError
from eval.index.bm25 import TOKENIZERS, bm25_side
from eval.retrievers.bm25 import BM25Config
from eval.retrievers.ensemble import EnsembleConfig
from eval.retrievers.registry import fast_retrieve_mixed, parse_sweep
from eval.retrievers.rerank import RerankConfig, reranker
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep


@pytest.fixture(scope="session")
def bilingual_questions(sample_dataset):
    """Four Chinese and four English sample questions."""
    chinese = [q for q in sample_dataset.questions if not q.question.isascii()][:4]
    english = [q for q in sample_dataset.questions if q.question.isascii()][:4]
    assert len(chinese) == len(english) == 4
    return chinese + english


def mixed_spec(model: str) -> dict:
    return {
        "configs": [
            {"search_type": "bm25", "k": [4, 1000], "tokenizer": ["words", "jieba", "whitespace"]},
            {"search_type": "bm25", "k": 10, "k1": 1.2, "b": 0.5, "tokenizer": "jieba"},
            {
                "search_type": "ensemble",
                "weights": [[0.3, 0.7], [0.5, 0.5]],
                "c": [60, 5],
                "retrievers": [
                    {"search_type": "bm25", "k": 10, "tokenizer": "jieba"},
                    {"search_type": "similarity", "k": 10},
                ],
            },
            {
                "search_type": "ensemble",
                "retrievers": [{"search_type": "bm25", "k": 5}, {"search_type": "mmr", "k": 5, "fetch_k": 20}],
            },
            {
                "search_type": "rerank",
                "model": model,
                "top_n": [3, 5],
                "base": {"search_type": "similarity", "k": [6, 10]},
            },
            {
                "search_type": "rerank",
                "model": model,
                "top_n": 4,
                "base": {"search_type": "bm25", "k": 8, "tokenizer": "jieba"},
            },
            {
                "search_type": "rerank",
                "model": model,
                "top_n": 6,
                "base": {
                    "search_type": "ensemble",
                    "weights": [0.4, 0.6],
                    "retrievers": [
                        {"search_type": "bm25", "k": 5, "tokenizer": "jieba"},
                        {"search_type": "similarity", "k": 5},
                    ],
                },
            },
        ]
    }


def assert_same_scores(config, got: list[float], expected: list[float]) -> None:
    """Equal, except a cross-encoder's: sentence-transformers pads each batch, and a pair's float32 score
    moves by about 1e-7 with the other pairs in its batch (LangChain scores one config's candidates per
    batch, the fast path a question's distinct pairs)."""
    if isinstance(config, RerankConfig):
        assert np.allclose(got, expected, rtol=0, atol=1e-6)
    else:
        assert got == expected


def test_bm25_scores_are_bm25okapis_bit_for_bit_in_chinese_and_english(sample_index, bilingual_questions):
    from rank_bm25 import BM25Okapi

    side = bm25_side(sample_index)
    for tokenizer in TOKENIZERS:
        corpus = [TOKENIZERS[tokenizer](text) for text in side.texts]
        for k1, b in ((1.5, 0.75), (0.9, 0.3)):
            okapi = BM25Okapi(corpus, k1=k1, b=b)
            config = BM25Config(k=5, k1=k1, b=b, tokenizer=tokenizer)
            for question in bilingual_questions:
                expected = okapi.get_scores(TOKENIZERS[tokenizer](question.question))
                assert np.array_equal(
                    side.scores(config.tokenizer, config.k1, config.b, question.question), expected
                ), (tokenizer, question.id)


@pytest.mark.slow
def test_fast_path_equals_langchains_retrievers_row_by_row(sample_index, bilingual_questions, cross_encoder):
    configs = parse_sweep(mixed_spec(cross_encoder))
    kinds = {c.search_type for c in configs}
    assert kinds == {"bm25", "ensemble", "rerank"}
    vectors = sample_index.embeddings.embed_queries([q.question for q in bilingual_questions])
    fast = fast_retrieve_mixed(sample_index, configs, bilingual_questions, vectors)
    model = reranker(cross_encoder).model
    chunk_count = sample_index.manifest.chunks
    for config in configs:
        retriever = langchain_retriever(sample_index, config, model)
        for question in bilingual_questions:
            documents = retriever.invoke(question.question)
            got = fast[question.id, config.config_id]
            assert got.chunk_ids == [d.metadata["chunk_id"] for d in documents], (config.config_id, question.id)
            assert got.texts == [d.page_content for d in documents]
            assert_same_scores(config, got.scores, expected_scores(retriever, config, question.question, documents))
            if isinstance(config, BM25Config) and config.k == 1000:
                assert len(got.chunk_ids) == chunk_count  # the tied zero-score tail is in LangChain's order too


def expected_scores(retriever, config, question: str, documents) -> list[float]:
    """The score each retriever ranks by, computed from LangChain's objects."""
    if isinstance(config, BM25Config):
        scores = retriever.vectorizer.get_scores(retriever.preprocess_func(question))
        position = {id(d): n for n, d in enumerate(retriever.docs)}
        return [float(scores[position[id(d)]]) for d in documents]
    if isinstance(config, EnsembleConfig):
        rrf = defaultdict(float)
        for sub, weight in zip(retriever.retrievers, retriever.weights):
            for rank, document in enumerate(sub.invoke(question), start=1):
                rrf[document.page_content] += weight / (rank + retriever.c)
        return [rrf[d.page_content] for d in documents]
    model = retriever.base_compressor.model
    return [float(s) for s in model.score([(question, d.page_content) for d in documents])] if documents else []


def test_reranker_scores_each_distinct_pair_once(sample_index, bilingual_questions, cross_encoder):
    configs = parse_sweep(
        {
            "configs": [
                {
                    "search_type": "rerank",
                    "model": cross_encoder,
                    "top_n": [2, 4],
                    "base": {"search_type": "similarity", "k": [6, 9]},
                },
                {
                    "search_type": "rerank",
                    "model": cross_encoder,
                    "top_n": 3,
                    "base": {"search_type": "bm25", "k": 9, "tokenizer": "jieba"},
                },
            ]
        }
    )
    questions = bilingual_questions
    model = reranker(cross_encoder)
    model.cache.clear()
    before = model.pairs_scored
    vectors = sample_index.embeddings.embed_queries([q.question for q in questions])
    fast = fast_retrieve_mixed(sample_index, configs, questions, vectors)
    distinct = {(q.question, text) for q in questions for c in configs for text in fast[q.id, c.base.config_id].texts}
    assert model.pairs_scored - before == len(distinct) < sum(c.base.k for c in configs) * len(questions)
    fast_retrieve_mixed(sample_index, configs, questions, vectors)
    assert model.pairs_scored - before == len(distinct)  # a second sweep of the same pairs scores nothing


@pytest.mark.slow
def test_sweep_paths_agree_and_record_hybrid_configs(tmp_path, sample_index, bilingual_questions, cross_encoder):
    configs = parse_sweep(mixed_spec(cross_encoder))[::3]
    store = RunStore(tmp_path)
    runs = [
        store.load(
            run_sweep(
                store,
                sample_index,
                configs,
                bilingual_questions,
                "sample",
                SweepOptions(reference=reference, latency_sample=2, block_size=6),
            )
        )
        for reference in (False, True)
    ]
    columns = ["question_id", "config_id", "chunk_ids", "scores", "ndcg"]
    fast, reference = (
        run.rows[columns].sort_values(["question_id", "config_id"]).reset_index(drop=True) for run in runs
    )
    assert fast["chunk_ids"].map(list).tolist() == reference["chunk_ids"].map(list).tolist()
    by_id = {c.config_id: c for c in configs}
    for config_id, got, expected in zip(fast["config_id"], fast["scores"], reference["scores"]):
        assert_same_scores(by_id[config_id], list(got), list(expected))
    assert fast["ndcg"].tolist() == reference["ndcg"].tolist()
    manifest_configs = {c["config_id"]: c for c in runs[0].manifest["sweep"]["configs"]}
    assert {c.config_id for c in configs} == set(manifest_configs)
    assert {c["search_type"] for c in manifest_configs.values()} == {c.search_type for c in configs}
    timed = runs[0].latency.groupby("config_id")["retrieval_ms"].count()
    assert set(timed.index) == set(manifest_configs) and (timed == 2).all()


def test_config_ids_are_readable():
    bm25 = BM25Config(k=10, tokenizer="jieba")
    from eval.retrievers.vector import RetrieverConfig

    vector = RetrieverConfig.create("similarity", k=10)
    assert bm25.config_id == "bm25-k10-jieba"
    assert BM25Config(k=10, k1=1.2, b=0.5).config_id == "bm25-k10-words-k1_1.2-b0.5"
    hybrid = EnsembleConfig((bm25, vector), (0.3, 0.7), 60)
    assert hybrid.config_id == "hybrid-w0.3-0.7-c60-bm25-k10-jieba+similarity-k10"
    assert RerankConfig(vector, 5, "/models/ms-marco-MiniLM").config_id == "rerank-n5-ms-marco-MiniLM-similarity-k10"


@pytest.mark.parametrize(
    "entry, message",
    [
        (
            {
                "search_type": "ensemble",
                "weights": [0.3],
                "retrievers": [{"search_type": "bm25"}, {"search_type": "similarity"}],
            },
            "weights [0.3] do not match the 2 retrievers",
        ),
        (
            {
                "search_type": "ensemble",
                "weights": [0, 0],
                "retrievers": [{"search_type": "bm25"}, {"search_type": "similarity"}],
            },
            "at least one above 0",
        ),
        (
            {"search_type": "ensemble", "retrievers": [{"search_type": "bm25", "k": 0}, {"search_type": "similarity"}]},
            "retriever 1: k must be a whole number of at least 1",
        ),
        (
            {
                "search_type": "rerank",
                "model": "CROSS",
                "top_n": 8,
                "base": {"search_type": "similarity", "k": [10, 5]},
            },
            "top_n 8 is more than the 5 candidates of base similarity-k5",
        ),
        (
            {
                "search_type": "rerank",
                "model": "CROSS",
                "top_n": 8,
                "base": {"search_type": "mmr", "k": 5, "fetch_k": 50},
            },
            "top_n 8 is more than the 5 candidates of base mmr-k5-f50-l0.5",
        ),
        (
            {"search_type": "rerank", "model": "/nowhere/ms-marco", "base": {"search_type": "similarity"}},
            "cross-encoder folder '/nowhere/ms-marco' not found",
        ),
        (
            {"search_type": "bm25", "tokenizer": "spacy"},
            "unknown tokenizer 'spacy' (use one of: whitespace, words, jieba)",
        ),
        ({"search_type": "bm25", "fetch_k": 3}, "unknown key 'fetch_k' for search_type bm25"),
    ],
)
def test_bad_hybrid_entries_name_the_problem_and_the_entry(entry, message, cross_encoder):
    entry = json.loads(json.dumps(entry).replace('"CROSS"', json.dumps(cross_encoder)))
    with pytest.raises(ConfigError) as error:
        parse_sweep({"configs": [{"search_type": "similarity"}, entry]}, "grid.yaml")
    assert str(error.value).startswith("grid.yaml, configs entry 2")
    assert message in str(error.value)


def test_index_build_writes_the_bm25_side_and_old_indexes_get_a_clear_message(tiny_index_store):
    index = tiny_index_store.open("tiny")
    assert index.manifest.bm25["chunks"] == index.manifest.chunks == len(bm25_side(index).chunk_ids)
    assert (index.folder / index.manifest.bm25["file"]).is_file()
    old = tiny_index_store.open("tiny")
    old.manifest.bm25 = {}  # what the manifest of an index built before BM25 support has
    configs = parse_sweep({"configs": [{"search_type": "bm25"}]})
    with pytest.raises(LabError, match=r"index 'tiny' has no BM25 side \(it was built before BM25 support"):
        fast_retrieve_mixed(old, configs, [], None)
