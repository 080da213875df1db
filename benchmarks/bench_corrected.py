"""Do a biased judge's intervals, corrected by a random human sample, cover the all-gold value? (issue 22, §4)

    .venv/bin/python benchmarks/bench_corrected.py [--sets cmrc squad] [--samples 200] [--human 60]

On 300-question runs of 11-12 configs (vector, MMR, BM25, hybrid) of shared sets with gold, gold plays the
person and the project's rule-based judge stand-in (`tests/lab_llm_responder.py`: grades by the share of the
question's words in the passage, so it favours lexical matches) grades the whole pool (depth 10). For each of
`--samples` uniformly random samples of `--human` questions, every config's nDCG is estimated three ways:
the judge alone (its mean with a 95% interval over questions), and corrected by the sample
(`eval.labels.corrected`). Printed: how often each interval covers the all-gold nDCG of the run's questions,
how often the corrected paired difference to the leader covers the all-gold difference, the mean interval
widths, and the judge's bias.

Runs are reused from `~/.cache/retriever-lab-bench/decide/<set>/runs-300` (the decide benchmark's); a set
without one is run once here (its first 300 questions in a seeded shuffle, on that cache's index) into
`~/.cache/retriever-lab-bench/corrected/<set>/runs-300`.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
SHARED = ROOT.parent / "shared" / "datasets"
CACHE = Path.home() / ".cache" / "retriever-lab-bench"
SETS = {"cmrc": "cmrc2018_dev_zh", "squad": "squad11_dev_en"}
JUDGE = "llm:rule-stand-in@judge-v1"
METRIC = "ndcg"


def run_of(name: str):
    """The set's 300-question run: the decide benchmark's, else one made here once."""
    from eval.runs.store import RunStore

    for folder in (CACHE / "decide" / name / "runs-300", CACHE / "corrected" / name / "runs-300"):
        store = RunStore(folder)
        finished = [r["run_id"] for r in store.list() if r.get("status") == "complete"] if folder.is_dir() else []
        if finished:
            return store.load(finished[0])
    return make_run(name, RunStore(CACHE / "corrected" / name / "runs-300"))


def make_run(name: str, store):
    """300 seeded-random questions of the set through the decide benchmark's grid (without its imported config)."""
    import json

    from eval.data.datasets import load_dataset
    from eval.index.store import IndexStore
    from eval.retrievers.registry import parse_sweep
    from eval.settings import ONNX_MODELS_ENV
    from eval.sweep.engine import SweepOptions, run_sweep

    os.environ.setdefault(ONNX_MODELS_ENV, str(CACHE / "onnx"))
    decide_runs = CACHE / "decide" / name / "runs"
    manifest = json.loads(next(decide_runs.glob("*/manifest.json")).read_text())
    configs = [
        {key: value for key, value in c.items() if key != "config_id"}
        for c in manifest["sweep"]["configs"]
        if c["search_type"] != "imported"
    ]
    questions = load_dataset(SHARED / SETS[name]).questions
    chosen = random.Random(0).sample(questions, 300)
    index = IndexStore(CACHE / "decide" / name / "indexes").open(name)
    run_id = run_sweep(
        store,
        index,
        parse_sweep({"configs": configs}),
        chosen,
        str(SHARED / SETS[name]),
        SweepOptions(latency_sample=0),
    )
    return store.load(run_id)


def judged_labels(run, name: str):
    """Gold (the set's own labels) and the rule-based judge's grades of the run's whole pool (depth 10)."""
    from lab_llm_responder import judge

    from eval.data.labels import Judgement, Labels, load_labels
    from eval.labels.pooled_judging import TEMPLATES, pool, resolve_overlaps
    from eval.text import detect_language

    questions = run.questions_by_id
    by_document: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for item in pool(run, 10):
        text = questions[item.question_id].question
        prompt = TEMPLATES[detect_language(text)].format(question=text, chunk=item.text)
        by_document.setdefault((item.question_id, item.doc_id), []).append((item.start, item.end, judge(prompt)))
    spans = [
        Judgement(q, d, start, end, grade, JUDGE)
        for (q, d), chunks in by_document.items()
        for start, end, grade in resolve_overlaps(chunks)
    ]
    return Labels(load_labels(SHARED / SETS[name]).judgements + tuple(spans))


def measure(name: str, samples: int, human: int, seed: int) -> dict:
    from eval.labels.rescore import rescore

    started = time.perf_counter()
    run = run_of(name)
    labels = judged_labels(run, name)
    judge_rows, gold_rows = rescore(run, labels, JUDGE, [METRIC]), rescore(run, labels, "gold", [METRIC])
    truth = gold_rows.groupby("config_id")[METRIC].mean()
    question_ids = sorted(run.rows["question_id"].unique())
    rng = random.Random(seed)
    samples_drawn = [rng.sample(question_ids, human) for _ in range(samples)]
    result = {"set": name, "questions": len(question_ids), "configs": len(truth)}
    for label, weight in (("PPI", 1.0), ("PPI++ tuned", None)):
        result |= {
            f"{key} ({label})": value
            for key, value in coverage(judge_rows, gold_rows, truth, samples_drawn, weight).items()
        }
    judge_means = judge_rows.groupby("config_id")[METRIC].mean()
    return result | {
        "judge bias (mean |judge - gold|)": float((judge_means - truth).abs().mean()),
        "gold best": str(truth.idxmax()),
        "judge best": str(judge_means.idxmax()),
        "seconds": round(time.perf_counter() - started, 1),
    }


def coverage(judge_rows, gold_rows, truth, samples: list[list[str]], weight: float | None) -> dict:
    """Coverage of the all-gold values by the corrected and the judge's intervals over the samples."""
    from eval.labels.corrected import corrected_table

    counts = dict.fromkeys(("corrected", "judge", "diff", "intervals", "diffs", "leader"), 0)
    widths, judge_widths = [], []
    for sample in samples:
        result = corrected_table(judge_rows, gold_rows, METRIC, sample, weight=weight)
        table = result.table.set_index("config_id").loc[truth.index]
        counts["corrected"] += int(((table["low"] <= truth) & (truth <= table["high"])).sum())
        counts["judge"] += int(((table["judge_low"] <= truth) & (truth <= table["judge_high"])).sum())
        others = table.index != result.leader
        true_diff = truth - truth[result.leader]
        inside = (table["diff_low"] <= true_diff) & (true_diff <= table["diff_high"])
        counts["diff"] += int(inside[others].sum())
        counts["intervals"] += len(truth)
        counts["diffs"] += int(others.sum())
        counts["leader"] += int(truth[result.leader] >= truth.max() - 0.02)
        widths.append(float((table["high"] - table["low"]).mean()))
        judge_widths.append(float((table["judge_high"] - table["judge_low"]).mean()))
    return {
        "coverage corrected": counts["corrected"] / counts["intervals"],
        "coverage judge alone": counts["judge"] / counts["intervals"],
        "coverage of differences to the leader": counts["diff"] / counts["diffs"],
        "mean width corrected": float(np.mean(widths)),
        "mean width judge alone": float(np.mean(judge_widths)),
        "corrected leader within 0.02 of the gold best": counts["leader"] / len(samples),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--human", type=int, default=60, help="questions the person grades in each sample")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(f"host: {platform.processor() or platform.machine()}, {os.cpu_count()} cores")
    for name in args.sets:
        for key, value in measure(name, args.samples, args.human, args.seed).items():
            print(f"{key}: {value:.3f}" if isinstance(value, float) else f"{key}: {value}")
        print()


if __name__ == "__main__":
    main()
