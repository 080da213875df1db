"""RAG prompts: the user message that carries the retrieved chunks and the question to the LLM.

The Chinese default is Langchain-Chatchat's knowledge-base prompt, which ChatGLM users know; the English one
says the same. A template is plain text with `{context}` and `{question}` placeholders (Chatchat's Jinja
spelling `{{ context }}` / `{{ question }}` works too); any other braces are left as they are.
"""

from __future__ import annotations

import re

from eval.errors import LabError
from eval.text import detect_language

DEFAULT_TEMPLATES = {
    "zh": (
        "<指令>根据已知信息，简洁和专业的来回答问题。如果无法从中得到答案，请说 “根据已知信息无法回答该问题”，"
        "不允许在答案中添加编造成分，答案请使用中文。</指令>\n"
        "<已知信息>{context}</已知信息>\n"
        "<问题>{question}</问题>"
    ),
    "en": (
        "<instruction>Answer the question concisely and professionally from the known information. If it does "
        'not contain the answer, say "The question cannot be answered from the known information." Do not '
        "add anything made up. Answer in English.</instruction>\n"
        "<known_information>{context}</known_information>\n"
        "<question>{question}</question>"
    ),
}
PLACEHOLDER = re.compile(r"\{\{\s*(context|question)\s*\}\}|\{(context|question)\}")
CHUNK_SEPARATOR = "\n\n"


def check_template(template: str) -> str:
    """Return `template` if it has both placeholders, else raise a LabError naming the missing one."""
    present = {match.group(1) or match.group(2) for match in PLACEHOLDER.finditer(template)}
    for name in ("context", "question"):
        if name not in present:
            raise LabError(
                f"the prompt template has no {{{name}}} placeholder: add {{{name}}} where the "
                f"{'retrieved chunks' if name == 'context' else 'question'} should go"
            )
    return template


def build_prompt(
    question: str, chunk_texts: list[str], language: str | None = None, template: str | None = None
) -> str:
    """The user message for one question: the template filled with the chunks and the question.

    `template` defaults to `DEFAULT_TEMPLATES[language]`; `language` defaults to the question's own.
    """
    if not question.strip():
        raise LabError("the question is empty: give the question text")
    if template is None:
        language = language or detect_language(question)
        if language not in DEFAULT_TEMPLATES:
            raise LabError(
                f"no prompt template for language {language!r}: use one of "
                f"{', '.join(DEFAULT_TEMPLATES)} or pass your own template"
            )
        template = DEFAULT_TEMPLATES[language]
    values = {"context": CHUNK_SEPARATOR.join(text.strip() for text in chunk_texts), "question": question.strip()}
    # One pass, so a chunk that happens to contain "{question}" stays as it is.
    return PLACEHOLDER.sub(lambda match: values[match.group(1) or match.group(2)], check_template(template))
