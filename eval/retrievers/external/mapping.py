"""Map chunks that another system returned to documents of the index's corpus, so labels and metrics apply.

Three ways, chosen per config (`map_by`):
- `doc_id`: a field of the service's chunk holds the corpus document id itself;
- `file_name`: a field holds a file name, matched against each document's id, `source` and `title` (whole,
  base name, or base name without extension); a name that fits several documents maps to none;
- `span`: the chunk's text is found in the corpus documents, ignoring whitespace (services re-flow text);
  a chunk whose exact text is in no document goes to the document holding most of its 16-character pieces
  (at least half of them), and to none otherwise.
Document texts are rebuilt from the index's chunks at their character offsets.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from pathlib import PurePosixPath

from eval.index.store import Index

MAP_BY = ("doc_id", "file_name", "span")
SHINGLE = 16


@dataclass(frozen=True)
class Mapped:
    doc_id: str  # "" when the chunk maps to no corpus document
    start: int  # character offset in the document, -1 when unknown


class CorpusMapper:
    """The index's documents, rebuilt from its chunks, with lookups by id, file name and text."""

    @classmethod
    def of(cls, index: Index) -> CorpusMapper:
        """The mapper of an opened index, made once (it reads every chunk of the index)."""
        if index not in _MAPPERS:
            _MAPPERS[index] = cls(index)
        return _MAPPERS[index]

    def __init__(self, index: Index) -> None:
        pieces: dict[str, list[tuple[int, str]]] = {}
        names: dict[str, set[str]] = {}
        self.chunk_by_text: dict[str, str] = {}  # an index chunk's text -> its id (its stored vector is reused)
        self.chunk_texts: dict[str, str] = {}
        for chunk in index.chunks():
            pieces.setdefault(chunk.doc_id, []).append((chunk.start, chunk.text))
            self.chunk_by_text.setdefault(chunk.text, chunk.chunk_id)
            self.chunk_texts[chunk.chunk_id] = chunk.text
            for key in ("source", "title"):
                if chunk.metadata.get(key):
                    _add_names(names, str(chunk.metadata[key]), chunk.doc_id)
        self.texts = {doc_id: _rebuild(parts) for doc_id, parts in pieces.items()}
        for doc_id in self.texts:
            _add_names(names, doc_id, doc_id)
        self._names = {name: next(iter(ids)) for name, ids in names.items() if len(ids) == 1}
        self._squashed: dict[str, tuple[str, list[int]]] = {d: _squash(t) for d, t in self.texts.items()}
        self._shingles: dict[str, set[str]] | None = None

    def by_doc_id(self, value: object) -> Mapped:
        doc_id = str(value) if value is not None else ""
        return Mapped(doc_id if doc_id in self.texts else "", -1)

    def by_file_name(self, value: object) -> Mapped:
        name = str(value).strip() if value is not None else ""
        for candidate in _name_forms(name):
            if candidate in self._names:
                return Mapped(self._names[candidate], -1)
        return Mapped("", -1)

    def by_span(self, text: str) -> Mapped:
        squashed, _ = _squash(text)
        if not squashed:
            return Mapped("", -1)
        for doc_id, (doc_squashed, positions) in self._squashed.items():
            at = doc_squashed.find(squashed)
            if at >= 0:
                return Mapped(doc_id, positions[at])
        return Mapped(self._most_shingles(squashed), -1)

    def _most_shingles(self, squashed: str) -> str:
        """The document holding most of the text's pieces (at least half), or ""."""
        if self._shingles is None:
            self._shingles = {}
            for doc_id, (doc_squashed, _) in self._squashed.items():
                for at in range(max(len(doc_squashed) - SHINGLE + 1, 1)):
                    self._shingles.setdefault(doc_squashed[at : at + SHINGLE], set()).add(doc_id)
        pieces = [squashed[at : at + SHINGLE] for at in range(0, max(len(squashed) - SHINGLE + 1, 1), SHINGLE // 2)]
        votes: dict[str, int] = {}
        for piece in pieces:
            for doc_id in self._shingles.get(piece, ()):
                votes[doc_id] = votes.get(doc_id, 0) + 1
        if not votes:
            return ""
        best = max(votes, key=lambda d: (votes[d], d))
        return best if votes[best] * 2 >= len(pieces) else ""

    def map(self, how: str, value: object, text: str) -> Mapped:
        """Map one chunk: `value` is the field `doc_id`/`file_name` read, `text` the chunk's text. A chunk
        mapped by id or name gets its offset where its text occurs in the document (labels need a span: an
        offset of -1 made every such pair unlabelable in Decide)."""
        if how == "span":
            return self.by_span(text)
        mapped = self.by_doc_id(value) if how == "doc_id" else self.by_file_name(value)
        at = self.texts[mapped.doc_id].find(text) if mapped.doc_id and text else -1
        return Mapped(mapped.doc_id, at) if at >= 0 else mapped


_MAPPERS: weakref.WeakKeyDictionary[Index, CorpusMapper] = weakref.WeakKeyDictionary()


def _rebuild(parts: list[tuple[int, str]]) -> str:
    """A document's text from its chunks at their offsets (gaps the splitter stripped become spaces)."""
    text = ""
    for start, piece in sorted(parts):
        if start > len(text):
            text += " " * (start - len(text))
        text = text[:start] + piece + text[start + len(piece) :]
    return text


def _squash(text: str) -> tuple[str, list[int]]:
    """The text without whitespace, and each kept character's offset in the original."""
    positions = [at for at, char in enumerate(text) if not char.isspace()]
    return "".join(text[at] for at in positions), positions


def _name_forms(name: str) -> list[str]:
    if not name:
        return []
    path = PurePosixPath(name.replace("\\", "/"))
    return list(dict.fromkeys([name, path.name, path.stem]))


def _add_names(names: dict[str, set[str]], name: str, doc_id: str) -> None:
    for form in _name_forms(name):
        names.setdefault(form, set()).add(doc_id)
