"""How sure, on a shared set with gold labels (../shared/datasets: XQuAD en/zh, SQuAD 1.1 dev, CMRC 2018 dev):
racing's rows saved and its choice against the full sweep's confidence set, the planner against resampling the
run's own paired differences, and the guaranteed score_threshold's coverage on held-out questions over random
splits (the held-out guarantee, and the population bound alone for comparison).

    .venv/bin/python benchmarks/bench_how_sure.py [--set xquad-en] [--passages 300] [--questions 200] [--splits 200]

Builds an e5-small index of the corpus (or of `--passages` seeded passages of it and their questions) in a
temporary folder (the default 11-config grid; racing in blocks of 20).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from eval.analysis.calibration import score_calibration
from eval.analysis.confidence import confidence_set
from eval.analysis.plan import plan
from eval.analysis.racing import race_rule, rows_saved
from eval.analysis.recommend import recommend
from eval.analysis.threshold import guaranteed_threshold
from eval.data.datasets import load_dataset
from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.store import IndexStore
from eval.metrics.statistics import _sign_flip_pvalues
from eval.retrievers.registry import DEFAULT_SWEEP, parse_sweep
from eval.runs.store import Run, RunStore
from eval.runs.summary import summarize
from eval.sweep.engine import SweepOptions, run_sweep

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "datasets"
SETS = {  # name: (folder, language)
    "xquad-en": ("xquad_zh_en", "en"),
    "xquad-zh": ("xquad_zh_en", "zh"),
    "squad": ("squad11_dev_en", None),
    "cmrc": ("cmrc2018_dev_zh", None),
}
CACHE = ROOT / ".retriever_lab" / "bench-embedding-cache"  # the corpus is encoded once per checkout


def racing(runs: RunStore, index, questions: list, block: int) -> Run:
    configs = parse_sweep(DEFAULT_SWEEP, "default sweep")
    start = time.perf_counter()
    full = runs.load(run_sweep(runs, index, configs, questions, "bench", SweepOptions(latency_sample=0)))
    full_s = time.perf_counter() - start
    start = time.perf_counter()
    options = SweepOptions(latency_sample=0, block_size=block, contenders=race_rule(len(questions), block))
    raced = runs.load(run_sweep(runs, index, configs, questions, "bench", options))
    raced_s = time.perf_counter() - start
    saved, total, stopped = rows_saved(raced)
    full_choice = recommend(full, summarize(full)).config_id
    raced_choice = recommend(raced, summarize(raced)).config_id
    full_set = confidence_set(full.rows, [c.config_id for c in configs], "ndcg").members
    print(
        f"racing: {saved} of {total} rows saved ({saved / total:.0%}); stopped {len(stopped)} of {len(configs)}; "
        f"full {full_s:.1f} s, raced {raced_s:.1f} s"
    )
    print(
        f"  full choice {full_choice}, raced choice {raced_choice}; in the full set ({len(full_set)} configs): "
        f"{raced_choice in full_set}"
    )
    return full


def planner(run, rng: np.random.Generator, repetitions: int = 1000) -> None:
    """Per config: the questions the planner needs to detect the config's own observed difference to the leader,
    and the power of the randomization test on that many questions resampled from the run's paired differences."""
    wide = run.rows.pivot(index="question_id", columns="config_id", values="ndcg")
    leader = plan(run)["leader"]
    for config_id in wide.columns.drop(leader):
        diffs = (wide[leader] - wide[config_id]).dropna().to_numpy()
        if diffs.mean() <= 0:
            continue
        row = next(r for r in plan(run, float(diffs.mean()))["configs"] if r["config_id"] == config_id)
        n = row["questions_needed"]
        sample = rng.choice(diffs, size=(n, repetitions))
        power = float(np.mean(_sign_flip_pvalues(sample, 2000, 0) < 0.05))
        print(
            f"planner: {config_id} difference {diffs.mean():.4f} sd {row['sd']:.3f}: {n} questions, simulated "
            f"power {power:.3f} (target 0.80); detectable with {row['questions']}: {row['detectable_delta']:.3f}"
        )


def coverage(candidates, splits: int, target: float) -> None:
    """Fit on a random half of the questions, check the other half's realised precision at the threshold: the
    held-out guarantee (as many new questions as judged, the default) and the population bound alone."""
    ids = candidates["question_id"].unique()
    for rule, held_out in (("held-out guarantee", None), ("population bound", math.inf)):
        held, found, thresholds, kept_share = 0, 0, [], []
        for split in range(splits):
            chosen = np.random.default_rng(split).permutation(ids)[: len(ids) // 2]  # the same halves for both
            fit = candidates["question_id"].isin(chosen)
            result = guaranteed_threshold(candidates[fit], target, held_out=held_out)
            if result["threshold"] is None:
                continue
            found += 1
            thresholds.append(result["threshold"])
            kept = candidates[~fit & (candidates["score"] >= result["threshold"])]
            kept_share.append(len(kept) / (~fit).sum())
            held += kept["relevant"].mean() >= target
        median = np.median(thresholds) if thresholds else math.nan
        print(
            f"threshold ({rule}): target precision {target}, {len(ids)} questions x 20 candidates, {splits} random "
            f"halves: a threshold in {found}; held-out precision >= target in {held} of {found} "
            f"({held / max(found, 1):.1%}); the promise broken in {found - held} of {splits} splits "
            f"({(found - held) / splits:.1%}; no threshold promises nothing); median threshold {median:.3f}, "
            f"keeping {np.median(kept_share) if kept_share else 0:.1%} of the held-out candidates"
        )


def subset(dataset, passages: int | None, rng: np.random.Generator):
    """`passages` seeded passages of the corpus and the questions whose relevant passages are all among them."""
    if passages is None or passages >= len(dataset.corpus):
        return dataset
    corpus = [dataset.corpus[i] for i in sorted(rng.choice(len(dataset.corpus), passages, replace=False))]
    kept = {d.id for d in corpus}
    questions = [q for q in dataset.questions if q.relevant_ids and set(q.relevant_ids) <= kept]
    return replace(dataset, corpus=corpus, questions=questions)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--set", default="xquad-en", choices=list(SETS))
    parser.add_argument("--passages", type=int, help="index this many seeded passages (default: the whole corpus)")
    parser.add_argument("--questions", type=int, default=200)
    parser.add_argument("--splits", type=int, default=200)
    parser.add_argument("--block", type=int, default=20)
    parser.add_argument("--threshold-only", action="store_true", help="only the threshold coverage")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    folder, language = SETS[args.set]
    dataset = subset(load_dataset(DATA / folder, language=language), args.passages, rng)
    questions = list(rng.permutation(np.array(dataset.questions, dtype=object))[: args.questions])
    with tempfile.TemporaryDirectory() as home:
        store = IndexStore(Path(home) / "indexes", embedding_cache=EmbeddingCache(CACHE))
        start = time.perf_counter()
        store.build(dataset, "bench", "e5-small", ChunkingParams(500, 50))
        index = store.open("bench")
        print(
            f"{args.set}: {len(dataset.corpus)} documents, {len(questions)} questions, index "
            f"{time.perf_counter() - start:.1f} s"
        )
        if not args.threshold_only:
            planner(racing(RunStore(Path(home) / "runs"), index, questions, args.block), rng)
        candidates = score_calibration(index, questions, sample=len(questions), top_n=20)
        for target in (0.5, 0.8):
            coverage(candidates, args.splits, target)


if __name__ == "__main__":
    main()
