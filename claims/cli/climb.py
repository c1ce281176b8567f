"""``trpo-claims climb``: run the seed explainer's gridworld climb and show it.

Prints a per-round table (round, rule, true % of optimal, the surrogate's predicted %, step KL
vs delta, backtracks) on the seed's scale (100 eta / eta*: the uniform start reads -39.5%), then
the event log, and writes a PNG of the two curves. ``--json`` prints the whole run as strict JSON
instead of the table. ``--html FILE`` writes the interactive explorer (one self-contained page).
Each preset runs with the bias pattern of its member of the declared family
(:data:`claims.catalogue.climb.family.PRESET_MEMBERS`). Wired into :mod:`claims.cli.main` as a
subcommand through :func:`add_arguments` and :func:`handle`.

Usage: trpo-claims climb --preset NAME [--rounds N] [--delta D] [--estimate-error E]
       [--step-size S] [--switch-at K --to RULE] [--out PATH.png] [--json]
       trpo-claims climb --html FILE [--preset NAME]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from claims.catalogue.climb.claims import plot_climb, trace_data
from claims.catalogue.climb.family import SCALE, ClimbTrace, preset_bias, trace_climb
from claims.framework.serialize import dumps
from trpo_ref.tabular.climb import (
    PRESETS,
    UPDATE_RULES,
    ClimbSettings,
    Preset,
    get_preset,
    settings_for,
)

EXIT_OK, EXIT_USAGE = 0, 2
PROG = "trpo-claims climb"
USAGE = (
    "trpo-claims climb --preset NAME [--rounds N] [--delta D] [--estimate-error E] "
    "[--step-size S] [--switch-at K --to RULE] [--out PATH.png] [--json]  |  "
    "trpo-claims climb --html FILE [--preset NAME]"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    presets = "; ".join(f"{p.name!r} ({p.slug})" for p in PRESETS)
    parser.add_argument(
        "--preset", metavar="NAME",
        help=f"preset name or slug (required, except with --html): {presets}",
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
        help="print the run as JSON (strict: every number finite) instead of the table",
    )
    parser.add_argument(
        "--html",
        type=Path,
        metavar="FILE",
        help="write the interactive explorer (one self-contained HTML page, every preset; "
        "opens on --preset when given) instead of running one climb",
    )


def _error(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def handle(args: argparse.Namespace) -> int:
    if args.html is not None:
        return _handle_html(args)
    if args.preset is None:
        return _error(f"--preset is required (or --html FILE); usage: {USAGE}")
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
        return _error(_flag_names(str(exc)))
    out = args.out if args.out is not None else default_out(preset, settings)
    if out.suffix.lower() != ".png":
        return _error(f"--out must name a .png file, got {str(out)!r}")
    trace = trace_climb(settings, bias=preset_bias(preset))
    plot_climb(trace_data(trace), out, title=_title(trace))
    if args.json:
        payload = {"settings": settings.to_json(), "scale": SCALE, "eta_star": trace.eta_star,
                   **trace_data(trace), "figure": str(out)}
        sys.stdout.write(dumps(payload))
        print(f"wrote {out}", file=sys.stderr)
    else:
        sys.stdout.write(format_table(trace) + "\n\n" + format_events(trace) + "\n")
        print(f"\nwrote {out}")
    return EXIT_OK


def _handle_html(args: argparse.Namespace) -> int:
    if args.html.suffix.lower() not in (".html", ".htm"):
        return _error(f"--html must name a .html file, got {str(args.html)!r}")
    others = [flag for flag, value in (("--rounds", args.rounds), ("--delta", args.delta),
                                       ("--estimate-error", args.estimate_error),
                                       ("--step-size", args.step_size),
                                       ("--switch-at", args.switch_at), ("--to", args.switch_to),
                                       ("--out", args.out)) if value is not None]
    if others or args.json:
        flags = ", ".join(others + (["--json"] if args.json else []))
        return _error(f"--html writes the explorer of every preset; {flags} set a single run "
                      "(the page has its own knobs)")
    try:
        start = get_preset(args.preset).slug if args.preset is not None else None
    except ValueError as exc:
        return _error(str(exc))
    from claims.catalogue.climb.explorer import (
        write_explorer,  # the page's runs are computed only here
    )

    print("computing the explorer's runs (every preset, the knob grid, every switch round)...",
          file=sys.stderr)
    path = write_explorer(args.html, start_preset=start)
    print(f"wrote {path}")
    return EXIT_OK


def default_out(preset: Preset, settings: ClimbSettings) -> Path:
    """./climb-<slug>[-<setting><value>...].png: every setting that differs from the preset's
    is in the name, so runs with different settings never overwrite each other."""
    base = settings_for(preset)
    parts = [f"climb-{preset.slug}"]
    for name, tag in (("rounds", "rounds"), ("delta", "delta"), ("estimate_error", "e"),
                      ("step_size", "step")):
        value = getattr(settings, name)
        if value != getattr(base, name):
            parts.append(f"{tag}{value:g}")
    if settings.switch_at is not None:
        parts.append(f"switch{settings.switch_at}-{settings.switch_to}")
    return Path("-".join(parts) + ".png")


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


def _title(trace: ClimbTrace) -> str:
    s = trace.settings
    title = f"Gridworld climb: {s.preset}"
    if s.switch_at is not None:
        title += f" (-> {s.switch_to} at round {s.switch_at})"
    return title


def format_table(trace: ClimbTrace) -> str:
    """The per-round table; round 0 is the uniform start. Returns on the seed's scale."""
    s = trace.settings
    header = (
        f"preset {s.preset!r}: rule {s.rule}, {s.rounds} rounds, delta {s.delta:g}, "
        f"estimate error {s.estimate_error:g}, fixed step {s.step_size:g}"
        + (f", switch to {s.switch_to} at round {s.switch_at}" if s.switch_at else "")
        + f"\n% of optimal = 100 eta / eta* (eta* {trace.eta_star:.4f}); the uniform start "
        f"reads {trace.percent[0]:.1f}%\n"
    )
    lines = [
        f"{'round':>5}  {'rule':<16}{'true %':>8}  {'predicted %':>11}  "
        f"{'step KL':>9} / {'delta':<6}{'backtracks':>11}",
        f"{0:>5}  {'start':<16}{trace.percent[0]:>8.1f}  {'-':>11}  {'-':>9}   {'':<6}"
        f"{'-':>11}",
    ]
    for k in range(1, trace.rounds + 1):
        delta = trace.delta_at(k)
        backtracks = f"{trace.n_backtracks[k - 1]}" + ("" if trace.accepted[k - 1]
                                                       else " rejected")
        lines.append(
            f"{k:>5}  {trace.rule[k - 1]:<16}{trace.percent[k]:>8.1f}  "
            f"{trace.predicted_percent[k - 1]:>11.1f}  {trace.kl[k - 1]:>9.3g} / "
            f"{'-' if delta is None else f'{delta:g}':<6}{backtracks:>11}"
        )
    return header + "\n".join(lines)


def format_events(trace: ClimbTrace) -> str:
    if not trace.events:
        return "events: none"
    lines = [f"events ({len(trace.events)}):"]
    lines += [f"  round {e.round:>3}  {e.kind:<14}{e.message}" for e in trace.events]
    return "\n".join(lines)
