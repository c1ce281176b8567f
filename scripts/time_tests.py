"""Time the default test run (README's test command) and commit what it measured.

    python scripts/time_tests.py            # writes reports/test-run/timing.json

Runs :data:`COMMAND` from the repository root, as ``.ci/run`` does (HYPOTHESIS_PROFILE=ci),
prints its output as it comes, and writes the wall time, pytest's own summary line, the exit
status, the commit and the machine (CPU count, Python) to ``reports/test-run/timing.json``.
README.md renders its test-time sentence from that file (scripts/render_docs.py,
``test-run`` region), so the time the README states is always one measured at a named commit.
Measure on an otherwise idle machine: a loaded one reports its load, not the suite's cost.
Exit status: that of the test run.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "reports" / "test-run" / "timing.json"
# README's test command after `bash scripts/setup.sh &&` (tests/test_docs.py checks they agree)
COMMAND = ".venv/bin/python -m pytest -n 2 --dist loadfile"


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def summary_line(output: str) -> str:
    """pytest's last "=== N passed ... in T s ===" line, without the = signs ('' if none)."""
    lines = [ln.strip("= ").strip() for ln in output.splitlines() if ln.startswith("=")]
    return next((ln for ln in reversed(lines) if " in " in ln and ("passed" in ln or
                                                                   "failed" in ln)), "")


def main() -> int:
    env = dict(os.environ, HYPOTHESIS_PROFILE=os.environ.get("HYPOTHESIS_PROFILE", "ci"))
    start = time.perf_counter()
    process = subprocess.Popen(COMMAND.split(), cwd=ROOT, env=env, text=True, bufsize=1,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert process.stdout is not None
    output = []
    for line in process.stdout:
        sys.stdout.write(line)
        output.append(line)
    status = process.wait()
    wall_s = time.perf_counter() - start
    record = {
        "command": COMMAND,
        "wall_s": round(wall_s, 1),
        "exit_status": status,
        "pytest_summary": summary_line("".join(output)),
        "commit": _git("rev-parse", "HEAD"),
        "dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "finished_utc": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "hypothesis_profile": env["HYPOTHESIS_PROFILE"],
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(record, indent=2) + "\n")
    print(f"{COMMAND}: {wall_s / 60:.1f} min, exit {status}; wrote {OUT.relative_to(ROOT)}",
          file=sys.stderr)
    return status


if __name__ == "__main__":
    raise SystemExit(main())
