"""The trpo-claims command line, on toy claims put in the registry's place."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from toy_claims import EXPECTED, toy_claims

from claims import registry
from claims.cli import SUBCOMMANDS, main


@pytest.fixture
def toys(monkeypatch, tmp_path):
    """The registry holds the toy claims only; the working directory is a fresh tmp_path."""
    monkeypatch.setattr(registry, "CLAIM_MODULES", ())
    monkeypatch.setattr(registry, "_REGISTRY", {claim.id: claim for claim in toy_claims()})
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_subcommands_are_a_table():
    names = [command.name for command in SUBCOMMANDS]
    assert names == ["list", "show", "run", "report", "check-adapter", "compare", "fork-check",
                     "audit", "climb", "train", "bench"]


def test_list_table(toys, capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "KIND", "SOURCE", "TITLE"]
    assert [line.split()[0] for line in lines[1:]] == list(EXPECTED)
    assert lines[1].split("  ")[-1] == "A toy claim that holds"
    assert "exact  tests/toy_claims.py  A toy claim that holds" in lines[1]


def test_list_json(toys, capsys):
    assert main(["list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["id"] for d in listed] == list(EXPECTED)
    assert listed[0]["rule"]["statistic"] == "min margin"
    assert listed[3]["budgets"]["quick"] is None


def test_show_prints_the_rule_control_and_budgets(toys, capsys):
    assert main(["show", "toy.inconclusive"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("toy.inconclusive: A toy claim whose interval straddles")
    assert "`mean margin >= 0` on both ends" in out
    assert "95% confidence interval" in out
    assert "Shift the base value below zero." in out
    assert '{"n": 3}' in out and '{"n": 7}' in out


def test_show_a_claim_without_budget(toys, capsys):
    assert main(["show", "toy.nobudget"]) == 0
    assert "none: SKIPPED at this tier" in capsys.readouterr().out


@pytest.mark.parametrize("argv", [["show", "toy.nope"], ["run", "--claim", "toy.pass", "toy.nope"]])
def test_unknown_claim_id_exits_2(toys, capsys, argv):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no claim with id 'toy.nope'" in err and "toy.pass" in err
    assert not (toys / "reports").exists()


@pytest.mark.parametrize(
    ("claim_ids", "fail_on", "status"),
    [
        (["toy.pass"], [], 0),
        (["toy.pass"], ["refuted", "inconclusive", "control"], 0),
        (["toy.fail"], [], 0),  # a REFUTED verdict is a result, not a failure
        (["toy.fail"], ["refuted"], 1),
        (["toy.fail"], ["inconclusive"], 0),
        (["toy.inconclusive"], [], 0),
        (["toy.inconclusive"], ["inconclusive"], 1),
        (["toy.inconclusive"], ["refuted"], 0),
        (["toy.leaky"], [], 0),
        (["toy.leaky"], ["control"], 1),
        (["toy.nobudget"], ["refuted", "inconclusive", "control"], 0),
        (["toy.raise"], [], 1),  # an ERROR always fails
        (["toy.pass", "toy.raise"], [], 1),
    ],
)
def test_run_exit_status(toys, claim_ids, fail_on, status):
    argv = ["run", "--claim", *claim_ids]
    if fail_on:
        argv += ["--fail-on", *fail_on]
    assert main(argv) == status
    results = json.loads((toys / "reports" / "quick" / "results.json").read_text())
    assert [entry["id"] for entry in results["claims"]] == claim_ids


def test_run_all_claims_with_defaults(toys, capsys):
    assert main(["run"]) == 1  # toy.raise errors
    captured = capsys.readouterr()
    assert "[1/7] toy.pass ... SUPPORTED" in captured.out
    assert ("wrote reports/quick/results.json, reports/quick/report.md and "
            "reports/quick/report.html") in captured.out
    assert "WARNING: The negative control of `toy.leaky`" in captured.err
    assert "exit 1 because: toy.raise: ERROR; toy.raise: negative control ERROR" in captured.err
    results = json.loads((toys / "reports" / "quick" / "results.json").read_text())
    assert results["command"] == [
        "trpo-claims", "run", "--tier", "quick", "--seed", "0", "--out", "reports/quick",
    ]  # fmt: skip
    assert results["fingerprint"]["argv"] != []


def test_run_options_reach_the_results(toys):
    argv = ["run", "--tier", "standard", "--seed", "7", "--out", "out", "--no-controls"]
    argv += ["--claim", "toy.pass", "--claim", "toy.fail", "toy.pass"]
    assert main(argv) == 0
    results = json.loads((toys / "out" / "results.json").read_text())
    assert (results["tier"], results["seed"], results["controls"]) == ("standard", 7, False)
    assert [entry["id"] for entry in results["claims"]] == ["toy.pass", "toy.fail"]
    assert results["claims"][0]["evidence"]["config"] == {"n": 5, "seed": 7, "base": 1.0}
    assert results["command"][-4:] == ["--claim", "toy.pass", "toy.fail", "--no-controls"]


@pytest.mark.parametrize(("argv", "message"), [
    (["--jobs", "0"], "--jobs must be >= 1"),
    (["--address", "10.0.0.5:6379"], "--address is for --executor ray"),
])
def test_run_rejects_bad_executor_options(toys, capsys, argv, message):
    assert main(["run", "--claim", "toy.pass", *argv]) == 2
    assert message in capsys.readouterr().err


def test_fail_on_control_needs_controls(toys, capsys):
    assert main(["run", "--no-controls", "--fail-on", "control"]) == 2
    assert "--fail-on control needs the negative controls" in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["run", "--tier", "huge"], ["run", "--fail-on", "supported"]])
def test_bad_arguments_exit_2(toys, argv):
    assert main(argv) == 2


def test_run_with_no_registered_claims_exits_2(monkeypatch, capsys):
    monkeypatch.setattr(registry, "CLAIM_MODULES", ())
    monkeypatch.setattr(registry, "_REGISTRY", {})
    assert main(["run"]) == 2
    assert "no claims are registered" in capsys.readouterr().err


def test_report_regenerates_identical_markdown(toys, capsys):
    main(["run", "--out", "run1"])
    original = (toys / "run1" / "report.md").read_text()
    (toys / "run1" / "report.md").unlink()
    assert main(["report", "run1"]) == 0
    assert (toys / "run1" / "report.md").read_text() == original
    capsys.readouterr()
    assert main(["report", "run1", "--stdout"]) == 0
    assert capsys.readouterr().out == original


def test_report_without_results_exits_2(toys, capsys):
    assert main(["report", "nowhere"]) == 2
    assert "no results.json in nowhere" in capsys.readouterr().err


def test_no_subcommand_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: trpo-claims" in capsys.readouterr().err


def test_help_exits_0(capsys):
    assert main(["run", "--help"]) == 0
    assert "--fail-on" in capsys.readouterr().out


def test_python_dash_m_claims_runs_the_cli():
    done = subprocess.run(
        [sys.executable, "-m", "claims", "--help"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0
    assert "usage: trpo-claims" in done.stdout


def test_show_lists_a_claims_deviations(capsys):
    assert main(["show", "empirical.delta_transfers"]) == 0
    out = " ".join(capsys.readouterr().out.split())  # undo the wrapping
    assert "Deviations from the paper:" in out and "(Spinning Up)" in out
