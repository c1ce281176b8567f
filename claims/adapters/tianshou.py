"""tianshou's TRPO (``tianshou.algorithm.TRPO``, 2.x; the optional ``tianshou`` extra) as an
implementation (:mod:`claims.framework.impl`), step capability only.

- ``new_policy`` builds the networks of tianshou's MuJoCo TRPO example: a 64x64 tanh MLP
  actor (Gaussian with a state-independent log-std, ``Independent(Normal, 1)``; categorical for
  Discrete actions) and a 64x64 tanh critic, Adam 1e-3 for the critic; the algorithm's own
  defaults otherwise (``max_kl`` is set to the suite's delta per update).
- ``policy_step`` runs tianshou's own ``TRPO._update_with_batch`` exactly once (``repeat=1``,
  ``batch_size=None``: one minibatch, the whole batch) on the suite's batch, with the old
  log-probabilities and values from the current networks, ``returns = adv + values`` for the
  critic, and the advantages standardized as tianshou's ``_preprocess_batch`` does (mean 0,
  unbiased std 1) when ``advantage_normalization`` is on (its default). numpy and torch are
  seeded first.
- ``train`` is not offered: tianshou trains through its Collector/Trainer stack, which this
  adapter does not wrap; claims needing training are SKIPPED with that reason.

Differences from the paper (read from tianshou 2.0.1's ``trpo.py`` and ``npg.py``):
:data:`DIFFERENCES`.
"""

from __future__ import annotations

from importlib import metadata
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from claims.api import ActionDistributions, StepBatch, StepOutcome

try:  # the optional "tianshou" extra
    from tianshou.algorithm import TRPO
    from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
    from tianshou.algorithm.optim import AdamOptimizerFactory
    from tianshou.data import Batch
    from tianshou.utils.net.common import Net
    from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic
    from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError("the tianshou adapter needs tianshou 2.x: "
                      "pip install -e '.[tianshou]'") from error

DIFFERENCES = (
    "KL: KL(old || new) as in the paper, averaged over states; summed over action dimensions "
    "(Independent(Normal, 1)); tested strictly (kl < max_kl)",
    "CG: 10 iterations from 0, damping 0.1 (the paper: 10 iterations; damping unstated)",
    "step: beta = sqrt(2 max_kl / s^T (F + 0.1 I) s); line search up to 10 backtracks by 0.8, "
    "accepting a candidate with kl < max_kl and a lower loss (a higher surrogate); the "
    "parameters are restored after the 10th rejected candidate",
    "minibatch trust regions: with batch_size set, every minibatch gets its own trust-region "
    "step (repeat x minibatches steps per update); this adapter uses one minibatch, as the "
    "paper does",
    "advantages standardized per batch (unbiased std) by _preprocess_batch; the Fisher and the "
    "line search use the whole batch (no subsampling)",
)


def _mlp(in_dim: int) -> Net:
    return Net(state_shape=in_dim, hidden_sizes=(64, 64), activation=nn.Tanh)


def _gaussian(loc_scale: tuple[torch.Tensor, torch.Tensor]) -> torch.distributions.Distribution:
    loc, scale = loc_scale
    return torch.distributions.Independent(torch.distributions.Normal(loc, scale), 1)


class TianshouTRPO:
    """tianshou.algorithm.TRPO with the MuJoCo example's networks; ``kwargs`` go to TRPO."""

    name = "tianshou TRPO"
    version = f"tianshou {metadata.version('tianshou')}"

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.algorithm: Any = None
        self.seed = 0

    def new_policy(self, env_id: str, seed: int) -> None:
        torch.manual_seed(seed)
        env = gym.make(env_id)
        obs_dim = int(np.prod(env.observation_space.shape))
        space = env.action_space
        env.close()
        if isinstance(space, gym.spaces.Discrete):
            actor = DiscreteActor(preprocess_net=_mlp(obs_dim), action_shape=int(space.n))
            critic: nn.Module = DiscreteCritic(preprocess_net=_mlp(obs_dim))
            dist_fn: Any = torch.distributions.Categorical
        else:
            actor = ContinuousActorProbabilistic(preprocess_net=_mlp(obs_dim),
                                                 action_shape=space.shape, unbounded=True)
            critic = ContinuousCritic(preprocess_net=_mlp(obs_dim))
            dist_fn = _gaussian
        policy = ProbabilisticActorPolicy(actor=actor, dist_fn=dist_fn, action_space=space,
                                          action_scaling=False, action_bound_method=None)
        self.algorithm = TRPO(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=1e-3),
                              **self.kwargs)
        self.seed = seed

    def _dist(self, obs: torch.Tensor) -> Any:
        with torch.no_grad():
            return self.algorithm.policy(Batch(obs=obs, info=Batch())).dist

    def _distributions(self, obs: torch.Tensor) -> ActionDistributions:
        d = self._dist(obs)
        if isinstance(d, torch.distributions.Categorical):
            return ActionDistributions(log_probs=torch.log_softmax(d.logits.double(), -1)
                                       .numpy().copy())
        base = d.base_dist
        return ActionDistributions(mean=base.loc.double().numpy().copy(),
                                   std=base.scale.double().expand_as(base.loc).numpy().copy())

    def _batch(self, batch: StepBatch, obs: torch.Tensor) -> Any:
        act = torch.as_tensor(np.asarray(batch.act), dtype=torch.float32)
        if batch.act.ndim == 1:
            act = act.long()
        adv = torch.as_tensor(batch.adv, dtype=torch.float32)
        if self.algorithm.advantage_normalization:  # as tianshou's _preprocess_batch does
            adv = (adv - adv.mean()) / adv.std()
        with torch.no_grad():
            logp_old = self._dist(obs).log_prob(act)
            values = self.algorithm.critic(obs).flatten()
        return Batch(obs=obs, act=act, adv=adv, logp_old=logp_old, returns=adv + values,
                     info=Batch())

    def policy_step(self, batch: StepBatch, delta: float) -> StepOutcome:
        if self.algorithm is None:
            raise RuntimeError("call new_policy(env_id, seed) before policy_step")
        self.algorithm.max_kl = float(delta)
        np.random.seed(self.seed)  # noqa: NPY002 - Batch.split shuffles with numpy's global RNG
        torch.manual_seed(self.seed)
        obs = torch.as_tensor(batch.obs, dtype=torch.float32)
        old = self._distributions(obs)
        self.algorithm._update_with_batch(self._batch(batch, obs), batch_size=None, repeat=1)
        return StepOutcome(old, self._distributions(obs))


def factory() -> TianshouTRPO:
    """``--impl claims.adapters.tianshou:factory``: tianshou's TRPO at its defaults."""
    return TianshouTRPO()
