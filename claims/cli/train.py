"""``trpo-claims train``: train the reference TRPO (or a baseline) on a gymnasium environment.

Every field of :class:`trpo_ref.deep.trpo.TRPOConfig` is an option (``--field-name``), with the
field's one-line doc as its help; ``--env``, ``--steps`` and ``--out`` are the short names the
issue asks for. One progress line per iteration goes to stderr; the per-iteration metrics go to
OUT/metrics.jsonl and checkpoints to OUT/checkpoint.pt; ``--resume`` continues from the latter.

``--algo cem`` and ``--algo cma`` run the derivative-free baselines
(:mod:`trpo_ref.deep.derivative_free`): the fields of its ``DerivativeFreeConfig`` that TRPO
lacks are options too, and an option that only the other family reads is an error when set to
anything but its default (so nothing is silently ignored). These runs write no checkpoints.
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


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _derivative_free_only_fields() -> list[dataclasses.Field]:
    """Fields of DerivativeFreeConfig that TRPOConfig lacks (CEM / CMA-ES settings)."""
    from trpo_ref.deep.derivative_free import DerivativeFreeConfig
    from trpo_ref.deep.trpo import TRPOConfig

    shared = {f.name for f in dataclasses.fields(TRPOConfig)}
    return [f for f in dataclasses.fields(DerivativeFreeConfig) if f.name not in shared]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from trpo_ref.deep.derivative_free import DF_ALGOS, DerivativeFreeConfig
    from trpo_ref.deep.trpo import TRPOConfig

    docs = _field_docs(TRPOConfig)
    docs["algo"] += " | " + " | ".join(DF_ALGOS) + " (derivative-free baselines)"
    docs.update({name: f"[cem/cma] {doc}"
                 for name, doc in _field_docs(DerivativeFreeConfig).items()
                 if name not in docs})
    for field in [*dataclasses.fields(TRPOConfig), *_derivative_free_only_fields()]:
        flag = _flag(field.name)
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


def _derivative_free_progress_line(
    metrics: dict[str, Any], total_steps: int, started: float
) -> str:
    return (
        f"gen {metrics['global/iteration']:4d} | steps {metrics['global/steps']:>9,}/"
        f"{total_steps:,} | return {metrics['rollout/ep_return_mean']:9.2f} | "
        f"best {metrics['es/fitness_best']:9.2f} | sigma {metrics['es/sigma']:.3f} | "
        f"{time.perf_counter() - started:7.1f} s"
        + (f" | cma stopped: {metrics['es/stop']}" if metrics.get("es/stop") else "")
    )


def _config_for(args: argparse.Namespace) -> Any:
    """The TRPOConfig or DerivativeFreeConfig that ``args.algo`` needs; ValueError for an
    unknown algo, --resume with cem/cma, or an option only the other family reads."""
    from trpo_ref.deep.derivative_free import DF_ALGOS, DerivativeFreeConfig
    from trpo_ref.deep.step import ALGOS
    from trpo_ref.deep.trpo import TRPOConfig

    if args.algo not in (*ALGOS, *DF_ALGOS):
        raise ValueError(f"algo must be one of {(*ALGOS, *DF_ALGOS)}, got {args.algo!r}")
    derivative_free = args.algo in DF_ALGOS
    cls, other = (DerivativeFreeConfig, TRPOConfig) if derivative_free else (TRPOConfig, None)
    own = {f.name for f in dataclasses.fields(cls)}
    foreign = (_derivative_free_only_fields() if other is None
               else [f for f in dataclasses.fields(other) if f.name not in own])
    for field in foreign:
        if getattr(args, field.name) != field.default:
            raise ValueError(f"{_flag(field.name)} does not apply to --algo {args.algo}")
    if derivative_free and args.resume:
        raise ValueError(f"--resume does not apply to --algo {args.algo} (no checkpoints)")
    return cls(**{name: getattr(args, name) for name in own})


def handle(args: argparse.Namespace) -> int:
    from trpo_ref.deep import derivative_free
    from trpo_ref.deep.trpo import NonFiniteParametersError, train

    started = time.perf_counter()
    try:
        config = _config_for(args)
    except ValueError as exc:
        print(f"trpo-claims train: error: {exc}", file=sys.stderr)
        return 2
    out = args.out or f"runs/{config.env_id}-{config.algo}-s{config.seed}"
    is_df = isinstance(config, derivative_free.DerivativeFreeConfig)
    line = _derivative_free_progress_line if is_df else _progress_line

    def progress(metrics: dict[str, Any]) -> None:
        if not args.quiet:
            print(line(metrics, config.total_steps, started), file=sys.stderr)

    try:
        if is_df:
            history = derivative_free.train(config, out_dir=out, progress=progress)
        else:
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
