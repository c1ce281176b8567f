"""sb3-contrib's TRPO (``sb3_contrib.TRPO``, the optional ``external`` extra) as an implementation
(:mod:`claims.framework.impl`): the first external implementation the suite checks.

- ``policy_step`` runs sb3-contrib's own ``TRPO.train()`` exactly once on the suite's batch, by
  swapping in a ``RolloutBuffer`` that holds just that batch (old log-probs and values from the
  current networks, returns = advantages + values for the critic), with ``target_kl = delta``.
  ``train()`` makes one CG solve and one line search for the actor, then fits the critic (a
  separate network). numpy and torch are seeded first: CG starts from a random point and the
  buffer is shuffled.
- ``train`` calls ``learn`` on a Monitor-wrapped env and returns the Monitor's episodes (true
  returns, in order; an unfinished last episode is not reported; ``learn`` rounds the budget up
  to a multiple of ``n_steps``).

sb3-contrib's defaults are kept (that is what users run); where they differ from the paper is
listed in :data:`DIFFERENCES`. sb3's policies are float32; distributions come back as float64.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from importlib import metadata
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from claims.api import ActionDistributions, StepBatch, StepOutcome, TrainOutcome

try:  # the optional "external" extra
    from sb3_contrib import TRPO
    from stable_baselines3.common.buffers import RolloutBuffer
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("the sb3-contrib adapter needs sb3-contrib: "
                      "pip install -e '.[external]'") from error

DIFFERENCES = (
    "KL: KL(new || old), averaged over states and over action dimensions (the paper: KL(old || "
    "new) summed over action dimensions, averaged over states), tested strictly (< target_kl)",
    "CG: 15 iterations from a random start 1e-4 * randn (the paper: 10, from 0)",
    "sub_sampling_factor subsamples the gradient, the Fisher and the line search alike (the "
    "paper: the Fisher products only, on 10%); default 1 (no subsampling)",
    "advantages standardized per batch; GAE lambda 0.95; 10 Adam epochs of critic fitting",
    "n_steps 2048 per update; 64x64 tanh policy and a separate 64x64 value network",
)


class SB3ContribTRPO:
    """sb3_contrib.TRPO("MlpPolicy") at its defaults; ``kwargs`` go to its constructor."""

    name = "sb3-contrib TRPO"
    version = f"sb3_contrib {metadata.version('sb3_contrib')}"  # the library checked

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = {"device": "cpu", "verbose": 0} | kwargs
        self.model: Any = None
        self.seed = 0

    def _model(self, env_id: str, seed: int) -> Any:
        venv = DummyVecEnv([lambda: Monitor(gym.make(env_id))])
        model = TRPO("MlpPolicy", venv, seed=seed, **self.kwargs)
        model.set_logger(Logger(folder=None, output_formats=[]))  # train() outside learn()
        return model

    def new_policy(self, env_id: str, seed: int) -> None:
        self.model, self.seed = self._model(env_id, seed), seed

    def _distributions(self, obs: np.ndarray) -> ActionDistributions:
        with torch.no_grad(), _unvalidated():  # a NaN policy must be readable, not raise
            d = self.model.policy.get_distribution(
                torch.as_tensor(obs, dtype=torch.float32)).distribution
        if isinstance(d, torch.distributions.Categorical):
            log_p = torch.log_softmax(d.logits.double(), -1)
            return ActionDistributions(log_probs=log_p.numpy().copy())
        return ActionDistributions(mean=d.loc.double().numpy().copy(),
                                   std=d.scale.double().numpy().copy())

    def _buffer(self, batch: StepBatch) -> Any:
        model, n = self.model, len(batch.adv)
        buffer = RolloutBuffer(n, model.observation_space, model.action_space,
                               device=model.device, gamma=model.gamma,
                               gae_lambda=model.gae_lambda, n_envs=1)
        obs = torch.as_tensor(batch.obs, dtype=torch.float32)
        act = np.asarray(batch.act).reshape(n, buffer.action_dim)
        act_t = torch.as_tensor(act, dtype=torch.float32)
        if isinstance(model.action_space, gym.spaces.Discrete):
            act_t = act_t.long().flatten()
        with torch.no_grad():
            log_prob = model.policy.get_distribution(obs).log_prob(act_t).numpy()
            values = model.policy.predict_values(obs).flatten().numpy()
        adv = np.asarray(batch.adv, dtype=np.float32)
        buffer.observations[:, 0] = np.asarray(batch.obs).reshape(n, *buffer.obs_shape)
        buffer.actions[:, 0] = act
        buffer.log_probs[:, 0] = log_prob
        buffer.values[:, 0] = values
        buffer.advantages[:, 0] = adv
        buffer.returns[:, 0] = adv + values
        buffer.pos, buffer.full = n, True
        return buffer

    def policy_step(self, batch: StepBatch, delta: float) -> StepOutcome:
        if self.model is None:
            raise RuntimeError("call new_policy(env_id, seed) before policy_step")
        self.model.target_kl = float(delta)
        np.random.seed(self.seed)  # noqa: NPY002 - sb3 shuffles with numpy's global generator
        torch.manual_seed(self.seed)
        old = self._distributions(batch.obs)
        saved, self.model.rollout_buffer = self.model.rollout_buffer, self._buffer(batch)
        try:
            self.model.train()
        finally:
            self.model.rollout_buffer = saved
        return StepOutcome(old, self._distributions(batch.obs))

    def action_distributions(self, obs: np.ndarray) -> ActionDistributions:
        """The ``inspect`` capability: the current policy on ``obs``, no update."""
        if self.model is None:
            raise RuntimeError("call new_policy(env_id, seed) before action_distributions")
        return self._distributions(obs)

    def get_state(self) -> dict[str, Any]:
        """The ``snapshot`` capability: the policy's and optimizer's state (``policy_step``
        reseeds numpy and torch itself, and the buffer is rebuilt each call)."""
        return copy.deepcopy({"policy": self.model.policy.state_dict(),
                              "optimizer": self.model.policy.optimizer.state_dict()})

    def set_state(self, state: dict[str, Any]) -> None:
        state = copy.deepcopy(state)
        self.model.policy.load_state_dict(state["policy"])
        self.model.policy.optimizer.load_state_dict(state["optimizer"])

    def train(self, env_id: str, seed: int, total_steps: int) -> TrainOutcome:
        model = self._model(env_id, seed)
        model.learn(total_timesteps=total_steps)
        monitor = model.get_env().envs[0]
        return TrainOutcome([float(r) for r in monitor.get_episode_rewards()],
                            [int(n) for n in monitor.get_episode_lengths()])


@contextlib.contextmanager
def _unvalidated() -> Iterator[None]:
    """torch.distributions without argument validation inside the body (sb3's Normal raises
    on a NaN mean; the suite wants to read it)."""
    previous = torch.distributions.Distribution._validate_args
    torch.distributions.Distribution.set_default_validate_args(False)
    try:
        yield
    finally:
        torch.distributions.Distribution.set_default_validate_args(previous)


def factory() -> SB3ContribTRPO:
    """``--impl claims.adapters.sb3_contrib:factory``: sb3-contrib's TRPO at its defaults."""
    return SB3ContribTRPO()
