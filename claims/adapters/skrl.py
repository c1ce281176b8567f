"""skrl's TRPO (``skrl.agents.torch.trpo.TRPO``, 2.x; the optional ``skrl`` extra) as an
implementation (:mod:`claims.framework.impl`), step capability, Box (Gaussian) actions only.

- ``new_policy`` builds a 64x64 tanh Gaussian policy with a state-independent log-std (skrl's
  ``GaussianMixin``, log-std clipped to [-20, 2], skrl's defaults) and a 64x64 tanh value
  network, and the agent at skrl's ``TRPO_CFG`` defaults (``max_kl_divergence`` set to the
  suite's delta per update). skrl's TRPO supports Gaussian policies only (its
  ``kl_divergence`` reads ``mean_actions`` and ``log_std``): a Discrete task raises
  ImplementationError.
- ``policy_step`` runs skrl's own ``TRPO.update`` exactly once, on a memory that holds the
  suite's batch as one-step episodes: every transition terminates, with reward = advantage +
  V(s), so skrl's own GAE gives back exactly the suite's advantages (then standardized by
  skrl, unbiased std + 1e-8); log-probabilities and values from the current networks. torch is
  seeded first (skrl shuffles the memory with torch's generator).
- ``train`` is not offered (skrl trains through its Trainer and wrapped environments).

Differences from the paper (read from skrl 2.1.1's ``agents/torch/trpo/trpo.py``):
:data:`DIFFERENCES`.
"""

from __future__ import annotations

import tempfile
from importlib import metadata
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from claims.api import ActionDistributions, ImplementationError, StepBatch, StepOutcome

# skrl's model modules switch torch.distributions' argument validation off for the whole
# process when imported (``Normal.set_default_validate_args(False)``, "to speed up"), which
# changes how *other* libraries fail (a NaN candidate no longer raises): put it back.
_VALIDATE_ARGS = torch.distributions.Distribution._validate_args
try:  # the optional "skrl" extra
    from skrl.agents.torch.trpo import TRPO
    from skrl.memories.torch import RandomMemory
    from skrl.models.torch import DeterministicMixin, GaussianMixin, Model
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("the skrl adapter needs skrl: pip install -e '.[skrl]'") from error
finally:
    torch.distributions.Distribution.set_default_validate_args(_VALIDATE_ARGS)

DIFFERENCES = (
    "Gaussian policies only: kl_divergence reads mean_actions and log_std (no Discrete tasks)",
    "KL: KL(old || new) as in the paper, summed over action dimensions, mean over states; "
    "tested strictly (kl < max_kl_divergence)",
    "CG: 10 iterations from 0, damping 0.1; step scale sqrt(2 delta / s^T (F + 0.1 I) s)",
    "line search: up to 10 candidates at step_fraction x 0.5^i, accepting kl < delta and an "
    "actual/expected improvement ratio > accept_ratio (0.5), where the expected improvement "
    "is multiplied by each candidate's fraction cumulatively (after candidate i it holds "
    "g.s x 0.5^(0+1+...+i), not g.s x 0.5^i): from the third candidate on, the test is looser "
    "than the documented ratio",
    "advantages standardized per batch (unbiased std + 1e-8); the whole memory in one batch "
    "for the policy; log-std clipped to [-20, 2] inside the policy",
)


class _Policy(GaussianMixin, Model):
    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        Model.__init__(self, observation_space=observation_space, action_space=action_space,
                       device="cpu")
        GaussianMixin.__init__(self)
        obs_dim, act_dim = self.num_observations, self.num_actions
        self.net = nn.Sequential(nn.Linear(obs_dim, 64), nn.Tanh(), nn.Linear(64, 64),
                                 nn.Tanh(), nn.Linear(64, act_dim))
        self.log_std_parameter = nn.Parameter(torch.zeros(act_dim))

    def compute(self, inputs: dict[str, Any], role: str = "") -> tuple[torch.Tensor, dict]:
        return self.net(inputs["observations"]), {"log_std": self.log_std_parameter}


class _Value(DeterministicMixin, Model):
    def __init__(self, observation_space: gym.Space, action_space: gym.Space) -> None:
        Model.__init__(self, observation_space=observation_space, action_space=action_space,
                       device="cpu")
        DeterministicMixin.__init__(self)
        self.net = nn.Sequential(nn.Linear(self.num_observations, 64), nn.Tanh(),
                                 nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1))

    def compute(self, inputs: dict[str, Any], role: str = "") -> tuple[torch.Tensor, dict]:
        return self.net(inputs["observations"]), {}


class SkrlTRPO:
    """skrl's TRPO at its TRPO_CFG defaults; ``cfg`` entries override them."""

    name = "skrl TRPO"
    version = f"skrl {metadata.version('skrl')}"

    def __init__(self, **cfg: Any) -> None:
        self.cfg = cfg
        self.agent: Any = None
        self.spaces: tuple[gym.Space, gym.Space] | None = None
        self.seed = 0
        self._dir = tempfile.TemporaryDirectory(prefix="skrl-")  # skrl's experiment folder

    def unsupported(self, env_id: str) -> str | None:
        """Why skrl's TRPO cannot handle ``env_id`` (None: it can): Box actions only."""
        env = gym.make(env_id)
        act_space = env.action_space
        env.close()
        if isinstance(act_space, gym.spaces.Box):
            return None
        return (f"skrl's TRPO supports Gaussian policies only; {env_id} has "
                f"{type(act_space).__name__} actions")

    def new_policy(self, env_id: str, seed: int) -> None:
        if (why := self.unsupported(env_id)) is not None:
            raise ImplementationError(why)
        env = gym.make(env_id)
        obs_space, act_space = env.observation_space, env.action_space
        env.close()
        torch.manual_seed(seed)
        models = {"policy": _Policy(obs_space, act_space), "value": _Value(obs_space, act_space)}
        self.spaces, self.seed, self.models = (obs_space, act_space), seed, models
        self.agent = None  # built per step: its memory has the batch's size

    def _agent(self, n: int) -> Any:
        obs_space, act_space = self.spaces
        cfg = {"experiment": {"directory": self._dir.name, "write_interval": 0,
                              "checkpoint_interval": 0}} | self.cfg
        agent = TRPO(models=self.models, memory=RandomMemory(memory_size=n, device="cpu"),
                     observation_space=obs_space, action_space=act_space, device="cpu", cfg=cfg)
        agent.init()
        agent.enable_models_training_mode(True)
        return agent

    def _distributions(self, obs: torch.Tensor) -> ActionDistributions:
        with torch.no_grad():
            _, out = self.models["policy"].act({"observations": obs, "states": None},
                                               role="policy")
        mean = out["mean_actions"].double()
        return ActionDistributions(mean=mean.numpy().copy(),
                                   std=out["log_std"].double().exp().expand_as(mean).numpy()
                                   .copy())

    def policy_step(self, batch: StepBatch, delta: float) -> StepOutcome:
        if self.spaces is None:
            raise RuntimeError("call new_policy(env_id, seed) before policy_step")
        n = len(batch.adv)
        self.agent = agent = self._agent(n)
        agent.cfg.max_kl_divergence = float(delta)
        torch.manual_seed(self.seed)
        obs = torch.as_tensor(batch.obs, dtype=torch.float32)
        act = torch.as_tensor(np.asarray(batch.act), dtype=torch.float32).reshape(n, -1)
        old = self._distributions(obs)
        with torch.no_grad():
            _, out = self.models["policy"].act({"observations": obs, "states": None,
                                                "taken_actions": act}, role="policy")
            values, _ = self.models["value"].act({"observations": obs, "states": None},
                                                 role="value")
        adv = torch.as_tensor(batch.adv, dtype=torch.float32).reshape(n, 1)
        memory = agent.memory
        # one-step episodes: skrl's GAE gives A = r - V(s) = adv exactly
        for name, tensor in {"observations": obs, "actions": act, "rewards": adv + values,
                             "terminated": torch.ones(n, 1, dtype=torch.bool),
                             "truncated": torch.zeros(n, 1, dtype=torch.bool),
                             "log_prob": out["log_prob"].reshape(n, 1),
                             "values": values}.items():
            memory.set_tensor_by_name(name, tensor.reshape(n, 1, -1))
        memory.filled, memory.memory_index, memory.env_index = True, 0, 0
        agent._current_next_observations = obs[-1:]
        agent._current_next_states = None
        agent.update(timestep=0, timesteps=1)
        return StepOutcome(old, self._distributions(obs))


def factory() -> SkrlTRPO:
    """``--impl claims.adapters.skrl:factory``: skrl's TRPO at its defaults."""
    return SkrlTRPO()
