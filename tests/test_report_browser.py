"""report.html in a real browser (headless Chromium): the overview's verdict table fits a 1,366 px
laptop screen and a 1,920 px one without horizontal overflow, on the committed reports' real
claims (long ids, titles and statistics), and the page has the overview before the details.
Skipped, with the reason, where Chromium or selenium is missing (see tests/browser.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from browser import set_viewport, shared_chromium  # noqa: F401  (shared_chromium: a fixture)

from claims.framework.report import write_reports
from claims.framework.runner import load_results

REPO = Path(__file__).resolve().parents[1]
COMMITTED = [REPO / "reports" / "quick", REPO / "reports" / "full"]
WIDTHS = (1366, 1920)

OVERFLOW = """
const table = document.querySelector('table.verdicts');
const box = table.getBoundingClientRect();
return {
  window: window.innerWidth,
  viewport: document.documentElement.clientWidth,
  page: document.documentElement.scrollWidth,
  tableRight: box.right,
  tableScroll: table.scrollWidth,
  tableClient: table.clientWidth,
  rows: table.querySelectorAll('tbody tr').length,
  cellOverflow: [...table.querySelectorAll('td, th')].filter(
      c => c.scrollWidth > c.clientWidth + 1).map(c => c.textContent.slice(0, 60)),
};
"""


@pytest.fixture(scope="module", params=COMMITTED, ids=lambda p: p.name)
def rendered(request, tmp_path_factory) -> tuple[Path, dict]:
    """A committed run's results.json rendered into a scratch directory (figures linked, not
    embedded: they are not copied, and the layout is what is measured)."""
    results = load_results(request.param)
    out = tmp_path_factory.mktemp(request.param.name)
    write_reports(out, results)
    return out / "report.html", results


@pytest.mark.parametrize("width", WIDTHS)
def test_the_verdict_table_fits_the_screen(shared_chromium, rendered, width):  # noqa: F811
    page, results = rendered
    driver = shared_chromium
    set_viewport(driver, width)
    driver.get(page.as_uri())
    measured = driver.execute_script(OVERFLOW)
    assert measured["window"] == width  # the viewport is the window less its scrollbar
    assert measured["rows"] == len(results["claims"])
    assert measured["tableRight"] <= measured["viewport"], measured
    assert measured["tableScroll"] <= measured["tableClient"], measured
    assert measured["page"] <= measured["viewport"], measured  # nothing else widens the page
    assert measured["cellOverflow"] == [], measured


def test_the_overview_is_on_the_first_screen(shared_chromium, rendered):  # noqa: F811
    page, _ = rendered
    driver = shared_chromium
    set_viewport(driver, 1366, 768)
    driver.get(page.as_uri())
    top = driver.execute_script(
        "return document.evaluate(\"//h2[text()='Overview']\", document, null, 9, null)"
        ".singleNodeValue.getBoundingClientRect().top")
    assert top < 768  # a laptop screen shows where the overview starts without scrolling
    folded = driver.execute_script(
        "return [...document.querySelectorAll('section.claim > details')].filter("
        "d => !d.open).length")
    assert folded > 0  # claim details are folded, not a 63,000 px page
