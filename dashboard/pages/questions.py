"""Question sets: load, validate (errors with file and line), preview, detect the language."""

import pandas as pd
import streamlit as st

from dashboard import widgets
from eval.data.datasets import load_question_set
from eval.text import cjk_share

st.title("Question sets")
path = None
with widgets.lab_errors("check the path or the uploaded file"):
    path = widgets.dataset_source("questions")
if path is not None:
    with widgets.lab_errors("check the path, or fix the file at the line named in the message, then load it again"):
        questions = load_question_set(path)
        texts = [q.question for q in questions]
        share = cjk_share(" ".join(texts))
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Questions", len(questions))
        c2.metric("Language", widgets.language_of(share), help=f"{share:.0%} of the letters are CJK")
        c3.metric("With relevant_ids", sum(bool(q.relevant_ids) for q in questions))
        c4.metric("With answers", sum(bool(q.answers) for q in questions))
        st.dataframe(
            pd.DataFrame(
                [
                    {
                        "id": q.id,
                        "question": q.question,
                        "answers": " | ".join(q.answers),
                        "relevant_ids": ", ".join(q.relevant_ids),
                    }
                    for q in questions
                ]
            ),
            hide_index=True,
            key="question-preview",
            column_config={
                "id": st.column_config.TextColumn(width="small"),  # fits 1,366 px
                "question": st.column_config.TextColumn(width="large"),
                "answers": st.column_config.TextColumn(width="medium"),
                "relevant_ids": st.column_config.TextColumn(width="medium"),
            },
        )
        if not any(q.relevant_ids for q in questions):
            st.warning(
                "No question has relevant_ids: rank metrics (nDCG, recall…) need them; answer metrics "
                "still work with answers."
            )
