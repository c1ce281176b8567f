"""README.md and docs/: rendered numbers equal to what the committed reports render, no
hand-typed measurements, one spelling of equations, every module in the layout, working links."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# pages other work adds to docs/; the index may link them before they land
COMING_PAGES = {"implementation-claims.md", "audit.md", "claims-controls.md", "running.md",
                "climb.md"}
README_MAX_LINES = 250
MODULE_ROOTS = ("claims", "trpo_ref", "scripts")


@pytest.fixture
def render_docs(load_script):
    return load_script("render_docs")


def _ids(paths: list[Path]) -> list[str]:
    return [p.relative_to(ROOT).as_posix() for p in paths]


def _outside_regions(text: str, render_docs) -> str:
    """The document without its rendered regions' bodies, nor its fenced code blocks."""
    text = render_docs.REGION.sub(lambda m: m["begin"] + m["end"], text)
    return re.sub(r"^```.*?^```", "", text, flags=re.S | re.M)


# --- rendered regions ------------------------------------------------------------------------


def test_committed_docs_equal_what_the_reports_render(render_docs, capsys):
    rc = render_docs.main(["--check"])
    out = capsys.readouterr()
    assert rc == 0, (
        "README.md or docs/ differ from what the committed reports and the claim registry "
        "render; run `python scripts/render_docs.py` and commit the result.\n" + out.out + out.err
    )


def _tiny_report(root: Path, claim_ids: list[str], extra: dict | None = None) -> None:
    """A results.json in ROOT/reports/tiny holding the named claims of the committed quick run."""
    quick = json.loads((ROOT / "reports/quick/results.json").read_text())
    by_id = {e["id"]: e for e in quick["claims"]}
    quick["claims"] = [by_id[c] for c in claim_ids] + ([extra] if extra else [])
    (root / "reports/tiny").mkdir(parents=True)
    (root / "reports/tiny/results.json").write_text(json.dumps(quick))


def test_registry_claims_missing_from_a_report_show_as_not_in_this_report(render_docs, tmp_path):
    registry_ids = [d["id"] for d in render_docs.registry()]
    kept = registry_ids[:2]
    gone = dict(json.loads((ROOT / "reports/quick/results.json").read_text())["claims"][0],
                id="theory.retired_claim")
    _tiny_report(tmp_path, kept, extra=gone)
    ctx = render_docs.Context(root=tmp_path, doc=tmp_path / "README.md")
    table = render_docs.render_verdicts(ctx, ["reports/tiny"])
    rows = {line.split("|")[1].strip(): line for line in table.splitlines()
            if line.startswith("| `")}
    for cid in registry_ids:
        assert (render_docs.NOT_IN_REPORT in rows[f"`{cid}`"]) == (cid not in kept), cid
    assert f"`theory.retired_claim` {render_docs.NOT_IN_REGISTRY}" in rows
    assert list(rows)[: len(registry_ids)] == [f"`{c}`" for c in registry_ids]  # registry order


def test_check_fails_with_a_diff_on_stale_text_and_rendering_fixes_it(render_docs, tmp_path,
                                                                       capsys):
    _tiny_report(tmp_path, [render_docs.registry()[0]["id"]])
    doc = tmp_path / "README.md"
    doc.write_text("Intro.\n<!-- BEGIN rendered:run:reports/tiny -->\nhand-typed: 42 claims\n"
                   "<!-- END rendered:run:reports/tiny -->\nOutro.\n")
    argv = ["--root", str(tmp_path), str(doc)]
    assert render_docs.main(["--check", *argv]) == 1
    out = capsys.readouterr()
    assert "-hand-typed: 42 claims" in out.out and "render_docs.py" in out.err
    assert render_docs.main(argv) == 0
    text = doc.read_text()
    assert "hand-typed" not in text and "1 claims" in text
    assert text.startswith("Intro.\n") and text.endswith("Outro.\n")
    assert render_docs.main(["--check", *argv]) == 0


def test_an_unknown_region_kind_is_an_error_naming_it(render_docs, tmp_path):
    ctx = render_docs.Context(root=tmp_path, doc=tmp_path / "README.md")
    region = "<!-- BEGIN rendered:verdict:x -->\n<!-- END rendered:verdict:x -->"
    with pytest.raises(ValueError, match=r"unknown rendered region 'verdict:x'.*verdicts"):
        render_docs.render_text(region, ctx)


def test_an_unclosed_region_is_an_error(render_docs, tmp_path):
    ctx = render_docs.Context(root=tmp_path, doc=tmp_path / "README.md")
    text = "<!-- BEGIN rendered:runs -->\nold\n<!-- END rendered:run -->\n"
    with pytest.raises(ValueError, match="marker is missing or misspelled"):
        render_docs.render_text(text, ctx)


def test_a_report_judged_by_another_rule_is_stale_not_a_verdict(render_docs):
    described = render_docs.registry()[0]
    same = {"description": {"rule": described["rule"]}}
    changed = {"description": {"rule": {**described["rule"], "threshold": 12345.0}}}
    assert render_docs.same_rule(same, described)
    assert not render_docs.same_rule(changed, described)
    assert render_docs.same_rule({"description": {}}, described)  # older reports: no rule kept


# --- one spelling of equations ---------------------------------------------------------------

BAD_EQUATION_SPELLINGS = {
    "capital Eq.": r"\bEqs?\.",
    "eqs.": r"\beqs\.",
    "eqn": r"(?i)\beqns?\b",
    "eq. without parentheses": r"\beq\.(?!\s\(\d)",
    "equation": r"(?i)\bequations?\s*\(?\d",
    "range or list without eq. on each": r"\beq\.\s*\(\d+\)\s*(?:[-–,]|and|to)\s*\(\d",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("(eq. 4).", "(eq. (4))."),
        ("Eq. (9) with mean KL", "eq. (9) with mean KL"),
        ("motivation of eq. 11-12)", "motivation of eq. (11) and eq. (12))"),
        ("eq. (3)-(4)", "eq. (3) and eq. (4)"),
        ("eq. (2)-(7)", "eq. (2) to eq. (7)"),
        ("TRPO eq. (4), (9), section 6", "TRPO eq. (4), eq. (9), section 6"),
        ("eq. (4), (9) and (12)", "eq. (4), eq. (9) and eq. (12)"),
        ("equation 2 and Equations (5)", "eq. (2) and eq. (5)"),
        ("eqs. 8-9", "eq. (8) and eq. (9)"),
        ("eq. (8) and eq. (9)", "eq. (8) and eq. (9)"),
    ],
)
def test_normalize_equations(render_docs, text, expected):
    assert render_docs.normalize_equations(text) == expected
    assert render_docs.normalize_equations(expected) == expected
    assert not any(re.search(p, expected) for p in BAD_EQUATION_SPELLINGS.values())


@pytest.mark.parametrize("doc", DOCUMENTS, ids=_ids(DOCUMENTS))
def test_equations_are_written_eq_n(doc):
    bad = [f"line {i}: {name}: {line.strip()}"
           for i, line in enumerate(doc.read_text().splitlines(), 1)
           for name, pattern in BAD_EQUATION_SPELLINGS.items() if re.search(pattern, line)]
    assert not bad, "write equations as 'eq. (n)', one per number:\n" + "\n".join(bad)


# --- no measurements typed by hand -----------------------------------------------------------

VERDICT = r"\b(?:SUPPORTED|REFUTED|INCONCLUSIVE)\b"
HAND_TYPED_MEASUREMENTS = {
    "an estimate with its interval": r"\d\s*\[\s*[-+]?\d[\d.e+-]*\s*,\s*[-+]?\d",
    "a verdict with its value": VERDICT + r"\**\s*(?:\(|,|at|=|:)\s*[-+]?\d",
    "a verdict table row": r"^\|(?=.*" + VERDICT + r")(?=.*\d).*\|$",
}


@pytest.mark.parametrize("doc", DOCUMENTS, ids=_ids(DOCUMENTS))
def test_no_measurements_outside_rendered_regions(doc, render_docs):
    text = _outside_regions(doc.read_text(), render_docs)
    bad = [f"{name}: {line.strip()}" for line in text.splitlines()
           for name, pattern in HAND_TYPED_MEASUREMENTS.items() if re.search(pattern, line)]
    assert not bad, ("measured numbers belong in a rendered region (scripts/render_docs.py):\n"
                     + "\n".join(bad))


@pytest.mark.parametrize(("line", "flagged"), [
    ("`step.appendix_c_cost` was SUPPORTED at 1.82 in the quick run", True),
    ("came out INCONCLUSIVE (2.01 [1.86, 2.30])", True),
    ("| `impl.learns` | 1.05 | **SUPPORTED** | REFUTED |", True),
    ("| SUPPORTED | the declared rule passed |", False),
    ("gamma outside [0, 1) raises", False),
    ("the claim is REFUTED at this budget, not at the paper's", False),
])
def test_the_measurement_patterns(line, flagged):
    assert any(re.search(p, line) for p in HAND_TYPED_MEASUREMENTS.values()) == flagged


# --- README ----------------------------------------------------------------------------------


def test_readme_is_short():
    n = len((ROOT / "README.md").read_text().splitlines())
    assert n <= README_MAX_LINES, f"README.md has {n} lines; move detail into docs/"


def test_the_timed_test_command_is_the_readme_and_ci_command(load_script):
    """README's test command, .ci/run's and the one scripts/time_tests.py times are one command,
    so the time the README renders is the time of the command it tells users to run."""
    command = "bash scripts/setup.sh && " + load_script("time_tests").COMMAND
    assert f"\n{command}\n" in (ROOT / "README.md").read_text()
    assert command in (ROOT / ".ci" / "run").read_text()


def layout_modules(readme: str) -> set[str]:
    """Module paths the README's layout block names: a line starting with a folder (``dir/``)
    names the ``*.py`` files on it and on its indented continuation lines inside that folder."""
    section = readme.split("## Layout", 1)[1]
    block = re.search(r"```\n(.*?)```", section, re.S)[1]
    named, folder = set(), ""
    for line in block.splitlines():
        if line and not line[0].isspace():
            first = line.split()[0]
            folder = first if first.endswith("/") else ""
            if first.endswith(".py"):
                named.add(first)
        named |= {folder + name for name in re.findall(r"\b[\w]+\.py\b", line) if folder}
    return named


def test_layout_names_every_module():
    modules = {p.relative_to(ROOT).as_posix() for top in MODULE_ROOTS
               for p in (ROOT / top).rglob("*.py")
               if p.name != "__init__.py" and "__pycache__" not in p.parts}
    missing = sorted(modules - layout_modules((ROOT / "README.md").read_text()))
    assert not missing, ("README.md's layout section does not name these modules (add each "
                         "under its folder's line): " + ", ".join(missing))


# --- links -----------------------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCUMENTS, ids=_ids(DOCUMENTS))
def test_relative_links_resolve(doc):
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", doc.read_text()):
        path = target.split("#", 1)[0]
        if not path or re.match(r"[a-z]+:", path):
            continue
        resolved = (doc.parent / path).resolve()
        if not resolved.exists() and resolved.name not in COMING_PAGES:
            broken.append(target)
    assert not broken, f"links to missing files in {doc.name}: {broken}"


def test_the_test_run_region_states_the_measurement_or_its_absence(render_docs, tmp_path):
    ctx = render_docs.Context(root=tmp_path, doc=tmp_path / "README.md")
    assert render_docs.render_test_run(ctx, []).startswith("Not measured at this commit")
    timing = tmp_path / "reports" / "test-run" / "timing.json"
    timing.parent.mkdir(parents=True)
    timing.write_text(json.dumps({
        "command": "pytest -n 2", "wall_s": 450.0, "exit_status": 0, "commit": "a" * 40,
        "dirty": False, "cpu_count": 2, "pytest_summary": "9 passed in 449.0s"}))
    text = render_docs.render_test_run(ctx, [])
    assert "`pytest -n 2` took 450.0 s and passed on a 2-core machine at commit `aaaaaaa`" in text
