import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from support.paths import ROOT
from support.servers import free_port

from eval.errors import LabError
from eval.index.chunking import ChunkingParams, chunk_corpus
from eval.index.store import IndexManifest, IndexStore, slugify
from eval.retrievers.registry import langchain_retrieve
from eval.retrievers.vector import RetrieverConfig
from eval.schema import Document


def test_chunks_know_their_document_and_offset(tiny_dataset):
    chunks = chunk_corpus(tiny_dataset.corpus, ChunkingParams(60, 10))
    by_doc = {d.id: d for d in tiny_dataset.corpus}
    assert len(chunks) > len(tiny_dataset.corpus)
    for chunk in chunks:
        assert by_doc[chunk.doc_id].text[chunk.start : chunk.start + len(chunk.text)] == chunk.text
        assert chunk.metadata["doc_id"] == chunk.doc_id and chunk.metadata["chunk_id"] == chunk.chunk_id
        assert chunk.metadata["lang"] == by_doc[chunk.doc_id].metadata["lang"]
    assert len({c.chunk_id for c in chunks}) == len(chunks)


def test_chinese_text_splits_on_chinese_punctuation():
    text = "第一句讲检索的召回率。" * 3 + "第二句讲生成的延迟！" * 3
    chunks = chunk_corpus([Document("zh", text)], ChunkingParams(35, 0))
    assert len(chunks) > 1
    assert all(c.text.endswith(("。", "！")) for c in chunks)


def test_chunking_params_are_checked():
    with pytest.raises(LabError, match="chunk overlap must be between 0 and the chunk size"):
        ChunkingParams(100, 100)


@pytest.mark.parametrize("name", ["../evil", "/abs/path", "a/b", "..", ".hidden", "", "  "])
def test_names_that_escape_the_indexes_folder_are_rejected(name):
    with pytest.raises(LabError):
        slugify(name)


def test_chinese_names_get_a_safe_slug():
    slug = slugify("检索指南")
    assert slug != slugify("检索指北") and slug == slugify("检索指南")
    assert all(c.isascii() and (c.isalnum() or c in "._-") for c in slug) and 3 <= len(slug) <= 512


def test_manifest_records_the_build(tiny_index_store, tiny_dataset):
    manifest = tiny_index_store.manifest("tiny")
    assert manifest.space == "cosine" and manifest.embedding_model == "minilm" and manifest.dimension == 384
    assert manifest.documents == len(tiny_dataset.corpus)
    assert manifest.corpus_fingerprint == tiny_dataset.corpus_fingerprint()
    assert manifest.chunk_size == 120 and "chromadb" in manifest.versions
    index = tiny_index_store.open("tiny")
    assert index.collection.count() == manifest.chunks
    assert index.collection.configuration["hnsw"]["space"] == "cosine"


def test_a_build_saves_the_whole_hnsw_graph(tiny_index_store):
    """Every vector is in the saved HNSW graph when a build ends, so no process re-inserts any from Chroma's
    write-ahead log at load (in parallel and hash order, which gave each process its own graph)."""
    manifest = tiny_index_store.manifest("tiny")
    assert manifest.hnsw["sync_threshold"] == 1 and manifest.hnsw["ef_search"] == 100
    assert tiny_index_store.open("tiny").ef_search == 100
    database = tiny_index_store.root / manifest.slug / "chroma" / "chroma.sqlite3"
    with contextlib.closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as db:
        (logged,) = db.execute("SELECT max(seq_id) FROM embeddings_queue").fetchone()
        applied = [seq_id for (seq_id,) in db.execute("SELECT seq_id FROM max_seq_id")]
    assert logged > 0 and applied == [logged, logged]  # the metadata and the vector segment


def test_manifests_without_hnsw_parameters_still_load(tiny_index_store):
    old = json.loads(tiny_index_store.manifest("tiny").to_json())
    del old["hnsw"]
    assert IndexManifest.from_json(json.dumps(old)).hnsw == {}


def test_rebuild_is_a_noop_and_other_inputs_need_replace(tiny_index_store, tiny_dataset):
    first = tiny_index_store.manifest("tiny")
    again = tiny_index_store.build(tiny_dataset, "tiny", embedding_model="minilm", chunking=ChunkingParams(120, 20))
    assert again.created_at == first.created_at and again.input_key == first.input_key
    with pytest.raises(LabError, match="already exists with other inputs"):
        tiny_index_store.build(tiny_dataset, "tiny", embedding_model="minilm", chunking=ChunkingParams(200, 20))
    assert tiny_index_store.manifest("tiny").input_key == first.input_key


def test_replace_delete_and_chinese_names(tmp_path, tiny_dataset):
    store = IndexStore(tmp_path)
    small = replace(tiny_dataset, corpus=tiny_dataset.corpus[:3])
    store.build(small, "中文索引", embedding_model="minilm")
    assert [m.name for m in store.list()] == ["中文索引"]
    bigger = store.build(tiny_dataset, "中文索引", embedding_model="minilm", replace=True)
    assert store.open("中文索引").collection.count() == bigger.chunks
    assert [p.name for p in tmp_path.iterdir()] == [bigger.slug]  # no temporary folders left behind
    store.delete("中文索引")
    assert store.list() == [] and list(tmp_path.iterdir()) == []
    with pytest.raises(LabError, match="no index named '中文索引'"):
        store.open("中文索引")


def test_a_failed_build_leaves_nothing(tmp_path, tiny_dataset, monkeypatch):
    store = IndexStore(tmp_path)

    def explode(*args):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        store.build(tiny_dataset, "broken", embedding_model="minilm", progress=explode)
    assert store.list() == [] and list(tmp_path.iterdir()) == []


CONFIGS = [
    RetrieverConfig.create("similarity", k=3),
    RetrieverConfig.create("mmr", k=3, fetch_k=8, lambda_mult=0.3),
    RetrieverConfig.create("similarity_score_threshold", k=6, score_threshold=0.2),
    RetrieverConfig.create("similarity", k=3, filter={"lang": "zh"}),
]


def retrieve_all(store, questions):
    index = store.open("tiny")
    return {
        c.config_id: [[(r.chunk_id, round(r.score, 6)) for r in langchain_retrieve(index, c, q)] for q in questions]
        for c in CONFIGS
    }


@pytest.mark.slow
def test_reopening_in_a_new_process_gives_identical_results(tiny_index_store, tiny_dataset):
    questions = [q.question for q in tiny_dataset.questions]
    here = retrieve_all(tiny_index_store, questions)
    script = (
        "import json\nfrom index.test_index import retrieve_all\nfrom eval.index.store import IndexStore\n"
        f"print(json.dumps(retrieve_all(IndexStore({str(tiny_index_store.root)!r}), {questions!r})))"
    )
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=ROOT / "tests"
    )  # `python -c` imports from its working folder
    assert json.loads(other.stdout.strip().splitlines()[-1]) == json.loads(json.dumps(here))


@pytest.mark.server
def test_server_index_store_against_a_real_chroma_server(tmp_path, tiny_dataset):
    port = free_port()
    chroma = ROOT / ".venv" / "bin" / "chroma"
    command = [
        str(chroma) if chroma.exists() else "chroma",
        "run",
        "--path",
        str(tmp_path / "server"),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        store = IndexStore(tmp_path / "unused", host="127.0.0.1", port=port)
        deadline = time.time() + 30
        while True:
            try:
                store.list()
                break
            except LabError:
                if time.time() > deadline:
                    raise
                store._server = None
                time.sleep(0.3)
        manifest = store.build(tiny_dataset, "服务器索引", embedding_model="minilm", chunking=ChunkingParams(120, 20))
        assert [m.name for m in store.list()] == ["服务器索引"]
        assert (
            store.build(
                tiny_dataset, "服务器索引", embedding_model="minilm", chunking=ChunkingParams(120, 20)
            ).created_at
            == manifest.created_at
        )
        index = store.open("服务器索引")
        assert index.collection.count() == manifest.chunks
        local = IndexStore(tmp_path / "local")
        local.build(tiny_dataset, "tiny", embedding_model="minilm", chunking=ChunkingParams(120, 20))
        question = tiny_dataset.questions[0].question
        for config in CONFIGS:
            remote_ids = [r.chunk_id for r in langchain_retrieve(index, config, question)]
            local_ids = [r.chunk_id for r in langchain_retrieve(local.open("tiny"), config, question)]
            assert remote_ids == local_ids
        store.delete("服务器索引")
        assert store.list() == []
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_unreachable_server_is_a_clear_error(tmp_path):
    with pytest.raises(LabError, match=r"cannot reach the Chroma server at 127.0.0.1:\d+"):
        IndexStore(tmp_path, host="127.0.0.1", port=free_port()).list()
