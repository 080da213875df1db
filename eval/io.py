"""Reading and writing files safely: atomic writes (a reader never sees a torn file), text in UTF-8, UTF-16
or GB18030 (anything else is refused, never garbled), JSON Lines with line numbers in errors, fingerprints.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd

from eval.errors import DatasetError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, fsync, then rename over it: readers never see a torn file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


LOW_SPACE = 1 << 20  # bytes: a disk with less free is full for the lab's purposes


def out_of_space(error: BaseException, folder: Path) -> bool:
    """Whether `error` came from a full disk: an OSError that says so, or any error raised while the disk of
    `folder` has under `LOW_SPACE` free (SQLite and Chroma report a full disk in their own words, or not at all)."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return shutil.disk_usage(folder).free < LOW_SPACE


def atomic_write_parquet(path: Path, frame: pd.DataFrame) -> None:
    import io

    buffer = io.BytesIO()
    frame.to_parquet(buffer, index=False)
    atomic_write_bytes(path, buffer.getvalue())


def fingerprint(records: Any) -> str:
    """A stable sha256 over JSON-serialised records (order matters)."""
    digest = hashlib.sha256()
    for record in records:
        digest.update(json.dumps(record, ensure_ascii=False, sort_keys=True).encode())
        digest.update(b"\n")
    return digest.hexdigest()[:16]


def decode_bytes(data: bytes, file: str | Path) -> str:
    """UTF-8 (with or without BOM), UTF-16 with BOM, or GB18030; anything else is rejected, never garbled."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _strict(data, "utf-16", file)
    if b"\x00" in data[:65536]:
        raise DatasetError("looks like a binary file (it contains NUL bytes), not text", file)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as utf8_error:
        try:
            text = data.decode("gb18030")
        except UnicodeDecodeError:
            line = data[: utf8_error.start].count(b"\n") + 1
            raise DatasetError(
                f"not valid UTF-8 (byte {utf8_error.start}) nor GBK/GB18030; save the file as UTF-8", file, line
            ) from None
        if not _mostly_cjk_or_ascii(text):
            raise DatasetError("not valid UTF-8 and not recognisable GBK text; save the file as UTF-8", file) from None
        return text


def _strict(data: bytes, encoding: str, file: str | Path) -> str:
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        raise DatasetError(f"invalid {encoding} at byte {error.start}", file) from None


def _mostly_cjk_or_ascii(text: str) -> bool:
    """GB18030 decodes almost any byte soup: accept it only when the result reads as Chinese text."""
    non_ascii = [c for c in text if ord(c) > 127]
    if not non_ascii:
        return True
    cjk = sum(
        1 for c in non_ascii if "\u4e00" <= c <= "\u9fff" or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef"
    )
    return cjk / len(non_ascii) > 0.9


def read_text(path: str | Path) -> str:
    path = Path(path)
    if not path.is_file():
        raise DatasetError("file not found", path)
    return decode_bytes(path.read_bytes(), path)


def text_lines(text: str) -> list[str]:
    """The lines of a text split at line feeds only (a CR before one is dropped): `str.splitlines` also splits
    at U+2028, U+2029, U+0085 and form feeds, which JSON strings and real abstracts contain."""
    return [line.removesuffix("\r") for line in text.removesuffix("\n").split("\n")] if text else []


def iter_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line; bad JSON names its line."""
    for number, line in enumerate(text_lines(read_text(path)), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise DatasetError(f"invalid JSON ({error.msg} at column {error.colno})", path, number) from None
        if not isinstance(record, dict):
            raise DatasetError("expected a JSON object", path, number)
        yield number, record


TREC_NO_DOCUMENT = "%00"  # a TREC field for a chunk that maps to no corpus document (it still holds a rank)


def trec_field(value: str) -> str:
    """An id as one field of a TREC run or qrels line. trec_eval and ranx split lines on whitespace, so '%',
    whitespace and unprintable characters are percent-encoded (UTF-8): `新冠 病毒` becomes `新冠%20病毒`, which both
    read as one id and `trec_unescape` turns back; the empty id becomes `TREC_NO_DOCUMENT`."""
    if not value:
        return TREC_NO_DOCUMENT
    return "".join(
        urllib.parse.quote(char, safe="") if char == "%" or char.isspace() or not char.isprintable() else char
        for char in value
    )


def trec_unescape(field: str) -> str:
    """The id `trec_field` wrote (the empty id for `TREC_NO_DOCUMENT`)."""
    return "" if field == TREC_NO_DOCUMENT else urllib.parse.unquote(field)
