"""Chunking: documents cut into chunks by LangChain's `RecursiveCharacterTextSplitter` or into whole
sentences packed up to the chunk size, each chunk with its document id and character offset.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from eval.errors import LabError
from eval.schema import Chunk, Document

DEFAULT_SEPARATORS = ("\n\n", "\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", " ", "")


SPLITTERS = ("recursive", "sentence")


# A sentence ends after Chinese end punctuation, after Latin end punctuation followed by white space, or at a
# line break (the white space after it belongs to the next sentence).
SENTENCE_END = re.compile(r"[。！？；]+[”」』）)]*|[.!?;]+[\"')\]]*(?=\s)|\n+")


@dataclass
class ChunkingParams:
    chunk_size: int = 500
    chunk_overlap: int = 50
    separators: tuple[str, ...] = DEFAULT_SEPARATORS
    splitter: str = "recursive"  # or "sentence": whole sentences packed up to chunk_size (see `sentence_pieces`)

    def __post_init__(self) -> None:
        if self.splitter not in SPLITTERS:
            raise LabError(f"unknown splitter '{self.splitter}' (use one of: {', '.join(SPLITTERS)})")
        if self.chunk_size < 20:
            raise LabError(f"chunk size must be at least 20 characters, got {self.chunk_size}")
        if not 0 <= self.chunk_overlap < self.chunk_size:
            raise LabError(
                f"chunk overlap must be between 0 and the chunk size ({self.chunk_size}), got {self.chunk_overlap}"
            )


def chunk_corpus(corpus: list[Document], params: ChunkingParams) -> list[Chunk]:
    """Split documents with `RecursiveCharacterTextSplitter` (or the sentence splitter); every chunk knows its
    doc and offset."""
    splitter = _recursive_splitter(params)
    chunks = []
    for document in corpus:
        base = _base_metadata(document)
        pieces = (
            sentence_pieces(document.text, params)
            if params.splitter == "sentence"
            else [(int(p.metadata["start_index"]), p.page_content) for p in splitter.create_documents([document.text])]
        )
        for number, (start, text) in enumerate(pieces):
            chunk_id = f"{document.id}#{number}"
            chunks.append(
                Chunk(
                    chunk_id,
                    document.id,
                    start,
                    text,
                    {**base, "doc_id": document.id, "chunk_id": chunk_id, "start": start},
                )
            )
    return chunks


def _recursive_splitter(params: ChunkingParams) -> Any:
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    return RecursiveCharacterTextSplitter(
        chunk_size=params.chunk_size,
        chunk_overlap=params.chunk_overlap,
        separators=list(params.separators),
        keep_separator="end",
        add_start_index=True,
    )


def sentence_pieces(text: str, params: ChunkingParams) -> list[tuple[int, str]]:
    """(start, text) chunks of whole sentences: as many as fit in `chunk_size`, the next chunk starting with
    the last sentences of the previous one that fit in `chunk_overlap` (fewer, where the next chunk would
    otherwise hold no new sentence). A sentence longer than `chunk_size`
    is cut by the recursive splitter. Chunks are stripped of surrounding white space."""
    ends = [m.end() for m in SENTENCE_END.finditer(text)]
    bounds = sorted({0, *ends, len(text)})
    sentences = list(zip(bounds, bounds[1:]))
    pieces, first = [], 0
    while first < len(sentences):
        last = first
        while last + 1 < len(sentences) and sentences[last + 1][1] - sentences[first][0] <= params.chunk_size:
            last += 1
        start, end = sentences[first][0], sentences[last][1]
        if end - start > params.chunk_size:  # one sentence too long for a chunk
            pieces += [(start + offset, piece) for offset, piece in _long_sentence(text[start:end], params)]
        elif text[start:end].strip():
            stripped = text[start:end].lstrip()
            pieces.append((end - len(stripped), stripped.rstrip()))
        following = last + 1
        while following - 1 > first and end - sentences[following - 1][0] <= params.chunk_overlap:
            following -= 1
        while (
            following <= last < len(sentences) - 1
            and sentences[last + 1][1] - sentences[following][0] > params.chunk_size
        ):
            following += 1  # less overlap, so that the next chunk has a new sentence
        first = following
    return pieces


def _long_sentence(sentence: str, params: ChunkingParams) -> list[tuple[int, str]]:
    return [
        (int(p.metadata["start_index"]), p.page_content)
        for p in _recursive_splitter(params).create_documents([sentence])
    ]


def _base_metadata(document: Document) -> dict[str, Any]:
    """Chroma metadata values must be scalars: nested values are stored as JSON strings."""
    metadata = {
        key: value if isinstance(value, (str, int, float, bool)) else json.dumps(value, ensure_ascii=False)
        for key, value in document.metadata.items()
        if value is not None
    }
    for key in ("title", "source"):
        if getattr(document, key):
            metadata[key] = getattr(document, key)
    return metadata
