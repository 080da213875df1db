from eval.retrievers.registry import langchain_retrieve
from eval.retrievers.vector import RetrieverConfig


def test_similarity_returns_k_chunks_in_score_order(tiny_index_store):
    index = tiny_index_store.open("tiny")
    chunks = langchain_retrieve(index, RetrieverConfig.create("similarity", k=4), "What does lambda_mult trade off?")
    assert len(chunks) == 4
    assert chunks[0].doc_id == "mmr"
    scores = [c.score for c in chunks]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)


def test_threshold_keeps_only_chunks_above_it(tiny_index_store):
    index = tiny_index_store.open("tiny")
    question = "How many points did the Panthers defense give up?"
    loose = langchain_retrieve(
        index, RetrieverConfig.create("similarity_score_threshold", k=10, score_threshold=0.0), question
    )
    threshold = (loose[0].score + loose[1].score) / 2
    strict = langchain_retrieve(
        index, RetrieverConfig.create("similarity_score_threshold", k=10, score_threshold=threshold), question
    )
    assert len(strict) == 1 and strict[0].doc_id == "football"
    assert [c.chunk_id for c in loose[:1]] == [c.chunk_id for c in strict]


def test_mmr_diversifies_against_similarity(tiny_index_store):
    index = tiny_index_store.open("tiny")
    question = "What does lambda_mult trade off in MMR?"

    def chunk_ids(config: RetrieverConfig) -> list[str]:
        return [c.chunk_id for c in langchain_retrieve(index, config, question)]

    similar = chunk_ids(RetrieverConfig.create("similarity", k=3))
    relevant = chunk_ids(RetrieverConfig.create("mmr", k=3, fetch_k=10, lambda_mult=1.0))
    diverse = chunk_ids(RetrieverConfig.create("mmr", k=3, fetch_k=10, lambda_mult=0.0))
    assert relevant == similar  # pure relevance: the same chunks in the same order
    assert len(diverse) == 3 and set(diverse) != set(similar) and similar[0] in diverse


def test_metadata_filter_restricts_results(tiny_index_store):
    index = tiny_index_store.open("tiny")
    chunks = langchain_retrieve(
        index, RetrieverConfig.create("mmr", k=3, fetch_k=5, filter={"lang": "zh"}), "How are chunks split?"
    )
    assert chunks and all(c.doc_id.startswith("zh") for c in chunks)
