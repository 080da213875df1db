"""Index families: one corpus under a grid of chunking x embedding model, swept together.

A family is a set of normal indexes (each with its manifest) of one corpus, named `<family>--<variant>`,
built as one job with one progress count (chunks embedded over all variants; the embedding cache makes
variants that share chunk texts cheap). A family sweep runs one retriever grid over several indexes of the
same corpus (the corpus fingerprints must match): one normal run per index, tied together by a `family`
entry in each run's manifest. `family_rows` joins their rows, each carrying its index variant, rescored
under one label source: labels are document spans, so every chunking is judged by the same judgements.
Each row also carries `context_chars`, the characters retrieved (what the prompt pays for), so that bigger
chunks do not win just by carrying more text.
"""

from __future__ import annotations

import hashlib
import itertools
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from eval.data.datasets import Dataset
from eval.errors import LabError
from eval.index.chunking import SPLITTERS, ChunkingParams, chunk_corpus
from eval.index.store import Index, IndexManifest, IndexStore
from eval.retrievers.vector import RetrieverConfig
from eval.runs.store import RunStore
from eval.schema import Question
from eval.sweep.engine import SweepOptions, run_sweep

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class Variant:
    """One point of a family's grid."""

    chunk_size: int
    chunk_overlap: int
    splitter: str
    embedding_model: str

    @property
    def chunking(self) -> ChunkingParams:
        return ChunkingParams(self.chunk_size, self.chunk_overlap, splitter=self.splitter)

    def index_name(self, family: str) -> str:
        return f"{family}--{_safe(self.embedding_model)}-{self.splitter}-{self.chunk_size}-{self.chunk_overlap}"


def _safe(model: str) -> str:
    """A model name usable in an index name (`openai:m@http://host/v1` has '/' and ':')."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("_.")
    return cleaned if cleaned == model else f"{cleaned[:40]}-{hashlib.sha256(model.encode()).hexdigest()[:6]}"


def family_grid(
    chunk_sizes: list[int], chunk_overlaps: list[int], splitters: list[str], embedding_models: list[str]
) -> list[Variant]:
    """Every combination, checked before anything is built: each overlap must be below each chunk size."""
    for name, values in (
        ("chunk_size", chunk_sizes),
        ("chunk_overlap", chunk_overlaps),
        ("splitter", splitters),
        ("embedding", embedding_models),
    ):
        if not values:
            raise LabError(f"variant grid: '{name}' has no values")
    for splitter in splitters:
        if splitter not in SPLITTERS:
            raise LabError(f"variant grid: unknown splitter '{splitter}' (use one of: {', '.join(SPLITTERS)})")
    for size, overlap in itertools.product(chunk_sizes, chunk_overlaps):
        try:
            ChunkingParams(size, overlap)
        except LabError as error:
            raise LabError(f"variant grid: chunk_size {size} x chunk_overlap {overlap}: {error}") from None
    grid = itertools.product(embedding_models, splitters, chunk_sizes, chunk_overlaps)
    return list(dict.fromkeys(Variant(size, overlap, splitter, model) for model, splitter, size, overlap in grid))


def build_family(
    store: IndexStore,
    dataset: Dataset,
    family: str,
    variants: list[Variant],
    replace_existing: bool = False,
    progress: Progress | None = None,
) -> list[IndexManifest]:
    """Build every variant (an existing identical one is reused) with one progress count: ('embedding',
    chunks done over all variants, chunks of all variants). A failed variant leaves nothing of itself; the
    variants built before it stay (each is a complete index) and are reused when the job is run again."""
    counts = {v: len(chunk_corpus(dataset.corpus, v.chunking)) for v in variants}
    total, done = sum(counts.values()), 0
    manifests = []
    for variant in variants:

        def step(stage: str, count: int, _: int, before: int = done) -> None:
            if progress:
                progress(stage, before + count, total)

        manifests.append(
            store.build(
                dataset, variant.index_name(family), variant.embedding_model, variant.chunking, replace_existing, step
            )
        )
        done += counts[variant]
        if progress:
            progress("embedding", done, total)
    return manifests


def check_same_corpus(indexes: list[Index]) -> None:
    """A family sweep compares chunkings of one corpus: every index must have the same corpus fingerprint."""
    if not indexes:
        raise LabError("a family sweep needs at least one index")
    first = indexes[0].manifest
    for index in indexes[1:]:
        if index.manifest.corpus_fingerprint != first.corpus_fingerprint:
            raise LabError(
                f"index '{index.manifest.name}' (dataset {index.manifest.dataset}) was built from "
                f"another corpus than '{first.name}' (dataset {first.dataset}): a family sweep "
                "compares indexes of one corpus"
            )


def run_family_sweep(
    store: RunStore,
    indexes: list[Index],
    configs: list[RetrieverConfig],
    questions: list[Question],
    questions_source: str = "",
    options: SweepOptions | None = None,
    resume: str | None = None,
) -> list[str]:
    """One run per index (same configs, same questions), all tagged with one family id; returns the run ids.

    `resume` is a family id (or the id of one of its runs): its complete runs are kept, its unfinished one
    resumes where it stopped and the indexes it had not reached yet are swept (the same indexes, in the same
    order, must be given).
    `options.on_start` is told each run's id as it starts. Progress: one ('questions', done, total) count
    over all indexes; the other stages pass through."""
    check_same_corpus(indexes)
    options = options or SweepOptions()
    earlier = _family_members(store, resume, indexes) if resume else {}
    family_id = next(iter(earlier.values()))["family"]["id"] if earlier else uuid.uuid4().hex[:12]
    run_ids = []
    for number, index in enumerate(indexes):
        previous = earlier.get(number)
        if previous and previous["status"] == "complete":
            run_ids.append(previous["run_id"])
            continue
        tag = {"family": {"id": family_id, "variant": index.manifest.name, "position": number, "size": len(indexes)}}
        run_ids.append(
            run_sweep(
                store,
                index,
                configs,
                questions,
                questions_source,
                replace(
                    options,
                    extra_manifest={**options.extra_manifest, **tag},
                    progress=_shifted(options.progress, number, len(indexes), len(questions)),
                ),
                resume=previous["run_id"] if previous else None,
            )
        )
    return run_ids


def _family_members(store: RunStore, resume: str, indexes: list[Index]) -> dict[int, dict[str, Any]]:
    """The stored runs of the family `resume` names (its id or one of its runs') by position, checked against
    the indexes given to resume it."""
    manifests = store.list()
    family_id = next((m["family"]["id"] for m in manifests if m.get("family") and m["run_id"] == resume), resume)
    members = {m["family"]["position"]: m for m in manifests if (m.get("family") or {}).get("id") == family_id}
    if not members:
        raise LabError(f"no family sweep '{resume}' in {store.root}: nothing to resume")
    for number, member in sorted(members.items()):
        expected, size = member["family"]["variant"], member["family"]["size"]
        given = indexes[number].manifest.name if number < len(indexes) else None
        if size != len(indexes) or given != expected:
            raise LabError(
                f"family sweep '{family_id}' was started on {size} indexes, index {number + 1} being "
                f"'{expected}': resume it with the same --index list in the same order"
            )
    return members


def _shifted(progress: Progress | None, number: int, count: int, questions: int) -> Progress | None:
    if progress is None:
        return None

    def report(stage: str, done: int, total: int) -> None:
        if stage == "questions":
            progress(stage, number * questions + done, count * questions)
        else:
            progress(stage, done, total)

    return report
