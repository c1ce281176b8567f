"""``trpo_ref`` as an implementation (:mod:`claims.framework.impl`): the reference the suite checks
others against, and the base of the seeded-bug forks (:mod:`claims.faults.forks`).

``policy_step`` calls ``trpo_ref.deep.step``'s ``make_batch`` and ``update`` exactly as the
training loop does, so a seeded bug applied to the update's hook points (:mod:`claims.faults`)
shows up here. It also offers the optional ``inspect`` and ``snapshot`` capabilities
(:mod:`claims.framework.impl`).
"""

from __future__ import annotations

import dataclasses
from importlib import metadata
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from claims.api import ActionDistributions, StepBatch, StepOutcome, TrainOutcome
from trpo_ref.deep import step, trpo
from trpo_ref.deep.policies import DiagGaussianMLP
from trpo_ref.deep.runtime import torch_threads


class EpisodeRecorder(gym.Wrapper):
    """Appends (return, length) of every episode that ends (terminated or truncated)."""

    def __init__(self, env: gym.Env, episodes: list[tuple[float, int]]) -> None:
        super().__init__(env)
        self.episodes, self._return, self._length = episodes, 0.0, 0

    def reset(self, **kwargs: Any) -> Any:
        self._return, self._length = 0.0, 0
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> Any:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self._return += float(reward)
        self._length += 1
        if terminated or truncated:
            self.episodes.append((self._return, self._length))
        return obs, reward, terminated, truncated, info


def distributions(policy: Any, obs: torch.Tensor) -> ActionDistributions:
    """The policy's action distributions on ``obs`` as numpy arrays."""
    with torch.no_grad():
        params = policy.dist_params(obs)
        if isinstance(policy, DiagGaussianMLP):
            mean, log_std = params
            std = torch.exp(log_std).expand_as(mean)
            return ActionDistributions(mean=mean.numpy().copy(), std=std.numpy().copy())
        (log_p,) = params
        return ActionDistributions(log_probs=log_p.numpy().copy())


class TrpoRef:
    """trpo_ref with :class:`~trpo_ref.deep.trpo.TRPOConfig` defaults (any field overridable)."""

    name = "trpo_ref"
    version = f"trpo-claims {metadata.version('trpo-claims')}"

    def __init__(self, **overrides: Any) -> None:
        self.config = trpo.TRPOConfig(**overrides)
        self.policy: Any = None
        self.generator: torch.Generator | None = None

    def new_policy(self, env_id: str, seed: int) -> None:
        config = dataclasses.replace(self.config, env_id=env_id, seed=seed)
        env = trpo.make_env(env_id, config)
        try:
            trpo.seed_everything(seed, env)
            self.policy = trpo.make_policy(config, env)
        finally:
            env.close()
        self.generator = torch.Generator().manual_seed(seed)

    def policy_step(self, batch: StepBatch, delta: float) -> StepOutcome:
        if self.policy is None:
            raise RuntimeError("call new_policy(env_id, seed) before policy_step")
        c = self.config
        obs = torch.as_tensor(np.asarray(batch.obs, dtype=np.float64))
        act = torch.as_tensor(np.asarray(batch.act))
        adv = torch.as_tensor(np.asarray(batch.adv, dtype=np.float64))
        if c.normalize_advantages:  # as the training loop does
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        with torch_threads(c.threads):
            old = distributions(self.policy, obs)
            policy_batch = step.make_batch(self.policy, obs, act, adv)
            step.update(self.policy, policy_batch, algo=c.algo, delta=delta, damping=c.damping,
                        cg_iters=c.cg_iters, backtrack=c.backtrack,
                        max_backtracks=c.max_backtracks, fvp_subsample=c.fvp_subsample,
                        step_size=c.step_size, generator=self.generator)
            return StepOutcome(old, distributions(self.policy, obs))

    def action_distributions(self, obs: np.ndarray) -> ActionDistributions:
        """The ``inspect`` capability: the current policy on ``obs``, no update."""
        if self.policy is None:
            raise RuntimeError("call new_policy(env_id, seed) before action_distributions")
        return distributions(self.policy, torch.as_tensor(np.asarray(obs, dtype=np.float64)))

    def get_state(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The ``snapshot`` capability: the flat parameters and the FVP subsample generator."""
        assert self.policy is not None and self.generator is not None
        return step.get_flat_params(self.policy), self.generator.get_state()

    def set_state(self, state: tuple[torch.Tensor, torch.Tensor]) -> None:
        assert self.policy is not None and self.generator is not None
        flat, generator_state = state
        step.set_flat_params(self.policy, flat)
        self.generator.set_state(generator_state)

    def train(self, env_id: str, seed: int, total_steps: int) -> TrainOutcome:
        episodes: list[tuple[float, int]] = []
        make_env = trpo.make_env

        def recorded(env_id: str, config: Any = None) -> gym.Env:
            return EpisodeRecorder(make_env(env_id, config), episodes)

        config = dataclasses.replace(self.config, env_id=env_id, seed=seed,
                                     total_steps=total_steps)
        trpo.make_env = recorded
        try:
            trpo.train(config)
        finally:
            trpo.make_env = make_env
        return TrainOutcome([r for r, _ in episodes], [n for _, n in episodes])


def factory() -> TrpoRef:
    """``--impl claims.adapters.trpo_ref:factory``: the reference at its defaults."""
    return TrpoRef()
