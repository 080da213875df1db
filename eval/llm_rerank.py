"""An LLM pointwise reranker: a passage's score is the model's probability that the next token answers "yes"
to "does this passage answer the question?".

It is a LangChain `BaseCrossEncoder`, so `CrossEncoderReranker(model=LLMYesScorer(...), top_n)` reranks with it
exactly as with a cross-encoder, and the sweep's fast path caches its scores per (question, chunk) the same
way. A rerank config names it with `model: "llm:<generation spec>"` (`llm:bundled:smollm2`, `llm:<model
folder or .gguf>`): local models only here, since the probability comes from the model's own logits.
"""
from __future__ import annotations

from typing import Any

from langchain_community.cross_encoders.base import BaseCrossEncoder

from eval.errors import ConfigError

PREFIX = "llm:"
PROMPT = ("Question: {question}\n\nPassage: {passage}\n\n"
          "Does the passage answer the question? Answer yes or no.")


def is_llm(model: str) -> bool:
    return isinstance(model, str) and model.startswith(PREFIX)


def check_spec(model: str, where: str) -> str:
    """The spec if it names a local generation model, else a ConfigError (nothing is loaded here)."""
    from pathlib import Path

    from eval.generation import BUNDLED_MODELS

    spec = model.removeprefix(PREFIX).strip()
    if spec.startswith("bundled:"):
        if spec.removeprefix("bundled:") not in BUNDLED_MODELS:
            raise ConfigError(f"{where}: unknown bundled model in {model!r} (choose one of: "
                              f"{', '.join('llm:bundled:' + key for key in BUNDLED_MODELS)})")
        return PREFIX + spec
    if spec.startswith("openai:"):
        raise ConfigError(f"{where}: {model!r}: the LLM reranker needs the model's token probabilities, so it "
                          "takes a local model (llm:bundled:smollm2, llm:<model folder or .gguf>), not an endpoint")
    if not Path(spec).expanduser().exists():
        raise ConfigError(f"{where}: LLM reranker model {spec!r} not found (use llm:bundled:smollm2 or the path "
                          "of a local model folder or .gguf file)")
    return PREFIX + str(Path(spec).expanduser().resolve())


def yes_token_ids(tokenizer: Any) -> list[int]:
    """Every vocabulary token that reads "yes" in any case, with or without surrounding spaces."""
    return sorted(i for token, i in tokenizer.get_vocab().items()
                  if tokenizer.convert_tokens_to_string([token]).strip().lower() == "yes")


class LLMYesScorer(BaseCrossEncoder):
    """P("yes") as the next token after the chat-templated prompt, for each (question, passage) pair."""

    def __init__(self, model: str) -> None:
        from eval.generation import load_generator

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
