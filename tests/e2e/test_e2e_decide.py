"""Issue 22's "Done when", end to end with no LLM at all: from a folder of `.txt` documents and a `.txt` list of
questions (the CLI builds the index, imports the questions and runs a small sweep), a person labels in a real
headless Chromium, through the Decide tab's keys 0, 1 and 2 (and s, u), what the lab asks until the page says
"settled"; the page shows the recommendation with its interval; the HTML report downloaded from the Reports
page says the same: the decision, the label source and its judged share, and the ranking. The person is an
oracle that knows which document answers each question (each document is one chunk). A name typed in the
Label-by-hand tab as well must not make the keys label there too. Screenshots go to test-artifacts/e2e/."""

import re
from pathlib import Path

import pytest
from support.browser import ARTIFACTS, click_button, downloaded, fill, open_tab, wait_text
from support.servers import HEADLESS, streamlit_server

from eval.cli.main import main
from eval.data.labels import label_path, load_labels
from eval.runs.store import RunStore

pytestmark = [pytest.mark.browser, pytest.mark.server, pytest.mark.slow]
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

DOCUMENTS = {
    "volcanoes": "Volcanoes form where magma from the Earth's mantle reaches the surface. Mount Etna in Sicily is "
    "the most active volcano in Europe, erupting several times a decade. Lava flows, ash clouds and volcanic gases "
    "are the main hazards near an active volcano.",
    "honeybees": "Honeybees live in colonies ruled by a single queen. Worker bees collect nectar and pollen from "
    "flowers and turn the nectar into honey, which they store in wax combs. A strong colony can hold sixty "
    "thousand bees in summer.",
    "lighthouses": "A lighthouse warns ships of dangerous coasts with a bright rotating lamp. The Fresnel lens, "
    "invented by Augustin Fresnel in 1822, focuses the light into a beam visible more than thirty kilometres out "
    "at sea.",
    "sourdough": "Sourdough bread rises with a starter of wild yeast and lactic acid bacteria instead of baker's "
    "yeast. The bacteria make the bread sour, and a starter must be fed flour and water every day to stay alive.",
    "glaciers": "Glaciers are rivers of ice that move slowly downhill under their own weight. As they retreat they "
    "leave moraines of rock and gravel. The Aletsch Glacier in Switzerland is the largest glacier in the Alps.",
    "chess": "In chess, castling moves the king two squares towards a rook and places the rook on the other side of "
    "the king. It is the only move in which two pieces move at once, and it is not allowed while the king is in "
    "check.",
    "tides": "Ocean tides are caused mainly by the gravitational pull of the Moon. Most coasts see two high tides "
    "and two low tides every lunar day, and the largest tidal range on Earth is in the Bay of Fundy in Canada.",
    "penicillin": "Alexander Fleming discovered penicillin in 1928 when he noticed that a mould called Penicillium "
    "killed the bacteria growing on a culture plate. Penicillin became the first widely used antibiotic during "
    "the Second World War.",
}
# the oracle: the one document that answers each question (some share no words with it: BM25 misses them)
ANSWERS = {
    "Which European mountain erupts most often?": "volcanoes",
    "What do worker bees turn nectar into?": "honeybees",
    "Whose invention lets a coastal beacon be seen from far away?": "lighthouses",
    "What makes sourdough bread rise?": "sourdough",
    "What is the largest glacier in the Alps?": "glaciers",
    "When is castling not allowed in chess?": "chess",
    "What causes ocean tides?": "tides",
    "Who discovered penicillin?": "penicillin",
    "Which drug was first made from a mould?": "penicillin",
    "Where do the seas rise and fall the most?": "tides",
}
PARTLY = {"How many bees live in a hive in winter?": "honeybees"}  # it gives the summer's number only
SWEEP = """configs:
  - {search_type: similarity, k: [1, 3]}
  - {search_type: bm25, k: [1]}
"""
STATUS = re.compile(
    r"(Settled|Not settled)\b.*? \(pick\): (\S+) \(nDCG (\d\.\d{3}), 95% interval (\d\.\d{3})-(\d\.\d{3})\)"
)
JUDGED = re.compile(r"Label source (human:\w+): (\d+) of (\d+) pool pairs judged \((\d+\.\d)%\)")


def cli(home: Path, *args: str) -> None:
    assert main(["--home", str(home), *args]) == 0, args


@pytest.fixture(scope="module")
def decide_lab(tmp_path_factory):
    """CLI: a folder of .txt documents -> index; a .txt list of questions -> question set; a three-config sweep."""
    root = tmp_path_factory.mktemp("decide-lab")
    home, docs, questions = root / "home", root / "docs", root / "real"
    docs.mkdir()
    for name, text in DOCUMENTS.items():
        (docs / f"{name}.txt").write_text(text + "\n")
    (root / "questions.txt").write_text("\n".join([*ANSWERS, *PARTLY]) + "\n")
    (root / "sweep.yaml").write_text(SWEEP)
    cli(home, "index", "build", "--corpus", str(docs), "--name", "mine", "--embedding", "e5-small")
    cli(home, "questions", "import", str(root / "questions.txt"), "--out", str(questions), "--index", "mine")
    cli(home, "run", "--index", "mine", "--questions", str(questions), "--sweep", str(root / "sweep.yaml"))
    (manifest,) = RunStore(home / "runs").list()
    return {"home": home, "run_id": manifest["run_id"], "labels": label_path(questions / "questions.jsonl")}


def panel(driver):
    """The visible tab of the Labels page (Streamlit keeps the other tabs' elements in the page, hidden)."""
    return driver.find_element(By.XPATH, "//div[@role='tabpanel' and not(@hidden)]")


def page_text(driver) -> str:
    return panel(driver).text


def judged(driver) -> tuple[int, int]:
    found = JUDGED.search(page_text(driver))
    return (int(found[2]), int(found[3])) if found else (-1, -1)


def press_key(driver, key: str) -> None:
    """A key to the page, not to a text box: the way a person labels."""
    driver.execute_script("document.activeElement.blur()")
    ActionChains(driver).send_keys(key).perform()


def asked(driver) -> tuple[str, str]:
    """(question, document) of the pair the page asks about now."""
    question = panel(driver).find_element(By.TAG_NAME, "h3").text.strip()
    caption = panel(driver).find_element(By.XPATH, ".//*[starts-with(normalize-space(.), 'Document ')]").text
    return question, caption.removeprefix("Document ").split(" · ")[0]


def grade(question: str, document: str) -> int:
    """The oracle's grade of a document for a question."""
    return 2 if document == f"{ANSWERS.get(question)}.txt" else 1 if document == f"{PARTLY.get(question)}.txt" else 0


def until(driver, condition, timeout: float = 60) -> None:
    """Wait for `condition(driver)` through Streamlit's reruns (which replace elements while they render)."""
    WebDriverWait(driver, timeout, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException)).until(
        condition
    )


def settled(driver) -> bool:
    return "Settled after" in page_text(driver)


def after(driver, key: str, pair: tuple[str, str], judged_now: int) -> None:
    """Press `key` on `pair` and wait for the page to ask another pair (or to say settled) with `judged_now`
    pairs judged."""
    press_key(driver, key)
    until(driver, lambda d: judged(d)[0] == judged_now and (settled(d) or asked(d) != pair))


def grid_column(driver) -> list[str]:
    """The first column of the visible tab's table, top to bottom (a data grid's cells are drawn on a canvas; its
    accessible table has their text)."""
    cells = panel(driver).find_elements(By.CSS_SELECTOR, "[data-testid='stDataFrame'] td[aria-colindex='1']")
    return [cell.get_attribute("textContent") for cell in cells]


def decided_ranking(driver, labels: int) -> list[str]:
    """The config column of the report's "Decided with N labels" table."""
    rows = driver.find_elements(
        By.XPATH, f"//h2[normalize-space(.)='Decided with {labels} labels']/following-sibling::table[1]/tbody/tr/td[1]"
    )
    return [row.text for row in rows]


def saved_labels(lab: dict) -> dict[tuple[str, str, str], int]:
    """{(source, question, document): grade} of the labels file."""
    run = RunStore(lab["home"] / "runs").load(lab["run_id"])
    return {
        (j.source, run.questions_by_id[j.question_id].question, j.doc_id): j.grade
        for j in load_labels(lab["labels"]).judgements
    }


def test_decide_by_keys_until_settled_and_the_report_says_the_same(browser, decide_lab):
    with streamlit_server(decide_lab["home"], *HEADLESS) as (url, _):
        browser.get(f"{url}/labels")
        wait_text(browser, "Label only what decides")
        open_tab(browser, "Label by hand")  # a name there too: its (hidden) buttons must not take Decide's keys
        fill(browser, "Your name (labels are saved as human:NAME)", "bob")
        wait_text(browser, "0 of ")
        open_tab(browser, "Decide")
        fill(browser, "Your name (your Decide labels are saved as human:NAME)", "ann")
        until(browser, lambda d: judged(d)[0] == 0)
        browser.save_screenshot(str(ARTIFACTS / "decide-01-first-pair.png"))
        pool = judged(browser)[1]

        first = asked(browser)
        after(browser, "s", first, 0)  # skip: another pair is asked, none judged
        press_key(browser, "u")  # undo the skip: the same pair again
        until(browser, lambda d: asked(d) == first)
        after(browser, "1", first, 1)  # key 1 saves grade 1 (the oracle's answers may not need a 1 before settling)
        assert saved_labels(decide_lab) == {("human:ann", *first): 1}
        press_key(browser, "u")
        until(browser, lambda d: asked(d) == first and judged(d)[0] == 0)
        assert saved_labels(decide_lab) == {}

        pressed = {}
        for labels in range(1, pool + 1):
            question, document = asked(browser)
            pressed[question, document] = grade(question, document)
            after(browser, str(pressed[question, document]), (question, document), labels)
            if settled(browser):
                break
        assert saved_labels(decide_lab) == {("human:ann", *pair): grade for pair, grade in pressed.items()}
        assert {0, 2} <= set(pressed.values())  # each key saved its own grade (1: above)
        text = page_text(browser)
        browser.save_screenshot(str(ARTIFACTS / "decide-02-settled.png"))
        status, share = STATUS.search(text), JUDGED.search(text)
        assert status and status[1] == "Settled", text
        assert status[0].startswith(f"Settled after {labels} labels")  # every key press was one label
        assert labels < pool  # settled before the whole pool was judged
        recommended, estimate, low, high = status[2], *(float(status[n]) for n in (3, 4, 5))
        assert (
            recommended in ("similarity-k1", "similarity-k3") and low <= estimate <= high
        )  # BM25 misses reworded questions
        until(browser, lambda d: len(grid_column(d)) == 3)
        ranking = grid_column(browser)
        assert ranking[0] == recommended and ranking[-1] == "bm25-k1-words"

        browser.get(f"{url}/reports")
        click_button(browser, "Build HTML report", timeout=120)
        click_button(browser, "Download HTML report", timeout=120)
        report = downloaded(browser, "*.html")
        browser.get(report.as_uri())
        wait_text(browser, f"Decided with {labels} labels")
        browser.save_screenshot(str(ARTIFACTS / "decide-03-report.png"))
        body = browser.find_element(By.TAG_NAME, "body").text
        assert f"{status[0]}." in body and f"Decide ({share[1]}, rule pick): {status[0]}." in body
        assert f"{share[0]}." in body and f"label source: {share[1]}" in body
        assert decided_ranking(browser, labels) == ranking
