"""First render of every dashboard page in a real headless Chromium (target: under 2 s each on the example run, on
an idle machine).

    PYTHONPATH=. .venv/bin/python benchmarks/bench_first_render.py

Prepares what `make run` opens (`python -m eval sample`) in a temporary home, starts `streamlit run` on it and,
per page, times from navigation to the page's title being on screen with the script no longer running (no
running indicator, spinner or skeleton, for 0.5 s in a row: the time counted ends where that stretch begins).
Each page is loaded once to warm up, then timed 3 times; prints the median per page and the maximum, with the
load average (numbers taken on a busy machine are not the target's).
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.servers import PAGES, streamlit_server  # noqa: E402  (the tests' way to start the app; its pages)

STEADY = 0.5  # seconds
RENDERED_JS = """
const title = [...document.querySelectorAll('h1')].some(h => h.textContent.trim() === arguments[0]);
return title && !document.querySelector(
  '[data-testid="stStatusWidgetRunningIcon"], [data-testid="stSpinner"], [data-testid="stSkeleton"]');
"""


def chromium():
    from selenium import webdriver

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium")
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--no-first-run",
        "--window-size=1366,768",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=webdriver.ChromeService(shutil.which("chromedriver")))


def time_page(driver, url: str, title: str, timeout: float = 120) -> float:
    """Seconds from navigation to the title rendered with the script finished: the first moment of a stretch
    of STEADY seconds in which that stays true (a poll that
    falls between the title appearing and the running indicator showing must not count)."""
    start = time.perf_counter()
    driver.get(url)
    rendered_at = None
    while True:
        now = time.perf_counter()
        if now - start > timeout:
            raise TimeoutError(f"{url}: '{title}' did not finish rendering in {timeout} s")
        if not driver.execute_script(RENDERED_JS, title):
            rendered_at = None
        elif rendered_at is None:
            rendered_at = now
        elif now - rendered_at >= STEADY:
            return rendered_at - start
        time.sleep(0.02)


def main() -> None:
    os.environ["SE_AVOID_STATS"] = "true"
    with tempfile.TemporaryDirectory(prefix="first-render-") as home:
        subprocess.run([sys.executable, "-m", "eval", "--home", home, "sample"], cwd=ROOT, check=True)
        driver = chromium()
        try:
            with streamlit_server(
                home,
                "--server.headless",
                "true",
                "--server.address",
                "127.0.0.1",
                "--browser.gatherUsageStats",
                "false",
            ) as (url, _):
                print(f"load average before: {os.getloadavg()[0]:.2f}")
                medians = {}
                for path, title in PAGES:
                    time_page(driver, f"{url}/{path}", title)  # warm-up: caches, imports, models
                    medians[path or "compare"] = statistics.median(
                        time_page(driver, f"{url}/{path}", title) for _ in range(3)
                    )
                load = os.getloadavg()
        finally:
            driver.quit()
    print(f"\n{'page':<18} {'median first render (s)':>24}")
    for page, seconds in medians.items():
        print(f"{page:<18} {seconds:>24.2f}")
    print(
        f"max: {max(medians.values()):.2f} s (target 2 s); "
        f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


if __name__ == "__main__":
    main()
