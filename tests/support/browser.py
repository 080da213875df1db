"""A real headless Chromium for the end-to-end tests (Debian's chromium and chromium-driver, which `make test`
installs): where to find it, and the few ways the tests drive it. Screenshots go to test-artifacts/e2e/; the
`browser` fixture is in tests/e2e/conftest.py."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait
from support.paths import ROOT

os.environ["SE_AVOID_STATS"] = "true"  # selenium must not phone home

ARTIFACTS = ROOT / "test-artifacts" / "e2e"


def chromium_paths() -> tuple[str, str]:
    browser, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (browser and driver):
        pytest.fail("Debian's chromium and chromium-driver are needed: run `make test`, which installs them")
    return browser, driver


def wait_text(driver, text: str, timeout: float = 120) -> None:
    WebDriverWait(driver, timeout).until(
        ec.presence_of_element_located((By.XPATH, f"//*[contains(normalize-space(.), {text!r}) and not(self::script)]"))
    )


def fill(driver, label: str, text: str) -> None:
    """Type into the visible input whose label is `label` (Ctrl+A first, Enter after)."""
    box = WebDriverWait(driver, 60).until(ec.element_to_be_clickable((By.XPATH, f"//input[@aria-label={label!r}]")))
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text, Keys.ENTER)


def click_button(driver, label: str, timeout: float = 60) -> None:
    WebDriverWait(driver, timeout).until(
        ec.element_to_be_clickable((By.XPATH, f"//button[normalize-space(.)={label!r}]"))
    ).click()


def open_tab(driver, name: str) -> None:
    WebDriverWait(driver, 60).until(
        ec.element_to_be_clickable((By.XPATH, f"//*[@role='tab' and contains(normalize-space(.), {name!r})]"))
    ).click()


def downloaded(driver, pattern: str, timeout: float = 60) -> Path:
    """The one file matching `pattern` in the browser's download folder, once it is there."""
    deadline = time.time() + timeout
    while time.time() < deadline and not list(Path(driver.downloads).glob(pattern)):
        time.sleep(0.3)
    (found,) = list(Path(driver.downloads).glob(pattern))
    return found
