"""tests/browser.py, the shared headless Chromium: the viewport is what was asked for, and where
a piece is missing the reason names it (so a browser test is SKIPPED, never passed silently)."""

from __future__ import annotations

from pathlib import Path

import browser
import pytest
from browser import chromium  # noqa: F401  (a pytest fixture)


def test_a_started_browser_has_the_viewport_asked_for(chromium, tmp_path):  # noqa: F811
    page = tmp_path / "page.html"
    page.write_text("<!DOCTYPE html><html><body><p>hi</p></body></html>")
    driver = chromium(800, 600)
    driver.get(page.as_uri())
    assert driver.execute_script("return [window.innerWidth, window.innerHeight]") == [800, 600]
    assert driver.execute_script("return document.body.textContent") == "hi"


@pytest.mark.parametrize(("missing", "reason"), [
    ("selenium", "selenium is not installed"),
    ("chromium", "no Chromium at /usr/bin/chromium or on PATH"),
    ("chromedriver", "no chromedriver at /usr/bin/chromedriver or on PATH"),
])
def test_what_is_missing_is_named(monkeypatch, missing, reason):
    if missing == "selenium":
        monkeypatch.setattr(browser.importlib.util, "find_spec", lambda name: None)
    else:
        monkeypatch.setattr(browser, missing.upper(), Path("/nonexistent") / missing)
        monkeypatch.setattr(browser.shutil, "which", lambda name: None)
        monkeypatch.setattr(browser.importlib.util, "find_spec", lambda name: object())
    assert browser.browser_unavailable().startswith(reason.replace("/usr/bin",
                                                                   "/nonexistent"))
