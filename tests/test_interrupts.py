"""Ctrl-C and SIGTERM on a real ``trpo-claims run`` process: the run stops with one line, writes
results.json with ``complete: false`` and every claim judged so far, replaces the earlier run that
was in the directory, and the same command run again resumes (the judged claims are not run
again). The run is tests/interrupt_driver.py: the real command line on toy claims, one of which
waits for the signal (in a claim, or in training jobs on the process pool)."""

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


def _driver(argv: list[str], env: dict[str, str], **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), *argv], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True, **kwargs)


def _wait_for(paths: list[Path], process: subprocess.Popen, timeout: float = 60.0) -> None:
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


@pytest.mark.parametrize(("sig", "hang", "jobs"), [
    (signal.SIGINT, "claim", 1),      # Ctrl-C while a claim runs
    (signal.SIGTERM, "claim", 1),     # a CI runner's timeout while a claim runs
    (signal.SIGINT, "training", 2),   # Ctrl-C while trainings run on the process pool
], ids=["sigint-claim", "sigterm-claim", "sigint-training-pool"])
def test_a_signal_stops_the_run_cleanly_and_the_same_command_resumes(tmp_path, sig, hang, jobs):
    out = tmp_path / "run"
    argv = ["run", "--out", str(out), "--jobs", str(jobs)]
    if sig == signal.SIGINT and hang == "claim":  # once (a process start costs seconds)
        # an earlier, complete run of another plan in the same directory
        earlier = _driver(["run", "--out", str(out), "--claim", "toy.leaky"],
                          _env(tmp_path, None))
        assert earlier.wait(timeout=120) == 0
        assert json.loads((out / "results.json").read_text())["complete"] is True

    run = _driver(argv, _env(tmp_path, hang))
    markers = ([tmp_path / "marker"] if hang == "claim"
               else [tmp_path / "marker.0", tmp_path / "marker.1"])
    _wait_for(markers, run)
    if sig == signal.SIGINT:
        os.killpg(run.pid, sig)  # as a terminal's Ctrl-C does: the whole process group
    else:
        run.send_signal(sig)  # as `kill` or a CI timeout does: the run's process only
    stdout, stderr = run.communicate(timeout=60)

    name = signal.Signals(sig).name
    assert run.returncode == 128 + sig, (stdout, stderr)
    *progress, stop = stderr.strip().splitlines()
    assert "Traceback" not in stderr, stderr
    assert all(re.match(r"\d+ trainings: |\[\d+/\d+\] ", line) for line in progress), stderr
    judged = ["toy.pass"] if hang == "claim" else []
    assert stop.startswith(f"trpo-claims: {name}: stopped after {len(judged)} of 3 claims;")
    assert stop.endswith(f"resume with: trpo-claims run --tier quick --seed 0 --out {out}")
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is False and results["interrupted"] == name
    assert results["planned_claims"] == PLANNED  # not the earlier run's results
    assert [entry["id"] for entry in results["claims"]] == judged
    assert results["attempts"][-1]["outcome"] == f"interrupted ({name})"
    assert "interrupted" in (out / "report.md").read_text()
    if hang == "training":  # the pool's workers were stopped, not left running
        assert all(_dead(int(marker.read_text())) for marker in markers)

    rerun = _driver(argv, _env(tmp_path, None))
    stdout, stderr = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, (stdout, stderr)
    assert f"resuming the interrupted run in {out}: {len(judged)} of 3 claims already judged" \
        in stdout
    results = json.loads((out / "results.json").read_text())
    assert results["complete"] is True and results["interrupted"] is None
    assert [entry["id"] for entry in results["claims"]] == PLANNED
    assert [a["outcome"] for a in results["attempts"]] == [f"interrupted ({name})", "complete"]
    assert results["runtime_s"] >= sum(a["runtime_s"] for a in results["attempts"]) - 1e-9
    runs_of_pass = (tmp_path / "runs.log").read_text().splitlines()
    assert runs_of_pass == ["toy.pass control=False", "toy.pass control=True"]  # not rerun
