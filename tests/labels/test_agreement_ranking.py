"""Agreement that matters: the two leaderboards with Kendall tau, its bootstrap interval and random baseline,
the same recommendation or not; grades by chunk length; a judge's flip rate; and the `agreement` CLI."""

import numpy as np
import pandas as pd
import pytest
from support.label_source_lab import MMR, SOURCE

from eval.cli.main import main
from eval.data.labels import Judgement, Labels
from eval.labels.agreement import flip_rate, grade_by_length, random_positive_labels, ranking_agreement
from eval.labels.pooled_judging import PoolItem, pool, save_judgements

JUDGE = "llm:long@judge-v1"


def per_question(a: list[float], b: list[float], questions: int = 30, seed: int = 0) -> pd.DataFrame:
    """Per-question values around each config's mean under two sources."""
    rng = np.random.default_rng(seed)
    columns = {}
    for source, means in (("a", a), ("b", b)):
        for c, mean in enumerate(means):
            columns[(source, f"c{c}")] = np.clip(mean + rng.normal(0, 0.05, questions), 0, 1)
    return pd.DataFrame(columns)


def test_the_same_order_gives_tau_one_and_the_same_pick_and_a_reversed_order_does_not():
    same = ranking_agreement(per_question([0.9, 0.6, 0.3], [0.8, 0.5, 0.2]), [], "a", "b", "ndcg", 0)
    assert same.tau == pytest.approx(1.0) and same.same_pick
    assert same.tau_low == pytest.approx(1.0)  # 0.3 apart on 30 questions: every resample keeps the order
    assert list(same.leaderboards["config_id"]) == ["c0", "c1", "c2"]
    reversed_ = ranking_agreement(per_question([0.9, 0.6, 0.3], [0.2, 0.5, 0.8]), [], "a", "b", "ndcg", 0)
    assert reversed_.tau == pytest.approx(-1.0) and not reversed_.same_pick
    assert list(reversed_.leaderboards["rank b"]) == [3, 2, 1]
    close = ranking_agreement(per_question([0.5, 0.49, 0.3], [0.49, 0.5, 0.3]), [], "a", "b", "ndcg", 0)
    assert close.tau_low < 1.0  # two configs 0.01 apart: resampled questions swap them
    assert "they recommend different configs" in reversed_.summary()


def test_random_labels_place_exactly_the_positives_asked_for():
    items = [PoolItem(f"q{n % 3}", f"c{n}", f"d{n}", 0, 10, "x") for n in range(20)]
    labels = random_positive_labels(items, 7, seed=1)
    assert len(labels.judgements) == 7 and {j.grade for j in labels.judgements} == {1}
    assert len({(j.question_id, j.doc_id) for j in labels.judgements}) == 7
    assert labels.judgements != random_positive_labels(items, 7, seed=2).judgements


def test_a_judge_that_grades_by_length_shows_in_the_length_bins():
    items = [PoolItem("q1", f"c{n}", f"d{n}", 0, 100 * (n + 1), "x") for n in range(8)]
    judge = Labels(tuple(Judgement("q1", i.doc_id, i.start, i.end, int(i.end > 400), JUDGE) for i in items))
    table = grade_by_length(judge, [JUDGE], items, bins=2)
    assert list(table[f"relevant {JUDGE}"]) == [0.0, 1.0] and list(table["chunks"]) == [4, 4]


def test_flip_rate_counts_pairs_graded_both_times():
    assert flip_rate([0, 1, 2, None], [0, 2, 2, 1]) == (pytest.approx(1 / 3), 3)


def test_agreement_cli_prints_both_leaderboards_tau_and_its_baseline(unlabelled_lab, capsys):
    lab = unlabelled_lab
    items = pool(lab.run)
    save_judgements(lab.labels_file, [(i, int(lab.labelled.get(i.question_id) == i.doc_id) * 2) for i in items], JUDGE)
    args = ["--home", str(lab.home), "agreement", lab.run.run_id, "--labels", str(lab.labels_file)]
    assert main([*args, "--a", SOURCE, "--b", JUDGE, "--metric", "hit_rate", "--draws", "5"]) == 0
    out = capsys.readouterr().out
    line = next(line for line in out.splitlines() if line.startswith("hit_rate leaderboards"))
    assert line.startswith(f"hit_rate leaderboards of {SOURCE} and {JUDGE}: Kendall tau 1.000")
    assert line.endswith("both recommend the same config")
    positives = sum(1 for i in items if lab.labelled.get(i.question_id) == i.doc_id)
    assert f"; {positives} randomly placed positive labels give " in line
    board = out.split(line + "\n", 1)[1].splitlines()
    assert board[1].split()[0] == MMR and board[1].split()[2] == "1"  # mmr first, rank 1 under the first source
    assert "grades by chunk length:" in out
