"""Decide on a real run (the bundled sample on a real Chroma index with e5-small, gold as the oracle): the metric
is rescore's, the bounds hold every completion, a certain pick is never wrong, the lab's order needs fewer labels
than random order, the CLI's oracle mode and bad inputs, and a session's skip, undo and resume."""

import json
import math
import shutil

import numpy as np
import pandas as pd
import pytest

from eval import SAMPLE_DIR
from eval.cli.main import main
from eval.data.labels import label_path, load_labels
from eval.errors import LabError
from eval.labels.decide import DecidePool, Decider, decide_with_oracle, pair_of, run_truth
from eval.labels.decide_session import DecideSession, decide_log_path
from eval.labels.pooled_judging import chunk_judgements, save_judgements
from eval.labels.rescore import rescore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

pytestmark = pytest.mark.slow  # builds the sample index (about 100 s the first time in a session)

SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [1, 3, 6]},
        {"search_type": "mmr", "k": [4], "fetch_k": [12], "lambda_mult": [0.0]},
    ]
}


@pytest.fixture(scope="module")
def lab(tmp_path_factory, sample_index, sample_dataset):
    """A copy of the sample question set (its labels file is written here), a run of four configs on it."""
    home, data = tmp_path_factory.mktemp("decide-home"), tmp_path_factory.mktemp("decide-data")
    for name in ("corpus.jsonl", "questions.jsonl"):
        shutil.copy(SAMPLE_DIR / name, data / name)
    runs = RunStore(home / "runs")
    run_id = run_sweep(
        runs,
        sample_index,
        parse_sweep(SWEEP),
        sample_dataset.questions[:40],
        str(data / "questions.jsonl"),
        SweepOptions(latency_sample=0),
    )
    run = runs.load(run_id)
    return {"home": home, "run": run, "labels_file": label_path(data / "questions.jsonl"), "pool": DecidePool(run)}


@pytest.fixture(scope="module")
def gold(lab):
    return lab["pool"].grades_from(load_labels(lab["labels_file"]), "gold")


def test_the_metric_is_what_rescore_computes_under_the_same_labels(lab, tmp_path):
    pool = lab["pool"]
    labels_file = tmp_path / "questions.labels.jsonl"
    for name in ("corpus.jsonl", "questions.jsonl"):
        shutil.copy(lab["labels_file"].parent / name, tmp_path / name)
    grades = np.random.default_rng(3).choice([0, 0, 0, 1, 2], size=len(pool))
    save_judgements(labels_file, list(zip(pool.items, grades.tolist())), "human:t")
    rows = rescore(lab["run"], load_labels(labels_file), "human:t", ["ndcg"]).set_index(["question_id", "config_id"])
    matrix = pool.metric_matrix(pool.grades_from(load_labels(labels_file), "human:t"))
    expected = np.array([[rows.loc[(q, c), "ndcg"] for c in pool.configs] for q in pool.questions])
    np.testing.assert_allclose(matrix, expected, rtol=0, atol=1e-12)
    assert np.isfinite(expected).sum() > 20  # most questions scored: the comparison is not of NaNs


def test_bounds_hold_the_all_gold_value_under_any_partial_labelling(lab, gold):
    pool = lab["pool"]
    truth = np.nanmean(pool.metric_matrix(gold), axis=0)
    rng = np.random.default_rng(0)
    for share in (0.0, 0.2, 0.5, 0.8, 0.95):
        for _ in range(5):
            partial = np.where(rng.random(len(gold)) < share, gold, np.nan)
            bounds = pool.bounds(partial)
            assert (bounds["lower"].to_numpy() <= truth + 1e-12).all(), (share, bounds, truth)
            assert (bounds["upper"].to_numpy() >= truth - 1e-12).all(), (share, bounds, truth)
    full = pool.bounds(gold)
    np.testing.assert_allclose(full["lower"], truth, atol=1e-12)  # nothing unjudged: the bounds meet
    np.testing.assert_allclose(full["upper"], truth, atol=1e-12)


def test_a_certain_pick_is_never_wrong(lab, gold):
    pool = lab["pool"]
    within, _ = run_truth(pool, gold)
    rng = np.random.default_rng(1)
    certain = 0
    for share in np.linspace(0.95, 1.0, 40):
        partial = np.where(rng.random(len(gold)) < share, gold, np.nan)
        decision = Decider(pool, partial, samples=50).evaluate()
        if decision.certain:
            certain += 1
            assert decision.recommended in within
    assert certain >= 4  # near-complete labels do make some picks certain


def test_the_labs_order_asks_what_separates_the_configs_and_settles_the_tie_set_sooner(lab, gold):
    # on this small pool (a quarter of the pairs relevant) the pick settles in about 20 labels in either order;
    # the tie set is where the order shows here (the shared sets' benchmark: bench_decide.py)
    pool, labels = lab["pool"], load_labels(lab["labels_file"])
    within, tie_set = run_truth(pool, gold)
    rows = pool.discount[pool.pair_doc]
    alike = set(np.flatnonzero(rows.max(axis=1) == rows.min(axis=1)))  # every config ranks its document alike
    assert len(alike) > 0.15 * len(pool)  # a random pick would often be one of them
    used, alike_asked = {}, {False: 0, True: 0}
    for order in ("active", "random"):
        picks = [
            decide_with_oracle(lab["run"], labels, "gold", order=order, seed=s, decide_pool=pool) for s in range(3)
        ]
        assert all(r.settled and r.decision.recommended in within for r in picks), order
        ties = [
            decide_with_oracle(
                lab["run"],
                labels,
                "gold",
                rule="tie-set",
                order=order,
                seed=s,
                check_every=5,
                samples=100,
                decide_pool=pool,
            )
            for s in range(6)
        ]
        assert all(r.settled and set(r.decision.indistinguishable) == tie_set for r in ties), order
        used[order] = np.median([r.labels for r in ties])
        asked = [n for r in picks + ties for n, kind in r.history if kind == "active"]
        assert (order == "random") == (not asked)
        for r in picks + ties:
            for at in alike_asks(r, alike):
                alike_asked[answered_before(pool, gold, r.history, at)] += 1
    assert used["active"] < used["random"], used
    # a pair every config ranks alike separates nothing while its question has no answer: it is asked for what
    # it would answer (its question's other pairs); once an answer is found, for the ideal it would raise, which
    # lowers the nDCG of a config that found the answer and leaves one that did not at 0
    assert alike_asked[False] > 0 and alike_asked[True] > 0, alike_asked


def alike_asks(result, alike: set) -> list[int]:
    """Positions in a result's history of the active picks of a pair every config ranks alike."""
    return [at for at, (n, kind) in enumerate(result.history) if kind == "active" and n in alike]


def answered_before(pool, gold, history, at: int) -> bool:
    """Whether, before the history's pick `at`, a document of its question other than its own was judged relevant."""
    n = history[at][0]
    return any(
        pool.pair_question[m] == pool.pair_question[n] and pool.pair_doc[m] != pool.pair_doc[n] and gold[m] >= 1
        for m, _ in history[:at]
    )


def test_a_judge_informs_the_chance_of_relevance_as_far_as_the_labels_bear_it_out(lab, gold, tmp_path):
    # a judge that agrees with the person settles the pick sooner; one that says the opposite is learned as such
    # (its weight turns negative) and the pick stays right
    pool = lab["pool"]
    for name in ("corpus.jsonl", "questions.jsonl"):
        shutil.copy(lab["labels_file"].parent / name, tmp_path / name)
    labels_file = tmp_path / "questions.labels.jsonl"
    save_judgements(labels_file, list(zip(pool.items, gold.astype(int).tolist())), "llm:agrees@v1")
    save_judgements(labels_file, list(zip(pool.items, np.where(gold >= 1, 0, 2).tolist())), "llm:opposite@v1")
    labels, (within, _) = load_labels(labels_file), run_truth(pool, gold)
    used = {}
    for judge in (None, "llm:agrees@v1", "llm:opposite@v1"):
        results = [
            decide_with_oracle(lab["run"], labels, "gold", seed=s, samples=100, decide_pool=pool, judge=judge)
            for s in range(3)
        ]
        assert all(r.settled and r.decision.recommended in within for r in results), judge
        used[judge] = np.median([r.labels for r in results])
    assert used["llm:agrees@v1"] < used[None], used
    knows_all = Decider(pool, gold.copy(), judge=pool.grades_from(labels, "llm:opposite@v1"))
    opposite = knows_all.model(knows_all.features())
    assert opposite.mean[-2] < 0  # the weight of "the judge says relevant" (then "the judge did not grade it")


def test_a_found_answer_makes_the_other_documents_of_its_question_a_feature_never_its_own(lab, gold):
    pool = lab["pool"]
    n = int(np.flatnonzero(gold >= 1)[0])
    grades = np.full(len(pool), np.nan)
    grades[n] = 2
    sibling = Decider(pool, grades).features()[:, 3]
    doc, question = pool.pair_doc, pool.doc_question[pool.pair_doc]
    here = question == question[n]
    assert sibling[here & (doc != doc[n])].all() and here[doc != doc[n]].any()
    assert not sibling[doc == doc[n]].any()  # its own document (the labelled pair too) does not count
    assert not sibling[~here].any()


def plain_ndcg(ranked: list[str], gains: dict[str, float]) -> float:
    """nDCG with linear gains, written out; 0 for a question with no relevant document."""
    dcg = sum(gains.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked))
    ideal = sum(g / math.log2(i + 2) for i, g in enumerate(sorted(gains.values(), reverse=True)))
    return dcg / ideal if ideal else 0.0


def test_a_documents_ndcg_change_counts_the_ideal_as_the_metric_does(lab, gold):
    # half the questions judged as gold says, the others not at all: each pooled document raised one grade
    pool, rows = lab["pool"], lab["run"].rows.set_index(["question_id", "config_id"])
    keys = {int(pool.pair_doc[n]): (item.question_id, item.doc_id) for n, item in enumerate(pool.items)}
    judged = set(pool.questions[::2])
    doc_grades = np.full(len(keys), -1.0)
    for n, item in enumerate(pool.items):
        if item.question_id in judged:
            doc_grades[pool.pair_doc[n]] = max(doc_grades[pool.pair_doc[n]], gold[n])
    docs = np.arange(len(keys))
    changes = pool.ndcg_change(doc_grades, docs)
    expected = np.zeros_like(changes)
    for d in docs:
        question, doc_id = keys[d]
        gains = {keys[e][1]: doc_grades[e] for e in docs if keys[e][0] == question and doc_grades[e] >= 1}
        raised = {**gains, doc_id: min(max(doc_grades[d], 0) + 1, 2)}
        for c, config in enumerate(pool.configs):
            ranked = list(dict.fromkeys(rows.loc[(question, config), "doc_ids"]))
            expected[d, c] = plain_ndcg(ranked, raised) - plain_ndcg(ranked, gains)
    np.testing.assert_allclose(changes, expected, rtol=0, atol=1e-12)
    assert (expected < -0.05).any()  # a relevant document a config missed lowers its nDCG through the ideal
    assert (doc_grades == 1).any() and (doc_grades == -1).any()  # raised from 1 to 2, and from unjudged


def test_a_completion_draws_a_questions_pairs_as_the_model_expects_once_one_is_drawn_relevant(lab):
    # pairs in question and best-rank order: until a pair of the question is drawn relevant each follows its
    # chance with no answer found (here 0.5), after it its chance with one found (here 0): one answer a question
    pool = lab["pool"]
    pairs = np.lexsort((pool.best_rank, pool.pair_question))
    uniform = np.random.default_rng(0).random((3, len(pairs)))
    before, after = np.full(uniform.shape, 0.5), np.zeros(uniform.shape)
    draws = Decider(pool, np.full(len(pool), np.nan))._draw_in_question_order(uniform, before, after, pairs)
    question = pool.pair_question[pairs]
    several = 0
    for q in np.unique(question):
        hits = uniform[:, question == q] < 0.5
        expected = np.zeros_like(hits)
        first = hits.argmax(axis=1)
        expected[np.arange(3), first] = hits[np.arange(3), first]
        np.testing.assert_array_equal(draws[:, question == q], expected)
        several += int((hits.sum(axis=1) >= 2).sum())
    assert several > 10  # drawn independently, these questions would have had two answers or more


def test_a_label_keeps_the_features_it_was_asked_with_and_a_resumed_session_decides_the_same(lab, gold, tmp_path):
    # with today's features a question's one relevant document is the only pair with no relevant sibling, so a
    # model fitted on them learns "no answer found yet: likely relevant"; the model learns what each label saw
    pool = lab["pool"]
    question = pool.pair_question
    relevant = next(int(n) for n in np.flatnonzero(gold >= 1) if ((question == question[n]) & (gold == 0)).any())
    irrelevant = int(np.flatnonzero((question == question[relevant]) & (gold == 0))[0])
    decider = Decider(pool, np.full(len(pool), np.nan))
    decider.label(irrelevant, 0)
    decider.label(relevant, 1)
    assert decider.seen[irrelevant][3] == 0 and decider.features()[irrelevant, 3] == 1

    for name in ("corpus.jsonl", "questions.jsonl"):
        shutil.copy(lab["labels_file"].parent / name, tmp_path / name)
    labels_file = tmp_path / "questions.labels.jsonl"
    session = DecideSession(lab["run"], labels_file, "res", rule="tie-set", decide_pool=pool)
    for _ in range(40):
        item, _ = session.current()
        session.answer(int(gold[pair_of(pool, item.question_id, item.chunk_id)]))
    live = session.decider
    assert any((live.seen[n] != live.features()[n]).any() for n in live.seen)  # the replay has something to get right
    resumed = DecideSession(lab["run"], labels_file, "res", rule="tie-set", decide_pool=pool)
    assert resumed.labels == 40
    pd.testing.assert_frame_equal(resumed.decision().table, session.decision().table)
    decide_log_path(lab["run"], "human:res").unlink()


def test_the_lab_does_not_ask_for_a_chunk_whose_document_is_judged_at_the_top_grade(lab, gold):
    pool = lab["pool"]
    chunks = np.bincount(pool.pair_doc)
    shared = np.flatnonzero(chunks[pool.pair_doc] > 1)  # pairs whose document has another pooled chunk
    grades = np.full(len(pool), np.nan)
    first = {int(pool.pair_doc[n]): int(n) for n in shared[::-1]}
    grades[list(first.values())] = 2
    assert len(first) >= 5
    decider = Decider(pool, grades, order="active", samples=50)
    topped = {int(n) for n in shared if np.isnan(grades[n])}
    active = []
    while len(active) < 30:
        n, kind = decider.next_pair()
        decider.label(n, int(gold[n]))
        active += [n] if kind == "active" else []
    assert not topped & set(active)


def test_the_random_labels_of_the_labs_order_come_from_the_pairs_that_could_move_the_decision(lab, gold):
    # every first-ranked pair judged: many questions are settled, and a pair with no weight (it moves every
    # contender's nDCG alike) would teach the model only about pairs whose completions do not matter
    pool = lab["pool"]
    grades = np.where(pool.best_rank == 1, gold, np.nan)
    decision = Decider(pool, grades.copy(), rule="tie-set", samples=50).evaluate()
    open_ = np.flatnonzero(np.isnan(grades))
    weights = Decider(pool, grades.copy(), rule="tie-set")._active_weights(open_, decision)
    chance = 1 / pool.best_rank[open_]
    unweighted = chance[weights == 0].sum() / chance.sum()
    assert unweighted > 0.05  # drawn from every open pair, about one pick in ten would have no weight
    picks = []
    for seed in range(100):
        decider = Decider(pool, grades.copy(), rule="tie-set", seed=seed)
        decider.made = 1  # the tie set's random turn: every second label
        n, kind = decider.next_pair(decision)
        picks.append((kind, weights[open_ == n][0] > 0))
    assert picks == [("random", True)] * 100


def test_no_decision_before_five_relevant_and_five_irrelevant_labels(lab, gold):
    pool = lab["pool"]
    some = np.full(len(gold), np.nan)
    relevant, irrelevant = np.flatnonzero(gold >= 1)[:5], np.flatnonzero(gold == 0)[:4]
    some[relevant], some[irrelevant] = gold[relevant], gold[irrelevant]
    decision = Decider(pool, some, samples=50).evaluate()
    assert not decision.settled and decision.evidence == (5, 4)
    assert decision.expected_more >= 1


def test_cli_decides_with_an_oracle_and_prints_one_json_object(lab, gold, capsys):
    home, run = lab["home"], lab["run"]
    args = ["--home", str(home), "decide", run.run_id, "--oracle", "gold", "--json", "--budget", "400"]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result) >= {"settled", "rule", "labels", "recommended", "indistinguishable", "order"}
    assert result["settled"] and result["rule"] == "pick" and result["order"] == "active"
    assert result["recommended"] in run_truth(lab["pool"], gold)[0]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--budget", "0"], "error: --budget must be at least 1, got 0\n"),
        (["--oracle", "human:nobody"], "error: the labels have no source 'human:nobody' (sources here: gold)\n"),
        (["--judge", "llm:absent"], "error: the labels have no source 'llm:absent' (sources here: gold)\n"),
    ],
)
def test_cli_bad_input_is_one_line(lab, capsys, extra, message):
    assert main(["--home", str(lab["home"]), "decide", lab["run"].run_id, "--oracle", "gold", *extra]) != 0
    captured = capsys.readouterr()
    assert captured.err == message and "Traceback" not in captured.out


def test_a_label_for_a_pair_not_in_the_pool_is_one_clear_error(lab):
    with pytest.raises(LabError, match=r"^question 'q-zh-001', chunk 'nowhere#0' is not in the run's pool"):
        pair_of(lab["pool"], "q-zh-001", "nowhere#0")


def test_session_saves_skips_undoes_and_resumes(lab, tmp_path):
    for name in ("corpus.jsonl", "questions.jsonl"):
        shutil.copy(lab["labels_file"].parent / name, tmp_path / name)
    labels_file = tmp_path / "questions.labels.jsonl"
    session = DecideSession(lab["run"], labels_file, "ann", decide_pool=lab["pool"])
    first, _ = session.current()
    assert session.current()[0] == first  # a stable current pair
    session.answer(2)
    second, _ = session.current()
    session.skip()
    third, _ = session.current()
    assert (
        len(
            {
                first.chunk_id + first.question_id,
                second.chunk_id + second.question_id,
                third.chunk_id + third.question_id,
            }
        )
        == 3
    )
    session.answer(0)
    assert sorted(chunk_judgements(labels_file, "human:ann").values()) == [0, 2]
    assert session.undo() and session.current()[0] == third  # the answer is taken back, its pair asked again
    assert sorted(chunk_judgements(labels_file, "human:ann").values()) == [2]
    assert session.labels == 1

    resumed = DecideSession(lab["run"], labels_file, "ann", decide_pool=lab["pool"])
    assert resumed.labels == 1 and resumed.current()[0] == third
    assert pair_of(lab["pool"], second.question_id, second.chunk_id) in resumed.decider.skipped
    log = json.loads(decide_log_path(lab["run"], "human:ann").read_text())
    assert [p["grade"] for p in log["picks"]] == [2, None]
    decide_log_path(lab["run"], "human:ann").unlink()


def test_a_log_naming_a_pair_not_in_the_pool_is_one_clear_error(lab, tmp_path):
    log = decide_log_path(lab["run"], "human:zed")
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text(
        json.dumps(
            {
                "picks": [{"question_id": "q-zh-001", "chunk_id": "gone#9", "grade": 1, "kind": "random"}],
                "current": None,
            }
        )
    )
    with pytest.raises(LabError, match="chunk 'gone#9' is not in the run's pool"):
        DecideSession(lab["run"], lab["labels_file"], "zed", decide_pool=lab["pool"])
    log.unlink()
