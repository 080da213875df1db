"""Tests for eval.metrics: hand-worked examples, agreement with ranx (cutoffs, graded) and ragas, the catalogue,
aggregates."""

import itertools
import math
import socket

import numpy as np
import pandas as pd
import pytest

from eval.metrics import (
    ANSWER_METRIC_KEYS,
    DIVERSITY_METRIC_KEYS,
    DOC_METRIC_KEYS,
    METRICS,
    RAGAS_METRIC_KEYS,
    RANKING,
    Catalogue,
    aggregate,
    answer_metric_columns,
    answer_metrics,
    bootstrap_ci,
    diversity_metric_columns,
    diversity_metrics,
    doc_metric_columns,
    doc_metrics,
    normalize_text,
    paired_differences,
    paired_test,
    parse_metric,
    ragas_context_metrics,
)

INV_LOG2_3 = 1 / math.log2(3)


# --- document-level relevance ---


def test_doc_metrics_hand_worked_with_repeated_chunks():
    # documents at first rank: d1 (no), d3 (yes), d2 (yes); the second d1 chunk is dropped
    m = doc_metrics(["d1", "d3", "d1", "d2"], {"d2", "d3"})
    assert list(m) == list(DOC_METRIC_KEYS)
    assert m["hit_rate"] == 1.0
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == 1.0
    assert m["mrr"] == 0.5
    assert m["ndcg"] == pytest.approx((INV_LOG2_3 + 1 / 2) / (1 + INV_LOG2_3))
    assert m["map"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert all(type(v) is float for v in m.values())


def test_ideal_dcg_counts_every_relevant_document():
    # one relevant of two retrieved at rank 1: the ideal ranking would also have d2 at rank 2
    m = doc_metrics(["d1"], ["d1", "d2"])
    assert m["ndcg"] == pytest.approx(1 / (1 + INV_LOG2_3))
    assert m["map"] == 0.5
    assert (m["precision"], m["recall"], m["mrr"]) == (1.0, 0.5, 1.0)


def test_repeated_chunks_do_not_push_later_documents_down():
    m = doc_metrics(["d2", "d2", "d2", "d1"], {"d1"})
    assert m["mrr"] == 0.5
    assert m["precision"] == 0.5
    assert m["ndcg"] == pytest.approx(INV_LOG2_3)


def test_empty_list_scores_zero_and_missing_qrels_give_nan():
    assert doc_metrics([], {"d1"}) == dict.fromkeys(DOC_METRIC_KEYS, 0.0)
    assert all(math.isnan(v) for v in doc_metrics(["d1"], set()).values())
    assert all(math.isnan(v) for v in doc_metrics([], []).values())


def test_graded_relevance_hand_worked():
    # documents d1 (grade 2), d2 (0: judged, not relevant), d3 (1); d4 (2) is never retrieved
    grades = {"d1": 2, "d2": 0, "d3": 1, "d4": 2}
    m = doc_metrics(["d2", "d1", "d3"], grades, ["precision", "recall", "mrr", "ndcg", "map", "ndcg@2"])
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["mrr"] == 0.5 and m["map"] == pytest.approx((1 / 2 + 2 / 3) / 3)
    ideal = 2 + 2 * INV_LOG2_3 + 1 / 2
    assert m["ndcg"] == pytest.approx((2 * INV_LOG2_3 + 1 / 2) / ideal)
    assert m["ndcg@2"] == pytest.approx(2 * INV_LOG2_3 / (2 + 2 * INV_LOG2_3))
    # grades 1 give the binary numbers; only grade-0 judgements: nothing relevant, NaN
    assert doc_metrics(["d2", "d1"], {"d1": 1, "d2": 0}) == doc_metrics(["d2", "d1"], {"d1"})
    assert all(math.isnan(v) for v in doc_metrics(["d2"], {"d2": 0}).values())


def test_cutoffs_hand_worked():
    m = doc_metrics(
        ["d1", "d3", "d1", "d2"],
        {"d2", "d3"},
        ["hit_rate@1", "precision@1", "precision@5", "recall@2", "mrr@1", "map@2", "ndcg@1"],
    )
    assert m == {
        "hit_rate@1": 0.0,
        "precision@1": 0.0,
        "precision@5": pytest.approx(2 / 5),
        "recall@2": 0.5,
        "mrr@1": 0.0,
        "map@2": pytest.approx(1 / 4),
        "ndcg@1": 0.0,
    }
    for bad in ("ndcg@0", "ndcg@", "ndcg@x", "nope@3", "ild"):
        with pytest.raises(ValueError):
            doc_metrics(["d1"], {"d1"}, [bad])


def _random_queries(n_queries: int, seed: int, graded: bool):
    """Rankings with repeated documents (and some empty ones) and qrels: ids, or grades 0/1/2 with at
    least one relevant document (a question without one is NaN for us and 0 for ranx)."""
    rng = np.random.default_rng(seed)
    pool = [f"d{i}" for i in range(25)]
    queries = []
    for q in range(n_queries):
        judged = list(rng.choice(pool, size=rng.integers(1, 8), replace=False))
        if graded:
            qrels = {d: int(g) for d, g in zip(judged, rng.integers(0, 3, len(judged)))}
            qrels[judged[0]] = int(rng.integers(1, 3))
        else:
            qrels = dict.fromkeys(judged, 1)
        chunks = list(rng.choice(pool, size=rng.integers(0, 14), replace=True))
        queries.append((f"q{q}", chunks, qrels))
    return queries


@pytest.mark.filterwarnings("ignore::Warning")
@pytest.mark.parametrize("graded", [False, True], ids=["binary", "graded"])
def test_doc_metrics_agree_with_ranx(graded):
    from ranx import Qrels, Run, evaluate

    queries = _random_queries(400, seed=7 if not graded else 8, graded=graded)
    runs = {}
    for q, chunks, _ in queries:
        docs = list(dict.fromkeys(chunks))  # deduplicated, scores strictly decreasing with rank
        if docs:
            runs[q] = {doc: float(len(docs) - i) for i, doc in enumerate(docs)}
    assert len(runs) < len(queries), "the sample should include empty retrieved lists"
    metrics = [f"{m}{cut}" for m in DOC_METRIC_KEYS for cut in ("", "@1", "@3", "@5", "@10")]
    theirs = evaluate(
        Qrels({q: qrels for q, _, qrels in queries}), Run(runs), metrics, return_mean=False, make_comparable=True
    )
    # ranx returns per-query scores in sorted query-id order, not in the order of the dicts
    order = sorted(range(len(queries)), key=lambda i: queries[i][0])
    judgements = [qrels if graded else set(qrels) for _, _, qrels in queries]
    ours = [doc_metrics(chunks, relevant, metrics) for (_, chunks, _), relevant in zip(queries, judgements)]
    # A sweep scores all its lists at once (padded to the longest): the same values, list by list.
    columns = doc_metric_columns([chunks for _, chunks, _ in queries], judgements, metrics)
    for metric in metrics:
        per_query = np.array([ours[i][metric] for i in order])
        np.testing.assert_allclose(per_query, theirs[metric], rtol=0, atol=1e-9, err_msg=metric)
        np.testing.assert_allclose(
            np.array(columns[metric])[order], theirs[metric], rtol=0, atol=1e-9, err_msg=f"{metric}, all lists at once"
        )
    assert 0 < np.mean(theirs["ndcg@5"]) < np.mean(theirs["recall"]) < 1


# --- answer-level relevance ---


def test_normalize_text():
    assert normalize_text("  Hello,\n  WORLD!! ") == "hello world"
    assert normalize_text("《三国志》，光荣。") == "三国志光荣"
    assert normalize_text("Ω－Ｆｏｒｃｅ") == "ωforce"  # full-width letters and hyphen
    assert normalize_text("“引号”、顿号…") == "引号顿号"


def test_answer_metrics_chinese_and_english():
    chunks = ["这款游戏由光荣（KOEI）开发。", "由光荣和Ω－Force联合开发！", "答案：光荣和ω-FORCE。"]
    m = answer_metrics(chunks, ["光荣和ω-force"])
    assert list(m) == list(ANSWER_METRIC_KEYS)
    assert m == {"answer_hit_rate": 1.0, "answer_precision": pytest.approx(2 / 3), "answer_mrr": 0.5}
    en = answer_metrics(["Nothing here.", "The DENVER Broncos, who won"], ["Denver Broncos", "x y"])
    assert en == {"answer_hit_rate": 1.0, "answer_precision": 0.5, "answer_mrr": 0.5}
    assert answer_metrics(["no match"], ["Denver"]) == dict.fromkeys(ANSWER_METRIC_KEYS, 0.0)


def test_answer_metric_columns_score_each_list_against_its_own_answers():
    lists = [["no", "Denver here", "denver"], [], ["光荣和Ω－Force"], ["x"] * 7 + ["the answer"], ["any"]]
    answers = [["Denver"], ["Denver"], ["光荣和ω-force"], ["answer"], [""]]
    columns = answer_metric_columns(lists, answers)
    assert columns["answer_hit_rate"][:4] == [1.0, 0.0, 1.0, 1.0]
    assert columns["answer_precision"][:4] == [2 / 3, 0.0, 1.0, 1 / 8]
    assert columns["answer_mrr"][:4] == [0.5, 0.0, 1.0, 1 / 8]
    assert all(math.isnan(values[4]) for values in columns.values())  # no non-empty gold answer


def test_answer_metrics_empty_inputs():
    assert answer_metrics([], ["a"]) == dict.fromkeys(ANSWER_METRIC_KEYS, 0.0)
    assert all(math.isnan(v) for v in answer_metrics(["text"], []).values())
    # answers that normalize to nothing cannot be matched: unscorable, not a miss
    assert all(math.isnan(v) for v in answer_metrics(["text"], ["。", " "]).values())


# --- diversity ---


def test_diversity_identical_orthogonal_and_mixed():
    same = np.tile([0.6, 0.8], (4, 1))
    m = diversity_metrics(same, ["a", "a", "b", "b"])
    assert list(m) == list(DIVERSITY_METRIC_KEYS)
    assert m["ild"] == pytest.approx(0, abs=1e-12)
    assert m["near_duplicate_rate"] == 1.0
    assert m["distinct_doc_ratio"] == 0.5 and m["n_retrieved"] == 4

    ortho = diversity_metrics(np.eye(3), ["a", "b", "c"])
    assert ortho["ild"] == pytest.approx(1.0) and ortho["near_duplicate_rate"] == 0.0
    assert ortho["distinct_doc_ratio"] == 1.0

    # pairs: (e1, e1) cos 1, (e1, e2) cos 0 twice -> ild 2/3, one near-duplicate pair of three
    mixed = diversity_metrics(np.array([[1.0, 0], [1.0, 0], [0, 1.0]]), ["a", "b", "c"])
    assert mixed["ild"] == pytest.approx(2 / 3)
    assert mixed["near_duplicate_rate"] == pytest.approx(1 / 3)


def test_diversity_threshold_and_small_lists():
    angle = math.acos(0.96)
    pair = np.array([[1.0, 0.0], [math.cos(angle), math.sin(angle)]])
    assert diversity_metrics(pair, ["a", "b"])["near_duplicate_rate"] == 1.0
    assert diversity_metrics(pair, ["a", "b"], near_duplicate_threshold=0.97)["near_duplicate_rate"] == 0.0
    one = diversity_metrics(np.ones((1, 2)) / math.sqrt(2), ["a"])
    assert math.isnan(one["ild"]) and math.isnan(one["near_duplicate_rate"])
    assert one["distinct_doc_ratio"] == 1.0 and one["n_retrieved"] == 1
    none = diversity_metrics(np.zeros((0, 2)), [])
    assert math.isnan(none["distinct_doc_ratio"]) and none["n_retrieved"] == 0
    with pytest.raises(ValueError):
        diversity_metrics(np.eye(3), ["a", "b"])


def test_diversity_metric_columns_equal_the_pairwise_definition_for_lists_of_mixed_sizes():
    rng = np.random.default_rng(3)
    sizes = [5, 0, 2, 5, 1, 12, 2, 3]
    embeddings = []
    for n in sizes:
        vectors = rng.normal(size=(n, 8))
        if n >= 2:
            vectors[1] = vectors[0] + 0.01 * rng.normal(size=8)  # a near-duplicate pair in each list
        embeddings.append(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
    doc_ids = [[f"d{i % 3}" for i in range(n)] for n in sizes]
    columns = diversity_metric_columns(embeddings, doc_ids)
    for i, (vectors, n) in enumerate(zip(embeddings, sizes)):
        cosines = [float(vectors[a] @ vectors[b]) for a, b in itertools.combinations(range(n), 2)]
        if cosines:
            assert columns["ild"][i] == pytest.approx(np.mean([1 - c for c in cosines]), abs=1e-12)
            assert columns["near_duplicate_rate"][i] == np.mean([c >= 0.95 for c in cosines]) > 0
        else:
            assert math.isnan(columns["ild"][i]) and math.isnan(columns["near_duplicate_rate"][i])
        assert columns["n_retrieved"][i] == n
    assert columns["distinct_doc_ratio"][5] == 3 / 12


# --- registry ---


def test_registry_covers_every_metric_key():
    computed = [*DOC_METRIC_KEYS, *ANSWER_METRIC_KEYS, *DIVERSITY_METRIC_KEYS, *RAGAS_METRIC_KEYS]
    from eval.metrics.judge import JUDGE_COLUMNS

    others = ["retrieval_ms", "ttft_ms", "total_ms", "tokens_per_s", "exact_match", "f1", "contains_answer"]
    judged = [c for c in JUDGE_COLUMNS if c != "judge_error"]
    assert set(computed + others + judged) <= set(METRICS)  # other families (e.g. passage-level) may join
    for key, info in METRICS.items():
        assert info.name == key and info.label and info.description
        assert info.group in ("relevance", "answer", "diversity", "latency")
    assert {k for k, i in METRICS.items() if i.group == "latency"} == set(others[:4])
    assert not any(METRICS[k].higher_is_better for k in ("retrieval_ms", "ttft_ms", "total_ms"))
    assert METRICS["tokens_per_s"].higher_is_better
    assert all(METRICS[k].group == "relevance" for k in (*DOC_METRIC_KEYS, *RAGAS_METRIC_KEYS))
    assert all(METRICS[k].group == "answer" for k in (*ANSWER_METRIC_KEYS, *others[4:]))
    assert not METRICS["near_duplicate_rate"].higher_is_better


def test_catalogue_cutoffs_and_derived_lists():
    assert parse_metric("ndcg@10") == ("ndcg", 10) and parse_metric("ndcg") == ("ndcg", None)
    ndcg10 = METRICS["ndcg@10"]
    assert (ndcg10.name, ndcg10.label, ndcg10.columns) == ("ndcg@10", "nDCG@10", ("ndcg@10",))
    assert "first 10" in ndcg10.description and ndcg10.group == "relevance" and ndcg10.higher_is_better
    assert all(f"{m}@3" in METRICS for m in DOC_METRIC_KEYS)
    assert "ild@3" not in METRICS and "ndcg@0" not in METRICS and "ndcg@10" not in list(METRICS)
    with pytest.raises(KeyError):
        METRICS["f1@5"]
    # the lists the engine uses are the catalogue's, in its order
    from eval.generation.pipeline import ANSWER_COLUMNS
    from eval.metrics.judge import JUDGE_COLUMNS

    assert JUDGE_COLUMNS == (*(m for m in METRICS if m.startswith("judge_")), "judge_error")
    assert set(ANSWER_COLUMNS) == {
        "answer",
        "prompt_tokens",
        "completion_tokens",
        "ttft_ms",
        "total_ms",
        "tokens_per_s",
        "exact_match",
        "f1",
        "contains_answer",
    }
    assert list(METRICS)[: len(DOC_METRIC_KEYS)] == list(DOC_METRIC_KEYS)
    with pytest.raises(ValueError, match="declared twice"):
        Catalogue(RANKING, RANKING[:1])


# --- bootstrap and paired tests ---


def test_bootstrap_ci_contains_mean_and_narrows():
    rng = np.random.default_rng(3)
    small, large = rng.normal(5, 2, 50), rng.normal(5, 2, 2000)
    mean, low, high = bootstrap_ci(small)
    assert mean == pytest.approx(small.mean()) and low < mean < high
    mean_l, low_l, high_l = bootstrap_ci(large)
    assert low_l < mean_l < high_l
    assert (high_l - low_l) < (high - low) / 3
    # a normal-theory 95% interval is 2 * 1.96 * sd / sqrt(n)
    assert high_l - low_l == pytest.approx(2 * 1.96 * large.std() / math.sqrt(2000), rel=0.15)
    assert bootstrap_ci(large, seed=1) != bootstrap_ci(large, seed=2)
    assert bootstrap_ci(large, seed=1) == bootstrap_ci(large, seed=1)


def test_bootstrap_ci_ignores_nan():
    values = np.array([0.0, 1.0, 1.0, 0.0, 1.0, 1.0])
    with_nan = np.insert(values, [1, 4], np.nan)
    assert bootstrap_ci(with_nan) == bootstrap_ci(values)
    assert all(math.isnan(v) for v in bootstrap_ci([np.nan, np.nan]))
    assert all(math.isnan(v) for v in bootstrap_ci([]))
    assert bootstrap_ci([3.0, 3.0]) == (3.0, 3.0, 3.0)


def test_paired_test_shift_and_identical():
    rng = np.random.default_rng(5)
    a = rng.random(1000)
    b = a + 0.02 + rng.normal(0, 0.05, 1000)
    for method in ("randomization", "t-test"):
        assert paired_test(a, b, method=method) < 0.001
        assert paired_test(a, a, method=method) == 1.0
    symmetric = np.tile([1.0, -1.0], 20)  # differences sum to exactly zero
    assert paired_test(np.zeros(40), symmetric) == 1.0
    with pytest.raises(ValueError):
        paired_test(a, b, method="wilcoxon")


def test_randomization_matches_exact_enumeration():
    rng = np.random.default_rng(11)
    d = rng.normal(0.3, 1.0, 10)
    flips = np.array(list(itertools.product([-1.0, 1.0], repeat=10)))
    exact = np.mean(np.abs(flips @ d) >= abs(d.sum()) - 1e-12)
    assert 0.02 < exact < 0.9  # an informative case, neither extreme
    assert paired_test(d, np.zeros(10), n_resamples=20000) == pytest.approx(exact, abs=0.015)
    # three positive differences: only all-plus and all-minus reach |sum| = 6, p = 2/8
    assert paired_test([1.0, 2.0, 3.0], [0, 0, 0], n_resamples=20000) == pytest.approx(0.25, abs=0.015)


def test_paired_test_drops_incomplete_pairs():
    a = np.array([1.0, 2.0, np.nan, 4.0, 5.0, 3.0])
    b = np.array([0.5, 1.0, 2.0, np.nan, 4.5, 2.5])
    keep = ~np.isnan(a) & ~np.isnan(b)
    for method in ("randomization", "t-test"):
        assert paired_test(a, b, method=method) == paired_test(a[keep], b[keep], method=method)
    assert math.isnan(paired_test([np.nan], [1.0]))


# --- aggregate ---


def _results(n_questions: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    base = rng.random(n_questions)
    frames = []
    for config, shift in (("base", 0.0), ("better", 0.15), ("same", 0.0)):
        noise = rng.normal(0, 0.05, n_questions) if config == "better" else 0.0
        frames.append(
            pd.DataFrame(
                {
                    "config_id": config,
                    "question_id": [f"q{i}" for i in range(n_questions)],
                    "recall": np.clip(base + shift + noise, 0, 1),
                    "ttft_ms": 100 + 10 * rng.random(n_questions),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_aggregate_columns_means_and_significance():
    df = _results(300)
    df.loc[df.question_id == "q0", "recall"] = np.nan
    out = aggregate(df, ["recall", "ttft_ms"], baseline="base")
    assert list(out["config_id"]) == ["base", "better", "same"]
    expected_cols = ["config_id", "n_questions"] + [
        f"{m}_{s}" for m in ("recall", "ttft_ms") for s in ("mean", "low", "high", "p", "sig")
    ]
    assert list(out.columns) == expected_cols
    means = df.groupby("config_id", sort=False)["recall"].mean()  # pandas skips NaN too
    np.testing.assert_allclose(out["recall_mean"], means.to_numpy())
    assert (out["recall_low"] < out["recall_mean"]).all()
    assert (out["recall_mean"] < out["recall_high"]).all()
    sig = out.set_index("config_id")
    assert sig.loc["better", "recall_sig"] and sig.loc["better", "recall_p"] < 0.001
    assert sig.loc["base", "recall_p"] == 1.0 and not sig.loc["base", "recall_sig"]
    assert sig.loc["same", "recall_p"] == 1.0 and not sig.loc["same", "recall_sig"]
    assert out["n_questions"].tolist() == [300, 300, 300]


def test_aggregate_pairs_by_question_id():
    df = _results(200)
    # drop and shuffle rows of one config: pairing must follow question_id, not row order
    better = df[df.config_id == "better"].iloc[20:].sample(frac=1, random_state=0)
    df = pd.concat([df[df.config_id != "better"], better], ignore_index=True)
    out = aggregate(df, ["recall"], baseline="base", method="t-test").set_index("config_id")
    assert out.loc["better", "n_questions"] == 180
    base = df[df.config_id == "base"].set_index("question_id")["recall"]
    shifted = better.set_index("question_id")["recall"]
    expected = paired_test(shifted, base.reindex(shifted.index), method="t-test")
    assert out.loc["better", "recall_p"] == pytest.approx(expected)
    assert "recall_p" not in aggregate(df, ["recall"]).columns


def test_paired_differences_match_the_single_config_tools():
    df = _results(120, seed=3)
    base = df[df.config_id == "base"].set_index("question_id")["recall"]
    diffs = df.assign(recall=df["recall"] - df["question_id"].map(base))  # each config minus base, per question
    diffs.loc[diffs.question_id == "q5", "recall"] = np.nan  # an unscored question is left out, not a 0
    out = paired_differences(diffs, ["recall"], n_randomization=5000).set_index("config_id")
    for config in ("better", "same"):
        values = diffs[diffs.config_id == config].sort_values("question_id")["recall"].to_numpy()  # as pivoted
        mean, low, high = bootstrap_ci(values)
        assert out.loc[config, ["recall_delta", "recall_delta_low", "recall_delta_high"]].tolist() == pytest.approx(
            [mean, low, high]
        )
        assert out.loc[config, "recall_delta_p"] == pytest.approx(
            paired_test(values, np.zeros_like(values), n_resamples=5000), abs=0.02
        )
    assert out.loc["better", "recall_delta_sig"] and out.loc["better", "recall_delta_low"] > 0
    assert out.loc["same", "recall_delta_p"] == 1.0 and not out.loc["same", "recall_delta_sig"]


def test_aggregate_rejects_bad_input():
    df = _results(10)
    with pytest.raises(ValueError, match="baseline"):
        aggregate(df, ["recall"], baseline="nope")
    with pytest.raises(ValueError, match="several rows"):
        aggregate(pd.concat([df, df.iloc[:1]]), ["recall"])


# --- ragas ---


def _text(letter: str) -> str:
    return letter * 40  # distinct letters: Levenshtein similarity 0 between different texts


RAGAS_ROWS = [
    {
        "retrieved_context_ids": ["d1", "d3", "d1", "d2"],
        "reference_context_ids": ["d2", "d3"],
        "retrieved_contexts": [_text("a"), _text("c"), _text("a"), _text("b")],
        "reference_contexts": [_text("b"), _text("c")],
    },
    {
        "retrieved_context_ids": ["d4"],
        "reference_context_ids": ["d2", "d5"],
        "retrieved_contexts": [_text("d")],
        "reference_contexts": [_text("b"), _text("e")],
    },
    {
        "retrieved_context_ids": ["d5", "d6"],
        "reference_context_ids": ["d5", "d7", "d8", "d9"],
        "retrieved_contexts": [_text("e"), _text("f")],
        "reference_contexts": [_text("e"), _text("g"), _text("h"), _text("i")],
    },
]


def test_ragas_context_metrics_match_hand_values_offline(monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args)
        raise OSError("network disabled in tests")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setenv("RAGAS_DO_NOT_TRACK", "false")  # the function must force it back on
    out = ragas_context_metrics(RAGAS_ROWS)
    assert attempts == []
    assert list(out.columns) == list(RAGAS_METRIC_KEYS) and len(out) == 3
    np.testing.assert_allclose(out["ragas_id_context_precision"], [2 / 3, 0.0, 1 / 2])
    np.testing.assert_allclose(out["ragas_id_context_recall"], [1.0, 0.0, 1 / 4])
    np.testing.assert_allclose(out["ragas_nonllm_context_recall"], [1.0, 0.0, 1 / 4])
    # ragas' ID-based precision/recall are doc_metrics' precision/recall
    ours = [doc_metrics(r["retrieved_context_ids"], r["reference_context_ids"]) for r in RAGAS_ROWS]
    np.testing.assert_allclose(out["ragas_id_context_precision"], [m["precision"] for m in ours])
    np.testing.assert_allclose(out["ragas_id_context_recall"], [m["recall"] for m in ours])


def test_ragas_context_metrics_without_rows():
    out = ragas_context_metrics([])
    assert list(out.columns) == list(RAGAS_METRIC_KEYS) and out.empty
