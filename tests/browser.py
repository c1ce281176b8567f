"""Headless Chromium for the tests that look at a rendered page (report.html, the climb
explorer): one place that starts the browser the same way everywhere, or skips with the reason.

    from browser import chromium  # noqa: F401  (a pytest fixture)

    def test_page_fits(chromium, tmp_path):
        driver = chromium(width=1366)
        driver.get(page.as_uri())

(or ``shared_chromium``: one browser for the module, resized with :func:`set_viewport`).

The browser is the system's Chromium and chromedriver (Debian: ``apt-get install chromium
chromium-driver``), driven by selenium (the ``test`` extra). Each start gets a fresh profile
directory (``--user-data-dir``) and the flags in :data:`CHROMIUM_FLAGS`, which keep it from
touching the network or the machine's profile. Where Chromium, chromedriver or selenium is
missing, the test is SKIPPED, naming what is missing: it never passes without looking; where
the run required the browser (TRPO_CLAIMS_BROWSER=1 as root, as in CI) it FAILS instead.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
CHROMIUM_FLAGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)
DEFAULT_HEIGHT = 900
SETUP = "as root, TRPO_CLAIMS_BROWSER=1 bash scripts/setup.sh installs both"


def _executable(preferred: Path, name: str) -> Path | None:
    if preferred.is_file():
        return preferred
    found = shutil.which(name)
    return Path(found) if found else None


def browser_unavailable() -> str | None:
    """Why no headless Chromium can start here (None when it can)."""
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed (it is in the test extra: pip install -e '.[test]')"
    if _executable(CHROMIUM, "chromium") is None:
        return f"no Chromium at {CHROMIUM} or on PATH (Debian: apt-get install chromium; {SETUP})"
    if _executable(CHROMEDRIVER, "chromedriver") is None:
        return (f"no chromedriver at {CHROMEDRIVER} or on PATH (Debian: apt-get install "
                f"chromium-driver; {SETUP})")
    return None


def browser_required() -> str | None:
    """Why a missing browser is a failure here, not a skip (None where a skip is right): the
    run asked for the browser (TRPO_CLAIMS_BROWSER=1, as .ci/run sets) as root with apt-get,
    where scripts/setup.sh installs Chromium and its driver, so their absence is a broken
    setup, not an absent browser."""
    if os.environ.get("TRPO_CLAIMS_BROWSER") != "1":
        return None
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get")):
        return None  # setup.sh could not install it: it said so, and the tests skip
    return "TRPO_CLAIMS_BROWSER=1 as root with apt-get, where scripts/setup.sh installs it"


def skip_or_fail_without_browser() -> None:
    """Skip the test, naming what is missing, where no headless Chromium can start; fail
    instead where the browser was required (:func:`browser_required`). Returns where it can."""
    reason = browser_unavailable()
    if reason is None:
        return
    if (required := browser_required()) is not None:
        pytest.fail(f"headless Chromium unavailable although {required}: {reason}")
    pytest.skip(f"headless Chromium unavailable: {reason}")


def start_chromium(user_data_dir: Path, width: int, height: int = DEFAULT_HEIGHT) -> Any:
    """A selenium WebDriver on a new headless Chromium whose viewport is ``width`` x
    ``height`` CSS pixels, with a fresh profile in ``user_data_dir``. The caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(_executable(CHROMIUM, "chromium"))
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={user_data_dir}",
                 f"--window-size={width},{height}"):
        options.add_argument(flag)
    service = Service(executable_path=str(_executable(CHROMEDRIVER, "chromedriver")))
    driver = webdriver.Chrome(options=options, service=service)
    set_viewport(driver, width, height)
    return driver


def set_viewport(driver: Any, width: int, height: int = DEFAULT_HEIGHT) -> None:
    """Resize the window so that the page's viewport (``window.innerWidth`` x
    ``innerHeight``, scrollbar included) is ``width`` x ``height`` CSS pixels."""
    outer = driver.get_window_size()
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    if inner != [width, height]:
        driver.set_window_size(outer["width"] + width - inner[0],
                               outer["height"] + height - inner[1])


@pytest.fixture
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., Any]]:
    """A function ``(width, height=900) -> WebDriver`` that starts headless Chromium with that
    viewport (each call a fresh profile); every driver started is quit at teardown. Skips the
    test, with the reason, where no browser can start."""
    skip_or_fail_without_browser()
    drivers: list[Any] = []

    def start(width: int, height: int = DEFAULT_HEIGHT) -> Any:
        driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"), width, height)
        drivers.append(driver)
        return driver

    yield start
    for driver in drivers:
        driver.quit()


@pytest.fixture(scope="module")
def shared_chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """One headless Chromium for a whole test module (a start costs seconds); each test sets
    the viewport it needs with :func:`set_viewport`. Skips, with the reason, like
    :func:`chromium`."""
    skip_or_fail_without_browser()
    driver = start_chromium(tmp_path_factory.mktemp("chromium-profile"), 1366)
    yield driver
    driver.quit()
