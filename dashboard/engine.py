"""The dashboard's one door to the engine: stores, opened indexes, loaded runs and what is computed from them,
cached with `st.cache_resource` / `st.cache_data`, keyed by the data folder, ids and versions (a run's status
and finish time, a label file's mtime), so a page never recomputes what has not changed. No module-level
mutable state, and no widgets here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import streamlit as st

from eval.analysis import calibration
from eval.analysis.leaderboard import compare_runs
from eval.analysis.why import WhyReport, why_missed
from eval.data.datasets import find_file, load_question_set
from eval.data.labels import label_path, load_labels, with_labelled_documents
from eval.data.question_import import QuestionImport, write_question_set
from eval.errors import LabError
from eval.index.store import IndexStore
from eval.labels import real_questions
from eval.labels.corrected import corrected_sources
from eval.labels.pooled_judging import run_label_file
from eval.labels.question_generation import write_index_corpus
from eval.labels.real_questions import comparing_encoder
from eval.labels.rescore import run_under
from eval.retrievers.stages import stages_for_row
from eval.runs.store import RunStore
from eval.runs.summary import quality_metrics, stored_summary, summarize
from eval.settings import lab_home


def home() -> Path:
    return lab_home().absolute()


@st.cache_resource(show_spinner=False)
def _index_store(root: str):
    return IndexStore(root)


def index_store():
    return _index_store(str(home() / "indexes"))


def run_store():
    return RunStore(home() / "runs")


@st.cache_resource(show_spinner="Opening the index…")
def _open_index(root: str, name: str, created_at: str):
    return _index_store(root).open(name)


def open_index(name: str):
    store = index_store()
    return _open_index(str(store.root), name, store.manifest(name).created_at)


@st.cache_data(show_spinner="Loading the run…", max_entries=32)
def _load_run(root: str, run_id: str, status: str, finished_at: str):
    return RunStore(root).load(run_id)


def load_run(run_id: str):
    """A run, cached by run id (and its status, so a resumed run is re-read)."""
    manifest = run_store().manifest(run_id)
    return _load_run(str(run_store().root), run_id, manifest["status"], str(manifest.get("finished_at")))


@st.cache_resource(show_spinner="Loading the run…", max_entries=8)
def _load_scores(root: str, run_id: str, status: str, finished_at: str):
    return RunStore(root).load(run_id, scores_only=True)


def load_scores(run_id: str):
    """A run's scalar rows (metrics, latencies; no retrieved lists), as summaries and charts need them.

    Shared, not copied, between sessions (`cache_resource`): a million rows would take seconds to
    copy on every rerun. Treat it as read-only."""
    manifest = run_store().manifest(run_id)
    return _load_scores(str(run_store().root), run_id, manifest["status"], str(manifest.get("finished_at")))


def question_stages(run, params: dict, question, chunk_ids: list[str]) -> list:
    """`eval.stages.stages_for_row` for one row of `run`, cached per (index build, config, question): the
    recomputation may run a cross-encoder, and Inspect reruns on every click. A refusal is not cached."""
    return _question_stages(
        run.info.index.name,
        run.info.index.created_at,
        json.dumps(params, sort_keys=True),
        question.id,
        question.question,
        tuple(chunk_ids),
        question,
    )


@st.cache_data(show_spinner="Recomputing the stages…", max_entries=256)
def _question_stages(
    index_name: str,
    created_at: str,
    params: str,
    question_id: str,
    question_text: str,
    chunk_ids: tuple[str, ...],
    _question,
) -> list:

    return stages_for_row(open_index(index_name), created_at, json.loads(params), _question, list(chunk_ids))


@st.cache_data(show_spinner="Comparing the runs…", max_entries=16)
def _run_comparison(first: str, second: str, metrics: tuple[str, ...], versions: tuple[str, ...]) -> pd.DataFrame:
    return compare_runs(load_scores(first), load_scores(second), list(metrics))


@st.cache_data(show_spinner="Comparing the runs…", max_entries=16)
def _rescored_comparison(
    first: str,
    second: str,
    metrics: tuple[str, ...],
    source: str,
    versions: tuple[str, ...],
    _label_files: tuple[Path, Path],
) -> pd.DataFrame:

    return compare_runs(*(rescored_run(r, f, source) for r, f in zip((first, second), _label_files)), list(metrics))


def run_comparison(first: str, second: str, metrics: tuple[str, ...], source: str = "gold") -> pd.DataFrame:
    """`compare_runs` of two runs (a = first), both scored under label source `source` (each with the label
    file beside its own questions), cached until either run or label file changes."""
    versions = tuple(str(run_store().manifest(r).get("finished_at")) for r in (first, second))
    if source == "gold":
        return _run_comparison(first, second, metrics, versions)
    files = tuple(label_sources(r)[0] for r in (first, second))
    return _rescored_comparison(
        first, second, metrics, source, versions + tuple(f"{f}@{f.stat().st_mtime}" for f in files), files
    )


@st.cache_data(show_spinner="Summarizing…", max_entries=64)
def _summary(
    root: str,
    run_id: str,
    status: str,
    finished_at: str,
    baseline: str | None,
    metrics: tuple[str, ...],
    weighted: bool = False,
) -> pd.DataFrame:

    return stored_summary(_load_scores(root, run_id, status, finished_at), baseline, list(metrics) or None, weighted)


def summary(run_id: str, baseline: str | None, metrics: tuple[str, ...], weighted: bool = False) -> pd.DataFrame:
    """`stored_summary` of the run, cached; `weighted`: weighted by the questions' weights."""
    manifest = run_store().manifest(run_id)
    return _summary(
        str(run_store().root),
        run_id,
        manifest["status"],
        str(manifest.get("finished_at")),
        baseline,
        tuple(metrics),
        weighted,
    )


@st.cache_data(show_spinner="Reading the index's relevance scores…", max_entries=16)
def _threshold_grid(
    root: str, name: str, created_at: str, questions_path: str, modified: float
) -> tuple[list[float], str]:

    questions, source = with_labelled_documents(load_question_set(Path(questions_path)), questions_path)
    values, origin = calibration.threshold_grid(_open_index(root, name, created_at), questions)
    return values, origin + (f" (labels: {source})" if source else "")


def threshold_grid(index_name: str | None, questions_path: Path | None) -> tuple[list[float], str] | None:
    """`score_threshold` values for a sweep of this question set on this index (`eval.calibration.threshold_grid`),
    or None when either is missing or unreadable (the page reports that where it loads them)."""
    if not index_name or questions_path is None or not questions_path.exists():
        return None
    store = index_store()
    try:
        return _threshold_grid(
            str(store.root),
            index_name,
            store.manifest(index_name).created_at,
            str(questions_path),
            questions_path.stat().st_mtime,
        )
    except LabError:
        return None


def label_sources(run_id: str) -> tuple[Path | None, list[str]]:
    """The label file beside the run's question set (None if it cannot be found) and its label sources; a
    LabError when the label file cannot be read."""
    try:
        path = run_label_file(load_scores(run_id))  # cached: Compare has loaded it already
    except LabError:
        return None, []
    return path, _label_sources(str(path), path.stat().st_mtime if path.is_file() else 0.0)


@st.cache_data(show_spinner=False, max_entries=16)
def _label_sources(path: str, mtime: float) -> list[str]:
    sources = load_labels(path).sources
    return sources + corrected_sources(sources)


def question_set_sources(path: Path) -> list[str]:
    """The label sources of the label file beside a question set (file or folder), cached per version of that
    file, without the corrected ones; [] when there is none."""
    labels_file = label_path(find_file(path, "questions") if path.is_dir() else path)
    if not labels_file.is_file():
        return []
    return load_labels_sources(str(labels_file), labels_file.stat().st_mtime)


@st.cache_data(show_spinner=False, max_entries=16)
def load_labels_sources(path: str, mtime: float) -> list[str]:
    return load_labels(path).sources


@st.cache_resource(show_spinner="Rescoring under the chosen labels…", max_entries=8)
def _rescored_run(root: str, run_id: str, finished_at: str, label_file: str, label_mtime: float, source: str):
    return run_under(RunStore(root).load(run_id), load_labels(label_file), source)


def rescored_run(run_id: str, label_file: Path, source: str):
    """The run with its relevance metrics recomputed under another label source (`eval.labels.rescore`),
    cached per label-file version. Treat it as read-only."""
    manifest = run_store().manifest(run_id)
    return _rescored_run(
        str(run_store().root),
        run_id,
        str(manifest.get("finished_at")),
        str(label_file),
        label_file.stat().st_mtime,
        source,
    )


def scored_run(run_id: str, label_file: Path | None, source: str, scores_only: bool = False):
    """The run scored under the label source the pages share: its own rows under gold (`load_scores` when only
    scores are needed), else `rescored_run`. Treat it as read-only."""
    if source == "gold" or label_file is None:
        return load_scores(run_id) if scores_only else load_run(run_id)
    return rescored_run(run_id, label_file, source)


@st.cache_data(show_spinner="Summarizing…", max_entries=16)
def _rescored_summary(
    run_id: str,
    finished_at: str,
    label_file: str,
    label_mtime: float,
    source: str,
    baseline: str | None,
    _run,
    weighted: bool = False,
) -> pd.DataFrame:

    return summarize(_run, baseline, quality_metrics(_run.rows), weighted)


def rescored_summary(
    run_id: str, label_file: Path, source: str, baseline: str | None, weighted: bool = False
) -> pd.DataFrame:
    """The leaderboard of `rescored_run` (weighted or not)."""
    manifest = run_store().manifest(run_id)
    return _rescored_summary(
        run_id,
        str(manifest.get("finished_at")),
        str(label_file),
        label_file.stat().st_mtime,
        source,
        baseline,
        rescored_run(run_id, label_file, source),
        weighted,
    )


def import_real_questions(
    paths: list[Path],
    fmt: str,
    column: str | None,
    field: str | None,
    threshold: float | None,
    index: str | None,
    encoder: str | None,
    progress=None,
) -> QuestionImport:
    """`eval.labels.real_questions.import_real_questions` with the encoder of `index` (from this lab's indexes)
    or `encoder`; not cached: the page keeps the result until its inputs change."""
    name = comparing_encoder(index_store(), index, encoder) if threshold is not None else None
    return real_questions.import_real_questions(paths, fmt, column, field, threshold, name, home(), progress)


def save_real_questions(result: QuestionImport, out: Path, index: str | None) -> Path:
    """Write the imported questions to a new folder, with the documents of `index` beside them when one was
    chosen (so that they can be labelled)."""
    path = write_question_set(result, out)
    if index:
        write_index_corpus(path.parent, open_index(index))
    return path


@st.cache_resource(show_spinner="Diagnosing the misses (recomputing the candidates on the index)…", max_entries=8)
def _why_report(
    root: str, run_id: str, finished_at: str, index_built: str, label_file: str, label_mtime: float, source: str
) -> WhyReport:
    run = RunStore(root).load(run_id)
    return why_missed(run, open_index(run.info.index.name), load_labels(label_file), source)


def why_report(run_id: str, label_file: Path | None, source: str) -> WhyReport:
    """`eval.analysis.why.why_missed` of a run under the label source the pages share, cached per run, index
    build and label-file version; a LabError when the run cannot be diagnosed (no label file, index gone or
    rebuilt, only external retrievers). Treat it as read-only."""
    if label_file is None:
        raise LabError(f"run {run_id}'s question set and its labels cannot be found: the misses cannot be diagnosed")
    manifest = run_store().manifest(run_id)
    name = manifest["index"]["name"]
    if name not in {index.name for index in index_store().list()}:  # gone or damaged
        raise LabError(f"index '{name}' of run {run_id} is gone: the misses cannot be diagnosed")
    return _why_report(
        str(run_store().root),
        run_id,
        str(manifest.get("finished_at")),
        index_store().manifest(name).created_at,
        str(label_file),
        label_file.stat().st_mtime if label_file.is_file() else 0.0,
        source,
    )
