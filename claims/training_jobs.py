"""One training run as a job (see :mod:`claims.jobs`): the per-seed evidence empirical claims use.

:func:`train_job` trains ``trpo_ref`` (any update rule of :class:`~trpo_ref.deep.trpo.TRPOConfig`,
single path or vine) or a derivative-free baseline (CEM, CMA-ES) and returns a small JSON-ready
dict: the learning curve (environment steps and mean episode return per iteration) and, for the
gradient-based rules, the per-step KL statistics and the surrogate's predicted and actual
improvement. Raw per-iteration rows are not returned: they can be large, and the claims judge
curves and step statistics.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

from trpo_ref.deep import derivative_free, trpo

DERIVATIVE_FREE = set(derivative_free.DF_ALGOS)

# per-iteration metrics of trpo_ref's update kept in the job's result, as lists
STEP_KEYS = ("train/kl_mean", "train/kl_max", "train/accepted", "train/backtracks",
             "train/surrogate_predicted", "train/surrogate_actual")


def train_job(env_id: str, algo: str, seed: int, total_steps: int,
              overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train ``algo`` on ``env_id`` for ``total_steps`` with ``seed``; ``overrides`` sets any
    other config field (of TRPOConfig, or of DerivativeFreeConfig for cem / cma). Returns
    ``{"config", "steps", "returns", "x_velocity", "wall_s"}`` (x_velocity: each batch's mean
    forward velocity, NaN where the env reports none or for cem / cma) plus, for gradient-based
    rules, one list per :data:`STEP_KEYS` entry (key without its "train/" prefix). Bad fields
    raise ValueError."""
    overrides = dict(overrides or {})
    if algo in DERIVATIVE_FREE:
        config_cls, run = derivative_free.DerivativeFreeConfig, derivative_free.train
    else:
        config_cls, run = trpo.TRPOConfig, trpo.train
    known = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ValueError(f"unknown {config_cls.__name__} fields for algo {algo!r}: {unknown}")
    config = config_cls(env_id=env_id, algo=algo, seed=seed, total_steps=total_steps,
                        **overrides)
    start = time.perf_counter()
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
    return result
