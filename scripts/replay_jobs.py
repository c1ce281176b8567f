"""Run cached training jobs again and check that each gives its cached result, bit for bit.

    python scripts/replay_jobs.py reports/jobs/2b6df25f4323a4f1b0b012ce.json
    python scripts/replay_jobs.py reports/jobs --sample 3 --seed 0

The determinism audit of a job cache: jobs are seeded, so on the machine and code that made a
record, every field of its result (timings aside) must come back identical. Records made by other
code are reported and not replayed (a difference there would be expected, not a bug). Prints one
line per job with this run's wall time beside the cached one; exits 1 if any result differs, 2
if a file named is missing or not a cache record (each named on its own line).
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

from claims.framework.jobs import made_by_current_code, replay
from claims.framework.serialize import InputError


def record_paths(targets: list[str]) -> list[Path]:
    """The cache files named, or found directly under the directories named, sorted."""
    paths: list[Path] = []
    for target in map(Path, targets):
        if not target.exists():
            raise SystemExit(f"replay_jobs: {target}: no such file or directory")
        paths += sorted(target.glob("*.json")) if target.is_dir() else [target]
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="+", help="job cache files or directories")
    parser.add_argument("--sample", type=int, default=None,
                        help="replay only this many records, drawn at random")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --sample draw")
    args = parser.parse_args(argv)
    paths = record_paths(args.targets)
    if args.sample is not None:
        paths = sorted(random.Random(args.seed).sample(paths, min(args.sample, len(paths))))
    differing, unreadable = 0, 0
    for path in paths:
        try:
            current = made_by_current_code(path)
        except InputError as problem:
            print(f"replay_jobs: {problem}", file=sys.stderr)
            unreadable += 1
            continue
        if not current:
            print(f"{path.name}: made by other code, not replayed")
            continue
        outcome = replay(path)
        status = "identical" if outcome.identical else "DIFFERS in " + ", ".join(outcome.differing)
        differing += not outcome.identical
        print(f"{path.name}: {outcome.label}: {status} ({outcome.wall_s:.1f} s now, "
              f"{outcome.cached_wall_s:.1f} s cached)", flush=True)
    print(f"{len(paths)} records, {differing} differing, {unreadable} unreadable",
          file=sys.stderr)
    return 2 if unreadable else 1 if differing else 0


if __name__ == "__main__":
    raise SystemExit(main())
