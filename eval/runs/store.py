"""The run store: one folder per run with a manifest and Parquet rows; every write is atomic.

Layout of `<runs dir>/<run_id>/`: `manifest.json`; `parts/part-NNNNN.parquet` (one per finished block of
questions, written while the sweep runs, so an interrupted run resumes where it stopped); when complete,
`rows.parquet` (all rows) and `latency.parquet` (measured retriever latency per config and question; while
the run is unfinished, per block in `parts/latency-NNNNN.parquet`).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import uuid
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from eval.data.datasets import make_question, question_record
from eval.errors import LabError
from eval.index.store import IndexManifest
from eval.io import atomic_write_bytes, atomic_write_parquet, iter_jsonl, out_of_space
from eval.metrics.latency import empty_samples
from eval.schema import Question

RUN_ID_PATTERN = re.compile(r"^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$")
# Version 1 is the manifest written before it had a `schema_version` key; it loads unchanged.
RUN_SCHEMA_VERSION = 2
# An unfinished run holds this many bytes of disk in a file of its own, given up when a full disk would stop
# the manifest from recording that the run stopped.
RESERVE, RESERVE_BYTES = "reserve.bin", 64 * 1024


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


@dataclass
class QuestionSource:
    """Where a run's question set came from; `fingerprint` covers ids, texts, answers and labels."""

    source: str
    count: int
    fingerprint: str = ""


@dataclass
class RunManifest:
    """The typed view of a run's `manifest.json`. The JSON keeps the shape older releases wrote (the same
    key names, `index` as an index manifest, `sweep` as `{"configs": [...]}`); keys this release does not
    know are kept in `extra` and written back."""

    run_id: str
    status: str
    created_at: str
    index: IndexManifest
    questions: QuestionSource
    sweep: dict[str, list[dict[str, Any]]]
    path: str = "fast"
    block_size: int | None = None
    latency_sample: int = 0
    generation: dict[str, Any] | None = None
    scorers: list[dict[str, Any]] = field(default_factory=list)  # each scorer's describe()
    versions: dict[str, str] = field(default_factory=dict)
    finished_at: str | None = None
    error: str | None = None  # why a "failed" run stopped
    retrieval_seconds: float = 0.0
    wall_seconds: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    schema_version: int = RUN_SCHEMA_VERSION

    @property
    def configs(self) -> list[dict[str, Any]]:
        """The sweep's configs as `{"config_id", **LangChain parameters}`."""
        return self.sweep["configs"]

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunManifest:
        known = {f.name for f in fields(cls)} - {"extra"}
        values = {k: v for k, v in data.items() if k in known}
        values["index"] = IndexManifest.from_json(json.dumps(data["index"]))
        values["questions"] = QuestionSource(**data["questions"])
        values.setdefault("schema_version", 1)
        return cls(**values, extra={k: v for k, v in data.items() if k not in known})

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {**data.pop("extra"), **data}


@dataclass
class Run:
    """A loaded run: its manifest (as stored, and typed as `info`), the rows (one per question x config)
    and the latency samples."""

    run_id: str
    folder: Path
    manifest: dict[str, Any]
    rows: pd.DataFrame
    latency: pd.DataFrame

    @cached_property
    def info(self) -> RunManifest:
        return RunManifest.from_dict(self.manifest)

    @property
    def configs(self) -> list[dict[str, Any]]:
        return self.info.configs

    @property
    def status(self) -> str:
        return self.info.status

    @property
    def questions(self) -> list[Question]:
        """The question set as it was when the run started (stored in the run folder)."""
        path = self.folder / "questions.jsonl"
        return [make_question(record, path, line) for line, record in iter_jsonl(path)] if path.is_file() else []

    @property
    def questions_by_id(self) -> dict[str, Question]:
        return {q.id: q for q in self.questions}

    def question_weights(self) -> dict[str, float]:
        """Each question's weight ({id: weight}, 1 where a question has none), or {} when no question of the
        run has a weight (a question set with no `weight` field)."""
        questions = self.questions
        if all(q.weight is None for q in questions):
            return {}
        return {q.id: 1.0 if q.weight is None else float(q.weight) for q in questions}

    @property
    def chunk_texts(self) -> dict[str, str]:
        """Texts of every chunk the run retrieved (stored when the run completes)."""
        path = self.folder / "chunks.parquet"
        if not path.is_file():
            return {}
        chunks = pd.read_parquet(path)
        return dict(zip(chunks["chunk_id"], chunks["text"]))


RETRIEVED_COLUMNS = ("chunk_ids", "doc_ids", "scores")


def _read_rows(path: Path, scores_only: bool) -> pd.DataFrame:
    if not scores_only:
        return pd.read_parquet(path)
    import pyarrow.parquet as pq

    columns = [name for name in pq.read_schema(path).names if name not in RETRIEVED_COLUMNS]
    return pd.read_parquet(path, columns=columns)


class RunStore:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def folder(self, run_id: str) -> Path:
        if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
            raise LabError(f"'{run_id}' is not a run id (run ids look like 20261124-230812-a1b2c3)")
        folder = self.root / run_id
        if not (folder / "manifest.json").is_file():
            raise LabError(f"no run '{run_id}' in {self.root} (list them with `python -m eval runs list`)")
        return folder

    def create(self, manifest: dict[str, Any], questions: list[Question]) -> str:
        """A new run folder with its manifest and a copy of the question set (so the run is self-contained).

        `manifest` holds the run's settings (`eval.sweep.run_manifest`); the store adds the run id, status,
        creation time and schema version, and checks the whole against `RunManifest`."""
        run_id = new_run_id()
        typed = RunManifest.from_dict(
            {
                **manifest,
                "run_id": run_id,
                "status": "running",
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "schema_version": RUN_SCHEMA_VERSION,
            }
        )
        lines = (json.dumps(question_record(q), ensure_ascii=False) + "\n" for q in questions)
        try:
            (self.root / run_id / "parts").mkdir(parents=True)
            self.hold_reserve(run_id)
            atomic_write_bytes(self.root / run_id / "questions.jsonl", "".join(lines).encode())
            self.write_manifest(run_id, typed.to_dict())
        except OSError as error:
            shutil.rmtree(self.root / run_id, ignore_errors=True)
            if out_of_space(error, self.root):
                raise LabError(
                    f"no space left on the disk of {self.root}: free some space and start the run again"
                ) from None
            raise
        return run_id

    def hold_reserve(self, run_id: str) -> None:
        """Hold `RESERVE_BYTES` of disk for an unfinished run (see `mark_stopped`); random bytes, which no disk
        compresses away."""
        if not (self.root / run_id / RESERVE).is_file():
            atomic_write_bytes(self.root / run_id / RESERVE, os.urandom(RESERVE_BYTES))

    def write_manifest(self, run_id: str, manifest: dict[str, Any]) -> None:
        atomic_write_bytes(
            self.root / run_id / "manifest.json",
            json.dumps(manifest, ensure_ascii=False, indent=2, default=str).encode(),
        )

    def manifest(self, run_id: str) -> dict[str, Any]:
        """The manifest as stored (see `RunManifest` for the typed view)."""
        return json.loads((self.folder(run_id) / "manifest.json").read_text(encoding="utf-8"))

    def update(self, run_id: str, **changes: Any) -> dict[str, Any]:
        manifest = {**self.manifest(run_id), **changes}
        self.write_manifest(run_id, manifest)
        return manifest

    def mark_stopped(self, run_id: str, status: str, **changes: Any) -> None:
        """Record why an unfinished run stopped. On a full disk the run's reserve is given up for it, so that a
        run stopped for want of space says so ("failed", resumable) instead of staying "running"."""
        try:
            self.update(run_id, status=status, **changes)
        except OSError as error:
            reserve = self.root / run_id / RESERVE
            if error.errno not in (errno.ENOSPC, errno.EDQUOT) or not reserve.is_file():
                raise
            reserve.unlink()
            self.update(run_id, status=status, **changes)

    def write_part(self, run_id: str, number: int, rows: pd.DataFrame) -> None:
        atomic_write_parquet(self.folder(run_id) / "parts" / f"part-{number:05d}.parquet", rows)

    def parts(self, run_id: str) -> list[pd.DataFrame]:
        folder = self.folder(run_id) / "parts"
        return [pd.read_parquet(p) for p in sorted(folder.glob("part-*.parquet"))] if folder.is_dir() else []

    def write_latency_part(self, run_id: str, number: int, samples: pd.DataFrame) -> None:
        """A block's latency samples (`eval.timing.SAMPLE_COLUMNS`), kept like its rows until the run ends."""
        atomic_write_parquet(self.folder(run_id) / "parts" / f"latency-{number:05d}.parquet", samples)

    def latency_parts(self, run_id: str) -> pd.DataFrame:
        """The latency samples of the finished blocks, in block order."""
        folder = self.folder(run_id) / "parts"
        frames = [pd.read_parquet(p) for p in sorted(folder.glob("latency-*.parquet"))] if folder.is_dir() else []
        return pd.concat(frames, ignore_index=True) if frames else empty_samples()

    def finish(
        self, run_id: str, rows: pd.DataFrame, latency: pd.DataFrame, chunks: pd.DataFrame, **changes: Any
    ) -> None:
        """Write the final tables, then mark the run complete, then drop the parts (in that order)."""
        folder = self.folder(run_id)
        atomic_write_parquet(folder / "chunks.parquet", chunks)
        atomic_write_parquet(folder / "rows.parquet", rows)
        atomic_write_parquet(folder / "latency.parquet", latency)
        self.update(run_id, status="complete", finished_at=datetime.now(UTC).isoformat(timespec="seconds"), **changes)
        shutil.rmtree(folder / "parts", ignore_errors=True)
        (folder / RESERVE).unlink(missing_ok=True)

    def list(self) -> list[dict[str, Any]]:
        """The stored manifests of every readable run, newest first."""
        if not self.root.is_dir():
            return []
        manifests = []
        for folder in self.root.iterdir():
            try:
                manifests.append(json.loads((folder / "manifest.json").read_text(encoding="utf-8")))
            except (OSError, json.JSONDecodeError):
                continue
        return sorted(manifests, key=lambda m: m.get("created_at", ""), reverse=True)

    def manifests(self) -> list[RunManifest]:
        """`list()` typed; a manifest that does not fit `RunManifest` is skipped like an unreadable one."""
        typed = []
        for manifest in self.list():
            try:
                typed.append(RunManifest.from_dict(manifest))
            except (KeyError, TypeError):
                continue
        return typed

    def load(self, run_id: str, scores_only: bool = False) -> Run:
        """The run; with `scores_only` its rows hold the scalar columns alone (ids, metrics, latencies,
        answers) and not the retrieved lists, which is what summaries and charts need: on a run of a
        million rows that reads in well under a second instead of about ten."""
        folder = self.folder(run_id)
        manifest = self.manifest(run_id)
        if (folder / "rows.parquet").is_file():
            rows = _read_rows(folder / "rows.parquet", scores_only)
            latency = pd.read_parquet(folder / "latency.parquet")
        else:
            parts = self.parts(run_id)
            rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
            if scores_only:
                rows = rows.drop(columns=[c for c in RETRIEVED_COLUMNS if c in rows])
            latency = self.latency_parts(run_id)
        return Run(run_id, folder, manifest, rows, latency)

    def delete(self, run_id: str) -> None:
        shutil.rmtree(self.folder(run_id))
