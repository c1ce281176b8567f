"""The climb explorer: its embedded numbers against the engine, and the page driven end to end in
headless Chromium from file:// (skipped, with the reason, where the browser is absent)."""

from __future__ import annotations

import itertools
import json
import re

import numpy as np
import pytest
from browser import set_viewport, shared_chromium  # noqa: F401  (shared_chromium: a fixture)

from claims.catalogue.climb.explorer import explorer_data, render_explorer, write_explorer
from claims.catalogue.climb.family import PRESET_MEMBERS, family_bias, trace_climb
from trpo_ref.tabular.climb import PRESETS, settings_for

pytestmark = pytest.mark.quick

ROUNDS = 12  # a short page: the same code as the 60-round one, a fraction of the runs
DELTAS, ERRORS = (0.02, 0.1, 0.5), (0.0, 0.05, 0.1)


def reference(slug: str, **overrides):
    settings = settings_for(slug, rounds=ROUNDS, **overrides)
    return trace_climb(settings, bias=family_bias(PRESET_MEMBERS[slug]), full=True)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    path = tmp_path_factory.mktemp("explorer") / "climb.html"
    return write_explorer(path, rounds=ROUNDS, deltas=DELTAS, errors=ERRORS)


@pytest.fixture(scope="module")
def data(page):
    text = page.read_text(encoding="utf-8")
    embedded = re.search(r'type="application/json">(.*?)</script>', text, re.S).group(1)
    return json.loads(embedded)


# --- the embedded numbers are the engine's ----------------------------------------------------


def test_every_knob_run_equals_the_engine(data):
    for key, run in data["runs"].items():
        if "base" in run:
            continue
        slug, delta, error = key.split("|")
        ref = reference(slug, delta=float(delta), estimate_error=float(error))
        got = np.array([run["start"], *run["percent"]])
        assert np.max(np.abs(got - ref.percent)) <= 1e-9, key
        assert np.max(np.abs(np.array(run["predicted"]) - ref.predicted_percent)) <= 1e-9, key
        assert np.max(np.abs(np.array(run["kl"]) - ref.kl)) <= 1e-9 * max(1, ref.kl.max()), key
        assert run["backtracks"] == ref.n_backtracks.tolist(), key


def test_switched_runs_equal_the_engine_run_switched(data):
    # The page's switched runs replay the knob run's logits up to the switch; the engine's own
    # switched run (no replay) must give the same numbers.
    for p in PRESETS:
        for key in [k for k in data["runs"] if k.startswith(p.slug + "|") and k.count("|") == 4]:
            _, _, _, at, to = key.split("|")
            if int(at) not in (1, 5, ROUNDS):
                continue
            run = data["runs"][key]
            ref = reference(p.slug, switch_at=int(at), switch_to=to)
            assert np.max(np.abs(np.array(run["percent"]) - ref.percent[int(at):])) <= 1e-9, key
            assert run["backtracks"] == ref.n_backtracks[int(at) - 1:].tolist(), key


def test_grid_holds_rounded_probabilities_and_advantages(data):
    ref = reference("trust-region")
    run = data["runs"]["trust-region|0.02|0.05"]
    for k in (0, 3, ROUNDS):
        row = np.array(data["grids"][run["start_grid"] if k == 0 else run["grid"][k - 1]])
        assert np.array_equal(row[:100], np.round(ref.pi[k].ravel() * 1000))
        assert np.array_equal(row[100:], np.round(ref.adv[k].ravel() * 10000))


def test_page_is_self_contained():
    html = render_explorer(explorer_data(rounds=2, deltas=(0.02,), errors=(0.05,),
                                         presets=["crawl"]))
    assert "__CLIMB_DATA__" not in html
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", html)  # nothing fetched
    assert "cdn" not in html.lower()


# --- end to end in headless Chromium -------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(shared_chromium):  # noqa: F811
    """tests/browser.py's headless Chromium (skips, with the reason, where there is none),
    sized so the whole explorer fits."""
    set_viewport(shared_chromium, 1280, 1000)
    return shared_chromium


def _ui(driver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    class UI:
        def text(self, id_):
            return driver.find_element(By.ID, id_).text

        def click(self, id_, times=1):
            for _ in range(times):
                driver.find_element(By.ID, id_).click()

        def preset(self, slug):
            Select(driver.find_element(By.ID, "preset")).select_by_value(slug)

        def type(self, id_, value):
            box = driver.find_element(By.ID, id_)
            box.send_keys(Keys.CONTROL, "a")
            box.send_keys(value + Keys.ENTER)

        def select(self, id_, value):
            Select(driver.find_element(By.ID, id_)).select_by_visible_text(value)

        def message(self):
            box = driver.find_element(By.ID, "message")
            return box.text if "shown" in (box.get_attribute("class") or "") else ""

        def cell(self, s):
            driver.find_element(By.CSS_SELECTOR, f'#grid td[data-cell="{s}"]').click()
            rows = driver.find_elements(By.CSS_SELECTOR, "#cell-detail tr[data-move]")
            return [(r.find_element(By.CLASS_NAME, "prob").text,
                     r.find_element(By.CLASS_NAME, "adv").text,
                     "favoured" in (r.get_attribute("class") or "")) for r in rows]

    return UI()


def _shows(ui, ref, k):
    assert ui.text("round") == f"{k} / {ROUNDS}"
    assert ui.text("true-return") == f"{ref.percent[k]:.1f}%"
    if k:
        assert ui.text("predicted") == f"{ref.predicted_percent[k - 1]:.1f}%"
        kl = float(ui.text("step-kl").split(" vs ")[0])
        assert kl == pytest.approx(ref.kl[k - 1], rel=5e-3, abs=1e-300)


def _cell_matches(ui, ref, k, s):
    rows = ui.cell(s)
    assert len(rows) == 4
    for a, (prob, adv, favoured) in enumerate(rows):
        assert prob == f"{np.round(ref.pi[k, s, a] * 1000) / 1000:.3f}"
        assert abs(float(prob) - ref.pi[k, s, a]) <= 5e-4 + 1e-12
        assert abs(float(adv) - ref.adv[k, s, a]) <= 5e-5 + 1e-12
        assert favoured == (a == int(np.argmax(np.round(ref.pi[k, s] * 1000))))


@pytest.mark.parametrize("preset", [p.slug for p in PRESETS])
def test_each_preset_plays_and_shows_the_engine_numbers(browser, page, preset):
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(page.as_uri())
    ui = _ui(browser)
    ui.preset(preset)
    ref = reference(preset)
    _shows(ui, ref, 0)
    assert ui.text("true-return") == "-39.5%"  # the seed's scale
    ui.click("step", 3)
    _shows(ui, ref, 3)
    _cell_matches(ui, ref, 3, 0)  # the start cell
    ui.click("play")
    WebDriverWait(browser, 20).until(lambda d: ui.text("round") == f"{ROUNDS} / {ROUNDS}")
    _shows(ui, ref, ROUNDS)
    _cell_matches(ui, ref, ROUNDS, 7)
    events = browser.find_elements("css selector", "#events li[data-kind]")
    assert len(events) == len(ref.events)
    assert ui.text("status").split(" · ")[0] in ("surrogate honest", "surrogate overshooting",
                                                 "surrogate pessimistic")


def test_labels_of_predictions_above_the_chart_do_not_overlap(browser, page):
    browser.get(page.as_uri())
    ui = _ui(browser)
    ui.preset("overshoot")
    ui.click("step", ROUNDS)
    boxes = browser.execute_script(
        "return [...document.querySelectorAll('#chart text.above')].map(t => {"
        "const b = t.getBBox(); return [b.x, b.x + b.width, t.textContent]; })")
    ref = reference("overshoot")
    ceiling = min(200, max(110, ref.predicted_percent.max() + 5, ref.percent.max()))  # drawChart
    above = ref.predicted_percent > ceiling
    assert len(boxes) >= 1 and above.any()
    for (_, right, _), (left, _, _) in itertools.pairwise(boxes):
        assert right < left, boxes
    # the grouping itself, on the 60-round spacing (9.7 px a round): rounds 1-3 above the chart
    # (942%, 899%, 775%: each label would start inside the one before) show one label, 942%
    labels = browser.execute_script(
        "return aboveLabels([[10, 942.4], [19.7, 899], [29.4, 775], [200, 767]])"
        ".map(l => [l.x, l.v])")
    assert labels == [[12, 942.4], [202, 767]]
    assert {text for *_, text in boxes} <= {f"{v:.0f}%" for v in ref.predicted_percent[above]}


def test_switch_mid_run_and_change_a_knob(browser, page):
    browser.get(page.as_uri())
    ui = _ui(browser)
    ui.preset("overshoot")
    ui.select("switch-rule", "trust-region")
    ui.type("switch-at", "5")
    ui.click("switch-apply")
    assert ui.message() == ""
    ui.click("step", 8)
    switched = reference("overshoot", switch_at=5, switch_to="trust-region")
    _shows(ui, switched, 8)
    assert ui.text("rule").startswith("trust-region")
    assert " vs delta 0.02" in ui.text("step-kl")
    # switch now, at the round on show, back in the trust-region preset
    ui.preset("trust-region")
    ui.click("step", 6)
    ui.click("switch-now")
    ui.click("step")
    _shows(ui, reference("trust-region", switch_at=7, switch_to="no-trust-region"), 7)
    # a knob: delta 0.1 (the switch goes, and the message says why)
    ui.type("delta", "0.1")
    assert "Switch removed" in ui.message()
    _shows(ui, reference("trust-region", delta=0.1), 7)
    _cell_matches(ui, reference("trust-region", delta=0.1), 7, 12)
    ui.type("error", "0.1")
    _shows(ui, reference("trust-region", delta=0.1, estimate_error=0.1), 7)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("delta", "-1", "delta must be > 0"),
        ("delta", "NaN", "delta must be a number"),
        ("delta", "0.03", "was not precomputed"),
        ("error", "abc", "estimate error must be a number"),
        ("error", "-0.1", "estimate error must be >= 0"),
        ("switch-at", "99", "past the end of the run"),
    ],
)
def test_bad_values_show_a_message_and_change_nothing(browser, page, field, value, message):
    browser.get(page.as_uri())
    ui = _ui(browser)
    ui.preset("trust-region")
    ui.click("step", 4)
    before = (ui.text("true-return"), ui.text("step-kl"), ui.text("rule"))
    ui.type(field, value)
    if field == "switch-at":
        ui.select("switch-rule", "no-trust-region")
        ui.click("switch-apply")
    assert message in ui.message() and "unchanged" in ui.message()
    assert (ui.text("true-return"), ui.text("step-kl"), ui.text("rule")) == before
    _shows(ui, reference("trust-region"), 4)


def test_unknown_preset_in_the_address(browser, page):
    browser.get("about:blank")  # a hash-only change would not reload the page
    browser.get(page.as_uri() + "#preset=nope")
    ui = _ui(browser)
    assert 'Unknown preset "nope"' in ui.message()
    _shows(ui, reference(PRESETS[0].slug), 0)  # the page still works, on the first preset


# --- linked from the reports ----------------------------------------------------------------


@pytest.mark.parametrize("run", ["standard-climb", "full-climb"])
def test_reports_link_the_explorer_from_each_climb_claim(run):
    from pathlib import Path

    from claims.framework.report import render_html, render_markdown
    from claims.framework.runner import load_results

    run_dir = Path(__file__).resolve().parents[1] / "reports" / run
    results = load_results(run_dir)
    climb_ids = [e["id"] for e in results["claims"] if e["id"].startswith("climb.")]
    markdown, page = render_markdown(results), render_html(results)
    targets = set(re.findall(r"\]\((\.\./[^)]+)\)", markdown))
    assert targets == {"../../docs/climb.md#the-explorer",
                       "../../reports/climb-explorer/README.md"}
    for target in targets:
        path, _, fragment = target.partition("#")
        assert (run_dir / path).resolve().is_file(), target
        if fragment:  # the anchor GitHub makes of the heading "## The explorer"
            assert "\n## The explorer\n" in (run_dir / path).read_text()
    assert markdown.count("**Explore.**") == len(climb_ids) == 5
    assert page.count('<a href="../../docs/climb.md#the-explorer">') == len(climb_ids)
