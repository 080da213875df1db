"""End to end, for a user with only a folder of documents: the CLI builds an index of the bundled sample's
documents as `.md` files, generates a question set from it and runs a sweep on it; then, in a real headless
Chromium, the Labels page judges the run's pool, a person labels two chunks (one by keyboard shortcut), the
agreement tab shows kappa, and Compare shows the leaderboard under the LLM's labels with `judged`. The LLM is
the rule-following OpenAI-compatible stub. Screenshots go to test-artifacts/e2e/."""

import time

import pytest
from support.browser import ARTIFACTS, click_button, fill, open_tab, wait_text
from support.servers import streamlit_server

from eval.cli.main import main
from eval.data.labels import label_path, load_labels
from eval.jobs.store import JobStore
from eval.labels.pooled_judging import chunk_judgements, pool
from eval.runs.store import RunStore

pytestmark = [pytest.mark.browser, pytest.mark.server]
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

SWEEP = """configs:
  - {search_type: similarity, k: [3]}
  - {search_type: mmr, k: [3], fetch_k: [8], lambda_mult: [0.5]}
"""


@pytest.fixture(scope="module")
def documents_lab(tmp_path_factory, sample_dataset, lab_llm):
    """CLI: documents -> index -> generated question set -> sweep."""
    home = tmp_path_factory.mktemp("labels-home")
    docs = tmp_path_factory.mktemp("docs")
    for document in sample_dataset.corpus:
        (docs / f"{document.id}.md").write_text(f"# {document.title or document.id}\n\n{document.text}\n")
    llm = f"openai:lab@{lab_llm.base_url}"
    assert (
        main(
            [
                "--home",
                str(home),
                "index",
                "build",
                "--corpus",
                str(docs),
                "--name",
                "mine",
                "--embedding",
                "minilm",
                "--chunk-size",
                "400",
                "--chunk-overlap",
                "40",
            ]
        )
        == 0
    )
    questions = home / "generated"
    assert (
        main(
            [
                "--home",
                str(home),
                "questions",
                "generate",
                "--index",
                "mine",
                "--n",
                "5",
                "--llm",
                llm,
                "--out",
                str(questions),
            ]
        )
        == 0
    )
    (home / "sweep.yaml").write_text(SWEEP)
    assert (
        main(
            [
                "--home",
                str(home),
                "run",
                "--index",
                "mine",
                "--questions",
                str(questions),
                "--sweep",
                str(home / "sweep.yaml"),
                "--latency-sample",
                "0",
            ]
        )
        == 0
    )
    (manifest,) = RunStore(home / "runs").list()
    return {"home": home, "questions": questions, "llm": llm, "run_id": manifest["run_id"]}


def press(driver, label: str) -> None:
    """Click a button whose label starts with `label` (a button with a shortcut also shows its key)."""
    WebDriverWait(driver, 60).until(
        ec.element_to_be_clickable((By.XPATH, f"//button[starts-with(normalize-space(.), {label!r})]"))
    ).click()


def test_documents_to_labels_and_a_judged_leaderboard(browser, documents_lab):
    home, labels_file = documents_lab["home"], label_path(documents_lab["questions"] / "questions.jsonl")
    run = RunStore(home / "runs").load(documents_lab["run_id"])
    with streamlit_server(
        home, "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"
    ) as (url, _):
        browser.get(f"{url}/labels")
        wait_text(browser, "Generate questions")
        open_tab(browser, "LLM judge")
        fill(browser, "Judge LLM", documents_lab["llm"])
        fill(browser, "Pool depth (top chunks of every config)", "3")
        click_button(browser, "Judge the pool")
        wait_text(browser, "runs in the background")
        store = JobStore(home)
        job = store.wait(store.list()[0].job_id, timeout=600)  # the page started a background job
        assert job.status == "done" and job.kind == "judge", store.log_tail(job.job_id)
        assert len(chunk_judgements(labels_file, "llm:lab@judge-v1")) == len(pool(run, 3))
        browser.refresh()
        browser.save_screenshot(str(ARTIFACTS / "labels-01-judged.png"))

        open_tab(browser, "Label by hand")
        fill(browser, "Your name (labels are saved as human:NAME)", "ann")
        fill(browser, "Pool depth", "2")
        wait_text(browser, "0 of ")
        press(browser, "2 · answers it")
        wait_text(browser, "1 of ")
        browser.execute_script("document.activeElement.blur()")  # leave the text box: the key goes to the page
        ActionChains(browser).send_keys("0").perform()  # the shortcut of "0 · not relevant"
        wait_text(browser, "2 of ")
        browser.save_screenshot(str(ARTIFACTS / "labels-02-by-hand.png"))
        assert sorted(chunk_judgements(labels_file, "human:ann").values()) == [0, 2]

        open_tab(browser, "Agreement")
        wait_text(browser, "Weighted kappa")
        browser.save_screenshot(str(ARTIFACTS / "labels-03-agreement.png"))

        browser.get(f"{url}/compare")
        wait_text(browser, "Leaderboard")
        browser.save_screenshot(str(ARTIFACTS / "labels-04-compare.png"))
        ActionChains(browser).send_keys(Keys.ESCAPE).perform()  # close a dialog Streamlit may have opened
        WebDriverWait(browser, 30).until(lambda d: not d.find_elements(By.CSS_SELECTOR, "[data-testid='stDialog']"))
        labels_box = WebDriverWait(browser, 60).until(
            ec.element_to_be_clickable((By.XPATH, "//input[@aria-label='Labels']"))
        )
        labels_box.click()
        labels_box.send_keys("llm:lab", Keys.ENTER)
        WebDriverWait(browser, 120).until(lambda d: "Judged" in d.page_source)
        time.sleep(1)
        browser.save_screenshot(str(ARTIFACTS / "labels-05-compare-judged.png"))
    assert {"generated", "llm:lab@judge-v1", "human:ann"} <= set(load_labels(labels_file).sources)
