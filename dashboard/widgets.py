"""Widgets the pages share: pickers of indexes, runs and datasets, errors shown with what to do next, and
text helpers. Per-session values live in `st.session_state`; what comes from the engine comes through
`dashboard.engine`.
"""

from __future__ import annotations

import html
import re
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import streamlit as st

from dashboard import engine
from eval import SAMPLE_DIR
from eval.data.datasets import load_question_set
from eval.errors import LabError
from eval.runs.store import RunManifest
from eval.text import ZH_MIN_CJK_SHARE

MAX_UPLOAD_BYTES = 20 * 1024 * 1024
UPLOAD_TYPES = ["jsonl", "json", "csv", "txt", "md", "pdf"]


@contextmanager
def lab_errors(next_step: str = "") -> Iterator[None]:
    """Show a `LabError` as st.error with what to do next, never a traceback."""
    try:
        yield
    except LabError as error:
        st.error(f"{error}" + (f"\n\n**What to do:** {next_step}" if next_step else ""))


def keeping_errors(action: Callable[..., object], key: str) -> Callable[..., None]:
    """A button's callback that keeps a `LabError`'s message under `key` in the session state, for the rerun
    after the click to show (an error raised in a callback would show as a traceback)."""

    def run(*args: object) -> None:
        try:
            action(*args)
        except LabError as error:
            st.session_state[key] = str(error)

    return run


def run_label(manifest: RunManifest) -> str:
    return (
        f"{manifest.run_id} · {manifest.status} · index {manifest.index.name} · "
        f"{manifest.questions.count} questions · {len(manifest.configs)} configs"
    )


def pick_run(key: str, complete_only: bool = True) -> str | None:
    manifests = [m for m in engine.run_store().manifests() if not complete_only or m.status == "complete"]
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


def remembered_text(key: str, default: str) -> str:
    """`remembered(key)` for a text widget made without a value: `default` until the user changes it."""
    st.session_state.setdefault(remembered(key), default)
    return key


def set_remembered(key: str, value: str) -> None:
    """Give a remembered widget a value from the page (a seed), kept across pages like the user's own."""
    st.session_state[key] = st.session_state[f"remembered:{key}"] = value


def pick_index(key: str, label: str = "Index") -> str | None:
    names = [m.name for m in engine.index_store().list()]
    if not names:
        st.info("No indexes yet: build one on the **Indexes** page.")
        return None
    return st.selectbox(label, names, key=remembered(key, names))


def save_uploads(files, prefix: str, types: list[str] = UPLOAD_TYPES) -> Path:
    """Save uploaded files (size-limited, only as data; never executed or unpickled) to a temp folder; `types`:
    the accepted file name endings."""
    total = sum(f.size for f in files)
    if total > MAX_UPLOAD_BYTES:
        raise LabError(f"the uploads are {total / 1e6:.1f} MB; the limit is {MAX_UPLOAD_BYTES / 1e6:.0f} MB")
    folder = Path(tempfile.mkdtemp(prefix=f"retriever-lab-{prefix}-"))
    for file in files:
        name = Path(file.name).name
        if not name or name.startswith(".") or Path(name).suffix.lower().lstrip(".") not in types:
            raise LabError(f"'{file.name}': only {', '.join(types)} files are accepted")
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
        text = st.text_input(
            "Path (folder with corpus.jsonl/questions.jsonl, SQuAD .json, BEIR folder, "
            "documents folder, or a questions .jsonl/.csv)",
            key=remembered(f"{key}-path"),
        )
        return Path(text.strip()).expanduser() if text.strip() else None
    files = st.file_uploader(
        "Files (.jsonl, .json, .csv, .txt, .md, .pdf)",
        type=UPLOAD_TYPES,
        accept_multiple_files=True,
        key=f"{key}-upload",
    )
    if not files:
        return None
    folder = save_uploads(files, key)
    return (
        folder
        if len(files) > 1 or Path(files[0].name).suffix.lower() in (".txt", ".md", ".pdf")
        else folder / Path(files[0].name).name
    )


def default_dataset(key: str, source: str) -> None:
    """Preset `dataset_source(key)` to the dataset at `source` (an index's `source`), when that still exists."""
    if source and Path(source).exists():
        bundled = Path(source).resolve() == SAMPLE_DIR.resolve()
        st.session_state[f"{key}-source"] = "Bundled sample" if bundled else "Folder or file path"
        st.session_state[f"{key}-path"] = "" if bundled else source


GENERATED = "generated-questions"  # index name -> the folder the Labels page generated its questions into


def default_questions(key: str, index_name: str | None) -> None:
    """Preset `dataset_source(key)` to a question set of this index, once each time another index is chosen:
    the set generated from it on the Labels page (this session, or in the Labels page's default folder), else
    the index's own dataset when that has questions, else an empty path: never the sample's questions for an
    index of other documents."""
    if not index_name or st.session_state.get(f"{key}-defaults-for") == index_name:
        return
    st.session_state[f"{key}-defaults-for"] = index_name
    generated = st.session_state.get(GENERATED, {}).get(index_name)
    candidates = [generated, str(engine.home() / "question_sets" / f"{index_name}-generated")]
    candidates.append(engine.index_store().manifest(index_name).source)
    found = next((c for c in candidates if c and _has_questions(c)), generated)  # a generation may still run
    if found and Path(found).resolve() == SAMPLE_DIR.resolve():
        set_remembered(f"{key}-source", "Bundled sample")
        return
    set_remembered(f"{key}-source", "Folder or file path")
    set_remembered(f"{key}-path", found or "")


def _has_questions(source: str) -> bool:
    try:
        return bool(load_question_set(source))
    except LabError:
        return False


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


def label_sources(run_id: str) -> tuple[Path | None, list[str]]:
    """`engine.label_sources`, or (None, []) after saying why the run's label file cannot be read."""
    with lab_errors("fix the label file (see the message) or delete it"):
        return engine.label_sources(run_id)
    return None, []


LABEL_SOURCE_KEY = "compare-labels"  # the Labels widget, on every page that scores a run
LABEL_SOURCE = "label-source"  # the choice itself, outside any widget: a widget's state is its page's


def _keep_label_source() -> None:
    st.session_state[LABEL_SOURCE] = st.session_state[LABEL_SOURCE_KEY]


def pick_label_source(run_id: str) -> tuple[Path | None, str]:
    """The run's label file and the label source the pages share (Compare, Inspect, Reports): chosen on any of
    them, it is the choice of the others; `gold` when the run's questions have no other labels.

    The same widget key on two pages is two widgets (Streamlit ties a widget to its page), so the choice lives
    under its own key, is kept by the widget's callback and put into the widget before it is made."""
    label_file, sources = label_sources(run_id)
    if not sources or sources == ["gold"]:
        return label_file, "gold"
    if st.session_state.get(LABEL_SOURCE) in sources:
        st.session_state[LABEL_SOURCE_KEY] = st.session_state[LABEL_SOURCE]
    source = st.selectbox(
        "Labels",
        sources,
        key=LABEL_SOURCE_KEY,
        on_change=_keep_label_source,
        help="score, rank and mark relevance under this label source on Compare, Inspect and Reports (no "
        "retrieval again); judged = share of the retrieved chunks that source has graded",
    )
    return label_file, source
