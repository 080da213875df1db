"""Grading from the grade tokens' probabilities (a local model's logits, an endpoint's top logprobs): every pair
gets a grade and a confidence, a low confidence abstains; an endpoint without logprobs is read as text; and a
rubric echoed back ("1 = not relevant") is not a grade."""

import pytest
from support.llm_logprobs_server import LogprobsServer

from eval.generation.generators import load_generator
from eval.labels.failure_streak import LabelJobFailed
from eval.labels.pooled_judging import (
    TEMPLATES,
    grade_of,
    grade_probabilities,
    judge_run,
    parse_grade,
    pool,
    reads_probabilities,
)


@pytest.mark.parametrize(
    ("reply", "grade"),
    [
        ("2", 2),
        (" 1.", 1),
        ("0\n", 0),
        ("2 (it answers the question)", 2),
        ("1 = not relevant; 2 = answers the question", None),
        ("1 = partly relevant", None),
        ("0 = 不相关；1 = 部分相关", None),
        ("2＝能够回答问题", None),
        ("10", None),
        ("The passage is not", None),
    ],
)
def test_a_rubric_echo_is_not_a_grade(reply, grade):
    assert parse_grade(reply) == grade


def test_the_grade_is_the_most_probable_grade_token_and_the_confidence_its_share():
    assert grade_of([0.1, 0.2, 0.3]) == (2, pytest.approx(0.5))
    assert grade_of([0.0, 0.02, 0.0]) == (1, pytest.approx(1.0))
    assert grade_of([0.0, 0.0, 0.0]) is None


@pytest.fixture(scope="module")
def smollm2(smollm2_home):
    return load_generator("bundled:smollm2", home=smollm2_home)


@pytest.mark.slow
def test_an_endpoints_top_logprobs_give_the_local_models_grade_probabilities(smollm2):
    prompt = TEMPLATES["en"].format(question="What does k set?", chunk="k sets how many chunks a retriever returns.")
    local = grade_probabilities(smollm2, prompt)
    assert len(local) == 3 and 0 < sum(local) <= 1
    with LogprobsServer(smollm2) as server:
        endpoint = load_generator(f"openai:smollm2@{server.base_url}")
        assert reads_probabilities(endpoint, prompt)
        remote = grade_probabilities(endpoint, prompt)
    # the endpoint sums the grade tokens among its top 20 only: never more than the whole vocabulary's
    assert all(r <= p + 1e-4 for r, p in zip(remote, local))
    assert grade_of(remote)[0] == grade_of(local)[0]
    assert max(remote) == pytest.approx(max(local), abs=1e-4)  # the most probable grade token is in the top 20


@pytest.mark.slow
def test_a_local_model_grades_every_pooled_pair_and_abstains_below_the_threshold(
    unlabelled_lab, smollm2, smollm2_home, tmp_path
):
    run = unlabelled_lab.run
    # the same weights loaded from their folder: a local model, not the smoke-test name (that refuses Chinese)
    smollm2 = load_generator(str(next(smollm2_home.glob("models/*/config.json")).parent))
    report = judge_run(run, smollm2, tmp_path / "a")  # saved beside the lab's questions
    assert report.pool == len(pool(run)) > 0
    assert report.judged == report.pool and report.failures == []  # the text path graded 0 of 33+ such pairs
    cached = (tmp_path / "a" / "cache" / "judgements.jsonl").read_text().splitlines()
    assert len(cached) == report.pool and all('"confidence": ' in line for line in cached)
    with pytest.raises(LabelJobFailed, match=r"produced nothing: \d+ tried, every one failed \(last: abstained: conf"):
        judge_run(run, smollm2, tmp_path / "b", abstain_below=1.01, max_failures=0)  # every pair abstains


def test_an_endpoint_without_logprobs_is_judged_by_its_text(unlabelled_lab, tmp_path):
    with LogprobsServer(logprobs=False) as server:  # answers "No", without logprobs
        endpoint = load_generator(f"openai:stub@{server.base_url}")
        # the text path (this stub does not stream, so the streamed reply is empty), not the probabilities' reasons
        with pytest.raises(
            LabelJobFailed, match=r"produced nothing: \d+ tried, every one failed \(last: the reply is not a grade: "
        ):
            judge_run(unlabelled_lab.run, endpoint, tmp_path, max_failures=0)
