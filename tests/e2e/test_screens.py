"""Every dashboard page in a real headless Chromium at 1366x768 and 1920x1080: a screenshot of each goes to
test-artifacts/screens/<page>-<width>.png, and no page may be wider than the window, show a table whose right
edge is off screen or whose columns scroll sideways, or show a Streamlit exception.
One server, one browser; the window is resized between sizes."""

import time

import pytest
from support.browser import wait_text
from support.paths import ROOT, SESSION_EMBEDDING_CACHE
from support.servers import PAGES, streamlit_server

from eval.index.chunking import ChunkingParams
from eval.index.embedding_cache import EmbeddingCache
from eval.index.store import IndexStore
from eval.retrievers.registry import parse_sweep
from eval.runs.store import RunStore
from eval.sweep.engine import SweepOptions, run_sweep

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]
SCREENS = ROOT / "test-artifacts" / "screens"
SIZES = [(1366, 768), (1920, 1080)]
# What overflows: the document, Streamlit's scrolling main area, and any visible table or dataframe that
# reaches past the window's right edge. Returns a list of descriptions (empty when the page fits).
OVERFLOW_JS = """
const width = window.innerWidth, found = [];
const doc = document.documentElement;
if (doc.scrollWidth > width) found.push(`document ${doc.scrollWidth}px wide`);
const main = document.querySelector('[data-testid="stMain"]');
if (main && main.scrollWidth > main.clientWidth + 1)
  found.push(`main area ${main.scrollWidth}px > ${main.clientWidth}px`);
for (const el of document.querySelectorAll('[data-testid="stDataFrame"], [data-testid="stTable"], table')) {
  const box = el.getBoundingClientRect();
  if (box.width > 0 && box.right > width + 1)
    found.push(`${el.dataset.testid || el.tagName} right edge ${box.right}px`);
}
// a dataframe that fits the window may still hide columns behind its own horizontal scroll bar
for (const grid of document.querySelectorAll('[data-testid="stDataFrame"]')) {
  const scroller = grid.querySelector('.dvn-scroller');
  if (scroller && scroller.clientWidth > 0 && scroller.scrollWidth > scroller.clientWidth + 1)
    found.push(`a dataframe scrolls sideways: ${scroller.scrollWidth}px of columns in ${scroller.clientWidth}px`);
}
return found;
"""
# None while the script runs (or a spinner or skeleton shows), else the length of the main area's text
SETTLED_JS = """
const busy = '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stSpinner"], [data-testid="stSkeleton"]';
if (document.querySelector(busy))
  return null;
return document.querySelector('[data-testid="stMain"]').innerText.length;
"""
FULL_HEIGHT_JS = """return document.querySelector('[data-testid="stMain"]').scrollHeight;"""


@pytest.fixture(scope="module")
def screens_url(tmp_path_factory, sample_dataset):
    """`streamlit run` on a lab home with the sample index (e5-small, vectors from the session's cache: no torch
    in the server) and a finished run over it."""
    home = tmp_path_factory.mktemp("screens-home")
    store = IndexStore(home / "indexes", embedding_cache=EmbeddingCache(SESSION_EMBEDDING_CACHE))
    store.build(sample_dataset, "sample", embedding_model="e5-small", chunking=ChunkingParams(400, 40))
    run_sweep(
        RunStore(home / "runs"),
        store.open("sample"),
        parse_sweep(
            {
                "configs": [
                    {"search_type": "similarity", "k": [2, 4]},
                    {"search_type": "mmr", "k": 4, "fetch_k": 10, "lambda_mult": 0.5},
                ]
            }
        ),
        sample_dataset.questions[:8],
        "sample",
        SweepOptions(latency_sample=2),
    )
    with streamlit_server(
        home, "--server.headless", "true", "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"
    ) as (url, _):
        yield url


def wait_settled(driver, timeout: float = 60) -> None:
    """Until the script is not running, no spinner or skeleton is left and the page's text has stayed the same
    for three polls (the running indicator may show only a moment after the title)."""
    deadline, last, calm = time.time() + timeout, None, 0
    while calm < 3:
        assert time.time() < deadline, "the page kept running"
        now = driver.execute_script(SETTLED_JS)
        calm = calm + 1 if now is not None and now == last else 0
        last = now
        time.sleep(0.3)


def save_full_page(driver, path, width: int, height: int) -> None:
    """A screenshot of the whole page: the window is made as tall as the main area for it, then restored."""
    driver.set_window_size(width, min(driver.execute_script(FULL_HEIGHT_JS) + 200, 8000))
    time.sleep(0.5)
    driver.save_screenshot(str(path))
    driver.set_window_size(width, height)


def test_every_page_fits_both_window_sizes(browser, screens_url):
    SCREENS.mkdir(parents=True, exist_ok=True)
    problems = []
    for width, height in SIZES:
        browser.set_window_size(width, height)
        for path, title in PAGES:
            browser.get(f"{screens_url}/{path}")
            wait_text(browser, title, timeout=60)
            wait_settled(browser)
            name = path or "compare"
            assert browser.execute_script("return window.innerWidth") == width  # headless: no side chrome
            assert title in [h1.text for h1 in browser.find_elements("tag name", "h1")], f"{name}: no title"
            if browser.find_elements("css selector", '[data-testid="stException"]'):
                problems.append(f"{name} at {width}px: a Streamlit exception is shown")
            problems += [f"{name} at {width}px: {found}" for found in browser.execute_script(OVERFLOW_JS)]
            save_full_page(browser, SCREENS / f"{name}-{width}.png", width, height)
    assert not problems, "\n".join(problems)


def test_clicking_a_chart_point_opens_that_configs_questions(browser, screens_url):
    """On Compare, a click on the mmr config's bubble (the only mmr config of the run) makes it the drill-down's
    configuration, which starts as the recommended similarity config."""
    from selenium.webdriver.common.action_chains import ActionChains

    browser.set_window_size(*SIZES[0])
    browser.get(screens_url)
    wait_text(browser, "Compare configurations", timeout=60)
    wait_settled(browser)
    drill = '[class*="st-key-drill-config"] input'
    chosen = lambda: browser.find_element("css selector", drill).get_attribute("value")  # noqa: E731
    assert chosen().startswith("similarity")
    point = browser.execute_script("""
      const plot = document.querySelector('[class*="st-key-chart-scatter"] .js-plotly-plot');
      const curve = plot.data.findIndex(trace => trace.name === 'mmr');
      return plot.querySelectorAll('.scatterlayer .trace')[curve].querySelector('path.point');""")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", point)
    ActionChains(browser).move_to_element(point).click().perform()
    deadline = time.time() + 30
    while chosen() != "mmr-k4-f10-l0.5":
        assert time.time() < deadline, f"the drill-down still shows {chosen()}"
        time.sleep(0.3)
