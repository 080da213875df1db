"""How good are generated questions and LLM judgements? Measured on a shared set with gold labels.

    .venv/bin/python benchmarks/bench_labels.py --dataset squad11_dev_en --llm bundled:smollm2
    .venv/bin/python benchmarks/bench_labels.py --dataset cmrc2018_dev_zh --llm stub

`--llm stub` is the endpoint stand-in: the OpenAI-compatible test server answering by the rules of
`tests/support/lab_llm_responder.py` (a competent model's behaviour, by rule). Any `--llm` spec works (an
`openai:MODEL@URL` endpoint, a model folder).

On the first `--docs` documents of the set and their gold questions (the first `--questions`):
(a) generation: `--generate` questions from an index of those documents; prints the share of attempts that
    pass the filters (with the rejection reasons), and the share of kept questions whose source document a
    plain similarity retriever (k=1) ranks first;
(b) judging: a two-config sweep (similarity k=5, mmr k=5) over the gold questions, its pool (depth 5) judged
    by the LLM; prints the linearly weighted kappa of the judge against gold and the confusion matrix.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "datasets"


def write_subset(dataset_dir: Path, docs: int, questions: int, out: Path):
    """The first `docs` documents and up to `questions` of their gold questions, as a native question set."""
    from eval.data.datasets import load_dataset

    dataset = load_dataset(dataset_dir)
    corpus = dataset.corpus[:docs]
    ids = {d.id for d in corpus}
    chosen = [q for q in dataset.questions if set(q.relevant_ids) <= ids][:questions]
    out.mkdir(parents=True)
    (out / "corpus.jsonl").write_text(
        "".join(json.dumps({"id": d.id, "text": d.text, "title": d.title}, ensure_ascii=False) + "\n" for d in corpus)
    )
    (out / "questions.jsonl").write_text(
        "".join(
            json.dumps(
                {"id": q.id, "question": q.question, "answers": list(q.answers), "relevant_ids": list(q.relevant_ids)},
                ensure_ascii=False,
            )
            + "\n"
            for q in chosen
        )
    )
    return load_dataset(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="squad11_dev_en", help="a folder of ../shared/datasets")
    parser.add_argument("--llm", default="bundled:smollm2", help="a model spec, or 'stub'")
    parser.add_argument("--docs", type=int, default=40)
    parser.add_argument("--questions", type=int, default=30)
    parser.add_argument("--generate", type=int, default=30)
    parser.add_argument("--embedding", help="default: minilm for English, e5-small for Chinese")
    args = parser.parse_args()
    source = SHARED / args.dataset
    if not source.is_dir():
        sys.exit(f"skipped: {source} is absent")

    from eval.data.labels import load_labels
    from eval.generation.generators import load_generator
    from eval.index.chunking import ChunkingParams
    from eval.index.store import IndexStore
    from eval.labels.agreement import agreement
    from eval.labels.pooled_judging import judge_run, pool
    from eval.labels.question_generation import generate_questions
    from eval.retrievers.registry import langchain_retrieve, parse_sweep
    from eval.retrievers.vector import RetrieverConfig
    from eval.runs.store import RunStore
    from eval.sweep.engine import SweepOptions, run_sweep
    from eval.text import detect_language

    with ExitStack() as stack:
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-labels-")))
        if args.llm == "stub":
            sys.path.insert(0, str(ROOT / "tests"))
            from support.lab_llm_responder import respond
            from support.openai_stub_server import OpenAIStubServer

            server = stack.enter_context(OpenAIStubServer(responder=respond))
            spec = f"openai:stub@{server.base_url}"
        else:
            spec = args.llm
        dataset = write_subset(source, args.docs, args.questions, work / "data")
        language = detect_language(dataset.corpus[0].text)
        embedding = args.embedding or ("e5-small" if language == "zh" else "minilm")
        store = IndexStore(work / "indexes")
        store.build(dataset, "bench", embedding, ChunkingParams(400, 40))
        index = store.open("bench")
        generator = load_generator(spec, home=ROOT / ".retriever_lab")
        print(
            f"{args.dataset}: {len(dataset.corpus)} documents, {len(dataset.questions)} gold questions, "
            f"{index.manifest.chunks} chunks ({embedding}); LLM {args.llm}"
        )

        started = time.perf_counter()
        report = generate_questions(index, generator, args.generate, work / "generated", seed=0)
        seconds = time.perf_counter() - started
        records = [json.loads(line) for line in (work / "generated" / "questions.jsonl").read_text().splitlines()]
        first = [
            langchain_retrieve(index, RetrieverConfig.create("similarity", k=1), r["question"])[0].doc_id
            == r["source_chunk"].split("#")[0]
            for r in records
        ]
        print(
            f"(a) generation: {report.summary()} in {seconds:.0f} s; pass rate "
            f"{report.kept / max(report.attempts, 1):.1%}; source document ranked first for "
            f"{sum(first)}/{len(first)} ({sum(first) / max(len(first), 1):.1%}) of the kept questions"
        )

        runs = RunStore(work / "runs")
        sweep = parse_sweep(
            {
                "configs": [
                    {"search_type": "similarity", "k": [5]},
                    {"search_type": "mmr", "k": [5], "fetch_k": [20], "lambda_mult": [0.5]},
                ]
            }
        )
        run = runs.load(
            run_sweep(
                runs,
                index,
                sweep,
                dataset.questions,
                str(work / "data" / "questions.jsonl"),
                SweepOptions(latency_sample=0),
            )
        )
        started = time.perf_counter()
        judged = judge_run(run, generator, work, depth=5)
        seconds = time.perf_counter() - started
        print(f"(b) judging: {judged.summary()} in {seconds:.0f} s")
        for failure in judged.failures[:3]:
            print(f"    failed: {failure['reason']}")
        if judged.judged + judged.cached == 0:
            print("    judge vs gold: no judgement to compare (every reply failed)")
            return
        result = agreement(load_labels(work / "data"), "gold", judged.source, pool(run, 5))
        print(f"    judge vs gold: {result.summary()}")
        print(result.confusion.to_string())


if __name__ == "__main__":
    main()
