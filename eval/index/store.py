"""Chroma indexes: chunk a corpus, embed it, store it with a manifest; list, open, delete.

Local indexes live in `<indexes dir>/<slug>/` (`manifest.json` + a `chroma/` PersistentClient folder).
A build writes into a hidden temporary folder and is renamed into place only when complete, so a crash
leaves the old index or nothing, never a partial index that looks complete. With a Chroma server
(`HttpClient`) the same happens with a temporary collection that is renamed when complete; the manifest
then lives in the collection's metadata.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from datetime import UTC, datetime
from hashlib import sha256
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from eval.data.datasets import Dataset
from eval.errors import LabError
from eval.index.bm25 import write_bm25_side
from eval.index.chunking import ChunkingParams, chunk_corpus
from eval.index.embedding_cache import CacheStats, EmbeddingCache, cached_embed, default_cache
from eval.index.encoders import get_embeddings
from eval.index.encoders.base import BatchedEmbeddings
from eval.index.health import DamagedIndex, folder_problem
from eval.io import out_of_space
from eval.schema import Chunk, Question
from eval.settings import DEFAULT_EMBEDDING

BuildProgress = Callable[[str, int, int], None]
COLLECTION = "chunks"
MANIFEST_KEY = "retriever_lab_manifest"
BUILDING_MARK = "-building-"
WRITE_BATCH = 256
# `sync_threshold` 1: Chroma saves the HNSW graph after every write, so a finished build has all of it on
# disk. With Chroma's default (1000) the vectors added since the last save stay only in Chroma's write-ahead
# log and are inserted again at every load, in parallel and in hash order: each process then searches a
# slightly different graph and two identical runs retrieve different chunks.
HNSW_CONFIGURATION = {"space": "cosine", "sync_threshold": 1}


@dataclass
class IndexManifest:
    name: str
    slug: str
    dataset: str
    corpus_fingerprint: str
    input_key: str
    documents: int
    chunks: int
    chunk_size: int
    chunk_overlap: int
    separators: list[str]
    embedding_model: str
    dimension: int
    space: str
    build_seconds: float
    created_at: str
    versions: dict[str, str] = field(default_factory=dict)
    hnsw: dict[str, Any] = field(default_factory=dict)  # the collection's HNSW configuration (ef_search, ...)
    splitter: str = "recursive"
    encoder: str = ""  # the embedding model's identity (model revision, versions, precision)
    embedding_cache: dict[str, Any] = field(default_factory=dict)  # hits, misses, hit_rate of the build
    bm25: dict[str, Any] = field(default_factory=dict)  # the BM25 side beside the collection (eval.hybrid)
    source: str = ""  # the dataset's path when it was built from one (the calibration's default question set)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=2)

    @classmethod
    def from_json(cls, text: str) -> IndexManifest:
        data = json.loads(text)
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})


def versions() -> dict[str, str]:
    return {
        name: version(name)
        for name in (
            "chromadb",
            "langchain-core",
            "langchain-chroma",
            "langchain-text-splitters",
            "sentence-transformers",
        )
    }


# ---------------------------------------------------------------- names


def slugify(name: str) -> str:
    """A Chroma- and filesystem-safe slug; names with other characters (e.g. Chinese) get a hash suffix."""
    if not isinstance(name, str) or not name.strip():
        raise LabError("an index name must not be empty")
    name = name.strip()
    if "/" in name or "\\" in name or name.startswith(".") or ".." in name or Path(name).is_absolute():
        raise LabError(f"invalid index name '{name}': it must not contain '/', '\\', '..' or start with '.'")
    if len(name) > 200:
        raise LabError("an index name must be at most 200 characters")
    ascii_part = re.sub(r"[^a-zA-Z0-9._-]+", "-", name).strip("-._")
    if ascii_part == name and len(name) >= 3:
        return name
    digest = sha256(name.encode()).hexdigest()[:8]
    return f"{ascii_part[:60].strip('-._') or 'index'}-{digest}"


# ---------------------------------------------------------------- chunking


# ---------------------------------------------------------------- opened index


class Index:
    """An opened index: its manifest, the raw Chroma collection and LangChain's `Chroma` over it."""

    def __init__(
        self,
        manifest: IndexManifest,
        client: Any,
        collection_name: str,
        embeddings: BatchedEmbeddings,
        folder: Path | None = None,
    ) -> None:
        from langchain_chroma import Chroma

        self.manifest = manifest
        self.folder = folder  # a local index's folder (manifest, chroma/, the BM25 side); None on a server
        self.client = client
        self.embeddings = embeddings
        self.collection = client.get_collection(collection_name)
        self.vectorstore = Chroma(client=client, collection_name=collection_name, embedding_function=embeddings)

    def chunks(self, limit: int | None = None, offset: int = 0, where: dict | None = None) -> list[Chunk]:
        got = self.collection.get(limit=limit, offset=offset, where=where, include=["documents", "metadatas"])
        return [
            Chunk(m["chunk_id"], m["doc_id"], int(m["start"]), text, m)
            for text, m in zip(got["documents"], got["metadatas"])
        ]

    def encoder_change(self) -> str | None:
        """What to do when the questions would not be encoded by the encoder that built the chunks (the same
        model under a newer library or export), or None. A manifest written before encoders were recorded
        says nothing."""
        built, now = self.manifest.encoder, self.embeddings.identity
        if not built or built == now:
            return None
        return (
            f"index '{self.manifest.name}' was built by encoder {built}, and questions are now encoded by "
            f"{now}: rebuild it (index build ... --replace) so that chunks and questions share one encoder"
        )

    @property
    def ef_search(self) -> int:
        """The HNSW search width: a query searches max(ef_search, n_results) candidates."""
        return int(self.collection.configuration["hnsw"]["ef_search"])

    def doc_ids(self) -> set[str]:
        """The ids of the documents in this index."""
        return {m["doc_id"] for m in self.collection.get(include=["metadatas"])["metadatas"]}

    def embeddings_of(self, chunk_ids: list[str]) -> np.ndarray:
        if not chunk_ids:
            return np.zeros((0, self.manifest.dimension), np.float32)
        got = self.collection.get(ids=chunk_ids, include=["embeddings"])
        by_id = dict(zip(got["ids"], got["embeddings"]))
        return np.asarray([by_id[i] for i in chunk_ids], np.float32).reshape(len(chunk_ids), -1)


# ---------------------------------------------------------------- stores


class IndexStore:
    """Indexes in a local folder (PersistentClient per index) or on a Chroma server (HttpClient)."""

    def __init__(
        self,
        root: str | Path,
        host: str | None = None,
        port: int | None = None,
        embedding_cache: EmbeddingCache | None = None,
        home: str | Path | None = None,
    ) -> None:
        """`embedding_cache` None: the default one (see `eval.embedding_cache.default_cache`); `home` the lab's
        data folder, where encoders cache their exports (default: the folder holding `root`)."""
        self.root = Path(root).absolute()
        self.home = Path(home).absolute() if home else self.root.parent
        self.host, self.port = host, port
        self.embedding_cache = embedding_cache or default_cache(self.root)
        self._server = None

    # --- backend-specific primitives

    def _client_for(self, folder: Path) -> Any:
        import chromadb
        from chromadb.config import Settings

        return chromadb.PersistentClient(path=str(folder / "chroma"), settings=Settings(anonymized_telemetry=False))

    def _server_client(self) -> Any:
        if self._server is None:
            import chromadb
            from chromadb.config import Settings

            try:
                self._server = chromadb.HttpClient(
                    host=self.host, port=self.port, settings=Settings(anonymized_telemetry=False)
                )
                self._server.heartbeat()
            except Exception as error:  # chromadb raises several types for an unreachable server
                raise LabError(f"cannot reach the Chroma server at {self.host}:{self.port} ({error})") from None
        return self._server

    @property
    def remote(self) -> bool:
        return self.host is not None

    # --- public API

    def list(self) -> list[IndexManifest]:
        """The healthy indexes by name; damaged ones are in `damaged()`."""
        return sorted((e.manifest for e in self._scan() if e.damage is None), key=lambda m: m.name)

    def damaged(self) -> list[DamagedIndex]:
        """The local indexes whose manifest or files are damaged, by name (a server's are found when opened)."""
        return sorted((e.damage for e in self._scan() if e.damage is not None), key=lambda d: d.name)

    def _scan(self) -> list[_Entry]:
        if self.remote:
            return [
                _Entry(None, IndexManifest.from_json(c.metadata[MANIFEST_KEY]), None)
                for c in self._server_client().list_collections()
                if c.metadata and MANIFEST_KEY in c.metadata and BUILDING_MARK not in c.name
            ]
        if not self.root.is_dir():
            return []
        return [
            _inspect(folder)
            for folder in sorted(self.root.iterdir())
            if not folder.name.startswith(".")
            and ((folder / "manifest.json").is_file() or (folder / "chroma").is_dir())
        ]

    def _lookup(self, name: str) -> _Entry | None:
        """The index (healthy or damaged) of this name or slug, or None."""
        slug = slugify(name)
        for entry in self._scan():
            names = (entry.manifest.name, entry.manifest.slug) if entry.manifest else (entry.damage.name,)
            if name.strip() in names or slug in names or (entry.folder is not None and entry.folder.name == slug):
                return entry
        return None

    def manifest(self, name: str) -> IndexManifest:
        entry = self._lookup(name)
        if entry is None:
            known = ", ".join(m.name for m in self.list()) or "none yet"
            raise LabError(f"no index named '{name}' (indexes: {known})")
        if entry.damage is not None:
            raise entry.damage
        return entry.manifest

    def open(self, name: str) -> Index:
        """The opened index, probed with a query of one of its own vectors: Chroma's errors on damaged files
        (and a damaged graph that answers nothing) become one `DamagedIndex` line."""
        manifest = self.manifest(name)
        embeddings = get_embeddings(manifest.embedding_model, self.home)
        client = self._server_client() if self.remote else None
        try:
            if self.remote:
                index = Index(manifest, client, manifest.slug, embeddings)
            else:
                folder = self.root / manifest.slug
                index = Index(manifest, self._client_for(folder), COLLECTION, embeddings, folder)
            _probe(index)
        except LabError:
            raise
        except Exception as error:  # chromadb raises InternalError, NotFoundError, ... on damaged files
            if not self.remote:
                _release(self.root / manifest.slug)
            raise DamagedIndex(manifest.name, f"Chroma cannot read it: {str(error).splitlines()[0]}") from None
        return index

    def delete(self, name: str) -> None:
        """Delete an index, a damaged one too."""
        entry = self._lookup(name)
        if entry is None:
            self.manifest(name)  # says which indexes there are
        if self.remote:
            self._server_client().delete_collection(entry.manifest.slug)
            return
        _release(entry.folder)
        shutil.rmtree(entry.folder)

    def build(
        self,
        dataset: Dataset,
        name: str,
        embedding_model: str = DEFAULT_EMBEDDING,
        chunking: ChunkingParams | None = None,
        replace: bool = False,
        progress: BuildProgress | None = None,
    ) -> IndexManifest:
        """Build (or reuse) an index; identical inputs are a no-op, different inputs need `replace`."""
        chunking = chunking or ChunkingParams()
        slug = slugify(name)
        input_key = _input_key(dataset, chunking, embedding_model)
        entry = self._lookup(name)
        if entry is not None and entry.damage is not None and not replace:
            raise entry.damage
        if entry is not None and entry.damage is None:
            existing = entry.manifest
            if existing.input_key == input_key:
                return existing
            if not replace:
                raise LabError(
                    f"index '{name}' already exists with other inputs (corpus, chunking or embedding "
                    "model): choose another name, or replace it (--replace)"
                )
        started = time.perf_counter()
        chunks = chunk_corpus(dataset.corpus, chunking)
        embeddings = get_embeddings(embedding_model, self.home)
        manifest = IndexManifest(
            name=name.strip(),
            slug=slug,
            dataset=dataset.name,
            corpus_fingerprint=dataset.corpus_fingerprint(),
            input_key=input_key,
            documents=len(dataset.corpus),
            chunks=len(chunks),
            chunk_size=chunking.chunk_size,
            chunk_overlap=chunking.chunk_overlap,
            separators=list(chunking.separators),
            embedding_model=embedding_model,
            dimension=embeddings.dimension,
            space="cosine",
            build_seconds=0.0,
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            versions=versions(),
            splitter=chunking.splitter,
            encoder=embeddings.identity,
            source=dataset.source,
        )
        if self.remote:
            return self._build_remote(manifest, chunks, embeddings, started, progress)
        return self._build_local(manifest, chunks, embeddings, started, progress)

    def _build_local(
        self,
        manifest: IndexManifest,
        chunks: list[Chunk],
        embeddings: BatchedEmbeddings,
        started: float,
        progress: BuildProgress | None,
    ) -> IndexManifest:
        self.root.mkdir(parents=True, exist_ok=True)
        _remove_abandoned_builds(self.root)
        building = self.root / f".{manifest.slug}{BUILDING_MARK}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            client = self._client_for(building)
            collection = client.create_collection(
                COLLECTION, configuration={"hnsw": HNSW_CONFIGURATION}, embedding_function=None
            )
            manifest.hnsw = dict(collection.configuration["hnsw"])
            manifest.embedding_cache = self._write_chunks(collection, chunks, embeddings, progress)
            manifest.bm25 = write_bm25_side(building, [c.chunk_id for c in chunks], [c.text for c in chunks])
            manifest.build_seconds = round(time.perf_counter() - started, 3)
            (building / "manifest.json").write_text(manifest.to_json(), encoding="utf-8")
            del collection, client
            _release(building)
            _release(self.root / manifest.slug)
            _swap_into_place(building, self.root / manifest.slug)
        except Exception as error:
            if out_of_space(error, building):
                raise LabError(
                    f"no space left on the disk of {self.root}: index '{manifest.name}' was not built and nothing "
                    "of it was kept (an index of that name is unchanged); free some space and build again"
                ) from None
            raise
        finally:
            if building.exists():
                _release(building)
                shutil.rmtree(building, ignore_errors=True)
        return manifest

    def _build_remote(
        self,
        manifest: IndexManifest,
        chunks: list[Chunk],
        embeddings: BatchedEmbeddings,
        started: float,
        progress: BuildProgress | None,
    ) -> IndexManifest:
        client = self._server_client()
        temporary = f"{manifest.slug}{BUILDING_MARK}{uuid.uuid4().hex[:8]}"
        collection = client.create_collection(
            temporary, configuration={"hnsw": HNSW_CONFIGURATION}, embedding_function=None
        )
        manifest.hnsw = dict(collection.configuration["hnsw"])
        try:
            manifest.embedding_cache = self._write_chunks(collection, chunks, embeddings, progress)
            manifest.build_seconds = round(time.perf_counter() - started, 3)
            if manifest.slug in {c.name for c in client.list_collections()}:
                client.delete_collection(manifest.slug)
            collection.modify(name=manifest.slug, metadata={MANIFEST_KEY: manifest.to_json()})
        except BaseException:
            client.delete_collection(temporary)
            raise
        return manifest

    def _write_chunks(
        self, collection: Any, chunks: list[Chunk], embeddings: BatchedEmbeddings, progress: BuildProgress | None
    ) -> dict[str, float]:
        """Embed (through the embedding cache) and write in batches, reporting ('embedding', done, total)
        as it goes; returns the cache's hits and misses."""
        stats = CacheStats()
        for start in range(0, len(chunks), WRITE_BATCH):
            batch = chunks[start : start + WRITE_BATCH]
            vectors = cached_embed(
                embeddings.embed_array,
                embeddings.identity,
                embeddings.dimension,
                [c.text for c in batch],
                self.embedding_cache,
                stats,
            )
            collection.add(
                ids=[c.chunk_id for c in batch],
                embeddings=vectors,
                documents=[c.text for c in batch],
                metadatas=[c.metadata for c in batch],
            )
            if progress:
                progress("embedding", start + len(batch), len(chunks))
        return stats.as_dict()


@dataclass
class _Entry:
    """An index folder (None on a server) with its manifest (None when unreadable) and what is damaged."""

    folder: Path | None
    manifest: IndexManifest | None
    damage: DamagedIndex | None


def _inspect(folder: Path) -> _Entry:
    try:
        manifest = read_manifest(folder)
    except DamagedIndex as damage:
        return _Entry(folder, None, damage)
    problem = folder_problem(folder, manifest.bm25)
    return _Entry(folder, manifest, DamagedIndex(manifest.name, problem) if problem else None)


def read_manifest(folder: Path) -> IndexManifest:
    """The index manifest in `folder`, or a `DamagedIndex` (named by the folder) saying what is wrong with it."""
    path = folder / "manifest.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DamagedIndex(folder.name, "manifest.json is missing") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DamagedIndex(folder.name, f"manifest.json cannot be read ({error})") from None
    except json.JSONDecodeError as error:
        raise DamagedIndex(
            folder.name, f"manifest.json is not valid JSON ({error.msg} at line {error.lineno} column {error.colno})"
        ) from None
    if not isinstance(data, dict):
        raise DamagedIndex(folder.name, "manifest.json is not a JSON object")
    required = [f.name for f in fields(IndexManifest) if f.default is MISSING and f.default_factory is MISSING]
    missing = [name for name in required if name not in data]
    if missing:
        raise DamagedIndex(str(data.get("name") or folder.name), f"manifest.json lacks {', '.join(missing)}")
    return IndexManifest.from_json(json.dumps(data))


def _probe(index: Index) -> None:
    """Count the chunks and search for one of them: Chroma reads its SQLite file and loads its HNSW graph."""
    count = index.collection.count()
    if count != index.manifest.chunks:
        raise DamagedIndex(index.manifest.name, f"it holds {count} chunks, its manifest says {index.manifest.chunks}")
    if count:
        vector = index.collection.get(limit=1, include=["embeddings"])["embeddings"]
        found = index.collection.query(query_embeddings=vector, n_results=min(count, 10), include=[])
        if not found["ids"][0]:
            raise DamagedIndex(index.manifest.name, "its HNSW graph finds none of its own chunks")


def _input_key(dataset: Dataset, chunking: ChunkingParams, embedding_model: str) -> str:
    key = [
        dataset.corpus_fingerprint(),
        chunking.chunk_size,
        chunking.chunk_overlap,
        list(chunking.separators),
        embedding_model,
    ]
    if chunking.splitter != "recursive":  # keeps the keys of indexes built before splitters existed
        key.append(chunking.splitter)
    return sha256(json.dumps(key, ensure_ascii=False).encode()).hexdigest()[:16]


def _swap_into_place(built: Path, target: Path) -> None:
    """Rename the finished build into place; an old index is moved aside first, then removed."""
    if not target.exists():
        built.rename(target)
        return
    old = target.with_name(f".{target.name}-old-{uuid.uuid4().hex[:8]}")
    target.rename(old)
    built.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _remove_abandoned_builds(root: Path) -> None:
    """Remove temporary build folders whose process is gone (a killed build leaves one behind)."""
    for folder in root.glob(f".*{BUILDING_MARK}*"):
        pid = folder.name.split(BUILDING_MARK)[-1].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
    for folder in root.glob(".*-old-*"):
        shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _release(folder: Path) -> None:
    """Chroma caches one system per path in-process: stop this folder's before it is renamed or removed."""
    from chromadb.api.shared_system_client import SharedSystemClient

    system = SharedSystemClient._identifier_to_system.pop(str(folder / "chroma"), None)
    SharedSystemClient._identifier_to_refcount.pop(str(folder / "chroma"), None)
    if system is not None:
        with contextlib.suppress(Exception):  # a system that failed to start (a damaged or full disk) fails to stop
            system.stop()


def check_relevant_ids(index: Index, questions: list[Question]) -> None:
    """Relevance labels must name documents of the index, or every metric would silently be 0."""
    known = index.doc_ids()
    for question in questions:
        missing = [d for d in question.relevant_ids if d not in known]
        if missing:
            raise LabError(
                f"question '{question.id}' names documents that are not in index "
                f"'{index.manifest.name}': {', '.join(missing[:5])} (is this the right index?)"
            )
