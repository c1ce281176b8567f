"""``trpo-claims train``: train the reference TRPO (or a baseline) on a gymnasium environment.

Every field of :class:`trpo_ref.deep.trpo.TRPOConfig` is an option (``--field-name``), with the
field's one-line doc as its help; ``--env``, ``--steps`` and ``--out`` are the short names the
issue asks for. One progress line per iteration goes to stderr; the per-iteration metrics go to
OUT/metrics.jsonl and checkpoints to OUT/checkpoint.pt; ``--resume`` continues from the latter.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
import time
from typing import Any

# Short names for the options a user types most.
_ALIASES = {"env_id": "--env", "total_steps": "--steps"}


def _field_docs(cls: type) -> dict[str, str]:
    """The ``# comment`` after each dataclass field in the class source: its one-line doc."""
    docs = {}
    for line in inspect.getsource(cls).splitlines():
        m = re.match(r"\s+(\w+): [^=]+=.*?#\s*(.+)$", line)
        if m:
            docs[m.group(1)] = m.group(2).strip()
    return docs


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trpo_ref.deep.trpo import TRPOConfig

    docs = _field_docs(TRPOConfig)
    for field in dataclasses.fields(TRPOConfig):
        flag = "--" + field.name.replace("_", "-")
        names = [_ALIASES[field.name], flag] if field.name in _ALIASES else [flag]
        kind = type(field.default)
        parser.add_argument(
            *names,
            dest=field.name,
            type=_parse_bool if kind is bool else kind,
            default=field.default,
            metavar=field.name.upper(),
            help=f"{docs.get(field.name, '')} (default: {field.default})".replace("%", "%%"),
        )
    parser.add_argument(
        "--out", default=None, help="directory for metrics.jsonl (default: runs/ENV-ALGO-sSEED)"
    )
    parser.add_argument(
        "--resume", action="store_true",
        help="continue from OUT/checkpoint.pt (only --steps, --threads and --checkpoint-every "
        "may differ from the checkpoint's config)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress lines")


def _progress_line(metrics: dict[str, Any], total_steps: int, started: float) -> str:
    accepted = metrics.get("train/accepted")
    reason = metrics.get("train/reject_reason") or "rejected"
    return (
        f"iter {metrics['global/iteration']:4d} | steps {metrics['global/steps']:>9,}/"
        f"{total_steps:,} | return {metrics['rollout/ep_return_mean']:9.2f} | "
        f"kl {metrics.get('train/kl_mean', float('nan')):.4f} | "
        f"{'accepted' if accepted else reason} | {time.perf_counter() - started:7.1f} s"
    )


def handle(args: argparse.Namespace) -> int:
    from trpo_ref.deep.trpo import NonFiniteParametersError, TRPOConfig, train

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TRPOConfig)}
    config = TRPOConfig(**values)
    out = args.out or f"runs/{config.env_id}-{config.algo}-s{config.seed}"
    started = time.perf_counter()

    def progress(metrics: dict[str, Any]) -> None:
        if not args.quiet:
            print(_progress_line(metrics, config.total_steps, started), file=sys.stderr)

    try:
        history = train(config, out_dir=out, progress=progress, resume=args.resume)
    except (ValueError, FileNotFoundError) as exc:
        print(f"trpo-claims train: error: {exc}", file=sys.stderr)
        return 2
    except NonFiniteParametersError as exc:
        print(f"trpo-claims train: stopped: {exc}", file=sys.stderr)
        return 1
    last = history[-1] if history else {}
    print(
        f"trained {config.algo} on {config.env_id} for {last.get('global/steps', 0):,} steps "
        f"in {time.perf_counter() - started:.1f} s; last mean return "
        f"{last.get('rollout/ep_return_mean', float('nan')):.2f}; metrics in {out}/metrics.jsonl"
    )
    return 0
