"""``trpo-claims climb``: run the seed explainer's gridworld climb and show it.

Prints a per-round table (round, rule, true % of optimal, the surrogate's predicted %, step KL
vs delta, backtracks), then the event log, and writes a PNG of the two curves. ``--json`` prints
the whole run as JSON instead of the table. Wired into :mod:`claims.cli` as a subcommand through
:func:`add_arguments` and :func:`handle`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

from claims.climb import climb_data, plot_climb
from trpo_ref.tabular.climb import (
    PRESETS,
    UPDATE_RULES,
    ClimbResult,
    get_preset,
    run_climb,
    settings_for,
)

EXIT_OK, EXIT_USAGE = 0, 2
PROG = "trpo-claims climb"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    presets = "; ".join(f"{p.name!r} ({p.slug})" for p in PRESETS)
    parser.add_argument(
        "--preset", required=True, metavar="NAME", help=f"preset name or slug: {presets}"
    )
    parser.add_argument("--rounds", type=int, help="number of rounds (default: the preset's)")
    parser.add_argument(
        "--delta", type=float, help="trust-region size, mean KL (default: the preset's)"
    )
    parser.add_argument(
        "--estimate-error",
        type=float,
        dest="estimate_error",
        metavar="E",
        help="scale of the advantage estimate's bias (default: the preset's)",
    )
    parser.add_argument(
        "--step-size",
        type=float,
        dest="step_size",
        metavar="S",
        help="fixed step of the no-trust-region rule (default: the preset's)",
    )
    parser.add_argument(
        "--switch-at",
        type=int,
        dest="switch_at",
        metavar="K",
        help="switch the update rule from round K on (1 <= K <= rounds)",
    )
    parser.add_argument(
        "--to",
        dest="switch_to",
        metavar="UPDATE",
        help=f"the rule to switch to: {', '.join(UPDATE_RULES)}",
    )
    parser.add_argument(
        "--out",
        type=Path,
        metavar="PATH.png",
        help="where to write the plot (default: ./climb-<preset slug>.png)",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the run as JSON instead of the table and event log",
    )


def handle(args: argparse.Namespace) -> int:
    try:
        preset = get_preset(args.preset)
        settings = settings_for(
            preset,
            rounds=args.rounds,
            delta=args.delta,
            estimate_error=args.estimate_error,
            step_size=args.step_size,
            switch_at=args.switch_at,
            switch_to=args.switch_to,
        )
    except ValueError as exc:
        print(f"{PROG}: error: {_flag_names(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    out = args.out if args.out is not None else Path(f"climb-{preset.slug}.png")
    if out.suffix.lower() != ".png":
        print(f"{PROG}: error: --out must name a .png file, got {str(out)!r}", file=sys.stderr)
        return EXIT_USAGE
    result = run_climb(settings)
    plot_climb(climb_data(result), out, title=_title(result))
    if args.json:
        payload = result.to_json()
        payload["figure"] = str(out)
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(format_table(result) + "\n\n" + format_events(result) + "\n")
        print(f"\nwrote {out}")
    return EXIT_OK


_FLAGS = {
    "switch_at": "--switch-at",
    "switch_to": "--to",
    "estimate_error": "--estimate-error",
    "step_size": "--step-size",
    "rounds": "--rounds",
    "delta": "--delta",
}


def _flag_names(message: str) -> str:
    """The simulation's error message with its setting names spelled as this command's flags."""
    for name, flag in _FLAGS.items():
        message = re.sub(rf"\b{name}\b", flag, message)
    return message


def _title(result: ClimbResult) -> str:
    s = result.settings
    title = f"Gridworld climb: {s.preset}"
    if s.switch_at is not None:
        title += f" (-> {s.switch_to} at round {s.switch_at})"
    return title


def format_table(result: ClimbResult) -> str:
    """The per-round table; round 0 is the uniform start."""
    s = result.settings
    header = (
        f"preset {s.preset!r}: rule {s.rule}, {s.rounds} rounds, delta {s.delta:g}, "
        f"estimate error {s.estimate_error:g}, fixed step {s.step_size:g}"
        + (f", switch to {s.switch_to} at round {s.switch_at}" if s.switch_at else "")
        + f"\n% of optimal: 0 = uniform policy (eta {result.eta_ref:.4f}), "
        f"100 = optimal (eta {result.eta_star:.4f})\n"
    )
    lines = [
        f"{'round':>5}  {'rule':<16}{'true %':>8}  {'predicted %':>11}  "
        f"{'step KL':>9} / {'delta':<6}{'backtracks':>11}",
        f"{0:>5}  {'start':<16}{result.start_percent:>8.1f}  {'-':>11}  {'-':>9}   {'':<6}"
        f"{'-':>11}",
    ]
    for r in result.records:
        delta = "-" if r.delta is None else f"{r.delta:g}"
        backtracks = f"{r.n_backtracks}" + ("" if r.accepted else " rejected")
        lines.append(
            f"{r.round:>5}  {r.rule:<16}{r.percent:>8.1f}  {r.predicted_percent:>11.1f}  "
            f"{r.kl_mean:>9.3g} / {delta:<6}{backtracks:>11}"
        )
    return header + "\n".join(lines)


def format_events(result: ClimbResult) -> str:
    if not result.events:
        return "events: none"
    lines = [f"events ({len(result.events)}):"]
    lines += [f"  round {e.round:>3}  {e.kind:<14}{e.message}" for e in result.events]
    return "\n".join(lines)
