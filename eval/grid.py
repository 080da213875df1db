"""A sweep grid from per-parameter value lists (what the dashboard's grid widgets hold)."""
from __future__ import annotations

from typing import Any, Sequence

from eval.config import RetrieverConfig, parse_sweep
from eval.errors import LabError


def grid_spec(search_types: Sequence[str], ks: Sequence[int], fetch_ks: Sequence[int] = (),
              lambdas: Sequence[float] = (), thresholds: Sequence[float] = (),
              filter_obj: dict[str, Any] | None = None) -> dict[str, Any]:
    """The sweep spec crossing the values each search type uses: similarity takes `ks`; mmr takes every
    `fetch_k` of at least k and `lambdas`; score thresholds take `thresholds`. The filter goes on every entry."""
    entries = []
    extra = {"filter": filter_obj} if filter_obj else {}
    for search_type in search_types:
        if search_type == "similarity":
            entries.append({"search_type": "similarity", "k": list(ks), **extra})
        elif search_type == "mmr":
            for k in ks:
                usable = [f for f in fetch_ks if f >= k]
                if not usable:
                    raise LabError(f"mmr: every fetch_k is below k={k}; add a fetch_k of at least {k}")
                entries.append({"search_type": "mmr", "k": k, "fetch_k": usable, "lambda_mult": list(lambdas),
                                **extra})
        else:
            entries.append({"search_type": search_type, "k": list(ks), "score_threshold": list(thresholds),
                            **extra})
    if not entries:
        raise LabError("choose at least one search type")
    return {"configs": entries}


def grid_configs(search_types: Sequence[str], ks: Sequence[int], fetch_ks: Sequence[int] = (),
                 lambdas: Sequence[float] = (), thresholds: Sequence[float] = (),
                 filter_obj: dict[str, Any] | None = None) -> list[RetrieverConfig]:
    """`grid_spec`, parsed and validated by `eval.config.parse_sweep`."""
    return parse_sweep(grid_spec(search_types, ks, fetch_ks, lambdas, thresholds, filter_obj), "grid")
