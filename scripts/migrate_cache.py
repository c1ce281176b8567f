"""Carry a job cache over to the code now checked out, after a replay audit shows the change did
not alter what the jobs compute.

    python scripts/migrate_cache.py reports/jobs --sample 4 --max-wall 60
    python scripts/migrate_cache.py reports/jobs --sample 4 --max-wall 60 --write

A cache key hashes the job and its code version (``claims.framework.jobs.job_code_version``): any
edit to ``trpo_ref`` (a comment, a refactor, a file that no job imports) makes every cached training
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

Records made on another machine may not replay bit for bit here with *any* code (MuJoCo's
floating point differs between machines). ``--paired-with REV`` audits the code change itself
instead: each sampled record is replayed twice on this machine, by the code of REV (a git
revision whose code version must be the records' own; checked in a temporary worktree, in a
subprocess) and by the current code, and the migration goes ahead only if the two replays are
bit-identical to each other. Whether the old replay also reproduced the record is printed and
kept in the ``migrated`` entry.

    python scripts/migrate_cache.py reports/jobs --paired-with 8a9455b --write

A job function that moved to another module (the job's ``fn``, part of its key, names it) is
carried over with ``--rename-fn OLD=NEW`` (repeatable): each record naming ``OLD`` is replayed and
re-keyed as a job of ``NEW``, and its ``migrated`` entry keeps the old name. The replay audit
still decides: ``NEW`` must compute what ``OLD`` did. The layout move of claims/ (issue 17):

    python scripts/migrate_cache.py reports/jobs --paired-with fedfad0 --write \
        --rename-fn claims.training_jobs:train_job=claims.catalogue.training_jobs:train_job
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from claims.framework.jobs import TIMING_FIELDS, Job, execute, job_code_version, job_key
from claims.framework.serialize import read_json, write_json_atomic


def parse_renames(pairs: Sequence[str]) -> dict[str, str]:
    """``["OLD=NEW", ...]`` (job function names, ``module:function``) as {OLD: NEW}."""
    renames = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not (sep and ":" in old and ":" in new):
            raise ValueError(f"--rename-fn {pair!r}: expected OLD=NEW, each module:function")
        renames[old] = new
    return renames


def renamed(record: dict[str, Any], renames: dict[str, str]) -> dict[str, Any]:
    """``record`` with its job's function renamed per ``renames`` (the original name kept in
    ``from_fn``), or ``record`` itself when its function is not renamed."""
    fn = record["job"]["fn"]
    if fn not in renames:
        return record
    return {**record, "job": {**record["job"], "fn": renames[fn]}, "from_fn": fn}


def stale_records(root: Path, renames: dict[str, str] | None = None
                  ) -> list[tuple[Path, dict[str, Any], str]]:
    """(path, record, current code version) of every record under ``root`` whose code version
    is not the one its job function has now, sorted by path; a record whose function is renamed
    (``renames``, see :func:`renamed`) comes with its job under the new name, and is stale."""
    out = []
    for path in sorted(root.glob("*.json")):
        record = renamed(read_json(path), renames or {})
        current = job_code_version(record["job"]["fn"], kwargs=record["job"]["kwargs"])
        if record["code"] != current or "from_fn" in record:
            out.append((path, record, current))
    return out


def audit_sample(stale: Sequence[tuple[Path, dict[str, Any], str]], size: int, seed: int,
                 max_wall_s: float) -> list[Path]:
    """A seeded draw of ``size`` stale records among those that cached at most ``max_wall_s``."""
    affordable = [path for path, record, _ in stale if float(record["wall_s"]) <= max_wall_s]
    return sorted(random.Random(seed).sample(affordable, min(size, len(affordable))))


def migrated(record: dict[str, Any], current: str, audit: dict[str, Any]) -> dict[str, Any]:
    """``record`` under the current code version, keeping where it came from (the old code
    version, and the old job function's name if it was renamed)."""
    entry = {"from_code": record["code"], **audit}
    if "from_fn" in record:
        entry = {"from_code": record["code"], "from_fn": record["from_fn"], **audit}
    history = [*record.get("migrated", []), entry]
    return {**{k: v for k, v in record.items() if k != "from_fn"}, "code": current,
            "migrated": history}


# run in a checkout of the old revision: its code version for the job, and the job's result
_OLD_REPLAY = """
import importlib, json, os, sys
# an editable install of this project answers imports the old tree lacks (claims.framework
# before the layout move) from the current checkout: drop its finder, and check where jobs is
sys.meta_path[:] = [f for f in sys.meta_path
                    if "editable" not in getattr(f, "__name__", type(f).__name__).lower()]
new_layout = os.path.exists(os.path.join("claims", "framework", "jobs.py"))
jobs = importlib.import_module("claims.framework.jobs" if new_layout else "claims.jobs")
if not os.path.realpath(jobs.__file__).startswith(os.path.realpath(os.getcwd()) + os.sep):
    raise SystemExit(f"the old replay imported {jobs.__file__}, not the old tree's")
record = json.load(open(sys.argv[1]))
job = jobs.Job(**record["job"])
try:  # a revision whose code versions depend on the job's arguments (JOB_SOURCES_WHEN)
    code = jobs.job_code_version(job.fn, kwargs=job.kwargs)
except TypeError:
    code = jobs.job_code_version(job.fn)
print(json.dumps({"code": code, "result": jobs.execute(job)}))
"""


@contextlib.contextmanager
def checkout(rev: str) -> Iterator[Path]:
    """A temporary detached worktree of ``rev`` (removed afterwards)."""
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="migrate-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "worktree", "add", "--quiet", "--detach", str(tree), rev],
                       cwd=root, check=True)
        try:
            yield tree
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=root,
                           check=False)


def differing_fields(a: dict[str, Any], b: dict[str, Any]) -> tuple[str, ...]:
    """Result fields (as JSON, timing fields aside) whose values differ between ``a`` and ``b``."""
    def text(d: dict[str, Any], f: str) -> str:  # JSON text: NaN equals NaN, 1.0 is not 1
        return json.dumps(d.get(f), sort_keys=True)

    return tuple(f for f in sorted((set(a) | set(b)) - TIMING_FIELDS) if text(a, f) != text(b, f))


def paired_replay(path: Path, record: dict[str, Any],
                  old_tree: Path) -> tuple[dict[str, Any], dict[str, Any]] | str:
    """Replay ``record`` by the old code (``old_tree``) and by the current code: (old result,
    new result), or a message if the old checkout did not make the record (its code version is
    another)."""
    env = dict(os.environ, PYTHONPATH=str(old_tree))
    done = subprocess.run([sys.executable, "-c", _OLD_REPLAY, str(path.resolve())],
                          cwd=old_tree, env=env, capture_output=True, text=True, check=True)
    old = json.loads(done.stdout.strip().splitlines()[-1])
    if old["code"] != record["code"]:
        return f"the old revision's code version is {old['code']}, the record's {record['code']}"
    return old["result"], execute(Job(**record["job"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cache", type=Path, help="a job cache directory (e.g. reports/jobs)")
    parser.add_argument("--sample", type=int, default=4, help="stale records to replay")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample draw")
    parser.add_argument("--max-wall", type=float, default=60.0,
                        help="draw the sample from records that cached at most this many seconds")
    parser.add_argument("--write", action="store_true", help="rewrite the records (else dry run)")
    parser.add_argument("--paired-with", metavar="REV", default=None,
                        help="replay each sampled record by REV's code and by the current code "
                             "and require those two to agree (for records made elsewhere)")
    parser.add_argument("--rename-fn", metavar="OLD=NEW", action="append", default=[],
                        help="a job function that moved (module:function each); repeatable")
    args = parser.parse_args(argv)
    if not args.cache.is_dir():
        print(f"migrate_cache: {args.cache}: not a directory", file=sys.stderr)
        return 2
    try:
        renames = parse_renames(args.rename_fn)
    except ValueError as error:
        print(f"migrate_cache: {error}", file=sys.stderr)
        return 2
    stale = stale_records(args.cache, renames)
    if not stale:
        print(f"{args.cache}: every record is made by the current code; nothing to migrate")
        return 0
    sample = audit_sample(stale, args.sample, args.seed, args.max_wall)
    if not sample:
        print(f"migrate_cache: no stale record cached in <= {args.max_wall} s to replay",
              file=sys.stderr)
        return 2
    if args.paired_with is None:
        ok = audit_by_replay(sample, stale)
        audit = {"replayed": [p.name for p in sample], "seed": args.seed, "identical": True}
    else:
        rev = subprocess.run(["git", "rev-parse", "--verify", args.paired_with + "^{commit}"],
                             capture_output=True, text=True).stdout.strip()
        if not rev:
            print(f"migrate_cache: {args.paired_with}: not a git revision", file=sys.stderr)
            return 2
        ok, reproduced = audit_paired(sample, stale, rev)
        audit = {"replayed": [p.name for p in sample], "seed": args.seed, "identical": True,
                 "paired_with": rev, "old_replay_reproduced_record": reproduced}
    if not ok:
        print("migrate_cache: the code change alters results; nothing migrated", file=sys.stderr)
        return 1
    for path, record, current in stale:
        target = args.cache / f"{job_key(Job(**record['job']), current)}.json"
        if args.write:
            write_json_atomic(target, migrated(record, current, audit))
            if target != path:
                path.unlink()
    verb = "migrated" if args.write else "would migrate (dry run; --write to do it)"
    print(f"{args.cache}: {verb} {len(stale)} records after {len(sample)} identical replays")
    return 0


def audit_by_replay(sample: Sequence[Path],
                    stale: Sequence[tuple[Path, dict[str, Any], str]]) -> bool:
    """Replay each sampled record by the current code (its job under its new function name, if
    renamed); True if all are identical to the record."""
    records = {path: record for path, record, _ in stale}
    for path in sample:
        job = Job(**records[path]["job"])
        start = time.perf_counter()
        differing = differing_fields(json.loads(json.dumps(execute(job))),
                                     records[path]["result"])
        status = "identical" if not differing else "DIFFERS in " + ", ".join(differing)
        print(f"replay {path.name}: {job.label}: {status} "
              f"({time.perf_counter() - start:.1f} s)", flush=True)
        if differing:
            return False
    return True


def audit_paired(sample: Sequence[Path], stale: Sequence[tuple[Path, dict[str, Any], str]],
                 rev: str) -> tuple[bool, dict[str, bool]]:
    """Replay each sampled record by ``rev``'s code and by the current code; (all pairs identical,
    {record: whether the old replay also reproduced the record})."""
    records = {path: record for path, record, _ in stale}
    reproduced: dict[str, bool] = {}
    with checkout(rev) as tree:
        for path in sample:
            replays = paired_replay(path, records[path], tree)
            if isinstance(replays, str):
                print(f"migrate_cache: {path.name}: {replays}; choose the revision that made "
                      "the records", file=sys.stderr)
                return False, reproduced
            old, new = replays
            outcome = differing_fields(old, new)
            reproduced[path.name] = not differing_fields(old, records[path]["result"])
            status = "identical" if not outcome else "DIFFER in " + ", ".join(outcome)
            print(f"paired replay {path.name} ({rev[:7]} vs now): {status}; the record itself "
                  f"{'reproduced' if reproduced[path.name] else 'NOT reproduced here'}",
                  flush=True)
            if outcome:
                return False, reproduced
    return True, reproduced


if __name__ == "__main__":
    raise SystemExit(main())
