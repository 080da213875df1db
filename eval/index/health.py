"""Is a local index's folder whole? Cheap checks of its files (no Chroma client), so that `index list` can mark
a damaged index among healthy ones, and opening one says in one line what is wrong and what to do.

The checks read only headers and sizes: the SQLite header's page size and page count against the file size
(a truncated, zeroed or overwritten `chroma.sqlite3`), each HNSW segment's `header.bin` against the sizes of
its data files (a truncated graph: Chroma then answers queries with nothing or fails), and the size of the
BM25 side recorded at build time. Opening the index then probes it with a real query (`eval.index.store`).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

from eval.errors import LabError

SQLITE_MAGIC = b"SQLite format 3\x00"
SQLITE_HEADER = 100
HNSW_HEADER = 100  # the persisted layout (version 1) of Chroma's hnswlib, as chromadb 1.5 writes it
HNSW_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
# (struct format, offset) of the layout version, max_elements and size_data_per_element in `header.bin`
HNSW_FIELDS = (("<i", 0), ("<Q", 20), ("<Q", 28))  # version, elements written (not the capacity at 12), size of one


class DamagedIndex(LabError):
    """An index whose files are missing or damaged: names it, says what is wrong and what to do."""

    def __init__(self, name: str, problem: str) -> None:
        self.name, self.problem = name, problem
        super().__init__(
            f"index '{name}' is damaged ({problem}): rebuild it with `python -m eval index build --corpus PATH "
            f"--name {name} --replace`, or delete it (`python -m eval index delete {name}`)"
        )


def folder_problem(folder: Path, bm25: dict[str, Any]) -> str | None:
    """What is wrong with the index files in `folder` (Chroma's and the BM25 side in the manifest entry
    `bm25`), or None when they look whole."""
    chroma = folder / "chroma"
    if not chroma.is_dir():
        return "its chroma folder is missing"
    return (
        sqlite_problem(chroma / "chroma.sqlite3")
        or next(filter(None, (hnsw_problem(segment) for segment in sorted(chroma.iterdir()) if segment.is_dir())), None)
        or bm25_problem(folder, bm25)
    )


def sqlite_problem(path: Path) -> str | None:
    """A missing, zeroed, overwritten or truncated SQLite file (its header's page count against its size)."""
    if not path.is_file():
        return "chroma/chroma.sqlite3 is missing"
    size = path.stat().st_size
    with path.open("rb") as file:
        header = file.read(SQLITE_HEADER)
    if len(header) < SQLITE_HEADER or not header.startswith(SQLITE_MAGIC):
        return "chroma/chroma.sqlite3 is not a SQLite database (zeroed or overwritten)"
    page_size = struct.unpack_from(">H", header, 16)[0]
    page_size = 65536 if page_size == 1 else page_size
    change_counter, pages, valid_for = (struct.unpack_from(">I", header, offset)[0] for offset in (24, 28, 92))
    if pages and change_counter == valid_for and size < pages * page_size:  # the page count is valid (SQLite's rule)
        return f"chroma/chroma.sqlite3 is truncated ({size:,} of {pages * page_size:,} bytes)"
    return None


def hnsw_problem(segment: Path) -> str | None:
    """A vector segment folder whose HNSW files are missing or shorter than its header says."""
    missing = [name for name in HNSW_FILES if not (segment / name).is_file()]
    if len(missing) == len(HNSW_FILES):
        return None  # not an HNSW segment (or one Chroma has not written yet)
    if missing:
        return f"HNSW file chroma/{segment.name}/{missing[0]} is missing"
    header = (segment / "header.bin").read_bytes()
    if len(header) < HNSW_HEADER:
        return f"HNSW file chroma/{segment.name}/header.bin is truncated"
    version, elements, per_element = (struct.unpack_from(fmt, header, at)[0] for fmt, at in HNSW_FIELDS)
    if version != 1:
        return None  # another layout: left to the probe when the index opens
    for name, expected in (("data_level0.bin", elements * per_element), ("length.bin", elements * 4)):
        size = (segment / name).stat().st_size
        if size < expected:
            return f"HNSW file chroma/{segment.name}/{name} is truncated ({size:,} of {expected:,} bytes)"
    return None


def bm25_problem(folder: Path, bm25: dict[str, Any]) -> str | None:
    """The BM25 side missing or not of the size recorded at build time (indexes built before the size was
    recorded are checked when the side is read)."""
    if not bm25:
        return None
    path = folder / bm25.get("file", "bm25.json.gz")
    if not path.is_file():
        return f"{path.name} is missing"
    if "bytes" in bm25 and path.stat().st_size != bm25["bytes"]:
        return f"{path.name} has {path.stat().st_size:,} bytes, not the {bm25['bytes']:,} written at build time"
    return None
