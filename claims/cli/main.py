"""The ``trpo-claims`` command line: list, show, run and report the claims.

Each subcommand is one :class:`Subcommand` entry in :data:`SUBCOMMANDS`: a name, a help line, a
function that adds its arguments to an argparse parser, and a handler that returns the exit
status. To add a subcommand, write those two functions and append one entry.

Exit status (every subcommand): 0 on success; 1 when the check found something (a run had an
ERROR or an outcome named with ``--fail-on``; compare found a regression; ...); 2 when the command
could not do its work: bad arguments, an unknown claim id, or a file that is missing, empty, not
JSON or of the wrong kind (one line on stderr naming the file and the problem); 130 / 143 when
Ctrl-C / SIGTERM stopped it (a run first writes what it finished; running it again resumes).
"""

from __future__ import annotations

import argparse
import difflib
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from claims.audit import fork_check
from claims.cli import audit as audit_cli
from claims.cli import bench
from claims.cli import climb as climb_cli
from claims.cli import train as train_cli
from claims.framework import compare, impl, registry
from claims.framework.core import DEFAULT_TIER, TIERS, Claim
from claims.framework.fingerprint import DISTRIBUTION, git_state, package_version
from claims.framework.jobs import EXECUTORS, Execution, JobCache, ProgressPrinter
from claims.framework.report import (
    REPORT_FILE,
    REPORT_HTML_FILE,
    problems,
    render_markdown,
    rule_sentence,
    write_reports,
)
from claims.framework.runner import (
    FAIL_ON_CHOICES,
    RESULTS_FILE,
    RunInterrupted,
    failure_reasons,
    load_results,
    previous_run,
    reproduce_command,
    resumable,
    run_claims,
    run_plan,
)
from claims.framework.serialize import InputError, UsageError, dumps, to_jsonable

PROG = "trpo-claims"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
EXIT_SIGINT = 130  # 128 + SIGINT, as a shell reports it
RUNS_DIR = Path("runs")  # the default home of users' runs (git-ignored); reports/: maintainers


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]
    description: str = ""  # longer text for `trpo-claims NAME --help`; defaults to help


def _claims_by_id(ids: Sequence[str]) -> list[Claim]:
    """The claims with these ids; UsageError naming an unknown one, the closest known ids, and
    every known id grouped by family (one line each)."""
    known = [claim.id for claim in registry.all_claims()]
    for cid in ids:
        if cid not in known:
            raise UsageError(unknown_claim_message(cid, known))
    return [registry.get(cid) for cid in ids]


def unknown_claim_message(claim_id: str, known: Sequence[str]) -> str:
    """``no claim with id 'x'; did you mean ...?`` then the known ids, one family a line."""
    close = difflib.get_close_matches(claim_id, known, n=3, cutoff=0.8)
    # a bare name matches its family's ids too: "theorem1" -> "theory.theorem1"
    close += [k for k in known if k.split(".", 1)[-1] == claim_id and k not in close]
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    families: dict[str, list[str]] = {}
    for cid in known:
        families.setdefault(cid.split(".", 1)[0], []).append(cid)
    listing = "\n".join(textwrap.fill(", ".join(sorted(ids)), width=100,
                                      initial_indent=f"  {family}: ",
                                      subsequent_indent=" " * (4 + len(family)),
                                      break_on_hyphens=False)
                        for family, ids in families.items())
    return (f"no claim with id {claim_id!r}{hint}\nknown ids (`{PROG} list` describes them):\n"
            f"{listing or '  (none registered)'}")


def _wrap(label: str, text: str) -> str:
    return textwrap.fill(
        " ".join(str(text).split()),
        width=100,
        initial_indent=f"{label:<18}",
        subsequent_indent=" " * 18,
    )


# --- list ------------------------------------------------------------------------------------


def _list_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json", action="store_true", help="print every claim's full description as JSON"
    )


def _list(args: argparse.Namespace) -> int:
    claims = registry.all_claims()
    if args.json:
        sys.stdout.write(dumps([claim.describe() for claim in claims]))
        return EXIT_OK
    if not claims:
        print("no claims are registered")
        return EXIT_OK
    header = ("ID", "KIND", "SOURCE", "TITLE")
    rows = [header, *((c.id, str(c.kind), c.source, c.title) for c in claims)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    for row in rows:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        print("  ".join([*padded, row[-1]]))
    return EXIT_OK


# --- show ------------------------------------------------------------------------------------


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("claim_id", metavar="ID", help="a claim id, as printed by `list`")


def _show(args: argparse.Namespace) -> int:
    (claim,) = _claims_by_id([args.claim_id])
    d = claim.describe()
    print(f"{d['id']}: {d['title']}\n")
    for label, key in [
        ("Statement", "statement"),
        ("Source", "source"),
        ("Kind", "kind"),
        ("Protocol", "protocol"),
    ]:
        print(_wrap(label, d[key]))
    print(_wrap("Decision rule", rule_sentence(d["rule"])))
    print(_wrap("Negative control", d["negative_control"]))
    print("Budgets:")
    for tier in TIERS:
        budget = d["budgets"].get(tier)
        text = "none: SKIPPED at this tier" if budget is None else json.dumps(to_jsonable(budget))
        print(_wrap(f"  {tier}", text))
    if d.get("deviations"):
        print("Deviations from the paper:")
        for line in d["deviations"]:
            print(_wrap("  -", line))
    return EXIT_OK


# --- run -------------------------------------------------------------------------------------


def _run_arguments(parser: argparse.ArgumentParser) -> None:
    _plan_arguments(parser)
    _training_arguments(parser)
    _outcome_arguments(parser)


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    """What `run` runs and where: tier, claims, run directory, seed, controls."""
    parser.add_argument(
        "--tier",
        choices=TIERS,
        default=DEFAULT_TIER,
        help=f"budget tier: quick (CI, minutes), standard (about an hour), full (hours); "
        f"default {DEFAULT_TIER}",
    )
    parser.add_argument(
        "--claim",
        metavar="ID",
        action="extend",
        nargs="+",
        default=[],
        help="run only these claims (repeatable); default: every registered claim",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        default=None,
        help="run directory for results.json, report.md, report.html and figures/; default: a "
        f"new {RUNS_DIR}/TIER-YYYYMMDD-HHMMSS (git-ignored), or the latest one of this tier when "
        "it holds an interrupted run of the same plan (which is then resumed)",
    )
    parser.add_argument(
        "--restart",
        action="store_true",
        help="start over: do not resume an interrupted run in --out (it is replaced)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed passed to every claim's run (default 0)"
    )
    parser.add_argument(
        "--no-controls",
        action="store_true",
        help="skip the negative controls (faster, but nothing then shows the checks can fail)",
    )


def _training_arguments(parser: argparse.ArgumentParser) -> None:
    """How the empirical trainings run: workers, executor, job cache, implementation."""
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        metavar="N",
        help="worker processes (or Ray tasks) for the empirical claims' trainings (default 1)",
    )
    parser.add_argument(
        "--executor",
        choices=EXECUTORS,
        default=None,
        help="how trainings run: serial, process (a pool of --jobs), ray (a Ray cluster); "
        "default: process when --jobs > 1, else serial",
    )
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster address for --executor ray (e.g. 10.0.0.5:6379 or auto); default: "
        "start a local Ray instance with --jobs CPUs",
    )
    parser.add_argument(
        "--cache",
        type=Path,
        metavar="DIR",
        default=None,
        help="job cache to read finished trainings from (and add new ones to), e.g. a "
        "maintainer's reports/TIER/jobs; default OUT/jobs, so a new run trains everything "
        "itself (an interrupted run resumes from it)",
    )
    parser.add_argument(
        "--impl",
        metavar="SPEC",
        default=None,
        help="the implementation under test: 'package.module:factory' returning an adapter "
        "(see check-adapter), or a registered name; default: the reference, trpo_ref. Claims "
        "that check trpo_ref's internals or the paper's mathematics are SKIPPED for others",
    )
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="train nothing: judge from the finished trainings in the cache, and report claims "
        "still waiting for some as SKIPPED (a progress report of a long run)",
    )


def _outcome_arguments(parser: argparse.ArgumentParser) -> None:
    """What `run` does with the outcome: a saved baseline, the exit status."""
    parser.add_argument(
        "--save",
        metavar="NAME",
        default=None,
        help="also save the run's verdicts and per-(task, seed) samples, with machine and "
        f"commit info, as the baseline NAME (in --baseline-dir) for `{PROG} compare`",
    )
    parser.add_argument(
        "--baseline-dir",
        type=Path,
        default=compare.BASELINE_DIR,
        help=f"where --save writes (default {compare.BASELINE_DIR})",
    )
    parser.add_argument(
        "--fail-on",
        choices=FAIL_ON_CHOICES,
        metavar="OUTCOME",
        action="extend",
        nargs="+",
        default=[],
        help="also exit 1 on these outcomes: 'refuted' (a claim is REFUTED), 'inconclusive' (a "
        "claim is INCONCLUSIVE), 'control' (a negative control is not REFUTED); repeatable",
    )


def _default_out(tier: str, plan: dict[str, Any]) -> Path:
    """The run directory when --out is not given: the newest RUNS_DIR/TIER-* when it holds an
    interrupted run of ``plan`` (so rerunning the same command resumes), else a new one named
    by the UTC time (never a directory that exists: no default run overwrites another)."""
    existing = sorted(p for p in RUNS_DIR.glob(f"{tier}-*") if p.is_dir())
    if existing:
        try:
            newest = previous_run(existing[-1])
        except InputError:
            newest = None
        if newest is not None and resumable(newest, plan):
            return existing[-1]
    stem = f"{tier}-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    out, n = RUNS_DIR / stem, 1
    while out.exists():
        n += 1
        out = RUNS_DIR / f"{stem}-{n}"
    return out


def _run(args: argparse.Namespace) -> int:
    ids = list(dict.fromkeys(args.claim))  # drop repeats, keep order
    claims = _claims_by_id(ids) if ids else registry.all_claims()
    if not claims:
        raise UsageError("no claims are registered, so there is nothing to run")
    if args.save is not None and (not args.save or "/" in args.save or args.save.startswith(".")):
        raise UsageError(f"--save takes a plain name, got {args.save!r}")
    if args.no_controls and "control" in args.fail_on:
        raise UsageError("--fail-on control needs the negative controls; drop --no-controls")
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    executor = args.executor or ("process" if args.jobs > 1 else "serial")
    if args.address is not None and executor != "ray":
        raise UsageError("--address is for --executor ray")
    if args.cache is not None and args.cache.exists() and not args.cache.is_dir():
        raise InputError(f"{args.cache}: not a directory, so it cannot be a job cache (--cache)")
    under_test = impl.UnderTest(args.impl or impl.REFERENCE_SPEC)
    out = args.out
    if out is None:
        plan = run_plan(tier=args.tier, seed=args.seed, controls=not args.no_controls,
                        claim_ids=[c.id for c in claims], impl=under_test.spec)
        out = _default_out(args.tier, plan)
    if args.cached_only and args.cache is None and not (out / "jobs").is_dir():
        raise UsageError(f"--cached-only reads finished trainings from a job cache, and {out} "
                         "has none yet: name one with --cache DIR (e.g. reports/TIER/jobs)")
    command = reproduce_command(
        tier=args.tier, seed=args.seed, out_dir=out, claim_ids=ids, controls=not args.no_controls,
        impl=args.impl, cache=args.cache,
    )
    cache = JobCache(args.cache if args.cache is not None else out / "jobs")
    with impl.use_implementation(under_test):
        try:
            result = _run_under_test(args, claims, out, command, executor, cache)
        except RunInterrupted as stop:
            print(f"{PROG}: {stop.signal_name}: stopped after {stop.finished} of {stop.planned} "
                  f"claims; {stop.result.results_path} has them (complete: false); resume with: "
                  f"{' '.join(command)}", file=sys.stderr)
            return stop.exit_status
    print(f"wrote {result.results_path}, {result.report_path} and "
          f"{result.out_dir / REPORT_HTML_FILE}")
    if args.save is not None:
        saved = compare.save_baseline(result.results, args.save, args.baseline_dir)
        print(f"saved baseline {saved}")
    for problem in problems(result.results):
        print(f"WARNING: {problem}", file=sys.stderr)
    reasons = failure_reasons(result.results, args.fail_on)
    if reasons:
        print(f"{PROG}: exit 1 because: " + "; ".join(reasons), file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _run_under_test(args: argparse.Namespace, claims: Sequence[Claim], out: Path,
                    command: Sequence[str], executor: str, cache: JobCache) -> Any:
    return run_claims(
        claims,
        tier=args.tier,
        seed=args.seed,
        out_dir=out,
        controls=not args.no_controls,
        progress=sys.stdout,
        command=command,
        restart=args.restart,
        jobs=Execution(cache=cache, executor=executor, max_workers=args.jobs,
                       address=args.address, train=not args.cached_only,
                       progress=ProgressPrinter()),
    )


# --- report ----------------------------------------------------------------------------------


def _report_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", type=Path, help="a directory `run` wrote")
    parser.add_argument(
        "--stdout",
        action="store_true",
        help=f"print the Markdown report instead of writing {REPORT_FILE} and {REPORT_HTML_FILE}",
    )


def _report(args: argparse.Namespace) -> int:
    results = load_results(args.run_dir)
    try:
        markdown = render_markdown(results)
    except (KeyError, TypeError, AttributeError, IndexError) as exc:  # a field missing or odd
        raise InputError(f"{args.run_dir / RESULTS_FILE}: not a complete trpo-claims "
                         f"{RESULTS_FILE} ({type(exc).__name__}: {exc}); nothing was "
                         "written") from None
    if args.stdout:
        sys.stdout.write(markdown)
    else:
        print("wrote " + " and ".join(str(p) for p in write_reports(args.run_dir, results)))
    return EXIT_OK


# --- check-adapter ---------------------------------------------------------------------------


def _check_adapter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("spec", metavar="SPEC",
                        help="'package.module:factory' returning the adapter, or a name "
                        f"registered in the {impl.ENTRY_POINT_GROUP!r} entry-point group")
    parser.add_argument("--env", metavar="ENV_ID", action="extend", nargs="+", default=[],
                        help=f"tasks to exercise (default: {' '.join(impl.CHECK_TASKS)})")


def _check_adapter(args: argparse.Namespace) -> int:
    findings = impl.check_adapter(args.spec, tuple(args.env) or impl.CHECK_TASKS)
    for finding in findings:
        print(f"{'ok     ' if finding.ok else 'PROBLEM'}  {finding.what}: {finding.detail}")
    if all(finding.ok for finding in findings):
        print(f"{args.spec}: usable")
        return EXIT_OK
    print(f"{args.spec}: not usable as it is (see PROBLEM lines)", file=sys.stderr)
    return EXIT_FAILED


# --- the command table -----------------------------------------------------------------------

SUBCOMMANDS: list[Subcommand] = [
    Subcommand("list", "list the registered claims", _list_arguments, _list),
    Subcommand(
        "show",
        "show one claim: statement, source, protocol, decision rule, negative control",
        _show_arguments,
        _show,
    ),
    Subcommand(
        "run",
        "run claims at a tier and write results.json and report.md",
        _run_arguments,
        _run,
        description="Run claims and their negative controls at a tier's budget, printing "
        "progress, and write RUN_DIR/results.json, RUN_DIR/report.md and RUN_DIR/figures/. "
        "Exit status: 0 when every claim ran, whatever its verdict; 1 if any claim or control "
        "raised an ERROR, or on an outcome named with --fail-on; 2 on a usage error or a bad "
        "input file; 130 / 143 when Ctrl-C / SIGTERM stopped it (what was judged is kept in "
        "results.json; the same command resumes).",
    ),
    Subcommand(
        "report",
        "re-render RUN_DIR/report.md from RUN_DIR/results.json",
        _report_arguments,
        _report,
    ),
    Subcommand(
        "check-adapter",
        "validate an implementation adapter: loads it, exercises each capability it offers",
        _check_adapter_arguments,
        _check_adapter,
    ),
    Subcommand(
        "compare",
        "compare a candidate run with a baseline, claim by claim; exit 1 on a regression",
        compare.add_arguments,
        compare.handle,
        description="Compare two runs (saved with `run --save NAME`, baseline JSON files, or "
        "run directories) claim by claim, from bootstrap intervals of the paired per-(task, "
        "seed) differences: equivalent within the claim's declared margin, better, worse, or "
        "inconclusive. Warns when the machines or packages differ. Exit status 1 when any claim "
        "is worse.",
    ),
    Subcommand(
        "fork-check",
        "run the implementation claims on every seeded-bug fork of trpo_ref against the clean "
        "reference and write the detection table",
        fork_check.add_arguments,
        fork_check.handle,
    ),
    Subcommand(
        "audit",
        "run the implementation claims on every installed TRPO adapter; one comparative report",
        audit_cli.add_arguments,
        audit_cli.handle,
    ),
    Subcommand(
        "climb",
        "run the seed's gridworld climb (table, event log, PNG)",
        climb_cli.add_arguments,
        climb_cli.handle,
    ),
    Subcommand(
        "train",
        "train the reference TRPO (or a baseline) on a gymnasium environment",
        train_cli.add_arguments,
        train_cli.handle,
    ),
    Subcommand(
        "bench",
        "measure training throughput: raw gymnasium, trpo_ref and sb3-contrib side by side",
        bench.add_arguments,
        bench.handle,
    ),
]


def version_text() -> str:
    """``trpo-claims 0.1.0 (commit 1a2b3c4d5e6f, dirty)``: the installed version and checkout."""
    version = package_version(DISTRIBUTION)
    git = git_state()
    where = "" if git["commit"] is None else (
        f" (commit {git['commit'][:12]}{', dirty' if git['dirty'] else ''})")
    return f"{PROG} {version}{where}"


class _VersionAction(argparse.Action):
    """``--version``: computed when asked (it runs git), not when the parser is built."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(version_text())
        parser.exit()


def build_parser(subcommands: Sequence[Subcommand] = SUBCOMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Executable, statistically honest checks of the claims of 'Trust Region "
        "Policy Optimization' (Schulman et al., 2015).",
        epilog="Exit status: 0 done; 1 the check found something (see each command's help); 2 "
        "the command could not run (bad arguments or input files); 130 / 143 stopped by "
        "Ctrl-C / SIGTERM.",
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="print the version (and git commit) and exit")
    sub = parser.add_subparsers(dest="subcommand", metavar="COMMAND")
    for command in subcommands:
        p = sub.add_parser(
            command.name, help=command.help, description=command.description or command.help
        )
        command.add_arguments(p)
        p.set_defaults(handler=command.handler)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on bad arguments (2)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if args.subcommand is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        if args.subcommand != "run" and isinstance(getattr(args, "claim", None), list):
            _claims_by_id(args.claim)  # any subcommand's --claim: unknown ids are usage errors
        return args.handler(args)
    except (UsageError, InputError) as exc:
        print(f"{PROG} {args.subcommand}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # a file named on the command line: missing, a directory, no access
        if exc.filename is None:
            raise
        problem = (f"exists and is not a directory ({exc.strerror})"
                   if isinstance(exc, FileExistsError | NotADirectoryError)
                   else exc.strerror or str(exc))
        print(f"{PROG} {args.subcommand}: error: {exc.filename}: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a subcommand without its own clean stop (run has one)
        print(f"{PROG} {args.subcommand}: interrupted", file=sys.stderr)
        return EXIT_SIGINT


if __name__ == "__main__":
    sys.exit(main())
