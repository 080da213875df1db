"""Background jobs in the dashboard: the sidebar every page shows, and the live view of a sweep job.

Index builds and sweeps run as jobs, in processes of their own (`eval.jobs`): a page starts one and returns
at once. These widgets only read the job store; they refresh with `st.fragment(run_every=...)`, so the page
around them never reruns for it.
"""

from __future__ import annotations

import streamlit as st

from dashboard import engine
from dashboard.widgets import keeping_errors
from eval.cli.jobs import submit_job
from eval.jobs.store import ACTIVE, RESUMABLE, Job, JobStore, progress_text

WATCH_REFRESH = 1.0  # seconds: the sweep page's progress and streamed answer
SIDEBAR_REFRESH = WATCH_REFRESH  # one pace: a job shown in both places shows the same progress
RECENT = 5  # finished jobs listed under the active ones
LOG_LINES = 200  # the end of a job's log shown under its card
REFUSED_KEY = "job-refused"  # a refused cancel or resume, shown on the rerun after the click


def job_store() -> JobStore:
    return JobStore(engine.home())


def start_job(argv: list[str]) -> Job:
    """Queue a CLI command as a background job; the page then returns at once."""
    return submit_job(job_store(), argv)


@st.fragment(run_every=SIDEBAR_REFRESH)
def jobs_sidebar() -> None:
    """The active jobs and the last few finished ones, each with its progress and buttons."""
    store = job_store()
    jobs = store.list()
    shown = [j for j in jobs if j.status in ACTIVE] + [j for j in jobs if j.status not in ACTIVE][:RECENT]
    st.markdown("##### Jobs")  # not a subheader: pages own those
    if REFUSED_KEY in st.session_state:
        st.warning(st.session_state.pop(REFUSED_KEY))
    if not shown:
        st.caption("None yet: index builds and sweeps run here, in the background.")
    for job in shown:
        with st.container(border=True, key=f"job-{job.job_id}"):
            job_card(store, job, "side")


def ended_jobs(kind: str, seen_key: str) -> set[str]:
    """The jobs of `kind` that were active when this session last looked (under `seen_key`) and are not now."""
    active = {j.job_id for j in job_store().list() if j.kind == kind and j.status in ACTIVE}
    seen = st.session_state.get(seen_key, set())
    st.session_state[seen_key] = active
    return seen - active


@st.fragment(run_every=WATCH_REFRESH * 2)
def rerun_when_jobs_end(kind: str, seen_key: str) -> None:
    """Rerun the whole page once a job of `kind` it has seen running ends (e.g. Indexes, after a build)."""
    if ended_jobs(kind, seen_key):
        st.rerun()


def job_card(store: JobStore, job: Job, place: str) -> None:
    """A job's title, status, progress (stage, done/total, rate, ETA) and buttons; `place` keeps the
    buttons' keys apart where one job shows twice (the sidebar and the sweep page)."""
    st.text(job.title)
    st.caption(f"{job.job_id} · {job.status}" + (f" · run {job.run_id}" if job.run_id else ""))
    if job.status == "running":
        progress = store.progress(job.job_id)
        fraction = progress["done"] / max(progress["total"], 1) if progress else 0.0
        st.progress(min(fraction, 1.0), text=progress_text(progress))
        if store.cancel_requested(job.job_id):
            st.caption("Cancelling: it stops after its current step.")
    if job.status == "failed" and place == "watch":
        st.error(job.error)
    elif job.error and job.status != "running":
        st.caption(f":red[{job.error}]" if job.status == "failed" else job.error)
    with st.expander("Log"):
        st.code("\n".join(store.log_tail(job.job_id, LOG_LINES)) or "(empty)", language=None)
    if job.status in ACTIVE:
        st.button(
            "Cancel",
            key=f"job-cancel-{place}-{job.job_id}",
            on_click=keeping_errors(store.cancel, REFUSED_KEY),
            args=(job.job_id,),
        )
    if job.status in RESUMABLE:
        st.button(
            "Resume",
            key=f"job-resume-{place}-{job.job_id}",
            help="continue from the finished blocks",
            on_click=keeping_errors(store.resume, REFUSED_KEY),  # a refusal: the job ended meanwhile
            args=(job.job_id,),
        )
    if job.status == "done" and job.run_id and job.kind == "family":
        if st.button("Open in Index variants", key=f"job-open-{place}-{job.job_id}"):
            st.session_state["family-id"] = engine.run_store().manifest(job.run_id)["family"]["id"]
            st.switch_page("dashboard/pages/families.py")
    elif job.status == "done" and job.run_id and st.button("Open in Compare", key=f"job-open-{place}-{job.job_id}"):
        st.session_state["compare-run"] = job.run_id
        st.switch_page("dashboard/pages/compare.py")


@st.fragment(run_every=WATCH_REFRESH)
def watch_sweep_job() -> None:
    """The progress and the streamed answer of this session's last sweep job (or of any running one)."""
    store = job_store()
    jobs = [j for j in store.list() if j.kind == "sweep"]
    mine = st.session_state.get("sweep-job")
    job = next((j for j in jobs if j.job_id == mine), None) or next((j for j in jobs if j.status in ACTIVE), None)
    if job is None:
        return
    st.subheader("Sweep job")
    job_card(store, job, "watch")
    answer = store.answer(job.job_id)
    if answer:
        st.caption(
            f"{'Generating' if job.status == 'running' else 'Last answer'} · question "
            f"{answer['question_id']} · {answer['config_id']}"
        )
        st.text(answer["text"])
