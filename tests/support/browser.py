"""Debian's chromium, headless, driven by selenium through Debian's chromedriver.

`make test` installs both (scripts/chromium.sh); when either is missing, `open_chromium` raises,
so the browser test fails instead of being skipped. Selenium blocks: a trio test calls the driver
from a worker thread (`in_thread`), so that its own tasks (the pool's log reader, miners) go on.
The browser's console is kept at every level (`console_problems` reads it).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import trio
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

T = TypeVar("T")

#: Upper bound of one wait on the page (it reads the API every 2 s).
PAGE_TIMEOUT = 15.0


def _binary(name: str) -> str:
    found = shutil.which(name) or (f"/usr/bin/{name}" if Path(f"/usr/bin/{name}").exists() else None)
    if found is None:
        raise AssertionError(f"{name} is not installed: run `bash scripts/chromium.sh` (make test does)")
    return found


@contextmanager
def open_chromium(log_dir: Path, width: int = 1400, height: int = 1900) -> Iterator[WebDriver]:
    """A headless chromium, its chromedriver log in `log_dir`; quit when the block ends."""
    options = webdriver.ChromeOptions()
    options.binary_location = _binary("chromium")
    for argument in (
        "--headless=new",
        "--no-sandbox",  # as root in a container
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-first-run",
        f"--window-size={width},{height}",
        f"--user-data-dir={log_dir / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_binary("chromedriver"), log_output=str(log_dir / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        yield driver
    finally:
        driver.quit()


async def in_thread(call: Callable[[], T]) -> T:
    """Run a blocking driver call off the trio loop."""
    return await trio.to_thread.run_sync(call)


async def wait_for_page(driver: WebDriver, condition: Callable[[WebDriver], T], what: str) -> T:
    """WebDriverWait on the DOM until `condition` returns something truthy (and return it)."""

    def wait() -> T:
        waiting = WebDriverWait(
            driver, PAGE_TIMEOUT, poll_frequency=0.1, ignored_exceptions=[StaleElementReferenceException]
        )
        result: T = waiting.until(condition, f"waiting for {what}")
        return result

    return await in_thread(wait)


def texts(driver: WebDriver, css: str) -> list[str]:
    """The shown text of every element matching `css`, read in one go (the page redraws its
    tables every few seconds: an element found by one call may be gone by the next)."""
    script = "return [...document.querySelectorAll(arguments[0])].map((e) => e.innerText.trim())"
    found: list[str] = driver.execute_script(script, css)
    return found


def text(driver: WebDriver, css: str) -> str | None:
    """The text of the first element matching `css`, or None while there is none."""
    found = texts(driver, css)
    return found[0] if found else None


async def wait_text(driver: WebDriver, css: str, wanted: set[str], what: str) -> str:
    """Until the element's text is one of `wanted`: that text."""

    def shown(d: WebDriver) -> str | None:
        found = text(d, css)
        return found if found in wanted else None

    result = await wait_for_page(driver, shown, what)
    assert result is not None
    return result


def shown_element(driver: WebDriver, element_id: str) -> WebElement | None:
    element = driver.find_element(By.ID, element_id)
    return element if element.is_displayed() else None


def console_problems(driver: WebDriver) -> list[dict[str, Any]]:
    """Console entries since the last call at WARNING or SEVERE (errors, failed loads, CSP)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [e for e in entries if e.get("level") in ("WARNING", "SEVERE")]
