"""The progress bar of CLI commands: a tqdm bar on stderr per stage."""

from __future__ import annotations

import sys


class ProgressBar:
    """A tqdm bar on stderr driven by (stage, done, total) callbacks; a new stage starts a new bar.

    A command run as a background job gets `eval.jobs.JobProgress` instead (`args.progress_bar`), which also
    brings the job's cancel event and records the run id (`on_start`)."""

    cancel = None  # a threading.Event that stops a sweep at its next safe point
    on_start = None  # told the run id once the run exists

    def __init__(self, description: str) -> None:
        self.description, self.bar, self.stage = description, None, None

    def __call__(self, stage: str, done: int, total: int, failed: int = 0, last_failure: str | None = None) -> None:
        """`done` counts outputs; a label job also tells how many items failed and the last reason."""
        if self.bar is None or stage != self.stage:
            from tqdm import tqdm

            self.close()
            self.stage = stage
            self.bar = tqdm(total=total, desc=f"{self.description}: {stage}", unit="item", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)
        if failed:
            self.bar.set_postfix_str(f"{failed} failed, last: {last_failure}"[:100])

    def show_answer(self, question_id: str, config_id: str, answer: str) -> None:
        """Stream the current answer's tail beside the bar."""
        if self.bar is not None:
            self.bar.set_postfix_str(f"{question_id} {config_id}: {' '.join(answer.split())[-70:]}")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
