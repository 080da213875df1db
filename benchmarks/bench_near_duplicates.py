"""Where to set the near-duplicate threshold of `questions import`: the cosine between a real question and a light
rewrite of it (what a log repeats) against the cosine between a question and the closest *other* question of the
same set (what must stay apart), on SQuAD (English) and CMRC 2018 (Chinese) questions from ../shared/datasets, per
encoder; and, for reference, between the Chinese and English versions of the same XQuAD question.

    .venv/bin/python benchmarks/bench_near_duplicates.py [--n 600] [--encoders e5-small minilm onnx-int8:e5-small]

Rewrites are the ones users make and `normalise` does not undo (deterministic, one per question): a polite
prefix ("Can you tell me ...", "请问"), a typo (two letters swapped), a contraction or a dropped article, "呢" or
"啥". For each threshold it prints the share of rewrites merged (want high) and the share of questions whose
closest other question would be merged (want low: those are different questions, e.g. "...the AFC at Super
Bowl 50?" vs "...the NFC ..."), and the closest distinct pairs, so the cost of a threshold can be read.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from eval.data.question_import import normalise
from eval.index.encoders import get_embeddings

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "datasets"
THRESHOLDS = (0.85, 0.88, 0.9, 0.92, 0.93, 0.94, 0.95, 0.96, 0.97, 0.98)


def questions(path: Path, n: int) -> list[str]:
    texts = [json.loads(line)["question"].strip() for line in path.read_text(encoding="utf-8").splitlines()]
    picked = np.random.default_rng(0).choice(len(texts), size=min(n, len(texts)), replace=False)
    return [texts[i] for i in sorted(picked)]


def rewrite_en(text: str, i: int) -> str:
    words = text.split()
    kind = i % 4
    if kind == 1:
        longest = max(range(len(words)), key=lambda j: len(words[j]))
        word = words[longest]
        if len(word) >= 4:
            words[longest] = word[0] + word[2] + word[1] + word[3:]
            return " ".join(words)
    if kind == 2:
        for full, short in (("What is ", "What's "), ("Who is ", "Who's "), ("Where is ", "Where's ")):
            if text.startswith(full):
                return short + text[len(full) :]
    if kind == 3 and " the " in text:
        return text.replace(" the ", " ", 1)
    return "Can you tell me " + text[0].lower() + text[1:]


def rewrite_zh(text: str, i: int) -> str:
    kind = i % 4
    if kind == 1 and text.endswith(("？", "?")):
        return text[:-1] + "呢？"
    if kind == 2 and "什么" in text:
        return text.replace("什么", "啥", 1)
    if kind == 3 and "的" in text[1:-1]:
        at = text.index("的", 1)
        return text[:at] + text[at + 1 :]
    return "请问" + text


def closest_other(vectors: np.ndarray, keys: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Each question's highest cosine to a question with another normalised text, and which one."""
    sims = vectors @ vectors.T
    same = np.array(keys)[:, None] == np.array(keys)[None, :]
    sims[same] = -1
    best = sims.argmax(axis=1)
    return sims[np.arange(len(sims)), best], best


def measure(encoder: str, sets: dict[str, tuple[list[str], list[str]]], pairs: tuple[list[str], list[str]]) -> None:
    model = get_embeddings(encoder)
    model.embed_array(["warm up"], is_query=True)
    for name, (texts, rewrites) in sets.items():
        started = time.perf_counter()
        vectors = model.embed_array(texts, is_query=True)
        rewritten = model.embed_array(rewrites, is_query=True)
        seconds = time.perf_counter() - started
        kept = [i for i in range(len(texts)) if normalise(texts[i]) != normalise(rewrites[i])]
        rewrite_cos = np.sum(vectors[kept] * rewritten[kept], axis=1)
        other_cos, other = closest_other(vectors, [normalise(t) for t in texts])
        print(
            f"\n{encoder} on {name}: {len(texts)} questions, {len(kept)} rewrites "
            f"({2 * len(texts) / seconds:.0f} questions/s)"
        )
        print(f"  rewrite cosine: 5th pct {np.percentile(rewrite_cos, 5):.3f}, median {np.median(rewrite_cos):.3f}")
        print(
            f"  closest other question: median {np.median(other_cos):.3f}, 99th pct {np.percentile(other_cos, 99):.3f}"
        )
        print("  threshold  rewrites merged  questions with another question merged")
        for t in THRESHOLDS:
            print(f"  {t:9.2f}  {np.mean(rewrite_cos >= t):15.3f}  {np.mean(other_cos >= t):8.3f}")
        for i in np.argsort(-other_cos)[:3]:
            print(f"  closest distinct pair {other_cos[i]:.3f}: {texts[i]!r} / {texts[other[i]]!r}")
    zh, en = pairs
    cos = np.sum(model.embed_array(zh, is_query=True) * model.embed_array(en, is_query=True), axis=1)
    print(
        f"  XQuAD zh vs en of the same question ({len(zh)}): median {np.median(cos):.3f}, 5th pct "
        f"{np.percentile(cos, 5):.3f}, share >= 0.95: {np.mean(cos >= 0.95):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=600, help="questions per language")
    parser.add_argument("--encoders", nargs="+", default=["e5-small", "minilm", "onnx-int8:e5-small"])
    args = parser.parse_args()
    if not SHARED.is_dir():
        sys.exit(f"{SHARED} is absent: this benchmark reads the shared datasets")
    flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    shown = [f for f in ("avx2", "avx512f", "avx512_vnni", "amx_bf16") if f in flags]
    print(f"host: {platform.machine()}, CPU flags {', '.join(shown)}, load average {os.getloadavg()[0]:.2f}")
    en = questions(SHARED / "squad11_dev_en" / "questions.jsonl", args.n)
    zh = questions(SHARED / "cmrc2018_dev_zh" / "questions.jsonl", args.n)
    sets = {
        "SQuAD (en)": (en, [rewrite_en(t, i) for i, t in enumerate(en)]),
        "CMRC 2018 (zh)": (zh, [rewrite_zh(t, i) for i, t in enumerate(zh)]),
    }
    xquad = SHARED / "xquad_zh_en"
    by_id = [
        {json.loads(line)["id"]: json.loads(line)["question"] for line in (xquad / f"questions_{lang}.jsonl").open()}
        for lang in ("zh", "en")
    ]
    ids = sorted(by_id[0].keys() & by_id[1].keys())[: args.n // 2]
    for encoder in args.encoders:
        measure(encoder, sets, ([by_id[0][i] for i in ids], [by_id[1][i] for i in ids]))


if __name__ == "__main__":
    main()
