"""Importing real questions end to end with a real encoder: exact and near duplicates merged, the rest kept apart."""

import pytest

from eval.errors import LabError
from eval.labels.real_questions import comparing_encoder, import_real_questions
from eval.settings import DEFAULT_EMBEDDING, DEFAULT_NEAR_DUPLICATE

# (question, how many times it is in the log). With e5-small's query vectors, the polite English rewrite is at
# cosine 0.978 from the question and the Chinese variants at 0.988-0.992: one question each at the default 0.97;
# the typo (0.946) and the questions about an e-mail address (below 0.92) stay apart.
LOG = [
    ("How do I reset my password?", 3),
    ("Can you tell me how I reset my password?", 1),
    ("how do i reset my pasword", 1),
    ("How do I change my email address?", 2),
    ("如何重置密码？", 2),
    ("请问如何重置密码？", 1),
    ("我怎么重置密码呢？", 1),
    ("如何修改邮箱地址？", 1),
    ("how do I reset my password", 1),  # an exact duplicate after normalising
]


@pytest.fixture
def log(tmp_path):
    path = tmp_path / "questions.txt"
    path.write_text("".join(f"{q}\n" * n for q, n in LOG), encoding="utf-8")
    return path


def test_near_duplicates_merge_by_the_encoders_cosine(log):
    result = import_real_questions([log], threshold=DEFAULT_NEAR_DUPLICATE, encoder="e5-small")
    assert [(q.question, q.weight) for q in result.questions] == [
        ("How do I reset my password?", 5),
        ("如何重置密码？", 4),
        ("How do I change my email address?", 2),
        ("how do i reset my pasword", 1),
        ("如何修改邮箱地址？", 1),
    ]
    assert sorted((d.text, d.kept) for d in result.near) == [
        ("Can you tell me how I reset my password?", "How do I reset my password?"),
        ("我怎么重置密码呢？", "如何重置密码？"),
        ("请问如何重置密码？", "如何重置密码？"),
    ]
    assert all(d.cosine >= DEFAULT_NEAR_DUPLICATE for d in result.near)
    assert result.lines == 13 == sum(q.weight for q in result.questions)
    exact_only = import_real_questions([log])
    assert len(exact_only.questions) == 8 and exact_only.near == [] and exact_only.threshold is None


def test_minilm_is_refused_for_chinese_questions_before_it_loads(log):
    with pytest.raises(LabError, match="minilm reads English only"):
        import_real_questions([log], threshold=0.97, encoder="onnx-int8:minilm")


def test_the_comparing_encoder_is_the_index_s_own_a_named_one_or_the_default(tiny_index_store):
    assert comparing_encoder(tiny_index_store, "tiny", None) == "minilm"
    assert comparing_encoder(None, None, "e5-small") == "e5-small"
    assert comparing_encoder(None, None, None) == DEFAULT_EMBEDDING
    with pytest.raises(LabError, match="not both"):
        comparing_encoder(tiny_index_store, "tiny", "e5-small")
    with pytest.raises(LabError, match="no index named 'missing'"):
        comparing_encoder(tiny_index_store, "missing", None)
