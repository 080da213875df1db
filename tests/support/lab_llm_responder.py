"""A deterministic stand-in for an instruction-following LLM behind the OpenAI stub server: it answers Retriever
Lab's question-generation and relevance-judging prompts the way a competent model would, by simple rules, so
tests (and the endpoint stand-in of BENCHMARKS.md) exercise the real pipelines with known behaviour.

- Question generation: from the passage's first sentence of at least 8 words (or 16 CJK characters), the
  question asks about its words 2-5 (CJK: characters 0-5) and the answer is its last 3 words (CJK: last 6
  characters before the punctuation). A passage whose first word starts with "X" gets an unparsable reply.
- Judging: grade 2 when at least 60% of the question's content words (CJK: character bigrams) occur in the
  passage, 1 when at least 30%, else 0.
"""

from __future__ import annotations

import re

CJK = re.compile(r"[\u3400-\u9fff]")
WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9'-]*")
STOP = {
    "what",
    "does",
    "the",
    "text",
    "say",
    "about",
    "which",
    "when",
    "where",
    "who",
    "how",
    "is",
    "are",
    "was",
    "of",
    "a",
    "an",
    "in",
    "on",
    "to",
    "and",
    "for",
    "with",
    "by",
    "that",
    "this",
    "did",
    "do",
}


def respond(prompt: str) -> str:
    if prompt.rstrip().endswith(("Digit:", "数字：")):
        return str(judge(prompt))
    passage = re.split(r"Passage:\n|段落：\n", prompt, maxsplit=1)[-1]
    return generate(passage)


def generate(passage: str) -> str:
    if passage.lstrip().startswith("X"):
        return "I cannot help with that."
    if len(CJK.findall(passage)) > len(WORD.findall(passage)):
        for sentence in re.split(r"[。！？]", passage):
            sentence = sentence.strip()
            if len(sentence) >= 16:
                return f"问题：{sentence[:5]}是怎样的？\n答案：{sentence[-6:]}"
        return "问题：？"
    for sentence in re.split(r"(?<=[.!?])\s+", passage):
        words = sentence.split()
        if len(words) >= 8:
            return (
                f"Question: What does the text say about {' '.join(words[1:5])}?\n"
                f"Answer: {' '.join(words[-3:]).rstrip('.!?')}"
            )
    return "Question: ?"


def judge(prompt: str) -> int:
    question = re.search(r"(?:Question: |问题：)(.*?)\n\n", prompt, re.S)[1]
    passage = re.search(r"(?:Passage: |段落：)(.*)\n\n(?:Digit:|数字：)", prompt, re.S)[1].lower()
    if CJK.search(question):
        units = {question[i : i + 2] for i in range(len(question) - 1) if CJK.match(question[i])}
    else:
        units = {w.lower() for w in WORD.findall(question) if w.lower() not in STOP}
    share = sum(unit.lower() in passage for unit in units) / len(units) if units else 0.0
    return 2 if share >= 0.6 else 1 if share >= 0.3 else 0
