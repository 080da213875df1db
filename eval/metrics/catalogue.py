"""The metric catalogue: every metric is declared once, in its family's module.

A family module (`ranking`, `answer`, `diversity`, `latency`, `ragas`, `judge`) declares its metrics as a
tuple of `Metric`, beside the functions that compute them (the judge's and the latency metrics are computed
by `eval.judge`, `eval.generation` and the sweep); `eval.metrics` joins the families into `METRICS`, and every
list of metric names or row columns elsewhere (the sweep's keys, the judge's and the pipeline's columns, the
export) is derived from it. Metrics declared with an `at_cutoff` description also exist at any cutoff
`name@k` (e.g. `ndcg@10`), as in ir_measures and ranx.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Literal

Group = Literal["relevance", "answer", "diversity", "latency"]
_SPEC = re.compile(r"^(?P<name>[a-z_]+)@(?P<k>[1-9][0-9]*)$")


@dataclass(frozen=True)
class Metric:
    """What the engine and the UI know about a metric.

    `group` is how pages group it; `columns` are the row columns its computation writes: its value
    first, then any side column (e.g. the judge's `judge_error`); by default just its name."""

    name: str
    label: str
    group: Group
    higher_is_better: bool
    description: str
    at_cutoff: str = ""  # the description at a cutoff, "{k}" standing for it; empty: no name@k form
    columns: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if not self.columns:
            object.__setattr__(self, "columns", (self.name,))

    def at(self, k: int) -> Metric:
        """This metric at cutoff k (`ndcg` -> `ndcg@10`)."""
        if not self.at_cutoff:
            raise ValueError(f"metric {self.name!r} has no cutoff")
        name = f"{self.name}@{k}"
        return replace(
            self,
            name=name,
            label=f"{self.label}@{k}",
            description=self.at_cutoff.format(k=k),
            at_cutoff="",
            columns=(name,),
        )


def parse_metric(spec: str) -> tuple[str, int | None]:
    """`ndcg@10` -> ("ndcg", 10); `ndcg` -> ("ndcg", None). A malformed cutoff raises ValueError."""
    if "@" not in spec:
        return spec, None
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"bad metric {spec!r}: write NAME or NAME@K with K a positive integer, e.g. ndcg@10")
    return match["name"], int(match["k"])


class Catalogue(Mapping[str, Metric]):
    """The declared metrics by name, in declaration order; `catalogue["ndcg@10"]` works for cutoff metrics
    (iterating lists only the declared names)."""

    def __init__(self, *families: Iterable[Metric]) -> None:
        self._metrics: dict[str, Metric] = {}
        for metric in (m for family in families for m in family):
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name!r} is declared twice")
            self._metrics[metric.name] = metric

    def __getitem__(self, spec: str) -> Metric:
        if spec in self._metrics:
            return self._metrics[spec]
        try:
            name, k = parse_metric(spec)
        except ValueError:
            raise KeyError(spec) from None
        if k is None or name not in self._metrics or not self._metrics[name].at_cutoff:
            raise KeyError(spec)
        return self._metrics[name].at(k)

    def __contains__(self, spec: object) -> bool:
        try:
            self[spec]  # type: ignore[index]
        except (KeyError, TypeError):
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._metrics)

    def __len__(self) -> int:
        return len(self._metrics)


def names(family: Iterable[Metric]) -> tuple[str, ...]:
    """The metric names of a family, in order."""
    return tuple(m.name for m in family)


def columns(family: Iterable[Metric]) -> tuple[str, ...]:
    """The row columns a family writes: every metric's value in order, then the side columns they share."""
    family = tuple(family)
    return tuple(dict.fromkeys([*names(family), *(c for m in family for c in m.columns)]))
