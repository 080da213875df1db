"""Retriever Lab: the Streamlit entry point (`streamlit run streamlit_app.py`). Thin: navigation only."""

import streamlit as st

import eval  # noqa: F401  (first: it sets the offline environment before any model library loads)
from dashboard.jobs_panel import jobs_sidebar

st.set_page_config(page_title="Retriever Lab", layout="wide")

PAGES = [
    st.Page("dashboard/pages/indexes.py", title="Indexes", icon=":material/database:"),
    st.Page("dashboard/pages/questions.py", title="Question sets", icon=":material/quiz:"),
    st.Page("dashboard/pages/labels.py", title="Labels", icon=":material/label:"),
    st.Page("dashboard/pages/sweep.py", title="Run a sweep", icon=":material/play_arrow:"),
    # the first screen: `make run` prepares the sample's index and an example run, so it shows a comparison
    st.Page("dashboard/pages/compare.py", title="Compare", icon=":material/leaderboard:", default=True),
    st.Page("dashboard/pages/families.py", title="Index variants", icon=":material/grid_view:"),
    st.Page("dashboard/pages/inspect_question.py", title="Inspect", icon=":material/search:"),
    st.Page("dashboard/pages/reports.py", title="Reports", icon=":material/description:"),
]
page = st.navigation(PAGES)
page.run()
with st.sidebar:  # every page shows the background jobs (eval.jobs), refreshed on their own; after the page,
    jobs_sidebar()  # so that a job the page has just started is listed at once
