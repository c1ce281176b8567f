"""The runner: verdicts per claim, error isolation, results.json, report.md, exit policy."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import ClassVar

import pytest
from toy_claims import EXPECTED, PassingClaim, ToyClaim, toy_claims

from claims.framework.core import Evidence, Verdict
from claims.framework.report import fmt_seconds, render_markdown
from claims.framework.runner import (
    FAIL_ON_CHOICES,
    SCHEMA_VERSION,
    RunInterrupted,
    failure_reasons,
    load_results,
    rerender_report,
    run_claims,
)
from claims.framework.serialize import InputError

ENTRY_KEYS = {
    "id", "description", "budget", "verdict", "evidence", "error", "control", "runtime_s",
    "figures", "figure_errors",
}  # fmt: skip


def _strict_json(path: Path) -> dict:
    def reject(constant: str) -> None:
        raise AssertionError(f"results.json contains the non-JSON constant {constant}")

    return json.loads(path.read_text(), parse_constant=reject)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, str, Path]:
    """All toys, with controls, once for the module (the runner is deterministic)."""
    out = tmp_path_factory.mktemp("run")
    stream = io.StringIO()
    result = run_claims(toy_claims(), tier="quick", seed=3, out_dir=out, progress=stream)
    assert result.results_path == out / "results.json"
    return result.results, stream.getvalue(), out


def _by_id(results: dict) -> dict[str, dict]:
    return {entry["id"]: entry for entry in results["claims"]}


def test_every_claim_gets_its_expected_verdict_and_control(full_run):
    results, _, _ = full_run
    entries = _by_id(results)
    assert list(entries) == list(EXPECTED)  # run order is the order given
    for cid, (status, control_status) in EXPECTED.items():
        entry = entries[cid]
        assert entry["verdict"]["status"] == status, cid
        got_control = None if entry["control"] is None else entry["control"]["verdict"]["status"]
        assert got_control == control_status, cid


def test_an_exception_becomes_error_with_traceback_and_others_still_run(full_run):
    results, _, _ = full_run
    entry = _by_id(results)["toy.raise"]
    assert entry["error"]["type"] == "ValueError"
    assert entry["error"]["phase"] == "run"
    assert entry["error"]["message"] == "toy failure inside run"
    assert "toy failure inside run" in entry["error"]["traceback"]
    assert "Traceback" in entry["error"]["traceback"]
    assert "ValueError: toy failure inside run" in entry["verdict"]["message"]
    assert entry["evidence"] is None
    assert entry["control"]["error"]["type"] == "ValueError"
    # a claim after the crashing one still ran
    assert _by_id(results)["toy.leaky"]["evidence"] is not None


def test_skipped_claim_says_why_and_runs_nothing(full_run):
    entry = _by_id(full_run[0])["toy.nobudget"]
    assert "no budget at the quick tier" in entry["verdict"]["message"]
    assert "full" in entry["verdict"]["message"]  # names the tier that has a budget
    assert entry["evidence"] is None and entry["control"] is None and entry["budget"] is None


def test_results_json_schema(full_run):
    results, _, out = full_run
    on_disk = _strict_json(out / "results.json")
    assert on_disk == results
    assert on_disk["schema_version"] == SCHEMA_VERSION
    assert on_disk["complete"] is True
    assert (on_disk["tier"], on_disk["seed"], on_disk["controls"]) == ("quick", 3, True)
    assert on_disk["command"][:2] == ["trpo-claims", "run"]
    assert on_disk["runtime_s"] >= 0 and on_disk["finished_utc"] >= on_disk["started_utc"]
    fp = on_disk["fingerprint"]
    assert {"python", "cpu_model", "packages", "git", "argv", "timestamp_utc"} <= set(fp)
    for entry in on_disk["claims"]:
        assert set(entry) == ENTRY_KEYS
        assert entry["description"]["id"] == entry["id"]
        assert set(entry["runtime_s"]) == {"claim", "control", "figures", "total"}
    passing = _by_id(on_disk)["toy.pass"]
    assert passing["budget"] == {"n": 3}
    assert passing["evidence"]["config"] == {"n": 3, "seed": 3, "base": 1.0}
    assert passing["evidence"]["data"]["margins"] == pytest.approx([1.0, 1.01, 1.02])
    assert passing["evidence"]["summary"]["bases"] == [1.0, 1.0]
    assert passing["control"]["evidence"]["control"] is True
    assert passing["verdict"]["value"] == pytest.approx(1.0)


def test_non_finite_numbers_are_written_as_strings(full_run):
    entry = _by_id(full_run[0])["toy.nonfinite"]
    assert entry["verdict"]["value"] == "nan"
    assert entry["evidence"]["summary"]["min margin"] == "nan"
    assert entry["control"]["verdict"]["value"] == "-inf"


def test_figures_are_relative_and_figure_errors_are_not_fatal(full_run):
    results, _, out = full_run
    entries = _by_id(results)
    assert entries["toy.pass"]["figures"] == ["figures/toy.pass.png"]
    assert (out / "figures" / "toy.pass.png").is_file()
    failing = entries["toy.fail"]
    assert failing["figures"] == []
    assert failing["figure_errors"] == ["RuntimeError: toy plotting bug"]
    assert failing["verdict"]["status"] == "REFUTED"


def test_progress_lines(full_run):
    _, progress, _ = full_run
    lines = progress.splitlines()
    assert lines[0].startswith("running 7 claims at the quick tier (seed 3)")
    assert lines[1].startswith("[1/7] toy.pass ... SUPPORTED (min margin = 1; rule >= 0)")
    assert "| control: REFUTED | " in lines[1]
    leaky = next(line for line in lines if "toy.leaky" in line)
    assert "| control: SUPPORTED (must be REFUTED!) | " in leaky
    assert "figures failed: RuntimeError" in next(line for line in lines if "toy.fail" in line)


def test_each_progress_line_ends_with_the_reports_runtime(full_run):
    """The time printed per claim is the report's Runtime (claim + control + figures), not the
    claim's run alone."""
    results, progress, _ = full_run
    lines = {line.split()[1]: line for line in progress.splitlines() if line.startswith("[")}
    for entry in results["claims"]:
        assert lines[entry["id"]].endswith(f"| {fmt_seconds(entry['runtime_s']['total'])}")


def test_report_has_table_warnings_and_sections(full_run):
    _, _, out = full_run
    report = (out / "report.md").read_text()
    assert report.startswith("# trpo-claims report: quick tier")
    assert "| Claim | Title | Verdict | Estimate [CI] | Rule | n | Control | Runtime |" in report
    assert "| [`toy.pass`](#claim-toy.pass) | A toy claim that holds | **SUPPORTED** |" in report
    warnings = report.split("## WARNING")[1].split("## Overview")[0]
    assert "`toy.leaky` came out **SUPPORTED**, not REFUTED" in warnings
    assert "`toy.raise` raised an ERROR" in warnings
    assert "`toy.pass`" not in warnings
    assert "![toy.pass.png](figures/toy.pass.png)" in report
    assert "toy plotting bug" in report
    assert "## Environment" in report and "## Reproduce" in report


def test_report_is_rendered_from_results_json_alone(full_run):
    _, _, out = full_run
    report = (out / "report.md").read_text()
    assert render_markdown(load_results(out)) == report
    (out / "report.md").unlink()
    assert rerender_report(out).read_text() == report


def test_clean_run_has_no_warning_section(tmp_path):
    result = run_claims([PassingClaim()], tier="quick", seed=0, out_dir=tmp_path)
    assert "WARNING" not in result.report_path.read_text()
    assert failure_reasons(result.results, FAIL_ON_CHOICES) == []


def test_no_controls(tmp_path):
    result = run_claims(
        toy_claims("toy.pass"), tier="quick", seed=0, out_dir=tmp_path, controls=False
    )
    (entry,) = result.results["claims"]
    assert entry["control"] is None and entry["runtime_s"]["control"] is None
    assert "--no-controls" in result.results["command"]
    assert "not run (--no-controls)" in result.report_path.read_text()


def test_tier_budget_reaches_the_claim(tmp_path):
    result = run_claims(toy_claims("toy.pass"), tier="full", seed=0, out_dir=tmp_path)
    assert result.results["claims"][0]["evidence"]["config"]["n"] == 7


def test_unknown_tier_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown tier 'huge'"):
        run_claims(toy_claims("toy.pass"), tier="huge", seed=0, out_dir=tmp_path)


class IgnoresControlClaim(ToyClaim):
    """A contract breach: run() labels the control run's evidence as the real one."""

    id = "toy.ignores-control"

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        evidence = super().run(tier, control=False, seed=seed)
        return evidence


def test_evidence_that_ignores_the_control_flag_is_an_error(tmp_path):
    result = run_claims([IgnoresControlClaim()], tier="quick", seed=0, out_dir=tmp_path)
    (entry,) = result.results["claims"]
    assert entry["verdict"]["status"] == "SUPPORTED"
    assert entry["control"]["verdict"]["status"] == "ERROR"
    assert entry["control"]["error"]["type"] == "ClaimContractError"


class InterruptingClaim(ToyClaim):
    id = "toy.interrupt"

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        raise KeyboardInterrupt


def test_an_interrupted_run_keeps_the_claims_already_judged(tmp_path):
    claims = [PassingClaim(), InterruptingClaim(), *toy_claims("toy.fail")]
    with pytest.raises(RunInterrupted) as stopped:
        run_claims(claims, tier="quick", seed=0, out_dir=tmp_path)
    assert isinstance(stopped.value, KeyboardInterrupt)  # callers that catch Ctrl-C still do
    assert (stopped.value.signal_name, stopped.value.exit_status) == ("SIGINT", 130)
    partial = load_results(tmp_path)
    assert partial["complete"] is False and partial["interrupted"] == "SIGINT"
    assert [e["id"] for e in partial["claims"]] == ["toy.pass"]
    assert "interrupted (SIGINT) after 1 of 3 claims" in render_markdown(partial)
    assert "interrupted (SIGINT) after 1 of 3 claims" in (tmp_path / "report.html").read_text()


class ResultsSpy(ToyClaim):
    """Reads results.json of its run directory while it runs (what a person looking at the
    directory mid-run would see)."""

    id = "toy.spy"
    seen: ClassVar[list[dict]] = []

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        if not control:
            self.seen.append(load_results(self.out_dir))
        return super().run(tier, control=control, seed=seed)


def test_the_run_directory_is_marked_in_progress_before_any_work(tmp_path):
    """An earlier complete run in the same directory is replaced at the start, not left
    looking current while the new run works (the issue: a Ctrl-C left complete: true)."""
    run_claims(toy_claims("toy.fail"), tier="quick", seed=0, out_dir=tmp_path)
    assert (tmp_path / "figures").exists() is True
    spy = ResultsSpy()
    spy.out_dir = tmp_path
    stream = io.StringIO()
    run_claims([PassingClaim(), spy], tier="quick", seed=0, out_dir=tmp_path, progress=stream)
    (during,) = ResultsSpy.seen
    assert during["complete"] is False and during["planned_claims"] == ["toy.pass", "toy.spy"]
    assert [e["id"] for e in during["claims"]] == ["toy.pass"]
    assert f"{tmp_path} holds a complete run (started " in stream.getvalue()
    assert "replacing it" in stream.getvalue()


def test_a_rerun_of_an_unfinished_run_resumes_and_restart_does_not(tmp_path):
    claims = [PassingClaim(), InterruptingClaim()]
    with pytest.raises(RunInterrupted):
        run_claims(claims, tier="quick", seed=0, out_dir=tmp_path)
    first = load_results(tmp_path)["claims"][0]
    # the same plan again: toy.pass is kept, not run again (the second claim interrupts again)
    stream = io.StringIO()
    with pytest.raises(RunInterrupted):
        run_claims(claims, tier="quick", seed=0, out_dir=tmp_path, progress=stream)
    assert "resuming the interrupted run" in stream.getvalue()
    assert load_results(tmp_path)["claims"][0] == first
    assert len(load_results(tmp_path)["attempts"]) == 2
    stream = io.StringIO()
    with pytest.raises(RunInterrupted):
        run_claims(claims, tier="quick", seed=0, out_dir=tmp_path, progress=stream,
                   restart=True)
    assert "resuming" not in stream.getvalue() and "replacing it" in stream.getvalue()
    assert len(load_results(tmp_path)["attempts"]) == 1


def test_a_different_plan_does_not_resume(tmp_path):
    with pytest.raises(RunInterrupted):
        run_claims([PassingClaim(), InterruptingClaim()], tier="quick", seed=0, out_dir=tmp_path)
    stream = io.StringIO()
    result = run_claims([PassingClaim()], tier="quick", seed=1, out_dir=tmp_path,
                        progress=stream)
    assert "an unfinished run of another plan" in stream.getvalue()
    assert result.results["complete"] is True and len(result.results["attempts"]) == 1


@pytest.mark.parametrize(("content", "message"), [
    ("{not json", "not valid JSON"),
    ('{"claims": []}', "not a trpo-claims results.json (no 'tier' field)"),
    ("[]", "not a trpo-claims results.json (a JSON list, not an object)"),
])
def test_a_run_directory_holding_something_else_is_not_overwritten(tmp_path, content, message):
    (tmp_path / "results.json").write_text(content)
    with pytest.raises(InputError, match=re.escape(message)):
        run_claims([PassingClaim()], tier="quick", seed=0, out_dir=tmp_path)
    assert (tmp_path / "results.json").read_text() == content
    result = run_claims([PassingClaim()], tier="quick", seed=0, out_dir=tmp_path, restart=True)
    assert result.results["complete"] is True


@pytest.mark.parametrize(
    ("fail_on", "failing_ids"),
    [
        ((), {"toy.raise"}),
        (("refuted",), {"toy.raise", "toy.fail", "toy.nonfinite"}),
        (("inconclusive",), {"toy.raise", "toy.inconclusive"}),
        (("control",), {"toy.raise", "toy.leaky"}),
        (
            FAIL_ON_CHOICES,
            {"toy.raise", "toy.fail", "toy.nonfinite", "toy.inconclusive", "toy.leaky"},
        ),
    ],
)
def test_failure_reasons(full_run, fail_on, failing_ids):
    reasons = failure_reasons(full_run[0], fail_on)
    assert {reason.split(":")[0] for reason in reasons} == failing_ids


def test_failure_reasons_rejects_unknown_outcomes(full_run):
    with pytest.raises(ValueError, match="unknown fail-on"):
        failure_reasons(full_run[0], ["supported"])


class DescribeFails(ToyClaim):
    id = "toy.describe-fails"

    def describe(self) -> dict:
        raise AttributeError("no protocol declared")


class BudgetFails(ToyClaim):
    id = "toy.budget-fails"
    budgets = None  # type: ignore[assignment]


class DecideFails(ToyClaim):
    id = "toy.decide-fails"

    def decide(self, evidence: Evidence) -> Verdict:
        raise ZeroDivisionError("toy decide bug")


@pytest.mark.parametrize(
    ("claim", "phase", "error_type"),
    [
        (DescribeFails(), "describe", "AttributeError"),
        (BudgetFails(), "budget", "AttributeError"),
        (DecideFails(), "decide", "ZeroDivisionError"),
    ],
    ids=["describe", "budget", "decide"],
)
def test_errors_in_every_phase_are_caught_and_named(tmp_path, claim, phase, error_type):
    result = run_claims([claim, PassingClaim()], tier="quick", seed=0, out_dir=tmp_path)
    entry, after = result.results["claims"]
    assert entry["verdict"]["status"] == "ERROR"
    assert (entry["error"]["phase"], entry["error"]["type"]) == (phase, error_type)
    assert after["verdict"]["status"] == "SUPPORTED"
    # evidence that was produced before decide() failed is kept
    assert (entry["evidence"] is not None) == (phase == "decide")
    assert f"`{entry['id']}` raised an ERROR" in result.report_path.read_text()


def _killed_run(out: Path, pid: int) -> None:
    """results.json as a run of [toy.pass, toy.interrupt] left it when killed outright (no
    chance to record it) after judging toy.pass, by the process ``pid`` on this host."""
    with pytest.raises(RunInterrupted):
        run_claims([PassingClaim(), InterruptingClaim()], tier="quick", seed=0, out_dir=out)
    doc = load_results(out)
    doc["interrupted"] = None
    doc["attempts"][-1] |= {"outcome": "running", "pid": pid, "finished_utc": None}
    (out / "results.json").write_text(json.dumps(doc))


def test_a_run_killed_outright_is_resumed_and_a_live_one_is_left_alone(tmp_path):
    import platform
    import subprocess
    import sys

    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    _killed_run(tmp_path / "killed", finished.pid)  # its process is gone: resumable
    stream = io.StringIO()
    with pytest.raises(RunInterrupted):
        run_claims([PassingClaim(), InterruptingClaim()], tier="quick", seed=0,
                   out_dir=tmp_path / "killed", progress=stream)
    assert "resuming the interrupted run" in stream.getvalue()

    alive = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _killed_run(tmp_path / "live", alive.pid)
        assert load_results(tmp_path / "live")["attempts"][-1]["host"] == platform.node()
        with pytest.raises(InputError, match=f"another run \\(process {alive.pid}\\) is writing"):
            run_claims([PassingClaim()], tier="quick", seed=0, out_dir=tmp_path / "live")
    finally:
        alive.kill()
        alive.wait()
