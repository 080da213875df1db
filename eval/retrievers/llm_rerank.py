"""An LLM pointwise reranker: a passage's score is the model's probability that the next token answers "yes"
to "does this passage answer the question?".

It is a LangChain `BaseCrossEncoder`, so `CrossEncoderReranker(model=LLMYesScorer(...), top_n)` reranks with it
exactly as with a cross-encoder, and the sweep's fast path caches its scores per (question, chunk) the same
way. A rerank config names it with `model: "llm:<generation spec>"`:

- a local model (`llm:bundled:smollm2`, `llm:<model folder or .gguf>`), `LLMYesScorer`: P("yes") from the
  model's own logits, summed over every vocabulary token that reads "yes", over the whole vocabulary;
- an OpenAI-compatible endpoint (`llm:openai:MODEL@URL`), `EndpointYesScorer`: the same prompt as one chat
  turn, one token at temperature 0 with `logprobs: true, top_logprobs: 20`; the same sum over the returned
  tokens that read "yes". An endpoint shows only its top K, so this is the local sum restricted to the top
  K: equal to the local score whenever every "yes" token with any weight is among them, lower by at most
  (number of "yes" tokens outside the top K) x (the K-th probability) otherwise, and 0.0 when no "yes"
  token is in the top K (those passages then keep their first-stage order, as ties do).

Chat completions rather than `/v1/completions`: the server applies the model's own chat template, so the
client needs no tokenizer, and the OpenAI API itself, vLLM and llama.cpp's llama-server all return
`top_logprobs` there; 20 is the OpenAI API's maximum and vLLM's default `--max-logprobs`.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from langchain_community.cross_encoders.base import BaseCrossEncoder

from eval.errors import ConfigError, LabError
from eval.generation.generators import BUNDLED_MODELS, in_parallel, is_bundled, load_generator
from eval.settings import parse_openai_spec

PREFIX = "llm:"
ENDPOINT_EXAMPLE = "llm:openai:qwen2.5-7b-instruct@http://127.0.0.1:8000/v1"
TOP_LOGPROBS = 20  # the OpenAI API's maximum and vLLM's default --max-logprobs
PROMPT = "Question: {question}\n\nPassage: {passage}\n\nDoes the passage answer the question? Answer yes or no."


def is_llm(model: str) -> bool:
    return isinstance(model, str) and model.startswith(PREFIX)


def check_spec(model: str, where: str) -> str:
    """The spec if it names a local generation model or an endpoint, else a ConfigError (nothing is loaded or
    contacted here)."""

    spec = model.removeprefix(PREFIX).strip()
    if spec.startswith("bundled:"):
        if not is_bundled(spec.removeprefix("bundled:")):
            raise ConfigError(
                f"{where}: unknown bundled model in {model!r} (choose one of: "
                f"{', '.join('llm:bundled:' + key for key in BUNDLED_MODELS)})"
            )
        return PREFIX + spec
    if spec.startswith("openai:"):
        try:
            parse_openai_spec(spec, ENDPOINT_EXAMPLE)
        except LabError:
            raise ConfigError(
                f"{where}: bad LLM reranker spec {model!r}: write llm:openai:MODEL@URL, e.g. "
                f"{ENDPOINT_EXAMPLE} (an endpoint that returns logprobs)"
            ) from None
        return PREFIX + spec
    if not Path(spec).expanduser().exists():
        raise ConfigError(
            f"{where}: LLM reranker model {spec!r} not found (use llm:bundled:smollm2 or the path "
            "of a local model folder or .gguf file)"
        )
    return PREFIX + str(Path(spec).expanduser().resolve())


def label(model: str) -> str:
    """The reranker's part of a config id: `llm-bundled-smollm2`, `llm-<folder name>`, `llm-openai-<model>`."""
    spec = model.removeprefix(PREFIX)
    if spec.startswith("openai:"):
        return "llm-openai-" + spec.removeprefix("openai:").partition("@")[0].replace("/", "-").replace(":", "-")
    return "llm-" + Path(spec).name.replace(":", "-")


def reads_yes(token_text: str) -> bool:
    """Whether a token's text is "yes" in any case, with or without surrounding spaces."""
    return token_text.strip().lower() == "yes"


def yes_token_ids(tokenizer: Any) -> list[int]:
    """Every vocabulary token that reads "yes"."""
    return sorted(
        i for token, i in tokenizer.get_vocab().items() if reads_yes(tokenizer.convert_tokens_to_string([token]))
    )


def p_yes_of_top(top_logprobs: list[tuple[str, float]]) -> float:
    """P("yes") from an endpoint's top (token text, logprob) list: the probabilities of the tokens that read
    "yes", summed; 0.0 when none of them is in the list."""
    return float(sum(math.exp(logprob) for token, logprob in top_logprobs if reads_yes(token)))


def load_scorer(model: str) -> BaseCrossEncoder:
    """The scorer of an `llm:` spec from `check_spec`: an endpoint's or a local model's."""
    if model.removeprefix(PREFIX).startswith("openai:"):
        return EndpointYesScorer(model)
    return LLMYesScorer(model)


class LLMYesScorer(BaseCrossEncoder):
    """P("yes") as the next token after the chat-templated prompt, for each (question, passage) pair."""

    def __init__(self, model: str) -> None:
        self.generator = load_generator(model.removeprefix(PREFIX))
        self.yes_ids = yes_token_ids(self.generator.tokenizer)

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        import torch

        scores = []
        with torch.inference_mode():
            for question, passage in text_pairs:
                input_ids = self.generator.encode(PROMPT.format(question=question, passage=passage))
                logits = self.generator.model(input_ids=input_ids).logits[0, -1].float()
                scores.append(float(logits.softmax(-1)[self.yes_ids].sum()))
        return scores


class EndpointYesScorer(BaseCrossEncoder):
    """P("yes") from an OpenAI-compatible endpoint's top logprobs of the first answer token, for each pair:
    one request per pair, up to the generator's `max_concurrency` at once, each retried `retries` times."""

    def __init__(self, model: str, top_logprobs: int = TOP_LOGPROBS, retries: int = 3) -> None:
        self.generator = load_generator(model.removeprefix(PREFIX))
        self.top_logprobs, self.retries = top_logprobs, retries

    def score(self, text_pairs: list[tuple[str, str]]) -> list[float]:
        return list(in_parallel(self._score_pair, text_pairs, self.generator.max_concurrency, "llm-rerank"))

    def _score_pair(self, pair: tuple[str, str]) -> float:
        question, passage = pair
        return p_yes_of_top(
            self.generator.next_token_logprobs(
                PROMPT.format(question=question, passage=passage), self.top_logprobs, self.retries
            )
        )
