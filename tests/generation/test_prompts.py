"""RAG prompt templates: language detection, defaults, custom templates."""

from __future__ import annotations

import pytest

from eval.errors import LabError
from eval.generation.prompts import DEFAULT_TEMPLATES, build_prompt, check_template
from eval.text import detect_language


@pytest.mark.parametrize(
    "text, language",
    [
        ("法国的首都是哪里？", "zh"),
        ("RAG系统中的embedding模型是什么？", "zh"),  # 9 CJK characters, 12 Latin letters
        ("Which NFL team represented the AFC at Super Bowl 50?", "en"),
        ("Who wrote the poem by 李白 about the moon?", "en"),  # 2 CJK characters, 29 Latin letters
        ("", "en"),
        ("2018", "en"),
    ],
)
def test_detect_language(text: str, language: str) -> None:
    assert detect_language(text) == language


def test_chinese_question_gets_the_chatchat_prompt() -> None:
    prompt = build_prompt("法国的首都是哪里？", ["巴黎是法国的首都。", "  里昂是法国第三大城市。\n"])
    assert prompt == (
        "<指令>根据已知信息，简洁和专业的来回答问题。如果无法从中得到答案，请说 “根据已知信息无法回答该问题”，"
        "不允许在答案中添加编造成分，答案请使用中文。</指令>\n"
        "<已知信息>巴黎是法国的首都。\n\n里昂是法国第三大城市。</已知信息>\n"
        "<问题>法国的首都是哪里？</问题>"
    )


def test_english_question_gets_the_english_prompt_and_language_can_be_forced() -> None:
    prompt = build_prompt("What is the capital of France?", ["Paris is the capital of France."])
    assert prompt.startswith("<instruction>Answer the question concisely")
    assert prompt.endswith(
        "<known_information>Paris is the capital of France.</known_information>\n"
        "<question>What is the capital of France?</question>"
    )
    assert build_prompt("What is RAG?", [], language="zh").startswith("<指令>")
    with pytest.raises(LabError, match="language 'fr'"):
        build_prompt("Quelle est la capitale ?", [], language="fr")


def test_custom_templates_in_both_spellings_and_braces_left_alone() -> None:
    assert build_prompt("Q?", ["a", "b"], template='Use {context} for {question} as JSON {"k": 1}') == (
        'Use a\n\nb for Q? as JSON {"k": 1}'
    )
    assert build_prompt("Q?", ["a"], template="<已知信息>{{ context }}</已知信息><问题>{{question}}</问题>") == (
        "<已知信息>a</已知信息><问题>Q?</问题>"
    )
    # A chunk that mentions a placeholder is not filled in again.
    assert build_prompt("Q?", ["see {question}"], template="{context} | {question}") == "see {question} | Q?"


@pytest.mark.parametrize(
    "template, missing", [("Answer {question}", "context"), ("Read {context}", "question"), ("nothing here", "context")]
)
def test_templates_without_both_placeholders_are_refused(template: str, missing: str) -> None:
    with pytest.raises(LabError, match=f"no {{{missing}}} placeholder"):
        check_template(template)


def test_default_templates_are_valid_and_empty_questions_refused() -> None:
    assert all(check_template(template) for template in DEFAULT_TEMPLATES.values())
    with pytest.raises(LabError, match="empty"):
        build_prompt("  ", ["chunk"])
