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


def _no_browser(monkeypatch, *, env, root, apt):
    monkeypatch.setattr(browser, "CHROMIUM", Path("/nonexistent/chromium"))
    monkeypatch.setattr(browser.shutil, "which", lambda name: "/usr/bin/apt-get"
                        if name == "apt-get" and apt else None)
    monkeypatch.setattr(browser.importlib.util, "find_spec", lambda name: object())
    monkeypatch.setattr(browser.os, "geteuid", lambda: 0 if root else 1000, raising=False)
    if env is None:
        monkeypatch.delenv("TRPO_CLAIMS_BROWSER", raising=False)
    else:
        monkeypatch.setenv("TRPO_CLAIMS_BROWSER", env)


@pytest.mark.parametrize(("env", "root", "apt"), [
    (None, True, True),  # nobody asked for the browser
    ("1", False, True),  # asked, but setup.sh cannot install it without root (and says so)
    ("1", True, False),  # asked, as root, but no apt-get to install it with
    ("0", True, True),
])
def test_a_missing_browser_skips_naming_it(monkeypatch, env, root, apt):
    _no_browser(monkeypatch, env=env, root=root, apt=apt)
    with pytest.raises(pytest.skip.Exception, match="no Chromium at /nonexistent/chromium"):
        browser.skip_or_fail_without_browser()


def test_a_missing_browser_fails_where_setup_installs_it(monkeypatch):
    """CI (.ci/run: TRPO_CLAIMS_BROWSER=1, as root): setup.sh installs Chromium, so a missing
    one is a broken setup, and the browser tests fail instead of skipping."""
    _no_browser(monkeypatch, env="1", root=True, apt=True)
    with pytest.raises(pytest.fail.Exception, match="although TRPO_CLAIMS_BROWSER=1 as root"):
        browser.skip_or_fail_without_browser()
