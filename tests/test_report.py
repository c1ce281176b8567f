"""report.md and report.html from results.json: verdict table, escaping, deviations, figures."""

from __future__ import annotations

import base64
import copy
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import ClassVar

import pytest
from toy_claims import EXPECTED, PassingClaim, toy_claims

from claims.cli.main import main
from claims.framework.core import Evidence
from claims.framework.report import (
    HTML_VERDICT_COLUMNS,
    VERDICT_COLUMNS,
    claim_command,
    deviations,
    render_html,
    render_markdown,
    write_reports,
)
from claims.framework.runner import load_results, run_claims
from claims.framework.serialize import read_json, write_json_atomic

pytestmark = pytest.mark.quick


class HostileClaim(PassingClaim):
    """A claim whose every text field would break an unescaped page."""

    id = "toy.hostile"
    title = "<script>alert('title')</script> & co"
    statement = "a < b && b > c"
    deviations: ClassVar[tuple[str, ...]] = (
        "Budget is 3 margins, not the paper's <b>1000</b>.",
        "Gymnasium v4 environments instead of the paper's MuJoCo 1.x.",
    )

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        path = out_dir / "hostile curve.png"
        path.write_bytes(b"not really a png")
        return [path]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every toy claim plus the hostile one, with controls, and a run-wide deviation added."""
    out = tmp_path_factory.mktemp("report")
    run_claims([*toy_claims(), HostileClaim()], tier="quick", seed=5, out_dir=out)
    results = read_json(out / "results.json")
    results["deviations"] = ["All claims run on CPU."]
    write_json_atomic(out / "results.json", results)
    return out


@pytest.fixture(scope="module")
def results(run_dir: Path) -> dict:
    return load_results(run_dir)


@pytest.fixture(scope="module")
def page(results: dict, run_dir: Path) -> str:
    return render_html(results, run_dir)


class _Collector(HTMLParser):
    """Tags, their attributes, and the text of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(page: str) -> _Collector:
    collector = _Collector()
    collector.feed(page)
    collector.close()
    return collector


def test_run_writes_both_reports_and_write_reports_reproduces_them(run_dir, results):
    # the fixture edited results.json after the run, so re-render first, then compare
    md_path, html_path = write_reports(run_dir, load_results(run_dir))
    assert (md_path.name, html_path.name) == ("report.md", "report.html")
    assert md_path.read_text() == render_markdown(results)
    assert html_path.read_text() == render_html(results, run_dir)


def test_html_is_one_page_without_scripts_or_external_resources(page):
    parsed = _parse(page)
    tags = [tag for tag, _ in parsed.tags]
    assert page.startswith("<!DOCTYPE html>") and tags.count("html") == 1
    assert "script" not in tags and "link" not in tags
    assert tags.count("style") == 1
    for tag, attrs in parsed.tags:
        for value in attrs.values():
            assert not re.match(r"^(https?:)?//", value or ""), (tag, attrs)


def test_every_claim_has_a_table_row_and_a_folded_section(results, page):
    parsed = _parse(page)
    section_ids = {a.get("id") for tag, a in parsed.tags if tag == "section"}
    links = {a.get("href") for tag, a in parsed.tags if tag == "a"}
    for entry in results["claims"]:
        assert f"claim-{entry['id']}" in section_ids
        assert f"#claim-{entry['id']}" in links
    headers = re.findall(r"<th>(.*?)</th>", page.split("<h3>Verdicts</h3>")[1])
    assert headers[: len(HTML_VERDICT_COLUMNS)] == list(HTML_VERDICT_COLUMNS)
    # details are folded, except where the claim needs a look
    opened = re.findall(r'<section class="claim" id="claim-([^"]+)">\n<details open>', page)
    assert set(opened) == {"toy.fail", "toy.raise", "toy.leaky", "toy.inconclusive",
                           "toy.nonfinite"}


def test_the_overview_comes_first_with_counts_attention_and_the_table(page):
    overview = page.split("<h2>Overview</h2>")[1].split("<h2>Claims</h2>")[0]
    assert page.index("<h2>Overview</h2>") < page.index("<h2>Claims</h2>")
    assert '<span class="status s-SUPPORTED">3 SUPPORTED</span>' in overview
    assert '<span class="status s-REFUTED">2 REFUTED</span>' in overview
    attention = overview.split('<div class="attention">')[1].split("</div>")[0]
    for cid in ("toy.fail", "toy.raise", "toy.inconclusive", "toy.nonfinite", "toy.leaky"):
        assert f'href="#claim-{cid}"' in attention
    assert "toy.pass<" not in attention and "toy.hostile<" not in attention
    assert "Negative controls: 5 of 7 pass (REFUTED, as they must); 2 FAIL" in overview


@pytest.mark.parametrize("cid", sorted(EXPECTED))
def test_verdict_cells_are_coloured_by_status_and_a_refuted_control_is_a_pass(page, cid):
    status, control = EXPECTED[cid]
    row = re.search(rf'<tr><td><a href="#claim-{re.escape(cid)}">.*?</tr>', page)
    assert row is not None
    cells = re.findall(r"<td[^>]*>.*?</td>", row.group(0))
    verdict = cells[HTML_VERDICT_COLUMNS.index("Verdict")]
    control_cell = cells[HTML_VERDICT_COLUMNS.index("Control")]
    assert f'class="status s-{status}">{status}<' in verdict
    if control is None:
        assert "class=" not in control_cell
    elif control == "REFUTED":  # the outcome a control must have: a pass, not a red REFUTED
        assert '<span class="control c-pass"><b>pass</b> (REFUTED)</span>' in control_cell
        assert "s-REFUTED" not in control_cell
    else:
        assert (f'<span class="control c-FAIL"><b>FAIL</b> ({control}; must be REFUTED)'
                in control_cell)


def test_markdown_says_pass_for_a_refuted_control(results):
    md = render_markdown(results)
    row = next(line for line in md.splitlines() if line.startswith("| [`toy.pass`]"))
    assert "| pass (REFUTED) |" in row
    leaky = next(line for line in md.splitlines() if line.startswith("| [`toy.leaky`]"))
    assert "| **FAIL (SUPPORTED; must be REFUTED)** |" in leaky
    assert '<a id="claim-toy.pass"></a>' in md  # the table's links land on the section


def test_css_colours_every_status(page):
    for status in ("SUPPORTED", "REFUTED", "INCONCLUSIVE", "SKIPPED", "ERROR"):
        assert f".s-{status} {{" in page


def test_text_is_escaped(page):
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;title&#x27;)&lt;/script&gt; &amp; co" in page
    assert "a &lt; b &amp;&amp; b &gt; c" in page
    assert "&lt;b&gt;1000&lt;/b&gt;" in page


def test_problems_are_a_warning_block(page):
    warning = page.split('<div class="warning">')[1].split("</div>")[0]
    assert "<code>toy.raise</code> raised an ERROR" in warning
    assert "<code>toy.leaky</code> came out <strong>SUPPORTED</strong>" in warning


def test_error_tracebacks_are_folded(page):
    section = page.split('id="claim-toy.raise"')[1].split("</section>")[0]
    assert "<details><summary>traceback</summary><pre>Traceback" in section
    assert "ValueError: toy failure inside run" in section


def test_figures_are_embedded_so_the_page_stands_alone(run_dir, page):
    images = [a for tag, a in _parse(page).tags if tag == "img"]
    assert [a["alt"] for a in images] == ["toy.pass.png", "hostile curve.png"]
    for image, name in zip(images, ["toy.pass.png", "hostile curve.png"], strict=True):
        encoded = base64.b64encode((run_dir / "figures" / name).read_bytes()).decode()
        assert image["src"] == f"data:image/png;base64,{encoded}"
    assert "Figure error (not fatal): <code>RuntimeError: toy plotting bug</code>" in page


def test_a_missing_figure_is_linked_and_says_so(results, tmp_path):
    page = render_html(results, tmp_path)  # a directory without the figures
    assert '<img src="figures/toy.pass.png"' in page
    assert "(not embedded: file not found)" in page


def test_markdown_links_figures(results):
    assert "![toy.pass.png](figures/toy.pass.png)" in render_markdown(results)


def test_deviations_are_collected_run_wide_first(results):
    assert deviations(results) == [
        (None, ["All claims run on CPU."]),
        ("toy.hostile", list(HostileClaim.deviations)),
    ]


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_deviations_section_in_both_formats(results, render):
    text = render(results)
    section = re.split(r"Deviations from the paper</h2>|## Deviations from the paper", text)[1]
    section = re.split(r"<h2>Environment|## Environment", section)[0]
    assert "All claims run on CPU." in section and "toy.hostile" in section
    assert "Gymnasium v4 environments instead of the paper's MuJoCo 1.x." in section.replace(
        "&#x27;", "'"
    )
    assert "toy.pass" not in section  # claims without deviations are not listed


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_older_results_without_deviations_still_render(results, render):
    old = copy.deepcopy(results)
    old.pop("deviations")
    for entry in old["claims"]:
        entry["description"].pop("deviations")
    assert deviations(old) == []
    text = render(old)
    assert "predates the claims" in text
    assert all(entry["id"] in text for entry in old["claims"])


def test_no_deviations_listed_says_so(results):
    quiet = copy.deepcopy(results)
    quiet.pop("deviations")
    for entry in quiet["claims"]:
        entry["description"]["deviations"] = []
    assert "None listed by any claim." in render_markdown(quiet)


@pytest.mark.parametrize("render", [render_markdown, render_html])
def test_reproduce_lists_the_run_and_every_claim(results, render):
    text = render(results).split("Reproduce")[-1]
    assert "trpo-claims run --tier quick --seed 5 --out" in text
    lines = set(re.sub(r"<[^>]+>", "\n", text).splitlines())
    for entry in results["claims"]:
        assert f"trpo-claims run --tier quick --seed 5 --claim {entry['id']}" in lines


def test_claim_command_keeps_no_controls(results):
    assert claim_command(results, "toy.pass") == [
        "trpo-claims", "run", "--tier", "quick", "--seed", "5", "--claim", "toy.pass",
    ]  # fmt: skip
    no_controls = results | {"controls": False}
    assert claim_command(no_controls, "toy.pass")[-1] == "--no-controls"


def test_markdown_verdict_table_is_compact(results):
    md = render_markdown(results)
    assert "| " + " | ".join(VERDICT_COLUMNS) + " |" in md
    row = next(line for line in md.splitlines() if line.startswith("| [`toy.inconclusive`]"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells[VERDICT_COLUMNS.index("Estimate [CI]")] == "1.01 [-0.49, 2.51]"
    assert cells[VERDICT_COLUMNS.index("Rule")] == "mean margin >= 0"
    assert md.index("## Overview") < md.index("### Verdicts") < md.index("## Claims")


def test_environment_is_in_both_formats(results, page):
    commit = results["fingerprint"]["git"].get("commit") or "unknown"
    assert "<h2>Environment</h2>" in page and commit[:7] in page
    assert f"<tr><td>seed</td><td>{results['seed']}</td></tr>" in page


def test_cli_report_writes_both_files_and_names_them(run_dir, capsys):
    for name in ("report.md", "report.html"):
        (run_dir / name).unlink()
    assert main(["report", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert out == f"wrote {run_dir / 'report.md'} and {run_dir / 'report.html'}\n"
    assert (run_dir / "report.html").read_text() == render_html(load_results(run_dir), run_dir)


def test_a_control_still_waiting_for_trainings_is_reported_as_pending_not_as_a_defect():
    from claims.framework.report import problems

    entry = {"id": "empirical.x", "verdict": {"status": "SUPPORTED"},
             "control": {"verdict": {"status": "SKIPPED",
                                     "message": "not judged: 2 of 4 trainings have not finished"}}}
    (line,) = problems({"claims": [entry], "complete": True})
    assert line == ("The negative control of `empirical.x` was not judged yet: 2 of 4 trainings "
                    "have not finished")
