"""Ctrl-C and SIGTERM on a real ``trpo-claims run`` process: the run stops with one line, writes
results.json with ``complete: false`` and every claim judged so far, and the same command run
again resumes (the judged claims are not run again). The run is tests/interrupt_driver.py: the
real command line on toy claims, one of which waits for the signal (in a claim, or in training
jobs on the process pool). An earlier run in the directory being replaced at the start is
tested in process (test_runner.py)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
DRIVER = TESTS / "interrupt_driver.py"
PLANNED = ["toy.pass", "toy.hang", "toy.leaky"]


def _env(tmp_path: Path, hang: str | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS.parent), str(TESTS)]),
               RUNS_LOG=str(tmp_path / "runs.log"), MARKER=str(tmp_path / "marker"))
    env.pop("HANG", None)
    if hang is not None:
        env["HANG"] = hang
    return env


def _as_from_a_terminal() -> None:
    """A process started in the background of a non-interactive shell (as CI starts pytest)
    inherits SIGINT ignored, and Python keeps it ignored; a terminal's foreground command has
    the default action, which Python turns into KeyboardInterrupt. Ctrl-C is tested as the
    latter."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _driver(argv: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, preexec_fn=_as_from_a_terminal, **kwargs)


def _wait_for(paths: list[Path], process: subprocess.Popen, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not all(p.exists() for p in paths):
        if process.poll() is not None:
            raise AssertionError(f"the run ended before the signal: {process.communicate()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("the run never reached the point where it waits")
        time.sleep(0.05)


def _dead(pid: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.05)
    return False


def _stop(run: subprocess.Popen, sig: signal.Signals) -> tuple[str, str]:
    """Stop ``run`` with ``sig``: SIGINT to the whole process group, as a terminal's Ctrl-C
    does; SIGTERM to the run's process only, as ``kill`` or a CI timeout does."""
    if sig == signal.SIGINT:
        os.killpg(run.pid, sig)
    else:
        run.send_signal(sig)
    try:
        return run.communicate(timeout=240)
    except subprocess.TimeoutExpired:
        os.killpg(run.pid, signal.SIGKILL)  # leave no sleeping run behind a failed test
        raise


def _check_stopped(run: subprocess.Popen, stderr: str, sig: signal.Signals, out: Path,
                   judged: list[str]) -> dict:
    """The run exited 128 + sig, printed one stop line (after progress lines, no traceback),
    and left results.json with complete: false and the ``judged`` claims; returns it."""
    name = sig.name
    assert run.returncode == 128 + sig, stderr
    *progress, stop = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert all(re.match(r"\d+ trainings: |\[\d+/\d+\] ", line) for line in progress), stderr
    assert stop.startswith(f"trpo-claims: {name}: stopped after {len(judged)} of 3 claims;")
    assert stop.endswith(f"resume with: trpo-claims run --tier quick --seed 0 --out {out}")
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is False and results["interrupted"] == name
    assert results["planned_claims"] == PLANNED
    assert [entry["id"] for entry in results["claims"]] == judged
    assert results["attempts"][-1]["outcome"] == f"interrupted ({name})"
    assert f"interrupted ({name})" in (out / "report.md").read_text()
    return results


def test_signals_stop_the_run_cleanly_and_the_same_command_resumes(tmp_path):
    """Three starts of one run: Ctrl-C while a claim runs; SIGTERM while trainings run on the
    process pool (its workers are stopped too); then the run finishes, without running again
    the claim judged in the first start."""
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--jobs", "2"]

    run = _driver(argv, _env(tmp_path, "claim"))
    _wait_for([tmp_path / "marker"], run)
    _, stderr = _stop(run, signal.SIGINT)
    _check_stopped(run, stderr, signal.SIGINT, out, ["toy.pass"])

    run = _driver(argv, _env(tmp_path, "training"))  # toy.hang's trainings: planned again
    markers = [tmp_path / "marker.0", tmp_path / "marker.1"]
    _wait_for(markers, run)
    _, stderr = _stop(run, signal.SIGTERM)
    _check_stopped(run, stderr, signal.SIGTERM, out, ["toy.pass"])
    assert all(_dead(int(marker.read_text())) for marker in markers)  # no worker left training

    rerun = _driver(argv, _env(tmp_path, None))
    stdout, stderr = rerun.communicate(timeout=240)
    assert rerun.returncode == 0, (stdout, stderr)
    assert f"resuming the interrupted run in {out}: 1 of 3 claims already judged" in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is True and results["interrupted"] is None
    assert [entry["id"] for entry in results["claims"]] == PLANNED
    assert [a["outcome"] for a in results["attempts"]] == [
        "interrupted (SIGINT)", "interrupted (SIGTERM)", "complete"]
    assert results["runtime_s"] == pytest.approx(sum(a["runtime_s"] for a in results["attempts"]))
    runs_of_pass = (tmp_path / "runs.log").read_text().splitlines()
    assert runs_of_pass == ["toy.pass control=False", "toy.pass control=True"]  # not rerun
