"""Running `python -m eval run` in process, as a user would from a shell: a question file and the command."""

from __future__ import annotations

import json
from pathlib import Path

from eval.cli.main import main


def write_questions(dataset, path: Path) -> str:
    """The dataset's questions as a JSONL question set at `path`; returns the path as text."""
    path.write_text(
        "".join(
            json.dumps(
                {"id": q.id, "question": q.question, "answers": list(q.answers), "relevant_ids": list(q.relevant_ids)},
                ensure_ascii=False,
            )
            + "\n"
            for q in dataset.questions
        ),
        encoding="utf-8",
    )
    return str(path)


def run_cli(home: Path, index_store, index: str, questions: str, spec: Path, *flags: str) -> int:
    """`python -m eval --home HOME --indexes ROOT run --index INDEX --questions Q --sweep SPEC FLAGS`."""
    return main(
        [
            "--home",
            str(home),
            "--indexes",
            str(index_store.root),
            "run",
            "--index",
            index,
            "--questions",
            questions,
            "--sweep",
            str(spec),
            *flags,
        ]
    )
