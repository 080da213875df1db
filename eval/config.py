"""Retriever configurations in LangChain's vocabulary, and sweep specs that expand to a grid.

Everything is validated here, before LangChain sees it: LangChain itself rejects an int
`score_threshold`, raises a TypeError from Chroma for `fetch_k` on `similarity`, and silently ignores
`score_threshold` on `mmr`.
"""
from __future__ import annotations

import hashlib
import itertools
import json
import math
from dataclasses import dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import Any

import yaml

from eval.errors import ConfigError

SEARCH_TYPES = ("similarity", "mmr", "similarity_score_threshold")
PARAMETERS = ("k", "fetch_k", "lambda_mult", "score_threshold", "filter")
ALLOWED = {
    "similarity": {"k", "filter"},
    "mmr": {"k", "fetch_k", "lambda_mult", "filter"},
    "similarity_score_threshold": {"k", "score_threshold", "filter"},
}
LANGCHAIN_DEFAULTS = {"k": 4, "fetch_k": 20, "lambda_mult": 0.5}


@dataclass(frozen=True)
class RetrieverConfig:
    """One retriever configuration; build it with `RetrieverConfig.create` to validate and fill defaults."""

    search_type: str
    k: int
    fetch_k: int | None = None
    lambda_mult: float | None = None
    score_threshold: float | None = None
    filter_json: str | None = None  # the metadata filter, as canonical JSON so the config stays hashable

    @classmethod
    def create(cls, search_type: str = "similarity", **params: Any) -> RetrieverConfig:
        if search_type not in SEARCH_TYPES:
            raise ConfigError(f"unknown search_type '{search_type}' (use one of: {', '.join(SEARCH_TYPES)})")
        unknown = sorted(set(params) - set(PARAMETERS))
        if unknown:
            raise ConfigError(f"unknown parameter '{unknown[0]}' (retriever parameters: {', '.join(PARAMETERS)})")
        given = {name: value for name, value in params.items() if value is not None}
        ignored = sorted(set(given) - ALLOWED[search_type])
        if ignored:
            raise ConfigError(f"'{ignored[0]}' is not used by search_type '{search_type}' "
                              f"(it takes: {', '.join(sorted(ALLOWED[search_type]))})")
        k = _int(given.get("k", LANGCHAIN_DEFAULTS["k"]), "k")
        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        config = cls(search_type=search_type, k=k, filter_json=_filter_json(given.get("filter")))
        if search_type == "mmr":
            return config._with_mmr(given)
        if search_type == "similarity_score_threshold":
            if "score_threshold" not in given:
                raise ConfigError("search_type 'similarity_score_threshold' needs a score_threshold in [0, 1]")
            return replace(config, score_threshold=_unit(given["score_threshold"], "score_threshold"))
        return config

    def _with_mmr(self, given: dict[str, Any]) -> RetrieverConfig:
        fetch_k = _int(given.get("fetch_k", max(LANGCHAIN_DEFAULTS["fetch_k"], self.k)), "fetch_k")
        if fetch_k < self.k:
            raise ConfigError(f"fetch_k ({fetch_k}) must be at least k ({self.k})")
        lambda_mult = _unit(given.get("lambda_mult", LANGCHAIN_DEFAULTS["lambda_mult"]), "lambda_mult")
        return replace(self, fetch_k=fetch_k, lambda_mult=lambda_mult)

    @property
    def filter(self) -> dict[str, Any] | None:
        return json.loads(self.filter_json) if self.filter_json else None

    @property
    def candidates(self) -> int:
        """How many nearest chunks this config looks at (`fetch_k` for MMR, else `k`)."""
        return self.fetch_k or self.k

    def search_kwargs(self) -> dict[str, Any]:
        """Exactly the `search_kwargs` for `vectorstore.as_retriever(search_type=..., search_kwargs=...)`."""
        kwargs: dict[str, Any] = {"k": self.k}
        for name in ("fetch_k", "lambda_mult", "score_threshold"):
            if getattr(self, name) is not None:
                kwargs[name] = getattr(self, name)
        if self.filter_json:
            kwargs["filter"] = self.filter
        return kwargs

    def params(self) -> dict[str, Any]:
        """The config by LangChain's names, as stored in runs and exports."""
        return {"search_type": self.search_type, **self.search_kwargs()}

    @cached_property  # read once per row: made once per config
    def config_id(self) -> str:
        """A short, stable, readable id, e.g. `mmr-k5-f20-l0.5` or `similarity-k3-flt3fa2b1`."""
        parts = [{"similarity": "similarity", "mmr": "mmr", "similarity_score_threshold": "threshold"}
                 [self.search_type], f"k{self.k}"]
        if self.fetch_k is not None:
            parts.append(f"f{self.fetch_k}")
        if self.lambda_mult is not None:
            parts.append(f"l{self.lambda_mult:g}")
        if self.score_threshold is not None:
            parts.append(f"t{self.score_threshold:g}")
        if self.filter_json:
            parts.append("flt" + hashlib.sha256(self.filter_json.encode()).hexdigest()[:6])
        return "-".join(parts)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> RetrieverConfig:
        params = dict(params)
        return cls.create(params.pop("search_type", "similarity"), **params)


def _int(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (
            isinstance(value, float) and not value.is_integer()):
        raise ConfigError(f"{name} must be a whole number, got {value!r}")
    return int(value)


def _unit(value: Any, name: str) -> float:
    """A number in [0, 1]; ints such as `1` become floats (LangChain rejects an int threshold)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"{name} must be a number in [0, 1], got {value!r}")
    if not 0 <= value <= 1:
        raise ConfigError(f"{name} must be in [0, 1], got {value}")
    return float(value)


def _filter_json(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or not value:
        raise ConfigError(f"filter must be a non-empty mapping such as {{\"lang\": \"zh\"}}, got {value!r}")
    from chromadb.api.types import validate_where

    try:
        validate_where(value)
    except ValueError as error:
        raise ConfigError(f"invalid metadata filter {json.dumps(value, ensure_ascii=False)}: {error}") from None
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


# ---------------------------------------------------------------- sweep specs

def expand_grid(entry: dict[str, Any], where: str) -> list[RetrieverConfig]:
    """One spec entry: list values are alternatives; the grid is their cartesian product."""
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a mapping like {{search_type: mmr, k: [5]}}, got {entry!r}")
    from eval import hybrid

    if isinstance(entry.get("search_type"), str) and entry["search_type"] in hybrid.KINDS:
        return hybrid.expand_entry(entry, where)  # bm25, ensemble and rerank configs
    unknown = sorted(set(entry) - {"search_type", *PARAMETERS})
    if unknown:
        raise ConfigError(f"{where}: unknown key '{unknown[0]}' (allowed: search_type, {', '.join(PARAMETERS)})")
    names = list(entry)
    choices = [value if isinstance(value, list) else [value] for value in entry.values()]
    for name, values in zip(names, choices):
        if not values:
            raise ConfigError(f"{where}: '{name}' has an empty list")
    configs = []
    for combination in itertools.product(*choices):
        params = dict(zip(names, combination))
        try:
            configs.append(RetrieverConfig.create(**params))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
        except TypeError:
            raise ConfigError(f"{where}: search_type must be a single name, got {params.get('search_type')!r}") from None
    return configs


def parse_sweep(spec: Any, source: str = "sweep spec") -> list[RetrieverConfig]:
    """Validate a sweep spec (`{configs: [...]}`) and expand it; duplicates are dropped, order kept."""
    if not isinstance(spec, dict) or "configs" not in spec:
        raise ConfigError(f"{source}: expected a mapping with a 'configs' list")
    unknown = sorted(set(spec) - {"configs", "name"})
    if unknown:
        raise ConfigError(f"{source}: unknown top-level key '{unknown[0]}' (allowed: configs, name)")
    entries = spec["configs"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{source}: 'configs' must be a non-empty list")
    from eval import external

    configs: dict[RetrieverConfig, None] = {}
    for number, entry in enumerate(entries, start=1):
        expand = external.expand_entry if external.is_external_entry(entry) else expand_grid
        for config in expand(entry, f"{source}, configs entry {number}"):
            configs[config] = None
    _check_distinct_ids(list(configs), source)
    return list(configs)


def config_from_params(params: dict[str, Any], where: str) -> RetrieverConfig:
    """A run's stored config (`{"config_id", **params}`, any kind) as a config again, validated as a sweep spec
    entry is, and refused when it does not give back the stored config id."""
    entry = {name: value for name, value in params.items() if name != "config_id"}
    configs = parse_sweep({"configs": [entry]}, where)
    if len(configs) != 1 or configs[0].config_id != params.get("config_id", configs[0].config_id):
        raise ConfigError(f"{where}: the stored parameters do not give back config {params.get('config_id')!r}")
    return configs[0]


def _check_distinct_ids(configs: list, source: str) -> None:
    """Two different configs must not share a config id (e.g. two services of one kind without a `name`)."""
    seen: dict[str, object] = {}
    for config in configs:
        if seen.setdefault(config.config_id, config) is not config:
            raise ConfigError(f"{source}: two configs have the id '{config.config_id}': give each service "
                              "entry its own name (name: ...)")


def load_sweep(path: str | Path) -> list[RetrieverConfig]:
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: sweep spec not found")
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path.name}: not valid YAML ({str(error).splitlines()[0]})") from None
    return parse_sweep(spec, path.name)


DEFAULT_SWEEP = {"configs": [
    {"search_type": "similarity", "k": [3, 5, 10]},
    {"search_type": "mmr", "k": [5], "fetch_k": [20, 50], "lambda_mult": [0.25, 0.5, 0.75]},
    {"search_type": "similarity_score_threshold", "k": [5], "score_threshold": [0.3, 0.5]},
]}
