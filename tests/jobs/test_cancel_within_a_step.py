"""Cancel of a job on a local model is honoured between two tokens, not after the whole answer: the generator's
`cancel` event (a label job's cancel) stops the stream, and question generation and judging let the
cancellation through instead of recording it as a failed item. Chinese judging on the bundled smoke-test model
is refused before it starts."""

from __future__ import annotations

import threading

import pytest
from support.tiny_llm import byte_level_tokenizer, tiny_model

from eval import SAMPLE_DIR
from eval.data.datasets import load_dataset
from eval.generation.generators import GenerationCancelled, GenerationSettings, TransformersGenerator
from eval.generation.pipeline import GeneratingAnswerer
from eval.labels.failure_streak import LabelJobFailed
from eval.labels.pooled_judging import judge_run
from eval.labels.question_generation import generate_questions
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepCancelled, SweepOptions, run_sweep
from eval.text import detect_language

LONG = GenerationSettings(max_new_tokens=400, max_length=4096)


@pytest.fixture(scope="module")
def tiny_llm() -> TransformersGenerator:
    """A random two-layer Llama with a byte-level tokenizer whose end token it never picks."""
    tokenizer = byte_level_tokenizer(["Retrieval augmented generation answers questions from retrieved chunks."])
    model = tiny_model("llama", len(tokenizer), eos_token_id=10**6)  # no end token: it talks for ever
    return TransformersGenerator(model, tokenizer, "tiny-llama")


def test_a_set_cancel_stops_the_answer_at_the_next_token(tiny_llm):
    tiny_llm.cancel = threading.Event()
    seen = []
    with pytest.raises(GenerationCancelled, match="tiny-llama was cancelled while answering"):
        for text in tiny_llm.stream("Write a long answer.", LONG):
            seen.append(text)
            if len(seen) == 3:
                tiny_llm.cancel.set()
    assert len(seen) == 3  # not one more token after the cancel
    tiny_llm.cancel = None
    assert len(tiny_llm.complete("Write a long answer.", GenerationSettings(max_new_tokens=5))[0]) > 0


def test_generation_and_judging_let_a_cancel_through_instead_of_counting_a_failure(
    tiny_llm, tiny_index_store, sample_run, tmp_path
):
    tiny_llm.cancel = threading.Event()
    tiny_llm.cancel.set()
    try:
        with pytest.raises(GenerationCancelled):
            generate_questions(tiny_index_store.open("tiny"), tiny_llm, 3, tmp_path / "generated")
        with pytest.raises(GenerationCancelled):
            run = sample_run({"configs": [{"search_type": "similarity", "k": [2]}]}, 2)
            judge_run(run, tiny_llm, tmp_path, depth=1, labels_file=tmp_path / "questions.labels.jsonl")
    finally:
        tiny_llm.cancel = None


def test_judging_chinese_questions_with_the_smoke_test_model_is_refused_at_once(tiny_llm, sample_run, tmp_path):
    """The bundled 135M model's English tokenizer makes Chinese prompts about 4x as long (899 tokens against 222
    measured for a CMRC and a SQuAD pair): a Chinese pool is refused before the first pair, with the reason."""
    run = sample_run({"configs": [{"search_type": "similarity", "k": [2]}]}, 64)
    assert {detect_language(q.question) for q in run.questions} == {"zh", "en"}  # the sample is bilingual
    tiny_llm.name = "bundled:smollm2-smoke-test"
    tiny_llm.cancel = threading.Event()
    tiny_llm.cancel.set()  # had it started answering, the test would see GenerationCancelled instead
    try:
        with pytest.raises(
            LabelJobFailed,
            match=r"^judging of Chinese text with bundled:smollm2-smoke-test refused: "
            r"this 135M smoke-test model's English tokenizer makes a Chinese prompt about 4x as long",
        ):
            judge_run(run, tiny_llm, tmp_path, depth=1, labels_file=tmp_path / "questions.labels.jsonl")
    finally:
        tiny_llm.name, tiny_llm.cancel = "tiny-llama", None


def test_a_sweep_answering_with_a_local_model_stops_between_two_tokens_of_an_answer(tiny_llm, sample_index, tmp_path):
    """The sweep's cancel (a sweep job's) is looked at on every streamed token: it stops inside the first answer,
    not after a block of answers, and the run is cancelled (resumable)."""
    cancel, shown = threading.Event(), []

    def on_answer(question_id: str, config_id: str, text: str) -> None:
        shown.append(text)
        if len(shown) == 2:
            cancel.set()

    store = RunStore(tmp_path)
    options = SweepOptions(
        latency_sample=0, cancel=cancel, on_answer=on_answer, answerer=GeneratingAnswerer(tiny_llm, LONG, language="en")
    )
    with pytest.raises(SweepCancelled):
        run_sweep(
            store,
            sample_index,
            parse_sweep({"configs": [{"search_type": "similarity", "k": [2]}]}),
            load_dataset(SAMPLE_DIR).questions[:4],
            "sample",
            options,
        )
    assert len(shown) == 2  # not one token more after the cancel
    assert store.list()[0]["status"] == "cancelled"
