"""Racing: a config significantly worse than the rest stops after a block, the rows it did not run are saved,
and the raced choice lies in the full sweep's confidence set for the best."""

import pytest
from support.lab_cli import write_questions

from eval.analysis.confidence import confidence_set
from eval.analysis.racing import RACE_METHOD, race_rule, race_text, rows_saved
from eval.analysis.recommend import recommend
from eval.cli.main import main
from eval.report.render import report_html, report_markdown
from eval.runs.summary import summarize

SWEEP = {
    "configs": [
        {"search_type": "similarity", "k": [2, 4, 8]},
        # a threshold no relevance score reaches: nothing retrieved, nDCG 0 on every question
        {"search_type": "similarity_score_threshold", "k": [4], "score_threshold": [0.999]},
    ]
}
QUESTIONS = 40
BLOCK = 10


@pytest.mark.slow  # two sweeps of the sample (about 20 s)
def test_a_hopeless_config_stops_after_the_first_block_and_the_choice_stays_in_the_full_set(sample_run):
    race = {"block": BLOCK, "method": RACE_METHOD}  # what `run --race` records in the manifest
    raced = sample_run(
        SWEEP,
        questions=QUESTIONS,
        block_size=BLOCK,
        contenders=race_rule(QUESTIONS, BLOCK),
        extra_manifest={"race": race},
    )
    full = sample_run(SWEEP, questions=QUESTIONS, block_size=BLOCK)
    saved, total, stopped = rows_saved(raced)
    # 10 questions cannot reach Holm's smallest level over 6 pairs at 5% / 3 looks (a sign-flip p-value of 10
    # differences is at least 2 / 1024 and some questions tie); 20 can
    assert stopped == {"threshold-k4-t0.999": 2 * BLOCK}
    assert (saved, total) == (QUESTIONS - 2 * BLOCK, 4 * QUESTIONS) and len(raced.rows) == total - saved
    assert "20 of 160 rows saved" in race_text(raced) and "threshold-k4-t0.999 after 20" in race_text(raced)
    for report in (report_html(raced), report_markdown(raced)):  # what Compare shows under the recommendation
        recommendation = report[report.index("Recommendation") : report.index("Leaderboard")]
        assert "racing: 20 of 160 rows saved (12%)" in recommendation
    assert "rows saved" not in report_markdown(full)
    choice = recommend(raced, summarize(raced)).config_id
    full_set = confidence_set(full.rows, [c["config_id"] for c in full.configs], "ndcg").members
    assert choice in full_set and "threshold-k4-t0.999" not in full_set


def test_race_block_below_one_is_one_line(tmp_path, capsys, sample_dataset):
    questions = write_questions(sample_dataset, tmp_path / "q.jsonl")
    code = main(
        ["--home", str(tmp_path), "run", "--index", "none", "--questions", questions, "--race", "--race-block", "0"]
    )
    err = capsys.readouterr().err.strip()
    assert code != 0 and err.count("\n") == 0 and "--race-block must be at least 1 question, got 0" in err
