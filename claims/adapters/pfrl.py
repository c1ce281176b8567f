"""pfrl's TRPO (``pfrl.agents.TRPO``, 0.4.0; the optional ``pfrl`` extra) as an implementation
(:mod:`claims.framework.impl`), step capability only.

- ``new_policy`` builds the networks of pfrl's MuJoCo TRPO example: a 64x64 tanh MLP with
  ``GaussianHeadWithStateIndependentCovariance`` (variance exp(2 x), x initialised to 0) for
  Box actions, ``SoftmaxCategoricalHead`` for Discrete ones; a 64x64 tanh value network; the
  agent at pfrl's own defaults (``max_kl`` set to the suite's delta per update).
- ``policy_step`` runs pfrl's own ``TRPO._update_policy`` exactly once on the suite's batch, as
  a dataset of transitions whose ``log_prob`` comes from the current policy (pfrl records it at
  acting time). The value function is not fitted (``_update_vf`` is a separate method; pfrl's
  actor and critic share no parameters).
- ``train`` is not offered (pfrl trains through ``pfrl.experiments``, not wrapped here).

pfrl 0.4.0 (2021) installs beside torch 2.13 and numpy 2, and pulls in the old ``gym`` 0.26
(beside gymnasium, which it does not touch); ``_update_policy`` builds tensors from lists of
numpy arrays, which torch accepts with a warning. Differences from the paper (read from
pfrl 0.4.0's ``agents/trpo.py``): :data:`DIFFERENCES`.
"""

from __future__ import annotations

import logging
from importlib import metadata
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from claims.api import ActionDistributions, StepBatch, StepOutcome

try:  # the optional "pfrl" extra
    import pfrl
    from pfrl.agents import TRPO
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("the pfrl adapter needs pfrl: pip install -e '.[pfrl]'") from error

DIFFERENCES = (
    "objective: the surrogate plus entropy_coef (0.01) x mean entropy, in the gradient and in "
    "the line search's improvement test (the paper: no entropy term)",
    "KL: KL(old || new) as in the paper, mean over states, summed over action dimensions "
    "(Independent(Normal, 1)); accepted when kl <= max_kl (not strict)",
    "CG: 10 iterations from 0, damping 0.01; the step scale sqrt(2 max_kl / (s^T (F + 0.01 I) "
    "s + 1e-8))",
    "line search: up to 11 candidates, step halved each time, accepting a finite candidate "
    "with improvement >= 0 (ties accepted) and kl <= max_kl; restores the old parameters when "
    "none is accepted",
    "advantages standardized per batch (population std + 1e-8); no minibatches",
)


def _mlp(in_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                         nn.Linear(64, out_dim))


class PfrlTRPO:
    """pfrl.agents.TRPO with the MuJoCo example's networks; ``kwargs`` go to TRPO."""

    name = "pfrl TRPO"
    version = f"pfrl {metadata.version('pfrl')}"

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = {"logger": logging.getLogger("claims.adapters.pfrl")} | kwargs
        self.agent: Any = None
        self.seed = 0

    def new_policy(self, env_id: str, seed: int) -> None:
        torch.manual_seed(seed)
        env = gym.make(env_id)
        obs_dim = int(np.prod(env.observation_space.shape))
        space = env.action_space
        env.close()
        if isinstance(space, gym.spaces.Discrete):
            policy = nn.Sequential(_mlp(obs_dim, int(space.n)),
                                   pfrl.policies.SoftmaxCategoricalHead())
        else:
            act_dim = int(np.prod(space.shape))
            policy = nn.Sequential(_mlp(obs_dim, act_dim),
                                   pfrl.policies.GaussianHeadWithStateIndependentCovariance(
                                       action_size=act_dim, var_type="diagonal",
                                       var_func=lambda x: torch.exp(2 * x), var_param_init=0))
        vf = _mlp(obs_dim, 1)
        self.agent = TRPO(policy, vf, torch.optim.Adam(vf.parameters()), **self.kwargs)
        self.seed = seed

    def _distributions(self, obs: torch.Tensor) -> ActionDistributions:
        with torch.no_grad():
            d = self.agent.policy(obs)
        if isinstance(d, torch.distributions.Categorical):
            return ActionDistributions(log_probs=torch.log_softmax(d.logits.double(), -1)
                                       .numpy().copy())
        base = d.base_dist
        return ActionDistributions(mean=base.loc.double().numpy().copy(),
                                   std=base.scale.double().expand_as(base.loc).numpy().copy())

    def policy_step(self, batch: StepBatch, delta: float) -> StepOutcome:
        if self.agent is None:
            raise RuntimeError("call new_policy(env_id, seed) before policy_step")
        self.agent.max_kl = float(delta)
        torch.manual_seed(self.seed)
        obs = torch.as_tensor(batch.obs, dtype=torch.float32)
        act = np.asarray(batch.act).astype(np.int64 if batch.act.ndim == 1 else np.float32)
        old = self._distributions(obs)
        with torch.no_grad():
            log_prob = self.agent.policy(obs).log_prob(torch.as_tensor(act)).numpy()
        dataset = [{"state": o, "action": a, "adv": float(g), "log_prob": float(lp)}
                   for o, a, g, lp in zip(batch.obs.astype(np.float32), act, batch.adv,
                                          log_prob, strict=True)]
        self.agent._update_policy(dataset)
        return StepOutcome(old, self._distributions(obs))


def factory() -> PfrlTRPO:
    """``--impl claims.adapters.pfrl:factory``: pfrl's TRPO at its defaults."""
    return PfrlTRPO()
