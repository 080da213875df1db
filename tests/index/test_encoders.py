import numpy as np
import pytest
from support.embeddings_stub_server import EmbeddingsStubServer

from eval.errors import LabError
from eval.index import encoders
from eval.index.chunking import ChunkingParams, chunk_corpus
from eval.index.embedding_cache import EmbeddingCache
from eval.index.encoders import get_embeddings
from eval.index.encoders.openai import OpenAIEmbeddings
from eval.index.store import IndexStore

TEXTS = [f"Sentence number {i} about retrievers, chunks and {'vectors ' * (i % 7)}." for i in range(40)]


def endpoint(server: EmbeddingsStubServer, **options) -> OpenAIEmbeddings:
    return OpenAIEmbeddings("minilm", server.base_url, backoff_s=0.01, **options)


def test_the_endpoint_gives_the_local_vectors_in_concurrent_batches_with_retries():
    local = get_embeddings("minilm").embed_array(TEXTS)
    with EmbeddingsStubServer(delay_s=0.05, fail_first=1) as server:
        remote = endpoint(server, batch_size=8, concurrency=3)
        done = []
        remote.progress = lambda count, total: done.append((count, total))
        vectors = remote.embed_array(TEXTS)
        sizes = [len(r["body"]["input"]) for r in server.requests]
        most_at_once = server.most_at_once
    assert np.abs(vectors - local).max() < 1e-5
    assert sizes == [1, 1] + [8] * 5  # the dimension probe (refused once, retried), then 5 batches
    assert most_at_once > 1  # batches overlapped
    assert done[-1] == (len(TEXTS), len(TEXTS)) and [d for d, _ in done] == sorted(d for d, _ in done)
    assert remote.identity == f"openai:minilm@{server.base_url}"


def test_an_index_built_through_the_endpoint_answers_queries_through_it(tmp_path, tiny_dataset):
    with EmbeddingsStubServer() as server:
        spec = f"openai:minilm@{server.base_url}"
        store = IndexStore(tmp_path / "indexes", embedding_cache=EmbeddingCache(tmp_path / "cache"))
        manifest = store.build(tiny_dataset, "remote", spec, ChunkingParams(120, 20))
        assert manifest.embedding_model == spec == manifest.encoder and manifest.dimension == 384
        index = store.open("remote")
        chunks = index.chunks()
        local = get_embeddings("minilm")
        stored = index.embeddings_of([c.chunk_id for c in chunks])
        assert np.abs(stored - local.embed_array([c.text for c in chunks])).max() < 1e-5
        before = len(server.requests)
        question = tiny_dataset.questions[0].question
        found = index.vectorstore.similarity_search(question, k=1)
        assert len(server.requests) == before + 1 and server.requests[-1]["body"]["input"] == [question]
        assert found[0].metadata["doc_id"] == "mmr"


@pytest.mark.parametrize(
    "failure, message",
    [
        ({"shrink_after": 2}, r"returned 383-dimensional vectors, but 384-dimensional ones before"),
        ({"fail_after": 2}, r"failed 4 times \(HTTP 500"),
    ],
)
def test_an_endpoint_failing_mid_build_leaves_no_index(tmp_path, tiny_dataset, monkeypatch, failure, message):
    with EmbeddingsStubServer(**failure) as server:
        spec = f"openai:minilm@{server.base_url}"
        monkeypatch.setitem(encoders._LOADED, spec, endpoint(server, batch_size=4, concurrency=1))
        store = IndexStore(tmp_path / "indexes", embedding_cache=EmbeddingCache(tmp_path / "cache"))
        assert len(chunk_corpus(tiny_dataset.corpus, ChunkingParams(60, 0))) > 3 * 4  # more batches than succeed
        with pytest.raises(LabError, match=message):
            store.build(tiny_dataset, "broken", spec, ChunkingParams(60, 0))
    assert store.list() == [] and [p.name for p in (tmp_path / "indexes").iterdir()] == []


def test_a_bad_spec_or_a_refused_request_is_a_clear_error():
    with pytest.raises(LabError, match="write openai:MODEL@URL"):
        get_embeddings("openai:minilm@localhost:8080")
    with EmbeddingsStubServer() as server:
        wrong = OpenAIEmbeddings("minilm", server.base_url.removesuffix("/v1"), backoff_s=0.01)
        with pytest.raises(LabError, match=r"refused the request \(HTTP 404"):
            wrong.embed_array(["x"])
        assert len(server.requests) == 1  # a 404 is not retried
