"""Retriever Lab: the Streamlit entry point (`streamlit run streamlit_app.py`). Thin: navigation only."""
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("RAGAS_DO_NOT_TRACK", "true")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import streamlit as st  # noqa: E402

st.set_page_config(page_title="Retriever Lab", layout="wide")

PAGES = [
    st.Page("dashboard/indexes.py", title="Indexes", icon=":material/database:"),
    st.Page("dashboard/questions.py", title="Question sets", icon=":material/quiz:"),
    st.Page("dashboard/sweep.py", title="Run a sweep", icon=":material/play_arrow:"),
    # the first screen: `make run` prepares the sample's index and an example run, so it shows a comparison
    st.Page("dashboard/compare.py", title="Compare", icon=":material/leaderboard:", default=True),
    st.Page("dashboard/inspect_question.py", title="Inspect", icon=":material/search:"),
    st.Page("dashboard/reports.py", title="Reports", icon=":material/description:"),
]
st.navigation(PAGES).run()
