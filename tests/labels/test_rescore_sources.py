"""Rescoring under a label source on a real run: the rows name their source and carry each chunk's grade;
`judged` under complete and incomplete sources and for a config that retrieved nothing; `rescore`'s CLI
leaderboard with intervals, the one ranking rule and the scored count."""

import re

import numpy as np
import pytest
from support.label_source_lab import MMR, NOTHING, SIMILARITY, SOURCE

from eval.analysis.recommend import recommend
from eval.cli.main import main
from eval.data.labels import Judgement, Labels, load_labels
from eval.labels.rescore import rescore, run_under
from eval.runs.summary import summarize


def test_rescored_rows_name_their_source_and_grade_each_chunk(unlabelled_lab):
    lab = unlabelled_lab
    rows = rescore(lab.run, load_labels(lab.labels_file), SOURCE)
    assert set(rows["label_source"]) == {SOURCE}
    for row in rows.itertuples():
        marked = lab.labelled.get(row.question_id)
        assert list(row.grades) == [2 if d == marked else None for d in row.doc_ids]


def test_judged_counts_graded_chunks_and_a_config_that_retrieved_nothing_is_left_out(unlabelled_lab):
    lab = unlabelled_lab
    run = run_under(lab.run, load_labels(lab.labels_file), SOURCE)
    rows = run.rows.set_index(["config_id", "question_id"])
    assert (rows.loc[NOTHING, "n_retrieved"] == 0).all() and rows.loc[NOTHING, "judged"].isna().all()
    for question_id, doc_ids in rows.loc[MMR, "doc_ids"].items():  # whole-document labels: a chunk of it is judged
        assert rows.loc[(MMR, question_id), "judged"] == np.mean([d == lab.labelled.get(question_id) for d in doc_ids])
    summary = summarize(run, metrics=["ndcg", "judged"]).set_index("config_id")
    assert np.isnan(summary.loc[NOTHING, "judged_mean"])  # not 0: nothing retrieved is not "unjudged"
    assert summary.loc[MMR, "judged_mean"] == pytest.approx(rows.loc[MMR, "judged"].mean())
    excluded = recommend(run, summary.reset_index(), "ndcg", min_judged=0.01).excluded
    assert excluded[NOTHING] == "it retrieved nothing, so nothing of it is judged"
    assert excluded[SIMILARITY].startswith("judged share 0.00 is below")


def test_under_a_complete_source_every_retrieved_chunk_of_a_labelled_question_is_judged(unlabelled_lab):
    lab = unlabelled_lab
    ann = load_labels(lab.labels_file).judgements
    # the same spans as ann's, from a complete source: a chunk they do not mark is judged not relevant
    generated = Labels(tuple(Judgement(j.question_id, j.doc_id, j.start, j.end, 1, "generated") for j in ann))
    rows = rescore(lab.run, generated, "generated")
    retrieved = rows[rows["n_retrieved"] > 0]
    labelled = retrieved["question_id"].isin(lab.labelled)
    assert (retrieved.loc[labelled, "judged"] == 1.0).all() and (retrieved.loc[~labelled, "judged"] == 0.0).all()
    assert (retrieved.loc[labelled, "passage_precision"] < 1.0).any()  # judged is not the passage precision
    for row in retrieved[labelled].itertuples():
        assert list(row.grades) == [1 if d == lab.labelled[row.question_id] else 0 for d in row.doc_ids]


def test_rescore_cli_prints_intervals_the_one_ranking_and_the_scored_count(unlabelled_lab, capsys):
    lab = unlabelled_lab
    assert main(["--home", str(lab.home), "rescore", lab.run.run_id, "--source", SOURCE]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"run {lab.run.run_id}, labels from {lab.labels_file}"  # beside the run's question set
    header, *table = lines[1:5]
    assert header.split()[:3] == ["config", "hit_rate", "recall"]
    assert [line.split()[0] for line in table] == [MMR, SIMILARITY, NOTHING]  # mmr alone finds ann's documents
    cell = r"(\d\.\d{3}) \[(\d\.\d{3}), (\d\.\d{3})\]"
    cells = [tuple(map(float, c)) for c in re.findall(cell, table[0])]
    assert len(cells) == 8 and all(low <= mean <= high for mean, low, high in cells)  # every label metric
    assert cells[3][0] > 0  # hit_rate, recall, mrr, ndcg, ...
    assert "0.000 [0.000, 0.000]" in table[1]
    assert lines[5].startswith("Ranked by mean nDCG over questions") and f"Label source: {SOURCE}." in lines[5]
    unlabelled = len(lab.questions) - len(lab.labelled)
    assert lines[6] == (
        f"nDCG scored on {len(lab.labelled)} of {len(lab.questions)} questions: {unlabelled} have no relevant "
        f"label under {SOURCE}"
    )
