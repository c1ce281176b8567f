"""The baseline V(s): a separate tanh MLP, fitted by regression after the policy update.

The paper fits its baseline separately from the policy (section 5.1, App. D) and does not fix
the fitting method. Our choice: a tanh MLP (the policy's hidden sizes by default), trained by
Adam on the mean squared error to the lambda-return targets A_t + V_old(s_t), ``epochs`` passes
over shuffled minibatches. Adam with a persistent optimizer state is what sb3-contrib's TRPO
does (it keeps no second-order state to go stale); L-BFGS as in modular_rl would fit more
tightly per batch but is more sensitive to a bad batch. The optimizer holds only the value
network's parameters, so the fit can never move the policy.

Speed (issue 3, section 3): the fit is hundreds of small Adam steps per batch, so per-step
overhead dominates. :func:`fit_value` permutes the batch once per epoch and takes minibatches as
views of it: the same minibatches, bit for bit, without a gather per step. torch's fused Adam
saves about 15% more of the fit but rounds differently; on Hopper-v5 (300K steps) it ended
lower than plain Adam on 6 of 6 seeds, so it is not used until that is understood.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from trpo_ref.deep.policies import evaluate_in_chunks, row_chunks, tanh_mlp


class ValueMLP(nn.Module):
    """V(s): obs (N, obs_dim) -> (N,). The output layer starts at 0.01 scale, like the policy's."""

    def __init__(
        self, obs_dim: int, hidden: Sequence[int] = (64, 64), dtype: torch.dtype = torch.float64
    ) -> None:
        super().__init__()
        self.net = tanh_mlp(obs_dim, 1, hidden, dtype)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


def fit_value(
    value_fn: ValueMLP,
    optimizer: torch.optim.Optimizer,
    obs: torch.Tensor,
    targets: torch.Tensor,
    epochs: int = 5,
    minibatch_size: int = 128,
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """Minimize mean (V(s) - target)^2 by ``epochs`` shuffled passes of minibatch steps.

    ``optimizer`` must hold exactly ``value_fn``'s parameters (checked). Returns the full-batch
    loss before and after, and the explained variance of the targets after the fit (those
    full-batch passes run in chunks above the network's bound,
    :func:`trpo_ref.deep.policies.row_chunks`).
    """
    value_params = {id(p) for p in value_fn.parameters()}
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if held != value_params:
        raise ValueError("the value optimizer must hold exactly the value network's parameters")
    n = obs.shape[0]
    with torch.no_grad():
        loss_before = float((evaluate_in_chunks(value_fn, value_fn, obs) - targets).pow(2).mean())
    # Above the network's chunk bound (frames) each minibatch is gathered on its own: the same
    # rows without a second copy of the whole batch alive.
    gather_each = row_chunks(value_fn, n) is not None
    for _ in range(epochs):
        order = torch.randperm(n, generator=generator)
        if gather_each:
            shuffled_obs, shuffled_targets = obs, targets
        else:
            shuffled_obs, shuffled_targets = obs[order], targets[order]  # one gather per epoch
        for start in range(0, n, minibatch_size):
            batch = slice(start, start + minibatch_size)
            rows = order[batch] if gather_each else batch
            loss = (value_fn(shuffled_obs[rows]) - shuffled_targets[rows]).pow(2).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        del shuffled_obs, shuffled_targets  # before the next epoch's gather
    with torch.no_grad():
        residual = evaluate_in_chunks(value_fn, value_fn, obs) - targets
        loss_after = float(residual.pow(2).mean())
        target_var = float(targets.var()) if n > 1 else 0.0
        explained = 1.0 - float(residual.var()) / target_var if target_var > 0 else float("nan")
    return {
        "value/loss_before": loss_before,
        "value/loss_after": loss_after,
        "value/explained_variance": explained,
    }
