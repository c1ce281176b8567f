"""Stochastic policies for the deep-RL half: diagonal Gaussian (continuous) and categorical
MLPs, and the paper's Atari network (:class:`AtariCategoricalCNN`, with :class:`ValueCNN`).

Both map a batch of observations to *distribution parameters* (a tuple of tensors) and expose
the distribution's quantities as functions of those parameters, so that the step functions
(:mod:`trpo_ref.deep.step`) can hold pi_old fixed as detached parameters:

- ``dist_params(obs)``: the parameters; ``pi(.|s)`` for each row of ``obs``.
- ``log_prob_from(params, act)``, ``entropy_from(params)``: per state, shape (N,).
- ``kl_from(old, new)``: per-state KL(pi_old || pi_new), analytic, summed over action
  dimensions, shape (N,). The paper's constraint (eq. 12) is its mean over states.
- ``fisher_quadratic(params, tangent)``: per state, the t^T M t of the second-order expansion
  KL(p || p + t) = 1/2 t^T M t + O(|t|^3) in the distribution parameters (M is the Fisher
  information of the output distribution). The max-KL update uses it.
- ``sample(obs, generator)``: one action per row, drawn without torch.distributions (a Gaussian
  action is mean + std * randn; a categorical one is an inverse-CDF draw).

Architecture (section 8 and Table 2): tanh hidden layers; the Gaussian's log-std is a
state-independent parameter vector. Presets: ``"paper"``, one hidden layer (30 units for
Swimmer, 50 for Hopper and Walker), and ``"64x64"``, the common two-layer choice. The Atari
network (section 8): two conv layers of 16 channels, 4x4 filters, stride 2, then 20 units.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

DistParams = tuple[torch.Tensor, ...]

PRESETS = ("paper", "64x64")

# The convolutional networks compute in float32: torch's CPU float64 convolutions have no oneDNN
# kernel and run about 12x slower (2,000 Pong frame stacks: 13.6 s vs 1.1 s forward, one
# thread), at twice the memory. The MLPs stay float64.
FRAME_DTYPE = torch.float32

# The update's memory bound on frames (issue 16): a pass over Breakout's (4, 105, 80) stacks
# holds ~0.4 MiB of activations per row, so a batch of whole episodes (up to one 27K-step time
# limit) took 20 GiB in one pass. A CNN's passes over a batch of more than CHUNK_ABOVE rows run
# in chunks of CHUNK_ROWS rows (recomputed per chunk, summed); a batch of at most CHUNK_ABOVE
# rows is one pass, computed exactly as before. The MLPs' activations are a few KB per row:
# never chunked.
CHUNK_ABOVE = 8192
CHUNK_ROWS = 1024


def row_chunks(module: nn.Module, n: int) -> list[slice] | None:
    """The row ranges in which ``module``'s passes over a batch of ``n`` rows run: None (one
    pass over all rows) unless ``n`` exceeds the module's ``chunk_above``; then consecutive
    slices of at most its ``chunk_rows`` rows."""
    above = getattr(module, "chunk_above", None)
    if above is None or n <= above:
        return None
    return split_rows(n, module.chunk_rows)


def split_rows(n: int, size: int) -> list[slice]:
    """range(n) as consecutive slices of at most ``size`` rows."""
    return [slice(start, min(start + size, n)) for start in range(0, n, size)]


def hidden_sizes(preset: str, hidden: int = 50) -> tuple[int, ...]:
    """Hidden layer sizes of a preset: "paper" -> (hidden,), "64x64" -> (64, 64)."""
    if preset == "paper":
        if hidden < 1:
            raise ValueError(f"hidden must be >= 1, got {hidden}")
        return (hidden,)
    if preset == "64x64":
        return (64, 64)
    raise ValueError(f"unknown network preset {preset!r}; choose one of {PRESETS}")


def small_linear(in_dim: int, out_dim: int, dtype: torch.dtype) -> nn.Linear:
    """A linear output layer at 0.01 scale with zero bias (of :func:`tanh_mlp` and the CNNs)."""
    out = nn.Linear(in_dim, out_dim, dtype=dtype)
    with torch.no_grad():
        out.weight.mul_(0.01)
        out.bias.zero_()
    return out


def tanh_mlp(
    in_dim: int, out_dim: int, hidden: Sequence[int], dtype: torch.dtype = torch.float64
) -> nn.Sequential:
    """in_dim -> tanh hidden layers -> linear out_dim. The output layer starts at 0.01 scale.

    A small output layer makes the initial policy close to state-independent (mean ~ 0, uniform
    logits), the usual choice of rllab / modular_rl / Spinning Up.
    """
    layers: list[nn.Module] = []
    sizes = [in_dim, *hidden]
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b, dtype=dtype), nn.Tanh()]
    layers.append(small_linear(sizes[-1], out_dim, dtype))
    return nn.Sequential(*layers)


class PolicyModule(nn.Module):
    """What every policy shares: per-observation quantities from its distribution parameters.

    A subclass provides ``dist_params(obs)`` and the static ``log_prob_from``, ``kl_from`` and
    ``entropy_from`` of its distribution family."""

    def log_prob(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return self.log_prob_from(self.dist_params(obs), act)

    def kl(self, old_params: DistParams, obs: torch.Tensor) -> torch.Tensor:
        """Per-state KL(pi_old || pi_theta); ``old_params`` should be detached."""
        return self.kl_from(old_params, self.dist_params(obs))

    def entropy(self, obs: torch.Tensor) -> torch.Tensor:
        return self.entropy_from(self.dist_params(obs))


class DiagGaussianMLP(PolicyModule):
    """pi(a|s) = N(mu_theta(s), diag(exp(2 log_std))); params = (mean (N, A), log_std (N, A))."""

    def __init__(
        self,
        obs_dim: int,
        act_dim: int,
        hidden: Sequence[int] = (64, 64),
        log_std_init: float = 0.0,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.mean_net = tanh_mlp(obs_dim, act_dim, hidden, dtype)
        self.log_std = nn.Parameter(torch.full((act_dim,), float(log_std_init), dtype=dtype))

    def dist_params(self, obs: torch.Tensor) -> DistParams:
        mean = self.mean_net(obs)
        return mean, self.log_std.expand_as(mean)

    forward = dist_params

    @staticmethod
    def log_prob_from(params: DistParams, act: torch.Tensor) -> torch.Tensor:
        mean, log_std = params
        z = (act - mean) * torch.exp(-log_std)
        per_dim = -0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)
        return per_dim.sum(-1)

    @staticmethod
    def kl_from(old: DistParams, new: DistParams) -> torch.Tensor:
        """KL(N_old || N_new) per state, summed over action dimensions:
        sum_i log(s_new/s_old) + (s_old^2 + (mu_old - mu_new)^2) / (2 s_new^2) - 1/2."""
        mean_old, log_std_old = old
        mean_new, log_std_new = new
        var_ratio = torch.exp(2 * (log_std_old - log_std_new))
        mean_term = (mean_old - mean_new).pow(2) * torch.exp(-2 * log_std_new)
        per_dim = log_std_new - log_std_old + 0.5 * (var_ratio + mean_term) - 0.5
        return per_dim.sum(-1)

    @staticmethod
    def entropy_from(params: DistParams) -> torch.Tensor:
        _, log_std = params
        return (log_std + 0.5 * math.log(2 * math.pi * math.e)).sum(-1)

    @staticmethod
    def representable_from(params: DistParams) -> bool:
        """Whether every N(mu, s^2) is a distribution in floating point: mu and s = exp(log_std)
        finite and s > 0 (a huge log_std overflows s to inf though the KL, computed from
        log_std, stays finite)."""
        mean, log_std = params
        std = torch.exp(log_std)
        return bool(torch.isfinite(mean).all() and torch.isfinite(std).all() and (std > 0).all())

    def representable(self) -> bool:
        """Whether every action distribution is representable, read from the parameters alone
        (no forward pass): s = exp(log_std) finite and > 0. The line search's check: a finite
        mean is not checked here because a non-finite one makes the KL non-finite, which the
        line search rejects anyway; an overflowed s is the one failure the KL (from log_std)
        and the surrogate do not show (:meth:`representable_from` checks the means as well)."""
        std = torch.exp(self.log_std.detach())
        return bool(torch.isfinite(std).all() and (std > 0).all())

    @staticmethod
    def fisher_quadratic(params: DistParams, tangent: DistParams) -> torch.Tensor:
        """t^T M t per state: sum_i d_mu_i^2 / s_i^2 + 2 d_log_std_i^2."""
        _, log_std = params
        d_mean, d_log_std = tangent
        return (d_mean.pow(2) * torch.exp(-2 * log_std) + 2 * d_log_std.pow(2)).sum(-1)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        mean = self.mean_net(obs)
        noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype)
        return mean + torch.exp(self.log_std) * noise


class Categorical(PolicyModule):
    """pi(a|s) = softmax(logits_net(s)); params = (normalized log-probabilities (N, K),).

    The categorical distribution's quantities, shared by :class:`CategoricalMLP` and
    :class:`AtariCategoricalCNN`; a subclass sets ``logits_net`` and ``n_actions``."""

    logits_net: nn.Module
    n_actions: int

    def dist_params(self, obs: torch.Tensor) -> DistParams:
        return (torch.log_softmax(self.logits_net(obs), dim=-1),)

    forward = dist_params

    @staticmethod
    def log_prob_from(params: DistParams, act: torch.Tensor) -> torch.Tensor:
        (log_p,) = params
        return log_p.gather(-1, act.long().unsqueeze(-1)).squeeze(-1)

    @staticmethod
    def kl_from(old: DistParams, new: DistParams) -> torch.Tensor:
        """KL(p_old || p_new) = sum_a p_old(a) (log p_old(a) - log p_new(a)) per state."""
        (log_p_old,), (log_p_new,) = old, new
        return (torch.exp(log_p_old) * (log_p_old - log_p_new)).sum(-1)

    @staticmethod
    def entropy_from(params: DistParams) -> torch.Tensor:
        (log_p,) = params
        return -(torch.exp(log_p) * log_p).sum(-1)

    @staticmethod
    def representable_from(params: DistParams) -> bool:
        """Whether every row is a distribution in floating point: log-probabilities without NaN
        or +inf (-inf is a zero probability)."""
        (log_p,) = params
        return bool(not torch.isnan(log_p).any() and not (log_p == math.inf).any())

    def representable(self) -> bool:
        """Always True, read without a forward pass: a log_softmax row with a NaN or +inf
        (:meth:`representable_from`) makes the KL NaN, which the line search rejects anyway."""
        return True

    @staticmethod
    def fisher_quadratic(params: DistParams, tangent: DistParams) -> torch.Tensor:
        """t^T M t per state: Var_{a~p}(d log p(a)) = sum_a p dl^2 - (sum_a p dl)^2."""
        (log_p,), (d_log_p,) = params, tangent
        p = torch.exp(log_p)
        return (p * d_log_p.pow(2)).sum(-1) - (p * d_log_p).sum(-1).pow(2)

    @torch.no_grad()
    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        probs = torch.softmax(self.logits_net(obs), dim=-1)
        u = torch.rand((*probs.shape[:-1], 1), generator=generator, dtype=probs.dtype)
        index = torch.searchsorted(probs.cumsum(-1), u).squeeze(-1)
        return index.clamp_(max=self.n_actions - 1)  # guards cumsum rounding below u


class CategoricalMLP(Categorical):
    """Categorical policy whose logits are a tanh MLP of a 1-D observation."""

    def __init__(
        self,
        obs_dim: int,
        n_actions: int,
        hidden: Sequence[int] = (64, 64),
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.obs_dim, self.n_actions = obs_dim, n_actions
        self.logits_net = tanh_mlp(obs_dim, n_actions, hidden, dtype)


# --- the paper's Atari network -------------------------------------------------------------------

class ConvTrunk(nn.Module):
    """Section 8 / Table 1's network below its output layer: uint8 frames (..., C, H, W) ->
    x / 255 -> conv(16, 4x4, stride 2) -> ReLU -> conv(16, 4x4, stride 2) -> ReLU -> dense 20
    -> ReLU; output (..., 20). Any leading batch shape, none included.

    The paper gives channels, filters, strides and the 20 units but not the nonlinearity; ReLU
    is our choice (that of the DQN network the paper compares with). Frames are scaled by a
    fixed 1/255 instead of running statistics, so there is nothing to freeze during an update.
    """

    def __init__(
        self,
        frame_shape: Sequence[int],
        channels: int = 16,
        kernel: int = 4,
        stride: int = 2,
        hidden: int = 20,
        dtype: torch.dtype = FRAME_DTYPE,
    ) -> None:
        super().__init__()
        in_channels, height, width = frame_shape
        for _ in range(2):
            height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
        if height < 1 or width < 1:
            raise ValueError(f"frames of shape {tuple(frame_shape)} are too small for two "
                             f"{kernel}x{kernel} stride-{stride} convolutions")
        self.frame_shape = tuple(frame_shape)
        self.layers = nn.Sequential(
            nn.Conv2d(in_channels, channels, kernel, stride, dtype=dtype), nn.ReLU(),
            nn.Conv2d(channels, channels, kernel, stride, dtype=dtype), nn.ReLU(),
            nn.Flatten(),
            nn.Linear(channels * height * width, hidden, dtype=dtype), nn.ReLU(),
        )
        self.dtype = dtype

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        lead = frames.shape[:-3]
        # div_ on a fresh float copy (copy=True: never the caller's tensor): the numbers of
        # x / 255 without a second float copy of the batch alive
        x = frames.reshape(-1, *self.frame_shape).to(self.dtype, copy=True).div_(255.0)
        return self.layers(x).reshape(*lead, -1)


class AtariCategoricalCNN(Categorical):
    """Categorical policy on stacked frames (C, H, W): :class:`ConvTrunk` -> linear logits.
    ``channels`` and ``hidden`` default to the paper's 16 and 20 (smaller ones: tests)."""

    def __init__(
        self,
        frame_shape: Sequence[int],
        n_actions: int,
        hidden: int = 20,
        channels: int = 16,
        dtype: torch.dtype = FRAME_DTYPE,
    ) -> None:
        super().__init__()
        self.frame_shape, self.n_actions = tuple(frame_shape), n_actions
        self.chunk_above, self.chunk_rows = CHUNK_ABOVE, CHUNK_ROWS  # see row_chunks
        trunk = ConvTrunk(frame_shape, channels=channels, hidden=hidden, dtype=dtype)
        self.logits_net = nn.Sequential(trunk, small_linear(hidden, n_actions, dtype))


class ValueCNN(nn.Module):
    """V(s) on stacked frames: its own :class:`ConvTrunk` -> linear; (..., C, H, W) -> (...)."""

    def __init__(
        self,
        frame_shape: Sequence[int],
        hidden: int = 20,
        channels: int = 16,
        dtype: torch.dtype = FRAME_DTYPE,
    ) -> None:
        super().__init__()
        trunk = ConvTrunk(frame_shape, channels=channels, hidden=hidden, dtype=dtype)
        self.net = nn.Sequential(trunk, small_linear(hidden, 1, dtype))
        self.chunk_above, self.chunk_rows = CHUNK_ABOVE, CHUNK_ROWS  # see row_chunks

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs).squeeze(-1)


def evaluate_in_chunks(module: nn.Module, fn: Callable[[torch.Tensor], Any],
                       obs: torch.Tensor) -> Any:
    """``fn(obs)`` (a tensor or a tuple of tensors, one row per row of ``obs``), computed over
    :func:`row_chunks` of ``module`` and concatenated; exactly ``fn(obs)`` when there is one
    pass. For passes without a graph (under torch.no_grad): a chunk's activations are freed
    before the next chunk runs."""
    chunks = row_chunks(module, obs.shape[0])
    if chunks is None:
        return fn(obs)
    parts = [fn(obs[rows]) for rows in chunks]
    if isinstance(parts[0], tuple):
        return tuple(torch.cat(column) for column in zip(*parts, strict=True))
    return torch.cat(parts)


Policy = DiagGaussianMLP | CategoricalMLP | AtariCategoricalCNN
