"""`python -m eval index build|list|show|delete`, `retrieve` and `sample`: indexes and one-off retrieval."""

from __future__ import annotations

import argparse

from eval import SAMPLE_DIR
from eval.cli.common import json_arg, run_store_from, store_from
from eval.cli.progress import ProgressBar
from eval.data.datasets import load_dataset
from eval.index.chunking import ChunkingParams
from eval.index.store import slugify
from eval.retrievers.registry import DEFAULT_SWEEP, langchain_retrieve, parse_sweep
from eval.retrievers.vector import RetrieverConfig
from eval.sweep.engine import SweepOptions, run_sweep


def cmd_index_build(args: argparse.Namespace) -> None:
    slugify(args.name)
    chunking = ChunkingParams(args.chunk_size, args.chunk_overlap)
    dataset = load_dataset(args.corpus, args.format, args.language)
    bar = args.progress_bar(f"building {args.name}")
    try:
        manifest = store_from(args).build(dataset, args.name, args.embedding, chunking, args.replace, bar)
    finally:
        bar.close()
    print(
        f"index '{manifest.name}': {manifest.documents} documents, {manifest.chunks} chunks, "
        f"{manifest.embedding_model}, {manifest.space} space, built in {manifest.build_seconds:.1f} s"
    )
    if manifest.embedding_cache:
        print(
            f"embedding cache: {manifest.embedding_cache['hits']} texts cached, "
            f"{manifest.embedding_cache['misses']} encoded ({manifest.embedding_cache['hit_rate']:.0%} hits)"
        )


def cmd_index_list(args: argparse.Namespace) -> None:
    """The healthy indexes, then the damaged ones, each marked with what is wrong and what to do."""
    store = store_from(args)
    manifests, damaged = store.list(), store.damaged()
    if not manifests and not damaged:
        print("no indexes yet: build one with `python -m eval index build --corpus PATH --name NAME`")
    for m in manifests:
        print(
            f"{m.name}\t{m.documents} docs\t{m.chunks} chunks\t{m.embedding_model}\t"
            f"chunk {m.chunk_size}/{m.chunk_overlap}\t{m.created_at}"
        )
    for damage in damaged:
        print(f"{damage.name}\tDAMAGED\t{damage}")


def cmd_index_show(args: argparse.Namespace) -> None:
    print(store_from(args).manifest(args.name).to_json())


def cmd_index_delete(args: argparse.Namespace) -> None:
    store_from(args).delete(args.name)
    print(f"deleted index '{args.name}'")


def cmd_retrieve(args: argparse.Namespace) -> None:
    config = RetrieverConfig.create(
        args.search_type,
        k=args.k,
        fetch_k=args.fetch_k,
        lambda_mult=args.lambda_mult,
        score_threshold=args.score_threshold,
        filter=json_arg(args.filter, "--filter"),
    )
    chunks = langchain_retrieve(store_from(args).open(args.index), config, args.question)
    print(f"{config.config_id}: {len(chunks)} chunks")
    for rank, chunk in enumerate(chunks, start=1):
        text = " ".join(chunk.text.split())
        print(f"{rank:>2}. {chunk.score:.4f}  {chunk.chunk_id}  {text[:160]}")


def cmd_sample(args: argparse.Namespace) -> None:
    """Make sure the bundled sample has an index and a finished example run (what `make run` opens)."""

    dataset = load_dataset(SAMPLE_DIR)
    store = store_from(args)
    bar = ProgressBar("sample index")
    try:
        manifest = store.build(dataset, "sample", "e5-small", ChunkingParams(400, 40), replace=True, progress=bar)
    finally:
        bar.close()
    runs = run_store_from(args)
    if any(m.status == "complete" and m.index.input_key == manifest.input_key for m in runs.manifests()):
        print(f"sample index and example run are ready in {args.home}")
        return
    configs = parse_sweep(DEFAULT_SWEEP, "default sweep")
    run_id = run_sweep(
        runs,
        store.open("sample"),
        configs,
        dataset.questions,
        str(SAMPLE_DIR / "questions.jsonl"),
        SweepOptions(latency_sample=20),
    )
    print(f"sample index and example run {run_id} are ready in {args.home}")
