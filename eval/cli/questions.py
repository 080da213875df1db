"""`python -m eval questions import`: real questions from lists and chat logs as a weighted question set."""

from __future__ import annotations

import argparse

from eval.cli.common import store_from
from eval.data.question_import import QuestionImport, check_new_folder, write_question_set
from eval.errors import LabError
from eval.labels.question_generation import write_index_corpus
from eval.labels.real_questions import comparing_encoder, import_real_questions

SHOWN_MERGES = 10  # near duplicates listed (the rest are counted)


def cmd_questions_import(args: argparse.Namespace) -> None:
    """Real questions from lists and chat logs, de-duplicated, written as a weighted question set."""
    threshold = near_duplicate_threshold(args.near_duplicate)
    check_new_folder(args.out)  # before reading and encoding anything
    encoder = None
    if threshold is not None:
        encoder = comparing_encoder(store_from(args) if args.index else None, args.index, args.encoder)
    bar = args.progress_bar("questions import")
    try:
        result = import_real_questions(
            args.files, args.format, args.column, args.field, threshold, encoder, args.home, progress=bar
        )
    finally:
        bar.close()
    path = write_question_set(result, args.out)
    print(*import_report(result), sep="\n")
    print(f"wrote {len(result.questions)} questions to {path}")
    if args.index:
        write_index_corpus(path.parent, store_from(args).open(args.index))
        print(f"wrote the documents of index '{args.index}' to {path.parent / 'corpus.jsonl'} (to label them)")


def near_duplicate_threshold(value: str) -> float | None:
    """`--near-duplicate`: a cosine in (0, 1], or off."""
    if value.strip().lower() == "off":
        return None
    try:
        threshold = float(value)
    except ValueError:
        threshold = float("nan")
    if not 0 < threshold <= 1:
        raise LabError(f"--near-duplicate must be a cosine between 0 and 1, or off; got {value!r}")
    return threshold


def import_report(result: QuestionImport) -> list[str]:
    """The import's summary, and the near duplicates it merged (the judgement calls worth a look)."""
    lines = result.summary()
    for merge in result.near[:SHOWN_MERGES]:
        lines.append(f"  near duplicate ({merge.cosine:.3f}, {merge.count} lines): {merge.text!r} -> {merge.kept!r}")
    if len(result.near) > SHOWN_MERGES:
        lines.append(f"  ... and {len(result.near) - SHOWN_MERGES} more near duplicates")
    return lines
