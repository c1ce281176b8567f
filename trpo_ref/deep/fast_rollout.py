"""pi_old's per-step sampler in numpy, for :func:`trpo_ref.deep.trpo.collect_rollout`.

A torch call on one observation costs ~70 us of dispatch overhead against ~110 us for a
gymnasium Hopper step, so the rollout runs the policy in numpy float64 instead, on weights
copied from the torch module once per batch (pi_old is fixed during a rollout). The numbers are
the torch policy's: the forward pass agrees with torch's to rounding (~1e-15, tested to 1e-12),
the noise comes from the run's seeded torch generator, and the update scores the stored
actions with the torch policy (:func:`trpo_ref.deep.step.make_batch`), so nothing downstream
depends on how an action was drawn.

Noise is drawn from the generator in blocks of ``block`` rows (a Gaussian policy: standard
normals; a categorical one: uniforms for an inverse-CDF draw, as in ``policy.sample``); the
unused rest of the last block is dropped. Same generator state, same actions: a run stays
deterministic, and a resumed run continues with the generator state saved after the batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
import torch
from torch import nn

from trpo_ref.deep.policies import DiagGaussianMLP, Policy

Layers = list[tuple[np.ndarray, np.ndarray]]


def numpy_layers(mlp: nn.Sequential) -> Layers:
    """(W^T, b) of each Linear of a :func:`~trpo_ref.deep.policies.tanh_mlp`, as float64 copies."""
    return [
        (module.weight.detach().to(torch.float64).numpy().T.copy(),
         module.bias.detach().to(torch.float64).numpy().copy())
        for module in mlp if isinstance(module, nn.Linear)
    ]


def mlp_forward(layers: Layers, x: np.ndarray) -> np.ndarray:
    """The tanh MLP on ``x`` (obs_dim,) or (N, obs_dim): tanh after every layer but the last."""
    for weight_t, bias in layers[:-1]:
        x = np.tanh(x @ weight_t + bias)
    weight_t, bias = layers[-1]
    return x @ weight_t + bias


def is_tanh_mlp(module: nn.Module | None) -> bool:
    """``module`` is Linear, (Tanh, Linear)*: what :func:`mlp_forward` computes."""
    if not isinstance(module, nn.Sequential) or len(module) % 2 == 0:
        return False
    return all(isinstance(layer, nn.Linear if i % 2 == 0 else nn.Tanh)
               for i, layer in enumerate(module))


class NumpySampler:
    """Draws a ~ pi(.|obs) for one observation at a time with a frozen copy of ``policy``
    (a DiagGaussianMLP or a categorical policy whose ``logits_net`` is a tanh MLP).

    Gaussian: mean(obs) + exp(log_std) * z with z ~ N(0, I); categorical: the first index whose
    cumulative probability reaches u ~ U[0, 1) (clamped to the last action)."""

    def __init__(self, policy: Policy, generator: torch.Generator, block: int = 1024) -> None:
        self.generator, self.block = generator, block
        self.categorical = not isinstance(policy, DiagGaussianMLP)
        if self.categorical:
            self.layers = numpy_layers(policy.logits_net)
            self.noise_shape: tuple[int, ...] = ()
        else:
            self.layers = numpy_layers(policy.mean_net)
            self.std = np.exp(policy.log_std.detach().to(torch.float64).numpy())
            self.noise_shape = (policy.act_dim,)
        self.noise = np.empty((0, *self.noise_shape))
        self.next_row = 0

    def _draw(self) -> np.ndarray:
        if self.next_row == len(self.noise):
            shape = (self.block, *self.noise_shape)
            draw = torch.rand if self.categorical else torch.randn
            self.noise = draw(shape, generator=self.generator, dtype=torch.float64).numpy()
            self.next_row = 0
        row = self.noise[self.next_row]
        self.next_row += 1
        return row

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        out = mlp_forward(self.layers, obs)
        noise = self._draw()
        if not self.categorical:
            return out + self.std * noise
        probs = np.exp(out - out.max())
        cdf = np.cumsum(probs / probs.sum())
        return np.asarray(min(int(np.searchsorted(cdf, noise)), len(cdf) - 1))


def make_sampler(
    policy: Policy, generator: torch.Generator
) -> Callable[[np.ndarray], np.ndarray]:
    """obs -> action for one observation: a :class:`NumpySampler` where the policy's network is
    a tanh MLP, else ``policy.sample`` in torch (e.g. the Atari CNN, where the network's own
    cost dwarfs torch's per-call overhead)."""
    net = policy.mean_net if isinstance(policy, DiagGaussianMLP) else policy.logits_net
    if is_tanh_mlp(net):
        return NumpySampler(policy, generator)
    return lambda obs: policy.sample(torch.as_tensor(obs), generator).numpy()


def all_finite(obs: np.ndarray, reward: float) -> bool:
    """Every entry of ``obs`` and ``reward`` is finite (the per-step test; the caller builds
    its error message only when this fails). Fast path: a sum of squares is finite only if
    every entry is (NaN and inf propagate); one that overflows falls back to the exact test."""
    if not math.isfinite(reward):
        return False
    flat = obs.ravel()
    return math.isfinite(float(flat @ flat)) or bool(np.isfinite(obs).all())
