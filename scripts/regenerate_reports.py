"""Maintainers: regenerate a committed report under reports/ (users' runs go to runs/ instead).

    python scripts/regenerate_reports.py --tier quick
    python scripts/regenerate_reports.py --tier standard --out reports/standard-step --jobs 2 \\
        -- --claim step.kl_constraint step.line_search

Runs ``trpo-claims run --tier TIER --out reports/TIER --cache reports/TIER/jobs`` (the committed
job cache: trainings already there are read, missing ones trained into it, so commit the new
records with the report) and writes everything the run prints to ``OUT/run.log`` as well as to
the terminal, so the committed log always belongs to the committed report. Arguments after
``--`` go to ``trpo-claims run`` unchanged (``--claim``, ``--seed``, ``--no-controls``, ...).
An interrupted regeneration resumes when run again; an earlier complete report is replaced.
Exit status: that of ``trpo-claims run``.
"""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from pathlib import Path

from claims.framework.core import DEFAULT_TIER, TIERS

LOG_FILE = "run.log"


def run_command(tier: str, out: Path, cache: Path, jobs: int, extra: list[str]) -> list[str]:
    """The ``trpo-claims run`` argv this script runs (as ``python -m claims``)."""
    return [sys.executable, "-m", "claims", "run", "--tier", tier, "--out", str(out),
            "--cache", str(cache), "--jobs", str(jobs), *extra]


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1:] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tier", choices=TIERS, default=DEFAULT_TIER)
    parser.add_argument("--out", type=Path, default=None, help="default reports/TIER")
    parser.add_argument("--cache", type=Path, default=None, help="default OUT/jobs")
    parser.add_argument("--jobs", type=int, default=1, help="training worker processes")
    args = parser.parse_args(own)
    out = args.out or Path("reports") / args.tier
    cache = args.cache or out / "jobs"
    out.mkdir(parents=True, exist_ok=True)
    command = run_command(args.tier, out, cache, args.jobs, extra)
    # Ctrl-C reaches the run (same process group), which stops cleanly; this script waits for
    # it. The run must not inherit the ignored SIGINT (Python keeps an inherited SIG_IGN).
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        status = _tee(command, out / LOG_FILE)
    finally:
        signal.signal(signal.SIGINT, previous)
    print(f"log in {out / LOG_FILE}; exit status {status}", file=sys.stderr)
    return status


def _tee(command: list[str], log_path: Path) -> int:
    """Run ``command``, copying what it prints to the terminal and to ``log_path``."""
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   text=True, bufsize=1, preexec_fn=_default_sigint)
        assert process.stdout is not None
        for line in process.stdout:
            sys.stdout.write(line)
            sys.stdout.flush()
            log.write(line)
            log.flush()
        return process.wait()


if __name__ == "__main__":
    raise SystemExit(main())
