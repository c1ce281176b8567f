"""Checkpoints of a training run: atomic writes, checked loads, config compatibility, RNG states.

A checkpoint is one ``torch.save`` file holding plain data only (tensors, lists, numbers,
strings), so it loads with ``weights_only=True``: nothing in it can run code. It is written to a
temporary file in the same directory and moved over the old one with ``os.replace``, which is
atomic on POSIX and Windows: a crash mid-write leaves the previous checkpoint whole.

What it cannot hold is an environment in mid-episode (simulator state, wrapper counters). It does
not need to: :func:`trpo_ref.deep.trpo.collect_rollout` ends every batch at an episode end and
starts the next batch with ``env.reset()``, so a checkpoint taken between batches plus the env's
generator state reproduces the run exactly.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from trpo_ref.atomic import write_atomic

CHECKPOINT_NAME = "checkpoint.pt"
FORMAT_VERSION = 1
# Config fields a resumed run may change: none of them alters the numbers an iteration computes.
RESUMABLE_FIELDS = frozenset({"total_steps", "threads", "checkpoint_every"})
REQUIRED_KEYS = frozenset({
    "format", "config", "iteration", "total_steps", "policy", "value", "value_optimizer",
    "normalizer", "rng",
})


def save_checkpoint(path: Path, state: Mapping[str, Any]) -> None:
    """Write ``state`` (plain data, with the keys of REQUIRED_KEYS) to ``path`` atomically."""
    write_atomic(path, lambda handle: torch.save(dict(state), handle))


def load_checkpoint(path: Path) -> dict[str, Any]:
    """The state saved at ``path``. A missing file raises FileNotFoundError; a file that is not
    a whole checkpoint of this format raises ValueError; both name the path."""
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, weights_only=True)
    except Exception as error:  # torch raises RuntimeError, pickle errors, EOFError, ...
        raise ValueError(f"checkpoint {path} is corrupt or not a checkpoint: {error}") from error
    if not isinstance(state, dict) or not REQUIRED_KEYS <= state.keys():
        missing = sorted(REQUIRED_KEYS - state.keys()) if isinstance(state, dict) else "all"
        raise ValueError(f"checkpoint {path} is not a training checkpoint (missing: {missing})")
    if state["format"] != FORMAT_VERSION:
        raise ValueError(f"checkpoint {path} has format {state['format']}, "
                         f"this version reads format {FORMAT_VERSION}")
    return state


def incompatible_fields(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Names of the config fields, outside RESUMABLE_FIELDS, whose values differ (or that only
    one of the two configs has), sorted."""
    names = (saved.keys() | current.keys()) - RESUMABLE_FIELDS
    return sorted(n for n in names if n not in saved or n not in current or saved[n] != current[n])


def check_compatible(
    saved: Mapping[str, Any],
    current: Mapping[str, Any],
    path: Path,
    defaults: Mapping[str, Any] | None = None,
) -> None:
    """Raise ValueError naming every field in which ``current`` would compute differently from
    the config the checkpoint at ``path`` was written with. A field the checkpoint lacks (it was
    written before the field existed) counts as ``defaults[field]``, the value every run had
    then, when ``defaults`` has it."""
    saved = {**{k: v for k, v in (defaults or {}).items() if k not in saved}, **saved}
    differing = incompatible_fields(saved, current)
    if differing:
        details = ", ".join(f"{n} (checkpoint: {saved.get(n, '<absent>')!r}, "
                            f"now: {current.get(n, '<absent>')!r})" for n in differing)
        raise ValueError(f"checkpoint {path} was written with an incompatible config: {details}; "
                         f"only {sorted(RESUMABLE_FIELDS)} may change on resume")


def logged_lines_up_to(path: Path, iteration: int) -> list[str]:
    """The first ``iteration`` lines of the metrics log at ``path``, checked to end with that
    iteration (later lines were written after the checkpoint and are dropped on resume)."""
    lines = path.read_text().splitlines() if path.is_file() else []
    if len(lines) < iteration:
        raise ValueError(f"metrics log {path} has {len(lines)} lines, but the checkpoint is at "
                         f"iteration {iteration}")
    kept = lines[:iteration]
    try:
        last = json.loads(kept[-1])["global/iteration"] if kept else 0
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"metrics log {path} line {iteration} is not a metrics line") from error
    if last != iteration:
        raise ValueError(f"metrics log {path} line {iteration} is iteration {last}, "
                         f"not the checkpoint's {iteration}")
    return kept


# --- random number generators -------------------------------------------------------------------

def numpy_global_state() -> list[Any]:
    """np.random.get_state() as plain data (the key array as a list of ints)."""
    name, keys, pos, has_gauss, cached_gaussian = np.random.get_state()  # noqa: NPY002
    return [name, keys.tolist(), int(pos), int(has_gauss), float(cached_gaussian)]


def set_numpy_global_state(state: list[Any]) -> None:
    name, keys, pos, has_gauss, cached_gaussian = state
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss,  # noqa: NPY002
                         cached_gaussian))


def set_generator_state(generator: np.random.Generator, state: dict[str, Any]) -> None:
    """Restore a numpy Generator from its ``bit_generator.state`` (same bit generator kind)."""
    kind = type(generator.bit_generator).__name__
    if state.get("bit_generator") != kind:
        raise ValueError(f"cannot restore a {state.get('bit_generator')} state into a {kind}")
    generator.bit_generator.state = state
