"""The trpo-claims command line, on toy claims put in the registry's place."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest
from toy_claims import EXPECTED, ToyClaim, toy_claims

from claims.cli.main import SUBCOMMANDS, main
from claims.framework import registry
from claims.framework.core import Evidence


def only_run_dir(root: Path, tier: str = "quick") -> Path:
    """The one default run directory (runs/TIER-YYYYMMDD-HHMMSS) under ``root``."""
    (run_dir,) = (root / "runs").glob(f"{tier}-*")
    return run_dir


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


@pytest.mark.parametrize("argv", [["show", "toy.nope"], ["run", "--claim", "toy.pass", "toy.nope"],
                                  ["fork-check", "--claim", "toy.nope"]])
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
    results = json.loads((only_run_dir(toys) / "results.json").read_text())
    assert [entry["id"] for entry in results["claims"]] == claim_ids


def test_run_all_claims_with_defaults(toys, capsys):
    assert main(["run"]) == 1  # toy.raise errors
    captured = capsys.readouterr()
    run_dir = only_run_dir(toys)
    assert re.fullmatch(r"quick-\d{8}-\d{6}", run_dir.name)
    assert "[1/7] toy.pass ... SUPPORTED" in captured.out
    assert (f"wrote {run_dir.relative_to(toys)}/results.json, {run_dir.relative_to(toys)}/report.md"
            f" and {run_dir.relative_to(toys)}/report.html") in captured.out
    assert "WARNING: The negative control of `toy.leaky`" in captured.err
    assert "exit 1 because: toy.raise: ERROR; toy.raise: negative control ERROR" in captured.err
    results = json.loads((run_dir / "results.json").read_text())
    assert results["command"] == [
        "trpo-claims", "run", "--tier", "quick", "--seed", "0", "--out", f"runs/{run_dir.name}",
    ]  # fmt: skip
    assert results["fingerprint"]["argv"] != []
    assert results["execution"]["cache"] == f"runs/{run_dir.name}/jobs"  # its own, fresh cache


def test_default_runs_never_overwrite_each_other(toys):
    """Two default runs of the same plan: the second one finds the first complete and writes a
    new directory beside it (the issue: the main command rewrote the committed reports)."""
    assert main(["run", "--claim", "toy.pass"]) == 0
    first = only_run_dir(toys)
    before = (first / "results.json").read_text()
    assert main(["run", "--claim", "toy.pass"]) == 0
    dirs = sorted((toys / "runs").iterdir())
    assert len(dirs) == 2 and dirs[0] == first
    assert (first / "results.json").read_text() == before


def test_default_run_dir_is_ignored_by_git():
    repo = Path(__file__).resolve().parents[1]
    done = subprocess.run(["git", "check-ignore", "-q", "runs/quick-20260101-000000/results.json"],
                          cwd=repo, check=False)
    assert done.returncode == 0, "runs/ must be git-ignored: the user's runs are not the repo's"


def test_the_recorded_command_names_the_cache(toys, tmp_path):
    assert main(["run", "--claim", "toy.pass", "--out", "out", "--cache", "shared-jobs"]) == 0
    results = json.loads((toys / "out" / "results.json").read_text())
    assert results["command"] == ["trpo-claims", "run", "--tier", "quick", "--seed", "0", "--out",
                                  "out", "--cache", "shared-jobs", "--claim", "toy.pass"]
    assert results["execution"]["cache"] == "shared-jobs"


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
    (["--cached-only"], "--cached-only reads finished trainings from a job cache, and runs/"),
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
    assert capsys.readouterr().err == ("trpo-claims report: error: nowhere: no such directory "
                                       "(expected a run directory with results.json)\n")


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


# --- errors: one line naming the file and the problem, exit 2 ----------------------------------

def _write(root: Path, files: dict[str, str | None]) -> None:
    """Create ``files`` under ``root``: text content, or None for an (empty) directory."""
    for name, content in files.items():
        path = root / name
        if content is None:
            path.mkdir(parents=True, exist_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)


RESULTS_WITHOUT_CLAIMS = '{"schema_version": 1, "tier": "quick"}'
A_RESULT = ('{"tier": "quick", "seed": 0, "command": ["trpo-claims"], "claims": [{"id": "toy.pass",'
            ' "verdict": {"status": "SUPPORTED", "statistic": "min margin", "value": 1.0}}]}')


@pytest.mark.parametrize(("argv", "files", "expected"), [
    # the case: two files that are not JSON (a traceback and exit 1 before)
    (["compare", "pyproject.toml", "README.md"], {"pyproject.toml": "[project]\n",
                                                  "README.md": "# hi\n"},
     "pyproject.toml: not valid JSON (Expecting value at line 1, column 2)"),
    (["compare", "base.json", "cand.json"], {"base.json": '{"name": "x"}', "cand.json": "{}"},
     "base.json: neither a baseline nor a results.json (no 'claims' field)"),  # KeyError before
    (["compare", "base.json", "cand.json"], {"base.json": "", "cand.json": "{}"},
     "base.json: is empty"),
    (["compare", "empty", "empty"], {"empty": None},
     "empty: a directory without results.json, so not a run directory"),
    (["compare", "nightly", "nightly"], {},
     "'nightly' is neither a saved baseline in .trpo-claims/baselines"),
    (["compare", "run", "run"], {"run/results.json": '{"tier": "quick", "claims": [{"id": 1}]}'},
     "run/results.json: a results.json whose claim entry 0 has no id or verdict (status,"),
    (["report", "run"], {"run/results.json": "[project]"}, "run/results.json: not valid JSON"),
    (["report", "run"], {"run/results.json": '{"tier": "quick", "claims": [{"id"'},
     "run/results.json: not valid JSON"),  # truncated: a parser message naming no file before
    (["report", "run"], {"run/results.json": RESULTS_WITHOUT_CLAIMS},
     "run/results.json: not a trpo-claims results.json (no 'claims' field)"),
    (["report", "run"], {"run/results.json": '{"tier": "quick", "claims": {}}'},
     "run/results.json: not a trpo-claims results.json ('claims' is not a list)"),
    (["report", "run"], {"run/results.json": A_RESULT.replace('"tier"', '"schema_version": 9, '
                                                              '"tier"')},
     "run/results.json: schema_version 9; this trpo-claims reads version 1"),
    (["report", "run"], {"run/results.json": A_RESULT},
     "run/results.json: not a complete trpo-claims results.json (KeyError: 'description')"),
    (["report", "empty"], {"empty": None},
     "empty: not a run directory (it is empty; expected empty/results.json)"),
    (["report", "README.md"], {"README.md": "# hi\n"}, "README.md: not a directory"),
    (["run", "--claim", "toy.pass", "--out", "afile"], {"afile": "x"},
     "afile: exists and is not a directory"),
    (["run", "--claim", "toy.pass", "--out", "run"], {"run/results.json": "{oops"},
     "run/results.json: not valid JSON"),
    (["run", "--claim", "toy.pass", "--cache", "afile"], {"afile": "x"},
     "afile: not a directory, so it cannot be a job cache (--cache)"),
    (["train", "--env", "CartPole-v1", "--steps", "100", "--out", "afile"], {"afile": "x"},
     "afile: exists and is not a directory"),
    (["bench", "--json", "adir"], {"adir": None}, "adir: is a directory; --json takes a file"),
])
def test_bad_inputs_are_one_line_naming_the_file_and_exit_2(toys, capsys, argv, files, expected):
    _write(toys, files)
    before = {p: p.read_bytes() for p in toys.rglob("*") if p.is_file()}
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"trpo-claims {argv[0]}: error: {expected}"), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert {p: p.read_bytes() for p in before} == before  # nothing of the user's was touched


def test_compare_still_exits_1_only_for_a_regression(toys, capsys):
    """Exit 1 keeps its meaning, "the check found something": equal runs exit 0."""
    _write(toys, {"run/results.json": A_RESULT})
    assert main(["compare", "run", "run"]) == 0


def test_version(capsys):
    assert main(["--version"]) == 0
    out = capsys.readouterr().out
    assert re.fullmatch(r"trpo-claims \S+( \(commit [0-9a-f]{12}(, dirty)?\))?\n", out), out


def test_an_unknown_claim_id_suggests_the_closest_and_lists_ids_by_family(toys, capsys):
    assert main(["show", "toy.pas"]) == 2
    err = capsys.readouterr().err
    first, *rest = err.splitlines()
    assert first == ("trpo-claims show: error: no claim with id 'toy.pas'; did you mean "
                     "'toy.pass'?")
    assert rest[0] == "known ids (`trpo-claims list` describes them):"
    assert rest[1].startswith("  toy: toy.fail, toy.inconclusive, ")


def test_a_bare_claim_name_suggests_its_family_id():
    from claims.cli.main import unknown_claim_message

    message = unknown_claim_message("theorem1", ["theory.theorem1", "theory.surrogate_gradient"])
    assert message.startswith("no claim with id 'theorem1'; did you mean 'theory.theorem1'?")
    assert "\n  theory: theory.surrogate_gradient, theory.theorem1" in message


def test_ctrl_c_in_a_subcommand_is_one_line_and_exit_130(toys, capsys, monkeypatch):
    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(registry, "all_claims", interrupted)
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "trpo-claims list: interrupted\n"


class _InterruptOnce(ToyClaim):
    """Stops the run with Ctrl-C the first time it runs (a user pressing it mid-run)."""

    id = "toy.interrupt-once"
    interrupted: ClassVar[list[bool]] = []

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        if not self.interrupted:
            self.interrupted.append(True)
            raise KeyboardInterrupt
        return super().run(tier, control=control, seed=seed)


def test_rerunning_the_default_command_resumes_the_interrupted_run(toys, monkeypatch, capsys):
    claims = {c.id: c for c in [*toy_claims("toy.pass"), _InterruptOnce()]}
    monkeypatch.setattr(registry, "_REGISTRY", claims)
    assert main(["run"]) == 130
    run_dir = only_run_dir(toys)
    err = capsys.readouterr().err
    assert err == (f"trpo-claims: SIGINT: stopped after 1 of 2 claims; {run_dir.relative_to(toys)}"
                   f"/results.json has them (complete: false); resume with: trpo-claims run "
                   f"--tier quick --seed 0 --out runs/{run_dir.name}\n")
    assert main(["run"]) == 0  # the same command: the newest run of this plan is resumed
    assert only_run_dir(toys) == run_dir
    assert f"resuming the interrupted run in runs/{run_dir.name}: 1 of 2" in capsys.readouterr().out
    assert main(["run", "--seed", "1"]) == 0  # another plan: a new directory
    assert len(list((toys / "runs").iterdir())) == 2
