"""The ``trpo-claims`` command line: list, show, run and report the claims.

Each subcommand is one :class:`Subcommand` entry in :data:`SUBCOMMANDS`: a name, a help line, a
function that adds its arguments to an argparse parser, and a handler that returns the exit
status. To add a subcommand, write those two functions and append one entry.

Exit status: 0 on success; 1 when a run had an ERROR (or an outcome named with ``--fail-on``);
2 for usage errors (unknown claim id, missing results.json, bad arguments).
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from claims import audit_cli, bench, climb_cli, compare, fork_check, impl, registry, train_cli
from claims.core import DEFAULT_TIER, TIERS, Claim
from claims.jobs import EXECUTORS, Execution, JobCache
from claims.report import problems, render_markdown, rule_sentence, write_reports
from claims.runner import (
    FAIL_ON_CHOICES,
    REPORT_FILE,
    REPORT_HTML_FILE,
    failure_reasons,
    load_results,
    reproduce_command,
    run_claims,
)
from claims.serialize import dumps, to_jsonable

PROG = "trpo-claims"
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """A mistake in the command line; main() prints it and exits with status 2."""


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handler: Callable[[argparse.Namespace], int]
    description: str = ""  # longer text for `trpo-claims NAME --help`; defaults to help


def _claims_by_id(ids: Sequence[str]) -> list[Claim]:
    try:
        return [registry.get(cid) for cid in ids]
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


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
        help="run directory for results.json, report.md and figures/; default reports/TIER",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed passed to every claim's run (default 0)"
    )
    parser.add_argument(
        "--no-controls",
        action="store_true",
        help="skip the negative controls (faster, but nothing then shows the checks can fail)",
    )
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
        help="job cache: finished trainings, one JSON each, reused by later runs and by other "
        "claims (default OUT/jobs); an interrupted run resumes from it",
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


def _run(args: argparse.Namespace) -> int:
    ids = list(dict.fromkeys(args.claim))  # drop repeats, keep order
    claims = _claims_by_id(ids) if ids else registry.all_claims()
    if not claims:
        raise UsageError("no claims are registered, so there is nothing to run")
    if args.save is not None and (not args.save or "/" in args.save or args.save.startswith(".")):
        raise UsageError(f"--save takes a plain name, got {args.save!r}")
    if args.no_controls and "control" in args.fail_on:
        raise UsageError("--fail-on control needs the negative controls; drop --no-controls")
    out = args.out if args.out is not None else Path("reports") / args.tier
    command = reproduce_command(
        tier=args.tier, seed=args.seed, out_dir=out, claim_ids=ids, controls=not args.no_controls,
        impl=args.impl,
    )
    if args.jobs < 1:
        raise UsageError(f"--jobs must be >= 1, got {args.jobs}")
    executor = args.executor or ("process" if args.jobs > 1 else "serial")
    if args.address is not None and executor != "ray":
        raise UsageError("--address is for --executor ray")
    cache = JobCache(args.cache if args.cache is not None else out / "jobs")
    with impl.use_implementation(impl.UnderTest(args.impl or impl.REFERENCE_SPEC)):
        result = _run_under_test(args, claims, out, command, executor, cache)
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
        jobs=Execution(cache=cache, executor=executor, max_workers=args.jobs,
                       address=args.address, train=not args.cached_only),
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
    try:
        if args.stdout:
            sys.stdout.write(render_markdown(load_results(args.run_dir)))
        else:
            print("wrote " + " and ".join(str(p) for p in write_reports(args.run_dir)))
    except (FileNotFoundError, ValueError) as exc:  # ValueError: results.json is not JSON
        raise UsageError(str(exc)) from None
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
        "raised an ERROR, or on an outcome named with --fail-on; 2 on a usage error.",
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


def build_parser(subcommands: Sequence[Subcommand] = SUBCOMMANDS) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Executable, statistically honest checks of the claims of 'Trust Region "
        "Policy Optimization' (Schulman et al., 2015).",
    )
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
        return args.handler(args)
    except UsageError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
