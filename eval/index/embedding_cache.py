"""The embedding cache: chunk vectors keyed by (encoder identity, normalised text hash), shared by all builds.

Rebuilding an index with another `chunk_overlap`, or a second index variant whose chunks share texts with
the first, embeds only the texts the encoder has not seen. The key is the encoder's `identity` (its name,
the model files' revision, the library versions and the precision: anything that changes the vectors) and
the SHA-256 of the text in Unicode NFC (canonically equal texts tokenize alike). Only passages (chunk
texts) are cached: queries are always encoded live, exactly as the retriever encodes them.

Storage: one SQLite file (`vectors.sqlite`), one row per (encoder, text hash) with the float32 vector.
SQLite makes every write batch atomic and lets several processes build at once; a killed build keeps the
batches it finished, so building again resumes from them.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import unicodedata
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from eval.errors import LabError

CACHE_ENV = "RETRIEVER_LAB_EMBEDDING_CACHE"  # a folder, or "off"
LOOKUP_BATCH = 500  # SQLite's default limit on bound parameters is 999


def text_key(text: str) -> str:
    """The cache key of a text: SHA-256 of its Unicode NFC form."""
    return hashlib.sha256(unicodedata.normalize("NFC", text).encode()).hexdigest()


@dataclass
class CacheStats:
    """How many of a build's distinct chunk texts came from the cache (hits) and how many were encoded."""

    hits: int = 0
    misses: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"hits": self.hits, "misses": self.misses, "hit_rate": round(self.hit_rate, 4)}


class EmbeddingCache:
    """Vectors by (encoder identity, text key) in `<folder>/vectors.sqlite`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "vectors.sqlite"

    def _connect(self) -> sqlite3.Connection:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=60)
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute(
                "CREATE TABLE IF NOT EXISTS vectors (encoder TEXT NOT NULL, text_key TEXT NOT NULL, "
                "vector BLOB NOT NULL, PRIMARY KEY (encoder, text_key))"
            )
        except (OSError, sqlite3.Error) as error:
            raise LabError(
                f"cannot open the embedding cache {self.path} ({error}); set {CACHE_ENV}=off to build without it"
            ) from None
        return connection

    def lookup(self, encoder: str, keys: list[str], dimension: int) -> dict[str, np.ndarray]:
        """The cached vectors of `keys` for this encoder; a vector of another dimension is ignored."""
        found: dict[str, np.ndarray] = {}
        with closing(self._connect()) as connection:
            for start in range(0, len(keys), LOOKUP_BATCH):
                part = keys[start : start + LOOKUP_BATCH]
                rows = connection.execute(
                    f"SELECT text_key, vector FROM vectors WHERE encoder = ? AND text_key IN "
                    f"({','.join('?' * len(part))})",
                    [encoder, *part],
                )
                for key, blob in rows:
                    vector = np.frombuffer(blob, np.float32)
                    if vector.shape == (dimension,):
                        found[key] = vector
        return found

    def store(self, encoder: str, keys: list[str], vectors: np.ndarray) -> None:
        """Add vectors (one transaction: all of them or none)."""
        with closing(self._connect()) as connection, connection:
            connection.executemany(
                "INSERT OR REPLACE INTO vectors VALUES (?, ?, ?)",
                [(encoder, key, np.asarray(v, np.float32).tobytes()) for key, v in zip(keys, vectors)],
            )

    def count(self, encoder: str | None = None) -> int:
        with closing(self._connect()) as connection:
            if encoder is None:
                return connection.execute("SELECT COUNT(*) FROM vectors").fetchone()[0]
            return connection.execute("SELECT COUNT(*) FROM vectors WHERE encoder = ?", [encoder]).fetchone()[0]


def default_cache(indexes_root: Path) -> EmbeddingCache | None:
    """$RETRIEVER_LAB_EMBEDDING_CACHE (a folder, or "off"), else `embedding-cache` beside the indexes folder."""
    setting = os.environ.get(CACHE_ENV, "")
    if setting.lower() == "off":
        return None
    return EmbeddingCache(setting or Path(indexes_root).parent / "embedding-cache")


def cached_embed(
    encode: Callable[[list[str]], np.ndarray],
    encoder: str,
    dimension: int,
    texts: list[str],
    cache: EmbeddingCache | None,
    stats: CacheStats,
) -> np.ndarray:
    """Vectors for `texts`: cached ones read, the others encoded (a repeated text once) and stored.

    `stats` counts the distinct texts of this call."""
    keys = [text_key(text) for text in texts]
    known = cache.lookup(encoder, list(dict.fromkeys(keys)), dimension) if cache else {}
    missing = list(dict.fromkeys(key for key in keys if key not in known))
    stats.hits += len(set(keys)) - len(missing)
    stats.misses += len(missing)
    if missing:
        text_of = dict(zip(keys, texts))
        fresh = np.asarray(encode([text_of[key] for key in missing]), np.float32)
        if cache:
            cache.store(encoder, missing, fresh)
        known.update(zip(missing, fresh))
    return np.asarray([known[key] for key in keys], np.float32).reshape(len(texts), dimension)
