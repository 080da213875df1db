import numpy as np
import pytest

from eval.errors import LabError
from eval.index.chunking import ChunkingParams, chunk_corpus
from eval.index.embedding_cache import CacheStats, EmbeddingCache, cached_embed, text_key
from eval.index.encoders import get_embeddings
from eval.index.store import IndexStore


class CountingEncoder:
    """A deterministic stand-in encoder that records which texts it was asked for."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.calls.append(list(texts))
        return np.asarray([[len(t), t.count("a"), 1.0] for t in texts], np.float32)


def test_only_unseen_texts_are_encoded_and_identities_do_not_mix(tmp_path):
    cache, encode = EmbeddingCache(tmp_path), CountingEncoder()
    first = CacheStats()
    vectors = cached_embed(encode, "enc-A", 3, ["alpha", "beta", "alpha"], cache, first)
    assert encode.calls == [["alpha", "beta"]] and (first.hits, first.misses) == (0, 2)
    assert np.array_equal(vectors[0], vectors[2])
    second = CacheStats()
    again = cached_embed(encode, "enc-A", 3, ["beta", "gamma", "cafe\u0301"], cache, second)
    assert encode.calls[1] == ["gamma", "cafe\u0301"] and (second.hits, second.misses) == (1, 2)
    assert np.array_equal(again[0], vectors[1])
    # canonically equal text (NFC) is the same key; another encoder identity shares nothing
    assert text_key("caf\u00e9") == text_key("cafe\u0301") != text_key("cafe")
    other = CacheStats()
    cached_embed(encode, "enc-B", 3, ["alpha"], cache, other)
    assert encode.calls[2] == ["alpha"] and other.misses == 1
    assert cache.count("enc-A") == 4 and cache.count() == 5
    # a cached vector of another dimension (the encoder changed shape under one name) is not used
    assert cache.lookup("enc-A", [text_key("alpha")], dimension=4) == {}


def test_a_rebuild_with_another_overlap_embeds_only_new_texts(tmp_path, tiny_dataset):
    cache = EmbeddingCache(tmp_path / "cache")
    store = IndexStore(tmp_path / "indexes", embedding_cache=cache)
    first = store.build(tiny_dataset, "first", "minilm", ChunkingParams(120, 20))
    first_texts = {c.text for c in chunk_corpus(tiny_dataset.corpus, ChunkingParams(120, 20))}
    assert first.embedding_cache == {"hits": 0, "misses": len(first_texts), "hit_rate": 0.0}
    assert first.encoder == get_embeddings("minilm").identity and "fp32" in first.encoder

    second = store.build(tiny_dataset, "second", "minilm", ChunkingParams(120, 0))
    second_texts = {c.text for c in chunk_corpus(tiny_dataset.corpus, ChunkingParams(120, 0))}
    shared = len(second_texts & first_texts)
    assert shared > 0 and second.embedding_cache["hits"] == shared
    assert second.embedding_cache["misses"] == len(second_texts - first_texts)
    assert cache.count(first.encoder) == len(first_texts | second_texts)

    # the index holds the vectors the encoder gives for its chunk texts, cached or not
    index = store.open("second")
    chunks = index.chunks()
    fresh = get_embeddings("minilm").embed_array([c.text for c in chunks])
    assert np.abs(index.embeddings_of([c.chunk_id for c in chunks]) - fresh).max() < 1e-5


def test_the_cache_can_be_switched_off_and_a_bad_folder_is_a_clear_error(tmp_path, monkeypatch, tiny_dataset):
    monkeypatch.setenv("RETRIEVER_LAB_EMBEDDING_CACHE", "off")
    assert IndexStore(tmp_path / "indexes").embedding_cache is None
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("x")
    monkeypatch.setenv("RETRIEVER_LAB_EMBEDDING_CACHE", str(blocker))
    store = IndexStore(tmp_path / "indexes")
    with pytest.raises(LabError, match="cannot open the embedding cache .*not-a-folder.*=off"):
        store.build(tiny_dataset, "blocked", "minilm", ChunkingParams(120, 20))
    assert store.list() == []
