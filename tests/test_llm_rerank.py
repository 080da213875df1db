"""The LLM pointwise reranker (`model: llm:...` in a rerank config) with the bundled SmolLM2: each chunk's
score is P("yes") from the model's next-token distribution, and the sweep's fast path reranks exactly as
LangChain's `CrossEncoderReranker` does with it."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest

from eval.config import parse_sweep
from eval.errors import ConfigError
from eval.hybrid import fast_retrieve_mixed, reranker
from eval.llm_rerank import PROMPT, LLMYesScorer

MODEL = "llm:bundled:smollm2"


def p_yes_from_generate(generator, question: str, passage: str) -> float:
    """P(first answer token spells "yes"), from `generate`'s raw logits of its first step."""
    tokenizer = generator.tokenizer
    text = tokenizer.apply_chat_template([{"role": "user", "content": PROMPT.format(question=question,
                                                                                    passage=passage)}],
                                         add_generation_prompt=True, tokenize=False)
    input_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    out = generator.model.generate(input_ids, max_new_tokens=1, do_sample=False, output_logits=True,
                                   return_dict_in_generate=True)
    return float(out.logits[0][0].float().softmax(-1)[yes_ids(tokenizer)].sum())


@lru_cache(maxsize=1)
def yes_ids(tokenizer) -> list[int]:
    """The tokens spelling "yes" (any case, spaces around), found by decoding the vocabulary."""
    return [i for token, i in tokenizer.get_vocab().items()
            if tokenizer.convert_tokens_to_string([token]).strip().lower() == "yes"]


@pytest.mark.slow
def test_llm_reranker_is_p_yes_and_the_fast_path_equals_langchain(tiny_index_store, tiny_dataset, smollm2_home,
                                                                  monkeypatch):
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(smollm2_home))  # the session's converted SmolLM2
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

    (config,) = parse_sweep({"configs": [{"search_type": "rerank", "model": MODEL, "top_n": 2,
                                          "base": {"search_type": "similarity", "k": 4}}]})
    assert config.config_id == "rerank-n2-llm-bundled-smollm2-similarity-k4"
    assert isinstance(reranker(config.model).model, LLMYesScorer)
    index = tiny_index_store.open("tiny")
    questions = [q for q in tiny_dataset.questions if q.id == "q4"]
    fast = fast_retrieve_mixed(index, [config], questions, index.embeddings.embed_queries([q.question for q in questions]))
    langchain_scorer = reranker(MODEL).model  # the loaded LLMYesScorer; LangChain calls its score() directly
    for question in questions:
        base = index.vectorstore.as_retriever(search_kwargs={"k": 4})
        candidates = base.invoke(question.question)
        expected = [p_yes_from_generate(langchain_scorer.generator, question.question, d.page_content)
                    for d in candidates]
        assert max(expected) - min(expected) > 1e-3  # the model tells the passages apart
        reranked = ContextualCompressionRetriever(
            base_compressor=CrossEncoderReranker(model=langchain_scorer, top_n=2), base_retriever=base,
        ).invoke(question.question)
        got = fast[question.id, config.config_id]
        assert got.chunk_ids == [d.metadata["chunk_id"] for d in reranked]
        by_id = {d.metadata["chunk_id"]: p for d, p in zip(candidates, expected)}
        assert np.allclose(got.scores, [by_id[c] for c in got.chunk_ids], rtol=0, atol=2e-3)
        assert got.scores == sorted(got.scores, reverse=True)
        assert all(by_id[c] >= max(p for i, p in by_id.items() if i not in got.chunk_ids) - 2e-3 for c in got.chunk_ids)


@pytest.mark.parametrize("model, message", [
    ("llm:openai:qwen@http://127.0.0.1:9/v1", "needs the model's token probabilities"),
    ("llm:bundled:nope", "unknown bundled model in 'llm:bundled:nope'"),
    ("llm:/no/such/model", "LLM reranker model '/no/such/model' not found"),
])
def test_bad_llm_reranker_models_are_named(model, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweep({"configs": [{"search_type": "rerank", "model": model, "top_n": 2,
                                  "base": {"search_type": "similarity", "k": 4}}]})
