"""A sweep job driven from a real headless Chromium: it keeps running while the user leaves the page, reloads,
opens a second tab and restarts the Streamlit server, and ends in the rows of an uninterrupted run.
Screenshots go to test-artifacts/e2e/."""
import pandas as pd
import pytest
from conftest import streamlit_server
from openai_stub_server import OpenAIStubServer
from test_dashboard import write_dataset
from test_e2e import ARTIFACTS, browser, click_button, wait_text  # noqa: F401  (browser is a fixture)
from test_jobs import comparable, uninterrupted_rows

from eval.index import ChunkingParams, IndexStore
from eval.jobs import JobStore, process_start
from eval.runs import RunStore

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]
SERVER_FLAGS = ("--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false")

from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


def fill(driver, label_start: str, text: str) -> None:
    box = WebDriverWait(driver, 60).until(ec.element_to_be_clickable(
        (By.XPATH, f"//input[starts-with(@aria-label, {label_start!r})]")))
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text, Keys.ENTER)


def click_label(driver, text: str) -> None:
    WebDriverWait(driver, 60).until(ec.element_to_be_clickable(
        (By.XPATH, f"//label[contains(normalize-space(.), {text!r})]"))).click()


def sidebar_progress(driver) -> str:
    """The text of the job's progress bar in the sidebar, e.g. `answers 12/40 · 1.2/s · ETA 23 s`."""
    WebDriverWait(driver, 120).until(lambda d: "answers " in d.find_element(
        By.CSS_SELECTOR, "[data-testid='stSidebar']").text)
    text = driver.find_element(By.CSS_SELECTOR, "[data-testid='stSidebar']").text
    return next(line for line in text.splitlines() if line.startswith("answers "))


def done_count(progress: str) -> int:
    return int(progress.split()[1].split("/")[0])


def test_a_sweep_job_survives_navigation_reload_a_second_tab_and_a_server_restart(
        browser, tmp_path, tiny_dataset, monkeypatch):  # noqa: F811
    home = tmp_path / "home"
    data = write_dataset(tmp_path / "tiny", tiny_dataset)
    IndexStore(home / "indexes").build(tiny_dataset, "tiny", "e5-small", ChunkingParams(120, 20))
    monkeypatch.setenv("RETRIEVER_LAB_BLOCK_SIZE", "1")  # the server passes it to its jobs
    store = JobStore(home)
    with OpenAIStubServer(delay_s=1.5) as llm, OpenAIStubServer() as fast_llm:  # slow: the job outlasts the clicks
        with streamlit_server(home, *SERVER_FLAGS) as (url, _):
            browser.get(f"{url}/sweep")
            wait_text(browser, "Start sweep", timeout=300)
            fill(browser, "Index", "tiny")
            click_label(browser, "Folder or file path")
            fill(browser, "Path (folder", str(data))
            fill(browser, "k values", "2, 3")
            click_label(browser, "Stream an answer for every row")
            fill(browser, "Model", f"openai:stub@{llm.base_url}")
            wait_text(browser, "× 5 questions")
            click_button(browser, "Start sweep")
            wait_text(browser, "it runs in the background")
            (job,) = store.list()
            first = sidebar_progress(browser)
            browser.save_screenshot(str(ARTIFACTS / "09-job-started.png"))

            browser.get(f"{url}/compare")  # leave the page: the job goes on
            wait_text(browser, "Compare configurations")
            second = sidebar_progress(browser)
            browser.refresh()
            WebDriverWait(browser, 120).until(lambda d: done_count(sidebar_progress(d)) > done_count(first))
            browser.switch_to.new_window("tab")  # a second tab sees the same job
            browser.get(f"{url}/inspect_question")
            WebDriverWait(browser, 120).until(lambda d: "sweep on 'tiny'" in d.find_element(
                By.CSS_SELECTOR, "[data-testid='stSidebar']").text)
            browser.save_screenshot(str(ARTIFACTS / "10-job-second-tab.png"))
            assert store.get(job.job_id).status == "running", store.get(job.job_id).error
        # the server is gone; the job is not
        assert store.get(job.job_id).status == "running" and process_start(job.pid)
        before_restart = store.progress(job.job_id)
        assert before_restart["stage"] == "answers" and before_restart["done"] < before_restart["total"]
        with streamlit_server(home, *SERVER_FLAGS) as (url, _):
            browser.get(f"{url}/reports")
            WebDriverWait(browser, 300).until(lambda d: "Open in Compare" in d.find_element(
                By.CSS_SELECTOR, "[data-testid='stSidebar']").text)
            finished = store.get(job.job_id)
            assert finished.status == "done" and store.progress(job.job_id)["stage"] == "summary"
            click_button(browser, "Open in Compare")
            wait_text(browser, "Compare configurations")
            wait_text(browser, finished.run_id)
            browser.save_screenshot(str(ARTIFACTS / "11-job-done-compare.png"))
        assert done_count(first) <= done_count(second)
        same_answers_sooner = [f"openai:stub@{fast_llm.base_url}" if a.startswith("openai:") else a
                               for a in finished.argv]  # the stub's answer does not depend on its delay
        straight = uninterrupted_rows({"home": home}, same_answers_sooner)
    pd.testing.assert_frame_equal(comparable(RunStore(home / "runs").load(finished.run_id).rows), comparable(straight))
