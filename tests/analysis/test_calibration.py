import numpy as np
import pandas as pd
import pytest

from eval.analysis.calibration import score_calibration, suggest_threshold
from eval.errors import LabError


def test_score_calibration_on_sample(sample_index, sample_dataset):
    questions = sample_dataset.questions
    df = score_calibration(sample_index, questions, sample=12, top_n=8, seed=1)
    assert list(df.columns) == ["question_id", "chunk_id", "doc_id", "rank", "score", "relevant"]
    assert df["question_id"].nunique() == min(12, len([q for q in questions if q.relevant_ids]))
    assert df.groupby("question_id")["rank"].max().max() == 8
    assert df["score"].between(-1e-6, 1 + 1e-6).all()
    # scores fall with rank and relevance is by doc id
    for _, group in df.groupby("question_id"):
        assert np.all(np.diff(group.sort_values("rank")["score"]) <= 1e-9)
    by_id = {q.id: set(q.relevant_ids) for q in questions}
    assert all(r.relevant == (r.doc_id in by_id[r.question_id]) for r in df.itertuples())
    # the same seed gives the same sample; the score equals LangChain's own relevance score
    again = score_calibration(sample_index, questions, sample=12, top_n=8, seed=1)
    pd.testing.assert_frame_equal(df, again)
    first = df[df["question_id"] == df["question_id"].iloc[0]].sort_values("rank")
    text = next(q.question for q in questions if q.id == first["question_id"].iloc[0])
    langchain = sample_index.vectorstore.similarity_search_with_relevance_scores(text, k=3)
    assert [round(s, 4) for _, s in langchain] == [round(s, 4) for s in first["score"][:3]]

    suggestion = suggest_threshold(df)
    assert suggestion["n_relevant"] == int(df["relevant"].sum())
    assert suggestion["low"] <= suggestion["high"]
    assert 0 <= suggestion["best"] <= 1 and 0 < suggestion["best_f1"] <= 1
    assert df["relevant"].mean() < 1  # some irrelevant candidates


def test_suggest_threshold_rule():
    df = pd.DataFrame(
        {"score": [0.9, 0.85, 0.8, 0.5, 0.45, 0.4, 0.3], "relevant": [True, True, True, False, False, False, False]}
    )
    s = suggest_threshold(df)
    assert s["separated"] is True
    assert s["irrelevant_high"] == pytest.approx(np.percentile([0.5, 0.45, 0.4, 0.3], 95))
    assert s["relevant_low"] == pytest.approx(np.percentile([0.9, 0.85, 0.8], 5))
    assert s["best"] == 0.8 and s["best_f1"] == 1.0
    overlapping = pd.DataFrame({"score": [0.9, 0.6, 0.7, 0.5], "relevant": [True, True, False, False]})
    s = suggest_threshold(overlapping)
    assert s["separated"] is False and s["low"] < s["high"]
    assert s["best"] == 0.6 and s["best_f1"] == pytest.approx(0.8)  # keeps both relevant, one irrelevant


def test_calibration_needs_labels(sample_index):
    from eval.schema import Question

    with pytest.raises(LabError):
        score_calibration(sample_index, [Question("x", "no labels")])
