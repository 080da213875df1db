"""The LLM pointwise reranker (`model: llm:...` in a rerank config) with the bundled SmolLM2: each chunk's
score is P("yes") from the model's next-token distribution, and the sweep's fast path reranks exactly as
LangChain's `CrossEncoderReranker` does with it. The endpoint variant (`llm:openai:MODEL@URL`) is tested
against a local server that serves the same SmolLM2 with real top logprobs (tests/support/llm_logprobs_server.py)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pytest
from support.llm_logprobs_server import LogprobsServer
from support.servers import free_port

from eval.errors import ConfigError, LabError
from eval.retrievers.llm_rerank import PROMPT, TOP_LOGPROBS, EndpointYesScorer, LLMYesScorer
from eval.retrievers.registry import fast_retrieve_mixed, parse_sweep
from eval.retrievers.rerank import rerank, reranker

MODEL = "llm:bundled:smollm2"


def p_yes_from_generate(generator, question: str, passage: str) -> float:
    """P(first answer token spells "yes"), from `generate`'s raw logits of its first step."""
    tokenizer = generator.tokenizer
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": PROMPT.format(question=question, passage=passage)}],
        add_generation_prompt=True,
        tokenize=False,
    )
    input_ids = tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
    out = generator.model.generate(
        input_ids, max_new_tokens=1, do_sample=False, output_logits=True, return_dict_in_generate=True
    )
    return float(out.logits[0][0].float().softmax(-1)[yes_ids(tokenizer)].sum())


@lru_cache(maxsize=1)
def yes_ids(tokenizer) -> list[int]:
    """The tokens spelling "yes" (any case, spaces around), found by decoding the vocabulary."""
    return [
        i
        for token, i in tokenizer.get_vocab().items()
        if tokenizer.convert_tokens_to_string([token]).strip().lower() == "yes"
    ]


@pytest.mark.slow
def test_llm_reranker_is_p_yes_and_the_fast_path_equals_langchain(
    tiny_index_store, tiny_dataset, smollm2_home, monkeypatch
):
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(smollm2_home))  # the session's converted SmolLM2
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

    (config,) = parse_sweep(
        {
            "configs": [
                {"search_type": "rerank", "model": MODEL, "top_n": 2, "base": {"search_type": "similarity", "k": 4}}
            ]
        }
    )
    assert config.config_id == "rerank-n2-llm-bundled-smollm2-similarity-k4"
    assert isinstance(reranker(config.model).model, LLMYesScorer)
    index = tiny_index_store.open("tiny")
    questions = [q for q in tiny_dataset.questions if q.id == "q4"]
    fast = fast_retrieve_mixed(
        index, [config], questions, index.embeddings.embed_queries([q.question for q in questions])
    )
    langchain_scorer = reranker(MODEL).model  # the loaded LLMYesScorer; LangChain calls its score() directly
    for question in questions:
        base = index.vectorstore.as_retriever(search_kwargs={"k": 4})
        candidates = base.invoke(question.question)
        expected = [
            p_yes_from_generate(langchain_scorer.generator, question.question, d.page_content) for d in candidates
        ]
        assert max(expected) - min(expected) > 1e-3  # the model tells the passages apart
        reranked = ContextualCompressionRetriever(
            base_compressor=CrossEncoderReranker(model=langchain_scorer, top_n=2),
            base_retriever=base,
        ).invoke(question.question)
        got = fast[question.id, config.config_id]
        assert got.chunk_ids == [d.metadata["chunk_id"] for d in reranked]
        by_id = {d.metadata["chunk_id"]: p for d, p in zip(candidates, expected)}
        assert np.allclose(got.scores, [by_id[c] for c in got.chunk_ids], rtol=0, atol=2e-3)
        assert got.scores == sorted(got.scores, reverse=True)
        assert all(by_id[c] >= max(p for i, p in by_id.items() if i not in got.chunk_ids) - 2e-3 for c in got.chunk_ids)


@pytest.mark.slow
def test_endpoint_reranker_gives_the_local_scores_and_the_fast_path_equals_langchain(
    tiny_index_store, tiny_dataset, smollm2_home, monkeypatch
):
    monkeypatch.setenv("RETRIEVER_LAB_HOME", str(smollm2_home))  # the session's converted SmolLM2
    from langchain_classic.retrievers import ContextualCompressionRetriever
    from langchain_classic.retrievers.document_compressors import CrossEncoderReranker

    local = reranker(MODEL)  # the loaded LLMYesScorer and its score cache, shared with the test above
    generator = local.model.generator
    index = tiny_index_store.open("tiny")
    (question,) = [q for q in tiny_dataset.questions if q.id == "q4"]
    base = index.vectorstore.as_retriever(search_kwargs={"k": 4})
    candidates = base.invoke(question.question)
    texts = [d.page_content for d in candidates]
    # The first request gets a 503 and is retried; the delay makes the four candidates' requests overlap.
    with LogprobsServer(generator, fail_first=1, delay_s=0.2) as server:
        (config,) = parse_sweep(
            {
                "configs": [
                    {
                        "search_type": "rerank",
                        "model": f"llm:openai:smollm2@{server.base_url}",
                        "top_n": 2,
                        "base": {"search_type": "similarity", "k": 4},
                    }
                ]
            }
        )
        assert config.config_id == "rerank-n2-llm-openai-smollm2-similarity-k4"
        endpoint = reranker(config.model)
        assert isinstance(endpoint.model, EndpointYesScorer)
        fast = fast_retrieve_mixed(index, [config], [question], index.embeddings.embed_queries([question.question]))[
            question.id, config.config_id
        ]
        # One request per pair, sent at once (the three that did not get the 503 overlap at least), one retry.
        assert len(server.requests) == 4 + 1 and server.most_at_once >= 3
        bodies = [r["body"] for r in server.requests]
        assert {(b["max_tokens"], b["temperature"], b["logprobs"], b["top_logprobs"]) for b in bodies} == {
            (1, 0.0, True, 20)
        }
        assert {m["role"] + ": " + m["content"] for b in bodies for m in b["messages"]} == {
            "user: " + PROMPT.format(question=question.question, passage=text) for text in texts
        }
        scores = endpoint.scores(question.question, texts)  # the fast path's, from the score cache
        reranked = ContextualCompressionRetriever(
            base_compressor=CrossEncoderReranker(model=endpoint.model, top_n=2),
            base_retriever=base,
        ).invoke(question.question)
        # The served distributions (the server's memory: the model ran once per prompt) and, per passage, the
        # rank of its least likely "yes" token: a top K that long holds every "yes" token.
        probs = [
            server.next_token_logprobs(
                [{"role": "user", "content": PROMPT.format(question=question.question, passage=text)}]
            ).exp()
            for text in texts
        ]
        yes = yes_ids(generator.tokenizer)
        every_yes = 1 + max(int((p > p[i]).sum()) for p in probs for i in yes)
        assert every_yes > TOP_LOGPROBS  # SmolLM2 puts some "yes" token below its 20th: the top 20 misses it
        pairs = [(question.question, text) for text in texts]
        top = {k: EndpointYesScorer(config.model, top_logprobs=k).score(pairs) for k in (2, every_yes)}
        assert server.forwards == 4

    local_scores = local.scores(question.question, texts)  # the LLMYesScorer's own forward passes
    for n, (p, local_score) in enumerate(zip(probs, local_scores)):
        assert local_score == pytest.approx(float(p[yes].sum()), abs=1e-6)  # served = local distribution
        # With every "yes" token in its top K, the endpoint gives the local score ...
        assert top[every_yes][n] == pytest.approx(local_score, abs=1e-6)
        # ... with fewer, the local sum over the "yes" tokens in its top K (0.0 if none): never more.
        for k, got in ((TOP_LOGPROBS, scores[n]), (2, top[2][n])):
            seen = set(p.topk(k).indices.tolist())
            assert got == pytest.approx(sum(float(p[i]) for i in yes if i in seen), abs=1e-6)
            assert got <= local_score + 1e-6
    assert 0.0 in top[2]
    by_text = dict(zip(texts, scores))
    assert fast.chunk_ids == [d.metadata["chunk_id"] for d in reranked]
    assert fast.scores == [by_text[d.page_content] for d in reranked] == sorted(scores, reverse=True)[:2]
    (first_stage,) = fast_retrieve_mixed(
        index,
        parse_sweep({"configs": [{"search_type": "similarity", "k": 4}]}),
        [question],
        index.embeddings.embed_queries([question.question]),
    ).values()
    assert first_stage.chunk_ids == [d.metadata["chunk_id"] for d in candidates]
    local_order = rerank(first_stage, local_scores, 2).chunk_ids
    assert rerank(first_stage, top[every_yes], 2).chunk_ids == local_order


def test_endpoint_reranker_errors_are_one_line(monkeypatch):
    pairs = [("How many points did the Panthers defense give up?", "The Panthers gave up 308 points.")]

    def error(url: str, model: str = "smollm2") -> str:
        with pytest.raises(LabError) as raised:
            EndpointYesScorer(f"llm:openai:{model}@{url}", retries=0).score(pairs)
        assert "\n" not in str(raised.value)
        return str(raised.value)

    with LogprobsServer(logprobs=False) as server:  # a server that ignores the logprobs parameter
        assert error(server.base_url) == (
            f"the endpoint {server.base_url} (model 'smollm2') does not return logprobs (its answer has no "
            "top_logprobs), which the LLM reranker needs: serve the model with vLLM or llama.cpp's llama-server, "
            "or rerank with a local model (llm:bundled:smollm2, llm:<model folder or .gguf>)"
        )
    with LogprobsServer(refuse_logprobs=True) as server:  # one that refuses them
        assert "does not return logprobs (HTTP 400: logprobs are not supported with this model)" in error(
            server.base_url
        )
    with LogprobsServer() as server:
        assert f"endpoint {server.base_url} answered HTTP 404 for model 'missing'" in error(server.base_url, "missing")
    url = f"http://127.0.0.1:{free_port()}/v1"  # nothing listens there
    assert error(url).startswith(f"cannot reach the OpenAI-compatible endpoint {url} (")


@pytest.mark.parametrize(
    "model, message",
    [
        (
            "llm:openai:qwen",
            r"bad LLM reranker spec 'llm:openai:qwen': write llm:openai:MODEL@URL, e\.g\. "
            r"llm:openai:qwen2\.5-7b-instruct@http://127\.0\.0\.1:8000/v1 \(an endpoint that returns logprobs\)",
        ),
        ("llm:openai:@http://127.0.0.1:9/v1", "bad LLM reranker spec 'llm:openai:@http://127.0.0.1:9/v1'"),
        ("llm:openai:qwen@127.0.0.1:9/v1", "bad LLM reranker spec 'llm:openai:qwen@127.0.0.1:9/v1'"),
        ("llm:bundled:nope", "unknown bundled model in 'llm:bundled:nope'"),
        ("llm:/no/such/model", "LLM reranker model '/no/such/model' not found"),
    ],
)
def test_bad_llm_reranker_models_are_named(model, message):
    with pytest.raises(ConfigError, match=message):
        parse_sweep(
            {
                "configs": [
                    {"search_type": "rerank", "model": model, "top_n": 2, "base": {"search_type": "similarity", "k": 4}}
                ]
            }
        )
