"""One training run as a job (see :mod:`claims.framework.jobs`): the per-seed evidence empirical
claims use.

:func:`train_job` trains ``trpo_ref`` (any update rule of :class:`~trpo_ref.deep.trpo.TRPOConfig`,
single path or vine) or a derivative-free baseline (CEM, CMA-ES) and returns a small JSON-ready
dict: the learning curve (environment steps and mean episode return per iteration) and, for the
gradient-based rules, the per-step KL statistics and the surrogate's predicted and actual
improvement. Raw per-iteration rows are not returned: they can be large, and the claims judge
curves and step statistics.

``fault`` runs a deliberately broken trainer, the negative controls of the empirical claims; the
fault (declared in :mod:`claims.faults`) is applied here, in the worker, so ``trpo_ref`` carries
no broken code paths:

- ``"flip_advantages"``: the advantages handed to the update are negated (a sign error), so
  every step *descends* the true surrogate while its own bookkeeping reports an improvement.
- ``"unchecked_big_step"``: the step scale is 10x beta (a scale bug) and the line search's KL
  test is gone (limit = infinity), so nothing catches the 100x KL.
- ``"max_kl_reads_mean"``: the max-KL rule's flag never reaches the update, so a "max-KL" run
  bounds the mean KL like plain TRPO (the control of ``empirical.max_kl_slower``).
- ``"vine_branch_not_restored"``: vine branches start where the previous rollout left the
  simulator, not from the saved state (``empirical.vine_solves``).
- ``"empirical_fim_uncentred_clipped"``: the empirical FIM from uncentred scores at actions
  clipped to [-1, 1] (``empirical.empirical_fim_similar``).
- ``"parameter_space_trust_region"``: |d theta|^2 / 2 <= delta in place of the KL bound
  (``empirical.delta_transfers``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import time
from collections.abc import Iterator
from typing import Any

from claims import faults
from trpo_ref.deep import derivative_free, trpo

DERIVATIVE_FREE = set(derivative_free.DF_ALGOS)

# per-iteration metrics of trpo_ref's update kept in the job's result, as lists
STEP_KEYS = ("train/kl_mean", "train/kl_max", "train/kl_full_step", "train/accepted",
             "train/backtracks", "train/surrogate_predicted", "train/surrogate_actual",
             "train/adv_raw_mean", "train/adv_raw_std")
FAULTS = ("flip_advantages", "unchecked_big_step", "max_kl_reads_mean",  # in claims.faults
          "vine_branch_not_restored", "empirical_fim_uncentred_clipped",
          "parameter_space_trust_region")
# the faults' code keys the jobs that run one (a negative control's), not the clean trainings
JOB_SOURCES_WHEN = {"fault": ("claims/faults/__init__.py",)}


@contextlib.contextmanager
def injected(fault: str | None) -> Iterator[None]:
    """Run the body with ``fault`` (one of :data:`FAULTS`, or None for no fault) in place: the
    registry's fault of that name (:func:`claims.faults.applied`)."""
    if fault is not None and fault not in FAULTS:
        raise ValueError(f"unknown fault {fault!r}; choose one of {FAULTS}")
    with faults.applied(fault):
        yield


def train_job(env_id: str, algo: str, seed: int, total_steps: int,
              overrides: dict[str, Any] | None = None, fault: str | None = None
              ) -> dict[str, Any]:
    """Train ``algo`` on ``env_id`` for ``total_steps`` with ``seed``; ``overrides`` sets any
    other config field (of TRPOConfig, or of DerivativeFreeConfig for cem / cma). Returns
    ``{"config", "steps", "returns", "x_velocity", "wall_s"}`` (x_velocity: each batch's mean
    forward velocity, NaN where the env reports none or for cem / cma) plus, for gradient-based
    rules, one list per :data:`STEP_KEYS` entry (key without its "train/" prefix) and
    ``ep_len`` (mean episode length per batch). ``fault``: see the module docstring (gradient-based
    rules only). Bad fields or faults raise ValueError."""
    overrides = dict(overrides or {})
    if algo in DERIVATIVE_FREE:
        config_cls, run = derivative_free.DerivativeFreeConfig, derivative_free.train
    else:
        config_cls, run = trpo.TRPOConfig, trpo.train
    if fault is not None and algo in DERIVATIVE_FREE:
        raise ValueError(f"fault {fault!r} applies to gradient-based rules, not {algo!r}")
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} fields for algo {algo!r}: {unknown}")
    config = config_cls(env_id=env_id, algo=algo, seed=seed, total_steps=total_steps,
                        **overrides)
    start = time.perf_counter()
    with injected(fault):
        history = run(config)
    result: dict[str, Any] = {
        "config": dataclasses.asdict(config),
        "steps": [m["global/steps"] for m in history],
        "returns": [m["rollout/ep_return_mean"] for m in history],
        "x_velocity": [m.get("rollout/x_velocity_mean", math.nan) for m in history],
        "wall_s": time.perf_counter() - start,
    }
    if algo not in DERIVATIVE_FREE:
        for key in STEP_KEYS:
            result[key.removeprefix("train/")] = [m[key] for m in history]
        result["ep_len"] = [m["rollout/ep_len_mean"] for m in history]
    return result
