"""Index families compared: the rows of a family's runs joined, each with its index variant, rescored under
one label source, and the best (variant, config) pairs.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from eval.data.labels import Labels
from eval.labels.rescore import rescore
from eval.metrics import context_chars
from eval.metrics.statistics import aggregate
from eval.runs.store import Run, RunStore

INDEX_COLUMNS = ("index", "chunk_size", "chunk_overlap", "splitter", "embedding_model")


def family_rows(runs: list[Run], labels: Labels | None = None, source: str = "gold") -> pd.DataFrame:
    """Every run's rows with its index variant (INDEX_COLUMNS), `search_type`, `k`, `context_chars`, and,
    with labels, the relevance metrics recomputed under `source` (the same span judgements for every chunking)."""
    frames = []
    for run in runs:
        rows = rescore(run, labels, source) if labels is not None else run.rows.copy()
        manifest = run.manifest["index"]
        if "context_chars" not in rows:  # a run from before the sweep wrote it
            texts = run.chunk_texts
            rows["context_chars"] = [context_chars([texts[c] for c in ids]) for ids in rows["chunk_ids"]]
        for column in INDEX_COLUMNS:
            rows[column] = manifest.get("name" if column == "index" else column, "recursive")
        rows["search_type"] = rows["config_id"].map({c["config_id"]: c["search_type"] for c in run.configs})
        rows["k"] = rows["config_id"].map({c["config_id"]: c["k"] for c in run.configs})
        frames.append(rows)
    return pd.concat(frames, ignore_index=True)


def family_leaderboard(rows: pd.DataFrame, metric: str = "ndcg") -> pd.DataFrame:
    """One row per (index, config) `pair`, best `metric` first, with its bootstrap CI, the mean context
    length, the index parameters and the config's `search_type` and `k` (the Compare charts' dimensions)."""
    pairs = rows.assign(pair=rows["index"] + " | " + rows["config_id"])
    table = aggregate(pairs, [metric, "context_chars"], by="pair")
    first = pairs.drop_duplicates("pair").set_index("pair")
    for column in (*INDEX_COLUMNS, "config_id", "search_type", "k"):
        table[column] = table["pair"].map(first[column])
    return table.sort_values(f"{metric}_mean", ascending=False, kind="stable").reset_index(drop=True)


def family_runs(store: RunStore) -> dict[str, list[str]]:
    """Complete family sweeps in `store`: family id -> run ids in index order (newest family first)."""
    families: dict[str, list[tuple[int, str]]] = {}
    for manifest in store.list():
        family = manifest.get("family")
        if family and manifest.get("status") == "complete":
            families.setdefault(family["id"], []).append((family["position"], manifest["run_id"]))
    return {family: [run_id for _, run_id in sorted(members)] for family, members in families.items()}


def describe_best(table: pd.DataFrame, metric: str = "ndcg") -> dict[str, Any]:
    """The best (index, retriever) pair of a `family_leaderboard` table, with its CI."""
    best = table.iloc[0]
    return {
        "index": best["index"],
        "config_id": best["config_id"],
        metric: float(best[f"{metric}_mean"]),
        "low": float(best[f"{metric}_low"]),
        "high": float(best[f"{metric}_high"]),
        "context_chars": float(best["context_chars_mean"]),
    }
