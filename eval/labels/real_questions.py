"""Real questions as a question set, end to end: read the files (`eval.data.question_import`), encode the questions
with the encoder that compares them (an index's own, a named one, or the lab's default) and de-duplicate. The CLI
(`questions import`) and the Question sets page both call `import_real_questions`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from eval.data.question_import import QuestionImport, deduplicate, read_questions
from eval.errors import LabError
from eval.index.encoders import check_reads_chinese, get_embeddings
from eval.index.store import IndexStore
from eval.settings import DEFAULT_EMBEDDING


def comparing_encoder(store: IndexStore | None, index: str | None, encoder: str | None) -> str:
    """The encoder near duplicates are found with: index `index`'s own, `encoder`, or the lab's default."""
    if index and encoder:
        raise LabError("give an index (its encoder) or an encoder, not both")
    if index:
        if store is None:
            raise LabError(f"no index store to find index '{index}' in")
        return store.manifest(index).embedding_model
    return encoder or DEFAULT_EMBEDDING


def import_real_questions(
    paths: list[Path],
    fmt: str = "auto",
    column: str | None = None,
    field: str | None = None,
    threshold: float | None = None,
    encoder: str | None = None,
    home: Path | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> QuestionImport:
    """Read every file, then merge exact duplicates and, when `threshold` is given, near duplicates by the cosine of
    `encoder`'s query vectors (the files are read first, so a bad file fails before a model loads)."""
    if not paths:
        raise LabError("no file to import")
    reads = [read_questions(path, fmt, column, field) for path in paths]
    embed = None
    if threshold is not None:
        encoder = encoder or DEFAULT_EMBEDDING
        check_reads_chinese(encoder, [text for read in reads for text in read.questions])
        model = get_embeddings(encoder, home)

        def embed(texts: list[str]):
            return model.embed_array(texts, is_query=True)

    return deduplicate(reads, embed, threshold, encoder if threshold is not None else None, progress)
