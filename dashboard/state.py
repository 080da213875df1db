"""Shared widgets and cached access to the engine for the dashboard pages.

No module-level mutable state: per-session values live in `st.session_state`; models, clients and loaded
runs are cached with `st.cache_resource` / `st.cache_data`, keyed by the data folder and ids.
"""
from __future__ import annotations

import html
import json
import re
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd
import streamlit as st

from eval import SAMPLE_DIR
from eval.prompts import ZH_MIN_CJK_SHARE
from eval.settings import lab_home
from eval.errors import LabError
from eval.runs import RunManifest

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_TYPES = ["jsonl", "json", "csv", "txt", "md", "pdf"]


def home() -> Path:
    return lab_home().absolute()


@st.cache_resource(show_spinner=False)
def _index_store(root: str):
    from eval.index import IndexStore

    return IndexStore(root)


def index_store():
    return _index_store(str(home() / "indexes"))


def run_store():
    from eval.runs import RunStore

    return RunStore(home() / "runs")


@st.cache_resource(show_spinner="Opening the index…")
def _open_index(root: str, name: str, created_at: str):
    return _index_store(root).open(name)


def open_index(name: str):
    store = index_store()
    return _open_index(str(store.root), name, store.manifest(name).created_at)


@st.cache_data(show_spinner="Loading the run…", max_entries=32)
def _load_run(root: str, run_id: str, status: str, finished_at: str):
    from eval.runs import RunStore

    return RunStore(root).load(run_id)


def load_run(run_id: str):
    """A run, cached by run id (and its status, so a resumed run is re-read)."""
    manifest = run_store().manifest(run_id)
    return _load_run(str(run_store().root), run_id, manifest["status"], str(manifest.get("finished_at")))


@st.cache_resource(show_spinner="Loading the run…", max_entries=8)
def _load_scores(root: str, run_id: str, status: str, finished_at: str):
    from eval.runs import RunStore

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
    return _question_stages(run.info.index.name, run.info.index.created_at, json.dumps(params, sort_keys=True),
                            question.id, question.question, tuple(chunk_ids), question)


@st.cache_data(show_spinner="Recomputing the stages…", max_entries=256)
def _question_stages(index_name: str, created_at: str, params: str, question_id: str, question_text: str,
                     chunk_ids: tuple[str, ...], _question) -> list:
    from eval.stages import stages_for_row

    return stages_for_row(open_index(index_name), created_at, json.loads(params), _question, list(chunk_ids))


@st.cache_data(show_spinner="Comparing the runs…", max_entries=16)
def _run_comparison(first: str, second: str, metrics: tuple[str, ...], versions: tuple[str, ...]) -> pd.DataFrame:
    from eval.leaderboard import compare_runs

    return compare_runs(load_scores(first), load_scores(second), list(metrics))


@st.cache_data(show_spinner="Comparing the runs…", max_entries=16)
def _rescored_comparison(first: str, second: str, metrics: tuple[str, ...], source: str,
                         versions: tuple[str, ...], _label_files: tuple[Path, Path]) -> pd.DataFrame:
    from eval.leaderboard import compare_runs

    return compare_runs(*(rescored_run(r, f, source) for r, f in zip((first, second), _label_files)), list(metrics))


def run_comparison(first: str, second: str, metrics: tuple[str, ...], source: str = "gold") -> pd.DataFrame:
    """`compare_runs` of two runs (a = first), both scored under label source `source` (each with the label
    file beside its own questions), cached until either run or label file changes."""
    versions = tuple(str(run_store().manifest(r).get("finished_at")) for r in (first, second))
    if source == "gold":
        return _run_comparison(first, second, metrics, versions)
    files = tuple(label_sources(r)[0] for r in (first, second))
    return _rescored_comparison(first, second, metrics, source,
                                versions + tuple(f"{f}@{f.stat().st_mtime}" for f in files), files)


@st.cache_data(show_spinner="Summarizing…", max_entries=64)
def _summary(root: str, run_id: str, status: str, finished_at: str, baseline: str | None,
             metrics: tuple[str, ...]) -> pd.DataFrame:
    from eval.leaderboard import stored_summary

    return stored_summary(_load_scores(root, run_id, status, finished_at), baseline, list(metrics) or None)


def summary(run_id: str, baseline: str | None, metrics: tuple[str, ...]) -> pd.DataFrame:
    manifest = run_store().manifest(run_id)
    return _summary(str(run_store().root), run_id, manifest["status"], str(manifest.get("finished_at")),
                    baseline, tuple(metrics))


@st.cache_data(show_spinner="Reading the index's relevance scores…", max_entries=16)
def _threshold_grid(root: str, name: str, created_at: str, questions_path: str,
                    modified: float) -> tuple[list[float], str]:
    from eval.calibration import threshold_grid
    from eval.datasets import load_question_set

    return threshold_grid(_open_index(root, name, created_at), load_question_set(Path(questions_path)))


def threshold_grid(index_name: str | None, questions_path: Path | None) -> tuple[list[float], str] | None:
    """`score_threshold` values for a sweep of this question set on this index (`eval.calibration.threshold_grid`),
    or None when either is missing or unreadable (the page reports that where it loads them)."""
    if not index_name or questions_path is None or not questions_path.exists():
        return None
    store = index_store()
    try:
        return _threshold_grid(str(store.root), index_name, store.manifest(index_name).created_at,
                               str(questions_path), questions_path.stat().st_mtime)
    except LabError:
        return None


def label_sources(run_id: str) -> tuple[Path | None, list[str]]:
    """The label file beside the run's question set (None if it cannot be found) and its label sources."""
    from eval.pooled_judge import run_label_file

    try:
        path = run_label_file(load_scores(run_id))  # cached: Compare has loaded it already
    except LabError:
        return None, []
    with lab_errors("fix the label file (see the message) or delete it"):
        return path, _label_sources(str(path), path.stat().st_mtime if path.is_file() else 0.0)
    return None, []


@st.cache_data(show_spinner=False, max_entries=16)
def _label_sources(path: str, mtime: float) -> list[str]:
    from eval.labels import load_labels

    return load_labels(path).sources


@st.cache_resource(show_spinner="Rescoring under the chosen labels…", max_entries=8)
def _rescored_run(root: str, run_id: str, finished_at: str, label_file: str, label_mtime: float, source: str):
    from dataclasses import replace

    from eval.labels import LABEL_METRICS, load_labels, rescore
    from eval.runs import RunStore

    run = RunStore(root).load(run_id)
    return replace(run, rows=rescore(run, load_labels(label_file), source, list(LABEL_METRICS)))


def rescored_run(run_id: str, label_file: Path, source: str):
    """The run with its relevance metrics recomputed under another label source (`eval.labels.rescore`),
    cached per label-file version. Treat it as read-only."""
    manifest = run_store().manifest(run_id)
    return _rescored_run(str(run_store().root), run_id, str(manifest.get("finished_at")), str(label_file),
                         label_file.stat().st_mtime, source)


@st.cache_data(show_spinner="Summarizing…", max_entries=16)
def _rescored_summary(run_id: str, finished_at: str, label_file: str, label_mtime: float, source: str,
                      baseline: str | None, _run) -> pd.DataFrame:
    from eval.leaderboard import quality_metrics, summarize

    return summarize(_run, baseline, quality_metrics(_run.rows))


def rescored_summary(run_id: str, label_file: Path, source: str, baseline: str | None) -> pd.DataFrame:
    """The leaderboard of `rescored_run`."""
    manifest = run_store().manifest(run_id)
    return _rescored_summary(run_id, str(manifest.get("finished_at")), str(label_file), label_file.stat().st_mtime,
                             source, baseline, rescored_run(run_id, label_file, source))


@contextmanager
def lab_errors(next_step: str = "") -> Iterator[None]:
    """Show a `LabError` as st.error with what to do next, never a traceback."""
    try:
        yield
    except LabError as error:
        st.error(f"{error}" + (f"\n\n**What to do:** {next_step}" if next_step else ""))


def run_label(manifest: RunManifest) -> str:
    return (f"{manifest.run_id} · {manifest.status} · index {manifest.index.name} · "
            f"{manifest.questions.count} questions · {len(manifest.configs)} configs")


def pick_run(key: str, complete_only: bool = True) -> str | None:
    manifests = [m for m in run_store().manifests() if not complete_only or m.status == "complete"]
    if not manifests:
        st.info("No completed runs yet: start one on the **Run a sweep** page.")
        return None
    labels = {m.run_id: run_label(m) for m in manifests}
    return st.selectbox("Run", list(labels), format_func=labels.get, key=key)


def remembered(key: str, options: list | None = None) -> str:
    """Make the widget with this key keep its value across pages (call it just before making the widget, which
    gets the returned key); `options`: a choice widget's options, so a value no longer offered is dropped.

    Streamlit forgets a widget's value once a page without the widget has run; a copy under another key is not
    a widget's, so it survives and is put back. The copy is taken at the start of every run, when the widget's
    state already holds the user's latest change."""
    copy = f"remembered:{key}"
    if key in st.session_state:
        st.session_state[copy] = st.session_state[key]
    elif copy in st.session_state and (options is None or st.session_state[copy] in options):
        st.session_state[key] = st.session_state[copy]
    return key


def pick_index(key: str, label: str = "Index") -> str | None:
    names = [m.name for m in index_store().list()]
    if not names:
        st.info("No indexes yet: build one on the **Indexes** page.")
        return None
    return st.selectbox(label, names, key=remembered(key, names))


def save_uploads(files, prefix: str) -> Path:
    """Save uploaded files (size-limited, only as data; never executed or unpickled) to a temp folder."""
    total = sum(f.size for f in files)
    if total > MAX_UPLOAD_BYTES:
        raise LabError(f"the uploads are {total / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    folder = Path(tempfile.mkdtemp(prefix=f"retriever-lab-{prefix}-"))
    for file in files:
        name = Path(file.name).name
        if not name or name.startswith(".") or Path(name).suffix.lower().lstrip(".") not in UPLOAD_TYPES:
            raise LabError(f"'{file.name}': only {', '.join(UPLOAD_TYPES)} files are accepted")
        (folder / name).write_bytes(file.getvalue())
    return folder


def dataset_source(key: str, allow_upload: bool = True) -> Path | None:
    """Pick a dataset: the bundled sample, a folder/file path, or uploaded files. Returns a path."""
    options = ["Bundled sample", "Folder or file path"] + (["Upload files"] if allow_upload else [])
    choice = st.radio("Dataset", options, key=remembered(f"{key}-source", options), horizontal=True)
    if choice == "Bundled sample":
        st.caption(f"`{SAMPLE_DIR}`")
        return SAMPLE_DIR
    if choice == "Folder or file path":
        text = st.text_input("Path (folder with corpus.jsonl/questions.jsonl, SQuAD .json, BEIR folder, "
                             "documents folder, or a questions .jsonl/.csv)", key=remembered(f"{key}-path"))
        return Path(text.strip()).expanduser() if text.strip() else None
    files = st.file_uploader("Files (.jsonl, .json, .csv, .txt, .md, .pdf)", type=UPLOAD_TYPES,
                             accept_multiple_files=True, key=f"{key}-upload")
    if not files:
        return None
    folder = save_uploads(files, key)
    return folder if len(files) > 1 or Path(files[0].name).suffix.lower() in (".txt", ".md", ".pdf") \
        else folder / Path(files[0].name).name


def default_dataset(key: str, source: str) -> None:
    """Preset `dataset_source(key)` to the dataset at `source` (an index's `source`), when that still exists."""
    if source and Path(source).exists():
        bundled = Path(source).resolve() == SAMPLE_DIR.resolve()
        st.session_state[f"{key}-source"] = "Bundled sample" if bundled else "Folder or file path"
        st.session_state[f"{key}-path"] = "" if bundled else source


def language_of(share: float) -> str:
    """A label for a question set's share of CJK letters (`eval.prompts.cjk_share`)."""
    return "Chinese" if share >= ZH_MIN_CJK_SHARE else "mixed" if share >= 0.05 else "English"


def highlight(text: str, answers) -> str:
    """Escape the text, then wrap each occurrence of a gold answer in <mark> (safe to render as HTML)."""
    escaped = html.escape(text)
    needles = sorted({html.escape(a) for a in answers if a and a.strip()}, key=len, reverse=True)
    if needles:
        pattern = re.compile("|".join(re.escape(n) for n in needles), re.IGNORECASE)
        escaped = pattern.sub(lambda m: f"<mark>{m.group(0)}</mark>", escaped)
    return escaped.replace("\n", "<br>")


def parse_list(text: str, kind=float, name: str = "value") -> list:
    """'3, 5, 10' -> [3, 5, 10]; raises LabError on a bad entry."""
    values = []
    for part in re.split(r"[,\s，]+", text.strip()):
        if not part:
            continue
        try:
            value = kind(part)
        except ValueError:
            raise LabError(f"{name}: '{part}' is not a {'whole number' if kind is int else 'number'}") from None
        values.append(value)
    if not values:
        raise LabError(f"{name}: give at least one value")
    return values
