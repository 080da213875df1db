"""A judge corrected by a person's random sample (prediction-powered inference): intervals that cover the truth
in simulation where the judge's own do not, the estimator's limits by hand, and the corrected label source on a
real run through the CLI (`corrected`, `rescore --source "... corrected by ..."`)."""

import json

import numpy as np
import pandas as pd
import pytest
from support.label_source_lab import MMR, NOTHING, SIMILARITY

from eval.cli.main import main
from eval.data.labels import load_labels
from eval.labels import corrected as corrected_module
from eval.labels.corrected import corrected_sources, corrected_table, parse_corrected, pseudo_values
from eval.labels.pooled_judging import PoolItem, blind_order, pool, save_judgements
from eval.labels.rescore import rescore

JUDGE, HUMAN = "llm:rule@judge-v1", "human:bob"
CORRECTED = f"{JUDGE} corrected by {HUMAN}"


def biased_world(rng: np.random.Generator, questions: int = 300) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Four configs' per-question hit (0/1, NaN for a question without a relevant label) under a person and a
    judge that errs on 20% of questions and grades config c0's lists relevant 30% more often; the person finds no
    relevant passage for 20% of the questions, the judge for another 10%."""
    ability = np.linspace(0.5, 0.65, 4)
    no_human, no_judge = rng.random(questions) < 0.2, rng.random(questions) < 0.1
    human_rows, judge_rows = [], []
    for c, p in enumerate(ability):
        hits = (rng.random(questions) < p).astype(float)
        judged = np.where(rng.random(questions) < 0.8, hits, 1 - hits)
        if c == 0:
            judged[rng.random(questions) < 0.3] = 1.0
        for q in range(questions):
            human_rows.append((f"c{c}", f"q{q}", np.nan if no_human[q] else hits[q]))
            judge_rows.append((f"c{c}", f"q{q}", np.nan if no_judge[q] else judged[q]))
    columns = ["config_id", "question_id", "hit_rate"]
    return pd.DataFrame(judge_rows, columns=columns), pd.DataFrame(human_rows, columns=columns)


def test_corrected_intervals_cover_the_persons_all_question_value_and_the_judges_do_not():
    rng = np.random.default_rng(7)
    covered = judge_covered = diff_covered = intervals = diffs = 0
    for _ in range(200):
        judge, human = biased_world(rng)
        truth = human.groupby("config_id")["hit_rate"].mean()
        sample = [f"q{i}" for i in rng.choice(300, 60, replace=False)]
        result = corrected_table(judge, human, "hit_rate", sample)
        table = result.table.set_index("config_id").loc[truth.index]
        covered += int(((table["low"] <= truth) & (truth <= table["high"])).sum())
        judge_covered += int(((table["judge_low"] <= truth) & (truth <= table["judge_high"])).sum())
        true_diff = truth - truth[result.leader]
        others = table.index != result.leader
        inside = (table["diff_low"] <= true_diff) & (true_diff <= table["diff_high"])
        diff_covered += int(inside[others].sum())
        intervals, diffs = intervals + len(truth), diffs + int(others.sum())
    assert covered / intervals >= 0.90
    assert diff_covered / diffs >= 0.90
    assert judge_covered / intervals < 0.70


def test_ppi_adds_the_persons_correction_and_ppi_plus_plus_drops_a_judge_that_says_nothing_on_the_sample():
    sampled = np.array([True, True, False, False])
    human = np.array([1.0, 0.0, np.nan, np.nan])
    same = pseudo_values(np.array([1.0, 0.0, 1.0, 1.0]), human, sampled)
    assert same.mean() == pytest.approx(0.75)  # the judge's 3 of 4, and no correction
    flat = np.array([1.0, 1.0, 0.0, 0.0])  # grades both sampled questions 1: the person says 1 and 0
    assert pseudo_values(flat, human, sampled).mean() == pytest.approx(0.5 - 0.5)  # plain PPI: 2/4 + (0 - 1)/2
    assert pseudo_values(flat, human, sampled, weight=None).mean() == pytest.approx(0.5)  # lam 0: the person's 1/2
    # the judge scores 3 questions (2 hits: A = 2/4, B = 3/4); the person scores its unscored q2 (a miss): B + 1/2
    ratio = pseudo_values(np.array([1.0, np.nan, 1.0, 0.0]), np.array([1.0, 0.0, np.nan, np.nan]), sampled)
    assert ratio.mean() == pytest.approx(0.5 / 1.25)


def test_too_small_a_human_sample_is_refused_with_the_minimum():
    judge, human = biased_world(np.random.default_rng(0), 100)
    with pytest.raises(Exception, match=r"of 39 of 100 questions: the correction needs at least 40 fully graded"):
        corrected_table(judge, human, "hit_rate", [f"q{i}" for i in range(39)])
    assert corrected_module.MIN_HUMAN_QUESTIONS == 40


def test_the_corrected_source_is_named_and_offered_for_every_judge_and_person():
    assert parse_corrected(CORRECTED) == (JUDGE, HUMAN)
    assert parse_corrected(JUDGE) is None
    assert corrected_sources(["gold", JUDGE, HUMAN, "human:ann"]) == [CORRECTED, f"{JUDGE} corrected by human:ann"]


@pytest.fixture(scope="module")
def judged_lab(unlabelled_lab):
    """The unlabelled lab with a judge that grades every pooled chunk 1 and bob grading the pooled chunks of
    every question but the last one as ann would (her document 2, the rest 0)."""
    lab = unlabelled_lab
    items = pool(lab.run)
    save_judgements(lab.labels_file, [(item, 1) for item in items], JUDGE)
    last = lab.questions[-1].id
    bob = [(i, 2 if lab.labelled.get(i.question_id) == i.doc_id else 0) for i in items if i.question_id != last]
    save_judgements(lab.labels_file, bob, HUMAN)
    return lab


def test_with_one_question_ungraded_the_cli_names_the_minimum_in_one_line(judged_lab, capsys):
    lab = judged_lab
    code = main(["--home", str(lab.home), "corrected", lab.run.run_id, "--judge", JUDGE, "--human", HUMAN])
    err = capsys.readouterr().err.strip()
    assert code != 0 and "\n" not in err
    assert f"{HUMAN} has graded every pooled chunk of 4 of 5 questions: the correction needs at least 5" in err
    code = main(["--home", str(lab.home), "corrected", lab.run.run_id, "--judge", "llm:nobody@v1", "--human", HUMAN])
    assert code != 0 and "no judgements from source 'llm:nobody@v1'" in capsys.readouterr().err


def test_with_every_question_graded_the_correction_is_the_persons_value(judged_lab, capsys):
    lab = judged_lab
    items = [i for i in pool(lab.run) if i.question_id == lab.questions[-1].id]
    save_judgements(
        lab.labels_file, [(i, 2 if lab.labelled.get(i.question_id) == i.doc_id else 0) for i in items], HUMAN
    )
    args = ["--home", str(lab.home), "corrected", lab.run.run_id, "--judge", JUDGE, "--human", HUMAN]
    assert main([*args, "--metric", "hit_rate", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["source"] == CORRECTED and result["questions"] == 5 and result["sampled"] == 5
    assert result["leader"] == MMR
    configs = {c["config_id"]: c for c in result["configs"]}
    # bob marks ann's document on 3 questions (only mmr retrieves it) and nothing on 2 (they leave the mean)
    assert configs[MMR]["estimate"] == pytest.approx(1.0) and configs[SIMILARITY]["estimate"] == pytest.approx(0)
    assert configs[SIMILARITY]["judge"] == pytest.approx(1.0)  # the judge grades every chunk relevant
    assert configs[SIMILARITY]["diff"] == pytest.approx(-1.0)
    assert configs[SIMILARITY]["diff_high"] < 0  # mmr is measurably better
    assert configs[NOTHING]["estimate"] == 0  # an empty list scores 0 where there is something relevant
    assert main(args) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"{CORRECTED}: ndcg on 5 questions, 5 graded by {HUMAN}")
    assert (
        main(["--home", str(lab.home), "rescore", lab.run.run_id, "--source", CORRECTED, "--metric", "hit_rate"]) == 0
    )
    out = capsys.readouterr().out
    assert f"Label source: {CORRECTED}." in out
    table = {line.split()[0]: line.split()[1] for line in out.splitlines()[2:5]}
    assert table == {MMR: "1.000", SIMILARITY: "0.000", NOTHING: "0.000"}  # the judge alone: 1.000 for both lists
    judge_rows = rescore(lab.run, load_labels(lab.labels_file), JUDGE, ["hit_rate"])
    assert judge_rows.loc[judge_rows["config_id"] == MMR, "hit_rate"].mean() == pytest.approx(1.0)


def test_the_labelling_order_takes_questions_at_random_each_whole():
    items = [PoolItem(f"q{n // 4:02d}", f"c{n}", "d", n, n + 1, "x") for n in range(200)]  # 50 questions, in order
    ordered = blind_order(items)
    questions = list(dict.fromkeys(i.question_id for i in ordered))
    assert sorted(questions) == [f"q{n:02d}" for n in range(50)] and questions != sorted(questions)
    assert [i.question_id for i in ordered] == [q for q in questions for _ in range(4)]  # each question whole
    first_ten = {int(q[1:]) for q in questions[:10]}
    assert max(first_ten) >= 25  # not the first questions of the run
    assert blind_order(items) == ordered and blind_order(items, seed=1) != ordered
