"""The BM25 side of an index: its chunks tokenized by every tokenizer, stored beside the Chroma folder
(`bm25.json.gz`), and loaded once per opened index with rank_bm25's `BM25Okapi` arithmetic as postings tables.

Tokenizers: `whitespace` (LangChain's default `text.split()`), `words` (lower-cased runs of letters and digits)
and `jieba` (Chinese words). The chunk order is the BM25 corpus order, which decides ties.
"""

from __future__ import annotations

import gzip
import json
import logging
import re
import weakref
from collections import defaultdict
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

from eval.errors import LabError
from eval.index.health import DamagedIndex
from eval.schema import Retrieved

BM25_FILE = "bm25.json.gz"


def whitespace_tokens(text: str) -> list[str]:
    """LangChain's default BM25 preprocessing (`text.split()`)."""
    return text.split()


def word_tokens(text: str) -> list[str]:
    """Lower-cased runs of letters and digits: suits English (a Chinese sentence stays one token)."""
    return re.findall(r"\w+", text.lower())


def jieba_tokens(text: str) -> list[str]:
    """jieba's words for Chinese (English words stay whole), lower-cased, without spaces and punctuation."""
    import jieba

    jieba.setLogLevel(logging.WARNING)
    return [token for token in jieba.lcut(text.lower()) if re.search(r"\w", token)]


TOKENIZERS: dict[str, Callable[[str], list[str]]] = {
    "whitespace": whitespace_tokens,
    "words": word_tokens,
    "jieba": jieba_tokens,
}


def write_bm25_side(folder: Path, chunk_ids: list[str], texts: list[str]) -> dict[str, Any]:
    """Tokenize the chunks with every tokenizer and store them beside the Chroma folder (in `folder`).

    Returns the manifest's `bm25` entry. The chunk order is the BM25 corpus order, which decides ties."""
    tokens = {name: [tokenize(text) for text in texts] for name, tokenize in TOKENIZERS.items()}
    with gzip.open(folder / BM25_FILE, "wt", encoding="utf-8") as file:
        json.dump({"chunk_ids": chunk_ids, "tokens": tokens}, file, ensure_ascii=False)
    return {
        "file": BM25_FILE,
        "bytes": (folder / BM25_FILE).stat().st_size,  # a truncated side is then seen without reading it
        "chunks": len(chunk_ids),
        "tokenizers": list(TOKENIZERS),
        "versions": {name: version(name) for name in ("rank-bm25", "jieba")},
    }


class BM25Side:
    """An index's chunks in BM25 order with their tokens, texts and vectors; BM25 models built once."""

    def __init__(self, index: Any) -> None:
        folder = getattr(index, "folder", None)
        if not index.manifest.bm25 or folder is None or not (folder / BM25_FILE).is_file():
            raise LabError(
                f"index '{index.manifest.name}' has no BM25 side (it was built before BM25 support, or "
                "lives on a Chroma server): rebuild it locally (python -m eval index ... --replace) "
                "to use bm25, ensemble or rerank-over-bm25 configs"
            )
        try:
            with gzip.open(folder / BM25_FILE, "rt", encoding="utf-8") as file:
                stored = json.load(file)
        except (OSError, EOFError, ValueError) as error:  # truncated gzip, bad JSON (ValueError)
            raise DamagedIndex(index.manifest.name, f"{BM25_FILE} cannot be read: {error}") from None
        self.chunk_ids: list[str] = stored["chunk_ids"]
        self.tokens: dict[str, list[list[str]]] = stored["tokens"]
        texts, metadatas, vectors = {}, {}, {}
        for start in range(0, len(self.chunk_ids), 5000):
            got = index.collection.get(
                ids=self.chunk_ids[start : start + 5000], include=["documents", "metadatas", "embeddings"]
            )
            for chunk_id, text, metadata, vector in zip(
                got["ids"], got["documents"], got["metadatas"], got["embeddings"]
            ):
                texts[chunk_id], metadatas[chunk_id], vectors[chunk_id] = text, metadata, vector
        self.texts = [texts[chunk_id] for chunk_id in self.chunk_ids]
        self.metadatas = [metadatas[chunk_id] for chunk_id in self.chunk_ids]
        self.embeddings = np.asarray([vectors[chunk_id] for chunk_id in self.chunk_ids], np.float32)
        self.position = {chunk_id: n for n, chunk_id in enumerate(self.chunk_ids)}
        self._models: dict[str, Any] = {}
        self._postings: dict[tuple[str, float, float], dict[str, tuple[np.ndarray, np.ndarray]]] = {}

    def model(self, tokenizer: str) -> Any:
        """rank_bm25's `BM25Okapi` of the stored tokens (its idf does not depend on k1 or b)."""
        if tokenizer not in self._models:
            from rank_bm25 import BM25Okapi

            self._models[tokenizer] = BM25Okapi(self.tokens[tokenizer])
        return self._models[tokenizer]

    def postings(self, tokenizer: str, k1: float, b: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """term -> (chunk positions, the term's BM25Okapi contribution there), with rank_bm25's arithmetic."""
        key = (tokenizer, k1, b)
        if key not in self._postings:
            model = self.model(tokenizer)
            doc_len = np.array(model.doc_len)
            norm = k1 * (1 - b + b * doc_len / model.avgdl)
            by_term: dict[str, tuple[list[int], list[int]]] = defaultdict(lambda: ([], []))
            for position, frequencies in enumerate(model.doc_freqs):
                for term, frequency in frequencies.items():
                    by_term[term][0].append(position)
                    by_term[term][1].append(frequency)
            table = {}
            for term, (positions, frequencies) in by_term.items():
                docs, q_freq = np.array(positions), np.array(frequencies)
                table[term] = (docs, (model.idf.get(term) or 0) * (q_freq * (k1 + 1) / (q_freq + norm[docs])))
            self._postings[key] = table
        return self._postings[key]

    def scores(self, tokenizer: str, k1: float, b: float, question: str) -> np.ndarray:
        """`BM25Okapi(k1, b).get_scores(preprocess_func(question))`, bit for bit: each query token (repeats
        included) adds its contribution in query order; chunks without the token add 0.0 there, which changes
        nothing."""
        table = self.postings(tokenizer, k1, b)
        score = np.zeros(len(self.chunk_ids))
        for token in TOKENIZERS[tokenizer](question):
            if token in table:
                docs, contribution = table[token]
                score[docs] += contribution
        return score

    def retrieved(self, positions: Iterable[int], scores: Iterable[float]) -> Retrieved:
        positions = list(positions)
        return Retrieved(
            [self.chunk_ids[p] for p in positions],
            [self.metadatas[p]["doc_id"] for p in positions],
            [float(s) for s in scores],
            [self.texts[p] for p in positions],
            self.embeddings[positions] if positions else self.embeddings[:0],
        )


_SIDES: weakref.WeakKeyDictionary[Any, BM25Side] = weakref.WeakKeyDictionary()


def bm25_side(index: Any) -> BM25Side:
    """The index's BM25 side, loaded once per opened index."""
    if index not in _SIDES:
        _SIDES[index] = BM25Side(index)
    return _SIDES[index]
