"""How many questions a mean is over: questions with no relevant label (or no reference answer) leave the means,
and every place that shows a mean says so."""

import numpy as np
import pandas as pd

from eval.runs.summary import scored_questions, scored_text

NAN = np.nan


def rows(values: dict[str, list[float]]) -> pd.DataFrame:
    """Two configs x five questions; `values[metric]` lists config a's five values, then config b's."""
    questions = ["q1", "q2", "q3", "q4", "q5"]
    return pd.DataFrame({"config_id": ["a"] * 5 + ["b"] * 5, "question_id": questions * 2, **values})


def test_questions_without_a_value_under_any_config_are_not_scored():
    frame = rows({"ndcg": [1, NAN, 0.5, NAN, NAN, 0, NAN, 1, NAN, 0.2]})
    assert scored_questions(frame, "ndcg") == (3, 5)  # q1, q3, q5 (q5 under config b only)
    assert scored_text(frame, "ndcg", "human:ann") == (
        "nDCG scored on 3 of 5 questions: 2 have no relevant label under human:ann"
    )


def test_the_reason_follows_the_metric():
    frame = rows({"answer_hit_rate": [1, 1, 1, 1, NAN] * 2, "judged": [1, 1, 1, 1, NAN] * 2, "ndcg": [1.0] * 10})
    assert scored_text(frame, "answer_hit_rate").endswith(": 1 has no reference answer")
    assert scored_text(frame, "judged").endswith(": 1 has nothing retrieved")
    assert scored_text(frame, "ndcg", "gold") == "nDCG scored on 5 of 5 questions"
