"""Per-question drill-down: which questions a config gets right, where configs disagree, its worst questions."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from eval.schema import Question

FILTERS = ("all questions", "where configs disagree", "misses of the chosen config")


def question_table(
    rows: pd.DataFrame,
    questions: Mapping[str, Question],
    chosen: str,
    metric: str = "hit_rate",
    config_ids: Sequence[str] | None = None,
    show: str = FILTERS[0],
) -> pd.DataFrame:
    """One row per question, the chosen config's worst first (then those most other configs hit): question_id,
    question, the metric under each config (a column per config id, the chosen one first), `configs_hit` (how
    many configs score above 0) and `disagree` (some do and some do not). `show` is one of `FILTERS`."""
    if show not in FILTERS:
        raise ValueError(f"unknown filter {show!r}: use one of {FILTERS}")
    config_ids = list(config_ids) if config_ids is not None else list(pd.unique(rows["config_id"]))
    ordered = [chosen] + [c for c in config_ids if c != chosen]
    wide = rows[rows["config_id"].isin(ordered)].pivot(index="question_id", columns="config_id", values=metric)
    wide = wide.reindex(columns=ordered)
    hits = (wide > 0).sum(axis=1)
    table = pd.DataFrame(
        {"question_id": wide.index, "question": [questions[q].question if q in questions else "" for q in wide.index]}
    )
    table = pd.concat([table.reset_index(drop=True), wide.reset_index(drop=True)], axis=1)
    table["configs_hit"] = hits.to_numpy()
    table["disagree"] = ((hits > 0) & (hits < wide.notna().sum(axis=1))).to_numpy()
    if show == FILTERS[1]:
        table = table[table["disagree"]]
    elif show == FILTERS[2]:
        table = table[table[chosen] <= 0]
    # worst first; among equally bad ones, those other configs get right first (the fixable ones)
    return table.sort_values(
        [chosen, "configs_hit", "question_id"], ascending=[True, False, True], kind="stable"
    ).reset_index(drop=True)
