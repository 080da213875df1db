"""What a run's results say about its grid: configs that retrieved exactly the same chunks, threshold configs
that did nothing (a `score_threshold` below every score returns what plain similarity returns), BM25
configs whose tokenizer cannot split the questions' language, and external services whose answers the scores
cannot show (results beyond k, chunks of no document, no scores, repeats)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from eval.retrievers.external.client import answer_warnings
from eval.runs.store import Run
from eval.sweep.engine import identical_configs
from eval.text import CJK_CHAR

WHOLE_RUN_TOKENIZERS = {"words", "whitespace"}  # they keep a run of Chinese characters as one token


def run_identical_configs(run: Run) -> list[list[str]]:
    """`identical_configs` of a run: stored in its manifest by the sweep; for runs made before that, computed
    when the run was loaded with its retrieved lists, else unknown (empty: reading a million lists to find
    out takes half a minute, too long for a page)."""
    if "identical_configs" in run.manifest:
        return run.manifest["identical_configs"]
    return identical_configs(run.rows) if "chunk_ids" in run.rows else []


def inert_thresholds(configs: list[dict[str, Any]], groups: list[list[str]]) -> list[tuple[str, str]]:
    """(threshold config, similarity config) pairs of the same k and filter that retrieved the same chunks
    for every question: the threshold never removed a chunk."""
    group_of = {config_id: number for number, group in enumerate(groups) for config_id in group}
    similar = {
        (c["k"], json.dumps(c.get("filter"), sort_keys=True)): c["config_id"]
        for c in configs
        if c["search_type"] == "similarity"
    }
    pairs = []
    for config in configs:
        if config["search_type"] != "similarity_score_threshold":
            continue
        twin = similar.get((config["k"], json.dumps(config.get("filter"), sort_keys=True)))
        if twin is not None and config["config_id"] in group_of and group_of[config["config_id"]] == group_of.get(twin):
            pairs.append((config["config_id"], twin))
    return pairs


def run_warnings(run: Run) -> list[str]:
    """Plain-language warnings about a run's grid, for the Compare page, the sweep page and the reports."""
    by_id = {c["config_id"]: c for c in run.configs}
    warnings = [
        f"{threshold} returned exactly what {twin} returned for every question: its score_threshold "
        f"{by_id[threshold]['score_threshold']:g} is below every relevance score it met, so it filters "
        f"nothing. Sweep thresholds inside the index's score range (the sweep page suggests values "
        f"from the index's calibration)."
        for threshold, twin in inert_thresholds(run.configs, run_identical_configs(run))
    ]
    built, used = run.manifest.get("index", {}).get("encoder"), run.manifest.get("query_encoder")
    if built and used and built != used:
        warnings.append(
            f"The questions were encoded by {used}, but index '{run.manifest['index']['name']}' was "
            f"built by {built} (an older library or export of the model): rebuild the index and run "
            "again for chunks and questions from one encoder."
        )
    chinese_bm25 = chinese_questions_on_word_bm25(run)
    if chinese_bm25:
        warnings.append(chinese_bm25)
    return warnings + answer_warnings(run.rows, run.configs)


def chinese_questions_on_word_bm25(run: Run) -> str | None:
    """A warning when most questions are Chinese but BM25 configs (alone, in an ensemble or under a reranker)
    tokenize with `words` or `whitespace`: BM25 then matches only whole runs of Chinese text."""
    questions = run.questions
    chinese = sum(bool(CJK_CHAR.search(q.question)) for q in questions)
    if not questions or chinese * 2 < len(questions):
        return None
    configs = [c["config_id"] for c in run.configs if WHOLE_RUN_TOKENIZERS & set(bm25_tokenizers(c))]
    if not configs:
        return None
    named = ", ".join(configs[:3]) + (f" and {len(configs) - 3} more" if len(configs) > 3 else "")
    return (
        f"{chinese} of the {len(questions)} questions are Chinese, but {named} run BM25 with a tokenizer "
        "('words' or 'whitespace') that keeps a run of Chinese characters as one token, so BM25 barely "
        "matches them: sweep BM25 with tokenizer: jieba."
    )


def bm25_tokenizers(params: dict[str, Any]) -> Iterator[str]:
    """The tokenizers of a config's BM25 retrievers, inside ensembles and under rerankers too."""
    if params.get("search_type") == "bm25":
        yield params.get("tokenizer", "words")
    for retriever in params.get("retrievers", []):
        yield from bm25_tokenizers(retriever)
    if "base" in params:
        yield from bm25_tokenizers(params["base"])
