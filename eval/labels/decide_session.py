"""A person deciding: the pairs `Decider` asks for, answered one at a time, saved as they come.

Each grade goes to the label store as `human:NAME` (through `save_judgements`, so Compare, the reports and
`rescore` see it at once); the picks (which pair, its grade or a skip, and how the lab chose it) go to the run
folder's `decide/<source>.json`, rewritten atomically after each answer, so a session resumes where it stopped
(the page's rerun, a closed tab, the CLI again). The pair being asked stays the same until it is answered,
skipped or undone.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from eval.data.labels import Labels, load_labels
from eval.errors import LabError
from eval.io import atomic_write_bytes
from eval.labels.decide import EPSILON, DecidePool, Decider, Decision, pair_of
from eval.labels.pooled_judging import PoolItem, run_label_file, save_judgements
from eval.runs.store import Run


def decide_log_path(run: Run, source: str) -> Path:
    """`<run folder>/decide/<source>.json` (characters unsafe in a file name as `_`)."""
    return run.folder / "decide" / (re.sub(r"[^\w.@-]+", "_", source) + ".json")


class DecideSession:
    def __init__(
        self,
        run: Run,
        labels_file: Path,
        name: str,
        *,
        rule: str = "pick",
        epsilon: float = EPSILON,
        order: str = "active",
        seed: int = 0,
        decide_pool: DecidePool | None = None,
        judge: str | None = None,
    ) -> None:
        if not name.strip():
            raise LabError("a name is needed: labels are saved as human:NAME")
        self.run, self.labels_file, self.source = run, Path(labels_file), f"human:{name.strip()}"
        self.pool = decide_pool or DecidePool(run)
        self.log_file = decide_log_path(run, self.source)
        self.log = json.loads(self.log_file.read_text()) if self.log_file.is_file() else {"picks": [], "current": None}
        labels = load_labels(self.labels_file)
        self.judged = self.pool.grades_from(labels, judge) if judge else None
        self.options = {"rule": rule, "epsilon": epsilon, "order": order, "seed": seed, "judge": judge}
        self._replay(labels)

    def _replay(self, labels: Labels | None = None) -> None:
        """The decider from the label file (`labels`: as just read) and the log: the log's picks labelled again
        in their order (the relevance model learns what each label saw), so the page, a resumed session and the
        reports decide alike, a label that also grades an overlapping chunk included."""
        labels = load_labels(self.labels_file) if labels is None else labels
        grades = (
            self.pool.grades_from(labels, self.source)
            if self.source in labels.sources
            else np.full(len(self.pool), np.nan)
        )
        picks = [(pair_of(self.pool, p["question_id"], p["chunk_id"]), p) for p in self.log["picks"]]
        before = grades.copy()
        before[[n for n, pick in picks if pick["grade"] is not None]] = np.nan
        options = {k: v for k, v in self.options.items() if k != "judge"}
        self.decider = Decider(self.pool, before, judge=self.judged, **options)
        for n, pick in picks:
            if pick["grade"] is None:
                self.decider.skipped.add(n)
            elif not np.isnan(grades[n]):
                self.decider.label(n, int(grades[n]))

    @property
    def labels(self) -> int:
        return self.decider.made

    def judged_text(self) -> str:
        """The label source and its judged share of the run's pool, in words."""
        judged = int((~np.isnan(self.decider.grades)).sum())
        share = judged / len(self.pool)
        return f"label source {self.source}: {judged} of {len(self.pool)} pool pairs judged ({share:.1%})"

    def current(self) -> tuple[PoolItem, str] | None:
        """The pair to label now and how the lab chose it; None when every pair is judged or skipped."""
        held = self.log.get("current")
        if held:
            n = pair_of(self.pool, held["question_id"], held["chunk_id"])
            if np.isnan(self.decider.grades[n]) and n not in self.decider.skipped:
                return self.pool.items[n], held["kind"]
        picked = self.decider.next_pair()
        if picked is None:
            return None
        item = self.pool.items[picked[0]]
        self.log["current"] = {"question_id": item.question_id, "chunk_id": item.chunk_id, "kind": picked[1]}
        self._save_log()
        return item, picked[1]

    def answer(self, grade: int) -> None:
        """Grade the current pair (0, 1 or 2) and save it."""
        item, kind = self._current_or_fail()
        if grade not in (0, 1, 2):
            raise LabError(f"grade {grade} is not 0, 1 or 2")
        save_judgements(self.labels_file, [(item, grade)], self.source, replace=True)
        self._record(item, grade, kind)
        self._replay()

    def skip(self) -> None:
        item, kind = self._current_or_fail()
        self._record(item, None, kind)
        self._replay()

    def undo(self) -> bool:
        """Take back the last answer or skip (its pair is asked again); False when there is nothing to undo."""
        if not self.log["picks"]:
            return False
        pick = self.log["picks"].pop()
        n = pair_of(self.pool, pick["question_id"], pick["chunk_id"])
        if pick["grade"] is not None:
            save_judgements(self.labels_file, [(self.pool.items[n], None)], self.source)
        self.log["current"] = {k: pick[k] for k in ("question_id", "chunk_id", "kind")}
        self._save_log()
        self._replay()
        return True

    def decision(self) -> Decision:
        return self.decider.last or self.decider.evaluate()

    def _current_or_fail(self) -> tuple[PoolItem, str]:
        current = self.current()
        if current is None:
            raise LabError("every pair of the pool is judged or skipped: nothing to label")
        return current

    def _record(self, item: PoolItem, grade: int | None, kind: str) -> None:
        self.log["picks"].append(
            {"question_id": item.question_id, "chunk_id": item.chunk_id, "grade": grade, "kind": kind}
        )
        self.log["current"] = None
        self._save_log()

    def _save_log(self) -> None:
        self.log.update(source=self.source, labels_file=str(self.labels_file.resolve()), **self.options)
        atomic_write_bytes(self.log_file, json.dumps(self.log, ensure_ascii=False, indent=1).encode())


def logged_session(run: Run, source: str | None = None) -> DecideSession | None:
    """The session of the run's decide log for `source` (else its latest decide log) with the rule, order and label
    file it was saved with, so its `decision()` is the one the Decide tab shows; None when the run has no log."""
    folder = run.folder / "decide"
    logs = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True) if folder.is_dir() else []
    if not logs:
        return None
    wanted = decide_log_path(run, source) if source else None
    log = json.loads((wanted if wanted in logs else logs[0]).read_text())
    options = {key: log[key] for key in ("rule", "epsilon", "order", "seed", "judge") if key in log}
    labels_file = Path(log["labels_file"]) if "labels_file" in log else run_label_file(run)
    return DecideSession(run, labels_file, log["source"].removeprefix("human:"), **options)
