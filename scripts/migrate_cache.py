"""Carry a job cache over to the code now checked out, after a replay audit shows the change did
not alter what the jobs compute.

    python scripts/migrate_cache.py reports/jobs --sample 4 --max-wall 60
    python scripts/migrate_cache.py reports/jobs --sample 4 --max-wall 60 --write

A cache key hashes the job and its code version (``claims.jobs.job_code_version``): any edit to
``trpo_ref`` (a comment, a refactor, a file that no job imports) makes every cached training
stale. When an edit is meant to change nothing that jobs compute, this script checks that on
the records themselves: it reruns a seeded sample of the stale records with the current code
(the determinism audit of ``scripts/replay_jobs.py``) and, only if every replay is bit-identical,
rewrites each stale record under its new key with ``code`` set to the current version and a
``migrated`` entry naming the old version and the audit (records sampled, seed, replays). Without
``--write`` it audits and reports what it would do. A differing replay stops the migration
(exit 1): the edit changed behaviour, and the stale trainings must be run again.

The sample is drawn (``--seed``) from the stale records whose cached wall time is at most
``--max-wall`` seconds, so the audit stays affordable; say which records were replayed when you
quote a migration.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from claims.jobs import Job, job_code_version, job_key, replay
from claims.serialize import read_json, write_json_atomic


def stale_records(root: Path) -> list[tuple[Path, dict[str, Any], str]]:
    """(path, record, current code version) of every record under ``root`` whose code version
    is not the one its job function has now, sorted by path."""
    out = []
    for path in sorted(root.glob("*.json")):
        record = read_json(path)
        current = job_code_version(record["job"]["fn"])
        if record["code"] != current:
            out.append((path, record, current))
    return out


def audit_sample(stale: Sequence[tuple[Path, dict[str, Any], str]], size: int, seed: int,
                 max_wall_s: float) -> list[Path]:
    """A seeded draw of ``size`` stale records among those that cached at most ``max_wall_s``."""
    affordable = [path for path, record, _ in stale if float(record["wall_s"]) <= max_wall_s]
    return sorted(random.Random(seed).sample(affordable, min(size, len(affordable))))


def migrated(record: dict[str, Any], current: str, audit: dict[str, Any]) -> dict[str, Any]:
    """``record`` under the current code version, keeping where it came from."""
    history = [*record.get("migrated", []), {"from_code": record["code"], **audit}]
    return {**record, "code": current, "migrated": history}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path, help="a job cache directory (e.g. reports/jobs)")
    parser.add_argument("--sample", type=int, default=4, help="stale records to replay")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample draw")
    parser.add_argument("--max-wall", type=float, default=60.0,
                        help="draw the sample from records that cached at most this many seconds")
    parser.add_argument("--write", action="store_true", help="rewrite the records (else dry run)")
    args = parser.parse_args(argv)
    if not args.cache.is_dir():
        print(f"migrate_cache: {args.cache}: not a directory", file=sys.stderr)
        return 2
    stale = stale_records(args.cache)
    if not stale:
        print(f"{args.cache}: every record is made by the current code; nothing to migrate")
        return 0
    sample = audit_sample(stale, args.sample, args.seed, args.max_wall)
    if not sample:
        print(f"migrate_cache: no stale record cached in <= {args.max_wall} s to replay",
              file=sys.stderr)
        return 2
    for path in sample:
        outcome = replay(path)
        status = "identical" if outcome.identical else "DIFFERS in " + ", ".join(outcome.differing)
        print(f"replay {path.name}: {outcome.label}: {status} ({outcome.wall_s:.1f} s)",
              flush=True)
        if not outcome.identical:
            print("migrate_cache: the code change alters results; nothing migrated",
                  file=sys.stderr)
            return 1
    audit = {"replayed": [p.name for p in sample], "seed": args.seed, "identical": True}
    for path, record, current in stale:
        target = args.cache / f"{job_key(Job(**record['job']), current)}.json"
        if args.write:
            write_json_atomic(target, migrated(record, current, audit))
            if target != path:
                path.unlink()
    verb = "migrated" if args.write else "would migrate (dry run; --write to do it)"
    print(f"{args.cache}: {verb} {len(stale)} records after {len(sample)} identical replays")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
