"""Seeded real batches and short-trained policies for the step-level claims.

The step claims judge one policy update on batches that TRPO actually sees: whole episodes
sampled from a gymnasium task by the current policy, GAE advantages (standardized), pi_old
frozen by :func:`trpo_ref.deep.step.make_batch`. This module builds them from
:mod:`trpo_ref.deep.trpo`'s pieces and leaves the update itself to the caller, so the update
under test is a callable the claim passes in.

API:

- :func:`task_config` -- a :class:`~trpo_ref.deep.trpo.TRPOConfig` for a task (paper defaults:
  delta 0.01, damping 0.1, 10% FVP subsample, 64x64 tanh), with a small batch size.
- :func:`training_batches` -- a short single-path training loop as a generator: it yields each
  iteration's :class:`TrainingBatch` *before* the policy update, the caller updates
  ``item.policy`` in place (or not), then the loop fits the value function, folds the batch into
  the observation statistics and samples the next batch with the updated policy.
- :func:`trained_batch` -- run ``warmup_iters`` iterations with an update (default
  :func:`trpo_update`: trpo_ref.deep.step.update with the config's settings), return the next
  batch: a non-initial policy and the batch it would be updated on.
- :func:`trpo_full_step` -- g, s = CG(A, g), beta and the full step beta s before the line
  search, from trpo_ref.deep.step's pieces, with the FVP builder swappable;
  :func:`surrogate_and_kl` -- the line search's ``evaluate`` (L and the mean KL on the full
  batch).
- :func:`frozen_dist_params`, :func:`mean_kl` -- pi's distribution parameters as a detached copy,
  and KL(pi_old || pi_new) by the paper's definition (eq. 12), computed with
  ``torch.distributions`` (independently of the policies' own ``kl_from``).
- :func:`param_bits` -- the policy's flat parameters as int64 bit patterns, for bit-for-bit
  comparisons (``torch.equal`` on floats calls -0.0 == 0.0 and NaN != NaN).

Determinism: torch's and numpy's global generators, the environment (first reset), its action
and observation spaces, the action noise and the update's generator are all seeded from
``config.seed``, exactly as :func:`trpo_ref.deep.trpo.train` does. Callers should run inside
``trpo_ref.deep.runtime.torch_threads(1)`` (the networks are small; one thread is fastest and
makes the numbers independent of the core count).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Generator
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.distributions import Categorical as TorchCategorical
from torch.distributions import Normal, kl_divergence

from claims.framework.core import Budget
from trpo_ref.deep.normalize import RunningObsNormalizer
from trpo_ref.deep.policies import DiagGaussianMLP, DistParams, Policy
from trpo_ref.deep.step import (
    PolicyBatch,
    conjugate_gradient,
    fisher_vector_product_fn,
    flat_grad,
    get_flat_params,
    make_batch,
    step_scale,
    subsample_index,
    surrogate,
    update,
)
from trpo_ref.deep.trpo import (
    TRPOConfig,
    advantages_and_targets,
    collect_rollout,
    make_env,
    make_policy,
    make_value,
    seed_everything,
)
from trpo_ref.deep.value import fit_value

UpdateFn = Callable[[Policy, PolicyBatch, TRPOConfig, torch.Generator], Any]
"""An update under test: updates the policy in place on the batch with the config's settings
(delta, damping, ...), drawing any randomness (the FVP subsample) from the generator."""


# The tasks (env id, steps per batch) the step-level claims train on, per tier.
TIER_TASKS: dict[str, list[list[Any]]] = {
    "quick": [["CartPole-v1", 1000], ["InvertedPendulum-v5", 1000], ["Hopper-v5", 1000]],
    "standard": [["CartPole-v1", 2000], ["InvertedPendulum-v5", 2000], ["Hopper-v5", 5000],
                 ["Swimmer-v5", 5000], ["Walker2d-v5", 5000]],
    "full": [["CartPole-v1", 5000], ["InvertedPendulum-v5", 5000], ["Hopper-v5", 10000],
             ["Swimmer-v5", 10000], ["Walker2d-v5", 10000]],
}


@dataclass(frozen=True)
class TrainingBudget(Budget):
    """Short training runs for the step claims measured along training."""

    tasks: tuple[tuple[str, int], ...]  # (env id, env steps per batch) per task
    n_iters: int  # training iterations measured per run
    seeds: tuple[int, ...]  # training seeds (offset by the run's seed)


@dataclass(frozen=True)
class WarmupBudget(Budget):
    """One policy per (task, seed), trained ``warmup_iters`` iterations, then probed."""

    tasks: tuple[tuple[str, int], ...]  # (env id, env steps per batch) per task
    warmup_iters: int  # training iterations before the probe
    seeds: tuple[int, ...]  # training seeds (offset by the run's seed)


# Short training runs (iterations and seeds per tier) for claims measured along training.
TRAINING_BUDGETS: dict[str, TrainingBudget] = {
    "quick": TrainingBudget(tasks=TIER_TASKS["quick"], n_iters=10, seeds=[0]),
    "standard": TrainingBudget(tasks=TIER_TASKS["standard"], n_iters=15, seeds=[0, 1]),
    "full": TrainingBudget(tasks=TIER_TASKS["full"], n_iters=30, seeds=[0, 1, 2]),
}


def task_config(env_id: str, steps_per_iter: int, seed: int, **overrides: Any) -> TRPOConfig:
    """TRPOConfig for ``env_id`` with the paper's defaults, ``steps_per_iter`` env steps per
    batch, ``seed``; ``overrides`` replace any other field (validated)."""
    config = TRPOConfig(env_id=env_id, steps_per_iter=steps_per_iter, seed=seed, **overrides)
    config.validate()
    return config


@dataclass
class TrainingBatch:
    """One iteration of :func:`training_batches`: the policy (to be updated in place), the
    batch it is updated on (pi_old frozen), the 0-based iteration and the config's generator
    for the FVP subsample (the one :func:`trpo_ref.deep.trpo.train` passes to the update)."""

    iteration: int
    policy: Policy
    batch: PolicyBatch
    update_generator: torch.Generator
    episode_return_mean: float


def trpo_update(
    policy: Policy, batch: PolicyBatch, config: TRPOConfig, generator: torch.Generator
) -> Any:
    """The update under test by default: :func:`trpo_ref.deep.step.update` with ``config``'s
    settings and ``generator`` for the FVP subsample (what trpo.train calls)."""
    return update(
        policy, batch, algo=config.algo, delta=config.delta, damping=config.damping,
        cg_iters=config.cg_iters, backtrack=config.backtrack,
        max_backtracks=config.max_backtracks, fvp_subsample=config.fvp_subsample,
        step_size=config.step_size, generator=generator,
    )


@dataclass(frozen=True)
class FullStep:
    """TRPO's full step before the line search (App. C): theta_old, L(theta_old), beta, s^T A s,
    CG residual, and full_step = beta s, or None with the guard's ``reason``."""

    theta_old: torch.Tensor
    surrogate_old: float
    beta: float
    s_a_s: float
    cg_residual: float
    full_step: torch.Tensor | None
    reason: str | None


FvpFactory = Callable[..., Callable[[torch.Tensor], torch.Tensor]]


def trpo_full_step(
    policy: Policy,
    batch: PolicyBatch,
    config: TRPOConfig,
    generator: torch.Generator | None,
    fvp_fn: FvpFactory = fisher_vector_product_fn,
) -> FullStep:
    """g = grad L, s = CG(A, g), beta = sqrt(2 delta / s^T A s) from trpo_ref.deep.step's
    pieces, in the order step.update calls them (so with a generator in the same state the
    subsample, s and beta are the update's). ``fvp_fn(policy, obs, old_params, damping, index)``
    builds v -> A v (a broken one can be swapped in). Leaves the parameters untouched."""
    theta_old = get_flat_params(policy)
    surrogate_old_t = surrogate(policy, batch)
    g = flat_grad(surrogate_old_t, policy)
    surrogate_old = float(surrogate_old_t.detach())
    if not torch.isfinite(g).all():
        return FullStep(theta_old, surrogate_old, math.nan, math.nan, math.nan, None,
                        "gradient is not finite")
    index = subsample_index(len(batch), config.fvp_subsample, generator)
    a_v = fvp_fn(policy, batch.obs, batch.old_params, config.damping, index)
    s, residual = conjugate_gradient(a_v, g, config.cg_iters)
    s_a_s = float(s @ a_v(s))
    beta, reason = step_scale(s_a_s, config.delta)
    full_step = None if reason is not None else beta * s
    if full_step is not None and not torch.isfinite(full_step).all():
        full_step, reason = None, "step is not finite"
    return FullStep(theta_old, surrogate_old, beta, s_a_s, residual, full_step, reason)


def surrogate_and_kl(policy: Policy, batch: PolicyBatch) -> tuple[float, float]:
    """(L, mean KL(pi_old || pi)) at the policy's current parameters on the full batch: the
    line search's ``evaluate``; the KL by :func:`kl_per_state` (the paper's definition)."""
    with torch.no_grad():
        kl = kl_per_state(policy, batch.old_params, policy.dist_params(batch.obs))
        return float(surrogate(policy, batch)), float(kl.mean())


def training_batches(
    config: TRPOConfig, n_iters: int
) -> Generator[TrainingBatch, None, None]:
    """Yield ``n_iters`` batches of a single-path training run (see the module docstring).

    Between two yields the caller updates ``item.policy`` in place; the loop then fits V to
    the batch's lambda-return targets and updates the observation statistics, as
    :func:`trpo_ref.deep.trpo.train` does (MLP policies on 1-D observations only)."""
    config.validate()
    env = make_env(config.env_id, config)
    try:
        seed_everything(config.seed, env)
        policy = make_policy(config, env)
        value_fn = make_value(config, env)
        value_opt = torch.optim.Adam(value_fn.parameters(), lr=config.vf_lr)
        normalizer = RunningObsNormalizer(env.observation_space.shape[0], clip=config.obs_clip)
        sample_gen = torch.Generator().manual_seed(config.seed)
        update_gen = torch.Generator().manual_seed(config.seed + 1)
        for iteration in range(n_iters):
            normalize = normalizer if config.normalize_obs else np.asarray
            rollout = collect_rollout(env, policy, normalize, config.steps_per_iter, sample_gen,
                                      reset_seed=config.seed if iteration == 0 else None)
            adv, targets = advantages_and_targets(rollout, value_fn, config.gamma, config.lam)
            if config.normalize_advantages:
                adv = (adv - adv.mean()) / (adv.std() + 1e-8)
            obs = torch.as_tensor(rollout.obs)
            batch = make_batch(policy, obs, torch.as_tensor(rollout.act), torch.as_tensor(adv))
            yield TrainingBatch(iteration, policy, batch, update_gen,
                                float(np.mean(rollout.episode_returns)))
            fit_value(value_fn, value_opt, obs, torch.as_tensor(targets), config.vf_epochs,
                      config.vf_minibatch, update_gen)
            if config.normalize_obs:
                normalizer.update(rollout.raw_obs)
    finally:
        env.close()


def trained_batch(
    config: TRPOConfig,
    warmup_iters: int,
    update_fn: UpdateFn = trpo_update,
) -> TrainingBatch:
    """The batch of iteration ``warmup_iters`` after ``warmup_iters`` updates by ``update_fn``
    (default :func:`trpo_update`): a trained, non-initial policy and its next batch."""
    with closing(training_batches(config, warmup_iters + 1)) as items:  # closes the env
        for item in items:
            if item.iteration == warmup_iters:
                return item
            update_fn(item.policy, item.batch, config, item.update_generator)
    raise AssertionError("unreachable: training_batches yields warmup_iters + 1 items")


# --- measurements by the paper's definitions ----------------------------------------------------

def frozen_dist_params(policy: Policy, obs: torch.Tensor) -> DistParams:
    """pi's distribution parameters on ``obs``, detached copies (the policy may move after)."""
    with torch.no_grad():
        return tuple(t.detach().clone() for t in policy.dist_params(obs))


def _torch_distribution(policy: Policy, params: DistParams) -> torch.distributions.Distribution:
    if isinstance(policy, DiagGaussianMLP):
        mean, log_std = params
        return Normal(mean, torch.exp(log_std))
    (log_p,) = params
    return TorchCategorical(logits=log_p)


def kl_per_state(policy: Policy, old: DistParams, new: DistParams) -> torch.Tensor:
    """KL(pi_old(.|s_n) || pi_new(.|s_n)) per state, summed over action dimensions, from
    torch.distributions (not the policy's own formula); shape (N,)."""
    kl = kl_divergence(_torch_distribution(policy, old), _torch_distribution(policy, new))
    return kl.sum(-1) if isinstance(policy, DiagGaussianMLP) else kl


def mean_kl(policy: Policy, old: DistParams, obs: torch.Tensor) -> float:
    """Eq. (12)'s constraint: mean over the batch's states of KL(pi_old || pi_current)."""
    new = frozen_dist_params(policy, obs)
    return float(kl_per_state(policy, old, new).mean())


def param_bits(module: torch.nn.Module) -> torch.Tensor:
    """The flat float64 parameters reinterpreted as int64 bit patterns."""
    flat = get_flat_params(module)
    if flat.dtype != torch.float64:
        raise TypeError(f"param_bits expects float64 parameters, got {flat.dtype}")
    return flat.view(torch.int64)


def config_dict(config: TRPOConfig) -> dict[str, Any]:
    """The config as plain data, for Evidence.config."""
    return dataclasses.asdict(config)
