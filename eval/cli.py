"""The headless CLI: `python -m eval ...`. Bad input exits with code 2 and a one-line message."""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

from eval.errors import LabError

SAMPLE_DIR = Path(__file__).resolve().parent.parent / "datasets" / "sample"


def default_home() -> Path:
    return Path(os.environ.get("RETRIEVER_LAB_HOME", ".retriever_lab"))


class ProgressBar:
    """A tqdm bar on stderr driven by (done, total) callbacks."""

    def __init__(self, description: str) -> None:
        self.description, self.bar = description, None

    def __call__(self, *args: Any) -> None:
        done, total = args[-2], args[-1]
        if self.bar is None:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=self.description, unit="item", file=sys.stderr, leave=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# ---------------------------------------------------------------- commands

def store_from(args: argparse.Namespace):
    from eval.index import IndexStore

    if (args.chroma_host is None) != (args.chroma_port is None):
        raise LabError("give both --chroma-host and --chroma-port to use a Chroma server")
    return IndexStore(args.indexes or args.home / "indexes", args.chroma_host, args.chroma_port)


def cmd_index_build(args: argparse.Namespace) -> None:
    from eval.datasets import load_dataset
    from eval.index import ChunkingParams, slugify

    slugify(args.name)
    chunking = ChunkingParams(args.chunk_size, args.chunk_overlap)
    dataset = load_dataset(args.corpus, args.format, args.language)
    bar = ProgressBar(f"building {args.name}")
    try:
        manifest = store_from(args).build(dataset, args.name, args.embedding, chunking, args.replace, bar)
    finally:
        bar.close()
    print(f"index '{manifest.name}': {manifest.documents} documents, {manifest.chunks} chunks, "
          f"{manifest.embedding_model}, {manifest.space} space, built in {manifest.build_seconds:.1f} s")


def cmd_index_list(args: argparse.Namespace) -> None:
    manifests = store_from(args).list()
    if not manifests:
        print("no indexes yet: build one with `python -m eval index build --corpus PATH --name NAME`")
    for m in manifests:
        print(f"{m.name}\t{m.documents} docs\t{m.chunks} chunks\t{m.embedding_model}\t"
              f"chunk {m.chunk_size}/{m.chunk_overlap}\t{m.created_at}")


def cmd_index_show(args: argparse.Namespace) -> None:
    print(store_from(args).manifest(args.name).to_json())


def cmd_index_delete(args: argparse.Namespace) -> None:
    store_from(args).delete(args.name)
    print(f"deleted index '{args.name}'")


def cmd_retrieve(args: argparse.Namespace) -> None:
    from eval.config import RetrieverConfig
    from eval.retrieval import langchain_retrieve

    config = RetrieverConfig.create(args.search_type, k=args.k, fetch_k=args.fetch_k, lambda_mult=args.lambda_mult,
                                    score_threshold=args.score_threshold, filter=_json_arg(args.filter, "--filter"))
    chunks = langchain_retrieve(store_from(args).open(args.index), config, args.question)
    print(f"{config.config_id}: {len(chunks)} chunks")
    for rank, chunk in enumerate(chunks, start=1):
        text = " ".join(chunk.text.split())
        print(f"{rank:>2}. {chunk.score:.4f}  {chunk.chunk_id}  {text[:160]}")


def _json_arg(value: str | None, option: str) -> Any:
    if value is None:
        return None
    try:
        return json.loads(value)
    except json.JSONDecodeError as error:
        raise LabError(f"{option} must be JSON, e.g. '{{\"lang\": \"zh\"}}' ({error.msg})") from None


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eval", description="Retriever Lab: compare retriever configs.")
    parser.add_argument("--home", type=Path, default=default_home(),
                        help="data folder (indexes, runs, model cache); env RETRIEVER_LAB_HOME")
    parser.add_argument("--indexes", type=Path, help="indexes folder (default HOME/indexes)")
    parser.add_argument("--chroma-host", help="use a Chroma server instead of local folders")
    parser.add_argument("--chroma-port", type=int)
    commands = parser.add_subparsers(dest="command", required=True)

    index = commands.add_parser("index", help="build, list, show or delete indexes")
    index_commands = index.add_subparsers(dest="index_command", required=True)
    build = index_commands.add_parser("build", help="chunk, embed and store a corpus")
    build.add_argument("--corpus", required=True, type=Path, help="dataset folder, corpus.jsonl, SQuAD .json, "
                       "BEIR folder, or .txt/.md/.pdf files")
    build.add_argument("--name", required=True)
    build.add_argument("--format", default="auto", choices=["auto", "native", "squad", "beir", "docs"])
    build.add_argument("--language", help="pick corpus_LANG.jsonl in a folder with several")
    build.add_argument("--embedding", default="e5-small", help="minilm, e5-small, or a sentence-transformers path")
    build.add_argument("--chunk-size", type=int, default=500)
    build.add_argument("--chunk-overlap", type=int, default=50)
    build.add_argument("--replace", action="store_true", help="replace an index of that name built from other inputs")
    build.set_defaults(handler=cmd_index_build)
    index_commands.add_parser("list").set_defaults(handler=cmd_index_list)
    for name, handler in (("show", cmd_index_show), ("delete", cmd_index_delete)):
        sub = index_commands.add_parser(name)
        sub.add_argument("name")
        sub.set_defaults(handler=handler)

    retrieve = commands.add_parser("retrieve", help="run one question through the LangChain retriever")
    retrieve.add_argument("--index", required=True)
    retrieve.add_argument("--question", required=True)
    retrieve.add_argument("--search-type", default="similarity")
    retrieve.add_argument("--k", type=int, default=4)
    retrieve.add_argument("--fetch-k", type=int)
    retrieve.add_argument("--lambda-mult", type=float)
    retrieve.add_argument("--score-threshold", type=float)
    retrieve.add_argument("--filter", help="metadata filter as JSON")
    retrieve.set_defaults(handler=cmd_retrieve)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler: Callable[[argparse.Namespace], None] = args.handler
    try:
        handler(args)
    except LabError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0
