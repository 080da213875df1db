"""The RAG pipeline of a run row: prompt from the retrieved chunks, a streamed answer, its quality and latency."""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from eval.generation.generators import GenerationSettings, Generator
from eval.generation.prompts import DEFAULT_TEMPLATES, build_prompt, check_template
from eval.metrics import GENERATED_ANSWER, GENERATION_LATENCY, contains_answer, exact_match, names, token_f1
from eval.schema import Question

# The generated text and its token counts, then the metrics measured and computed on it.
ANSWER_COLUMNS = ("answer", "prompt_tokens", "completion_tokens", *names(GENERATION_LATENCY), *names(GENERATED_ANSWER))


# One model may serve several dashboard sessions: its answers are generated one at a time.
_GENERATOR_LOCKS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _lock_for(generator: Generator) -> threading.Lock | contextlib.nullcontext:
    """Local models answer one prompt at a time; endpoints that take parallel requests need no lock."""
    if generator.max_concurrency > 1:
        return contextlib.nullcontext()
    return _GENERATOR_LOCKS.setdefault(generator, threading.Lock())


class GeneratingAnswerer:
    """Answers a row with a streaming generator; the sweep's `Answerer`."""

    def __init__(
        self,
        generator: Generator,
        settings: GenerationSettings,
        template: str | None = None,
        language: str | None = None,
    ) -> None:
        self.generator, self.settings, self.language = generator, settings, language
        self.template = check_template(template) if template else None

    @property
    def deterministic(self) -> bool:
        return self.settings.deterministic

    def answer(
        self, question: Question, chunk_texts: list[str], on_text: Callable[[str], None] | None = None
    ) -> dict[str, Any]:
        prompt = build_prompt(question.question, chunk_texts, self.language, self.template)
        with _lock_for(self.generator):
            answer, stats = self._generate(prompt, on_text)
        gold = list(question.answers)
        return {
            "answer": answer,
            **asdict(stats),
            "exact_match": exact_match(answer, gold),
            "f1": token_f1(answer, gold),
            "contains_answer": contains_answer(answer, gold),
        }

    def _generate(self, prompt: str, on_text: Callable[[str], None] | None) -> tuple[str, Any]:
        if on_text is None:  # thread-safe: used for parallel requests
            return self.generator.complete(prompt, self.settings)
        answer = ""
        for answer in self.generator.stream(prompt, self.settings):
            on_text(answer)
        return answer, self.generator.last_stats

    def describe(self) -> dict[str, Any]:
        """What the run manifest records: the model, the decoding settings and the prompt templates."""
        templates = {"custom": self.template} if self.template else DEFAULT_TEMPLATES
        return {
            "llm": self.generator.name,
            "settings": asdict(self.settings),
            "language": self.language or "auto (per question)",
            "templates": templates,
        }
