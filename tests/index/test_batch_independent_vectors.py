"""A text's ONNX vector does not depend on the texts encoded with it (issue 25): int8 quantised activations with
one scale per call over the whole padded batch, so a text's vector changed with its companions (cosine 0.98),
and a resumed run's `ild` for external configs differed from an uninterrupted run's."""

import threading

import numpy as np
import pytest
from support.retriever_stub_server import RetrieverStubServer

from eval.index import encoders
from eval.index.chunking import ChunkingParams
from eval.index.encoders.onnx import OnnxEmbeddings
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepCancelled, SweepOptions, run_sweep

TEXTS = [
    "x",
    "Maximal marginal relevance picks chunks that are relevant and different from each other.",
    "中文文本按句号切分。检索器返回片段。",
    "The k parameter sets how many chunks the retriever returns. " * 6,
    "a long text, longer than one window of the encoder " * 70,  # truncated (MiniLM) or two windows (e5-small)
]
COMPANIONS = [
    f"Companion {i}: {'an ordinary sentence with numbers 12345 and symbols %$# ' * (i % 9)}" for i in range(70)
]


def assert_alone_equals_in_batches(encoder: OnnxEmbeddings, is_query: bool, companions: list[str]) -> None:
    """Each text among companions of other lengths (first, last, among shorter ones), and every text in one batch
    with all the companions: with 70, past the encoder's batch of 64, which `embed_array` cuts."""
    alone = {text: encoder.embed_array([text], is_query)[0] for text in TEXTS}
    batches = [[*companions, *TEXTS], ["y", *TEXTS[::-1], "z"]]
    for text in TEXTS:
        batches += [[text, *companions[:3]], [*companions[3:6], text]]
    for batch in batches:
        vectors = encoder.embed_array(batch, is_query)
        for text in set(TEXTS) & set(batch):
            assert np.array_equal(vectors[batch.index(text)], alone[text]), (encoder.name, text[:30], len(batch))


@pytest.mark.parametrize("spec", ["onnx-int8:minilm", "onnx:minilm"])
def test_a_minilm_text_has_the_same_vector_alone_and_in_any_batch(spec, onnx_exports):
    assert_alone_equals_in_batches(OnnxEmbeddings(spec, root=onnx_exports), False, COMPANIONS)


@pytest.mark.slow
@pytest.mark.parametrize("spec", ["onnx-int8:e5-small", "onnx:e5-small"])
def test_an_e5_small_text_has_the_same_vector_alone_and_in_any_batch(spec, onnx_exports):
    encoder = OnnxEmbeddings(spec, root=onnx_exports)
    for is_query in (True, False):  # the prefixes differ
        assert_alone_equals_in_batches(encoder, is_query, COMPANIONS[1:7])


def test_int8_indexes_built_in_padded_batches_are_flagged(onnx_exports):
    """Their vectors depended on their companions: the identity differs, so `encoder_change` names them."""
    identity = OnnxEmbeddings("onnx-int8:minilm", root=onnx_exports).identity
    assert identity.endswith("|fused1s7|int8|alone")
    assert OnnxEmbeddings("onnx:minilm", root=onnx_exports).identity.endswith("|fused1|fp32")  # same vectors as before


def test_a_resumed_run_has_the_uninterrupted_runs_ild_for_an_external_config(
    tiny_index_store, tiny_dataset, onnx_exports, tmp_path, monkeypatch
):
    """The service answers from the tiny corpus chunked otherwise than the index, so its texts are not the index's
    chunks and the run encodes them with the index's int8 encoder; the resumed run encodes the later blocks' texts
    in other batches (the texts the first blocks saw are not remembered) than the uninterrupted run did."""
    # the encoder itself, whatever another test left in the registry
    monkeypatch.setitem(encoders._LOADED, "onnx-int8:minilm", OnnxEmbeddings("onnx-int8:minilm", root=onnx_exports))
    index_store = IndexStore(tmp_path / "indexes")
    index_store.build(tiny_dataset, "int8", "onnx-int8:minilm", ChunkingParams(60, 10))
    index, service = index_store.open("int8"), tiny_index_store.open("tiny")
    ours = {chunk.text for chunk in index.chunks()}
    assert len({chunk.text for chunk in service.chunks()} - ours) >= 5  # texts the run must encode
    store = RunStore(tmp_path / "runs")
    questions = [question for question in tiny_dataset.questions if question.id != "q5"]  # q5: Chinese
    cancel = threading.Event()

    def progress(stage, done, total):
        if stage == "questions" and done >= 2:
            cancel.set()

    with RetrieverStubServer(service) as stub:
        configs = parse_sweep(
            {
                "configs": [
                    {"search_type": "chatchat", "url": stub.url, "knowledge_base_name": "samples", "top_k": 4},
                    {"search_type": "similarity", "k": 4},
                ]
            }
        )
        options = {"latency_sample": 0, "block_size": 1}
        with pytest.raises(SweepCancelled):
            run_sweep(
                store, index, configs, questions, options=SweepOptions(**options, progress=progress, cancel=cancel)
            )
        (run_id,) = [m["run_id"] for m in store.list()]
        resumed = store.load(
            run_sweep(store, index, configs, questions, options=SweepOptions(**options), resume=run_id)
        )
        straight = store.load(run_sweep(store, index, configs, questions, options=SweepOptions(**options)))
    for column in ("ild", "near_duplicate_rate", "ndcg"):
        a, b = resumed.rows[column].to_numpy(float), straight.rows[column].to_numpy(float)
        assert np.array_equal(a, b, equal_nan=True), (column, np.abs(a - b).max())
    assert resumed.rows.loc[resumed.rows.config_id.str.startswith("chatchat"), "ild"].notna().all()
