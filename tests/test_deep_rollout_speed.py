"""The rollout's numpy sampler (trpo_ref.deep.fast_rollout) draws exactly the torch policy's
actions, and training with it stays deterministic."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from trpo_ref.deep.fast_rollout import (
    NumpySampler,
    all_finite,
    is_tanh_mlp,
    make_sampler,
    mlp_forward,
    numpy_layers,
)
from trpo_ref.deep.normalize import RunningObsNormalizer
from trpo_ref.deep.policies import CategoricalMLP, DiagGaussianMLP
from trpo_ref.deep.trpo import TRPOConfig, collect_rollout, make_env, make_policy, train

NETWORKS = [(50,), (64, 64), (7, 5, 3)]


def _trained_looking(policy: nn.Module, seed: int) -> nn.Module:
    """Perturb every parameter so the output layer is not ~0 (as it is at initialization)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in policy.parameters():
            param.add_(0.5 * torch.randn(param.shape, generator=gen, dtype=param.dtype))
    return policy


@pytest.mark.parametrize("hidden", NETWORKS)
@pytest.mark.parametrize("shape", [(11,), (200, 11)])
def test_numpy_forward_equals_torch_forward(hidden, shape):
    policy = _trained_looking(DiagGaussianMLP(11, 3, hidden), seed=1)
    obs = np.random.default_rng(2).normal(scale=3.0, size=shape)
    expected = policy.mean_net(torch.as_tensor(obs)).detach().numpy()
    got = mlp_forward(numpy_layers(policy.mean_net), obs)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("hidden", NETWORKS)
def test_gaussian_sampler_is_mean_plus_std_times_the_generators_noise(hidden):
    policy = _trained_looking(DiagGaussianMLP(5, 2, hidden, log_std_init=-0.7), seed=3)
    obs = np.random.default_rng(4).normal(size=(2_500, 5))  # spans three noise blocks of 1024
    sample = NumpySampler(policy, torch.Generator().manual_seed(5))
    got = np.stack([sample(row) for row in obs])
    replay = torch.Generator().manual_seed(5)
    noise = torch.cat([torch.randn((1024, 2), generator=replay, dtype=torch.float64)
                       for _ in range(3)])[: len(obs)]
    with torch.no_grad():
        expected = policy.mean_net(torch.as_tensor(obs)) + torch.exp(policy.log_std) * noise
    np.testing.assert_allclose(got, expected.numpy(), rtol=0, atol=1e-12)


@pytest.mark.parametrize("hidden", NETWORKS)
def test_categorical_sampler_is_the_torch_inverse_cdf_draw(hidden):
    policy = _trained_looking(CategoricalMLP(4, 5, hidden), seed=6)
    obs = np.random.default_rng(7).normal(size=(1_500, 4))
    sample = NumpySampler(policy, torch.Generator().manual_seed(8))
    got = np.array([sample(row) for row in obs])
    replay = torch.Generator().manual_seed(8)
    u = torch.cat([torch.rand((1024,), generator=replay, dtype=torch.float64)
                   for _ in range(2)])[: len(obs)]
    with torch.no_grad():
        cdf = torch.softmax(policy.logits_net(torch.as_tensor(obs)), dim=-1).cumsum(-1)
    expected = torch.searchsorted(cdf, u.unsqueeze(-1)).squeeze(-1).clamp(max=4).numpy()
    np.testing.assert_array_equal(got, expected)
    assert set(np.unique(got)) == set(range(5))  # every action is drawn: not a constant


@pytest.mark.parametrize(("net", "expected"), [
    (nn.Sequential(nn.Linear(3, 4)), True),
    (nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)), True),
    (nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)), False),
    (nn.Sequential(nn.Linear(3, 4), nn.Tanh()), False),
    (nn.Linear(3, 4), False),
])
def test_is_tanh_mlp(net, expected):
    assert is_tanh_mlp(net) is expected


def test_other_networks_fall_back_to_the_torch_sampler():
    policy = CategoricalMLP(3, 4, (8,))
    policy.logits_net = nn.Sequential(nn.Linear(3, 8, dtype=torch.float64), nn.ReLU(),
                                      nn.Linear(8, 4, dtype=torch.float64))
    sample = make_sampler(policy, torch.Generator().manual_seed(0))
    assert not isinstance(sample, NumpySampler)
    obs = np.random.default_rng(1).normal(size=(50, 3))
    replay = torch.Generator().manual_seed(0)
    expected = [int(policy.sample(torch.as_tensor(row), replay)) for row in obs]
    assert [int(sample(row)) for row in obs] == expected


@pytest.mark.parametrize(("obs", "reward", "expected"), [
    ([0.0, -2.5, 1e300], 1.0, True),
    ([1e308, 1e308], 0.0, True),
    ([0.0, np.nan], 0.0, False),
    ([np.inf, 0.0], 0.0, False),
    ([np.inf, -np.inf], 0.0, False),
    ([0.0, 1.0], float("nan"), False),
    ([0.0, 1.0], float("-inf"), False),
])
def test_all_finite(obs, reward, expected):
    assert all_finite(np.asarray(obs, dtype=np.float64), reward) is expected


def test_rollout_actions_are_the_torch_policys_draws_on_the_stored_observations():
    config = TRPOConfig(env_id="InvertedPendulum-v5", seed=2)
    env = make_env(config.env_id)
    try:
        policy = _trained_looking(make_policy(config, env), seed=9)
        normalizer = RunningObsNormalizer(env.observation_space.shape[0])
        normalizer.update(np.random.default_rng(3).normal(size=(100, 4)))
        rollout = collect_rollout(env, policy, normalizer, 1_500,
                                  torch.Generator().manual_seed(4), reset_seed=5)
    finally:
        env.close()
    np.testing.assert_array_equal(rollout.obs, normalizer(rollout.raw_obs))
    replay = torch.Generator().manual_seed(4)
    n = len(rollout.act)
    noise = torch.cat([torch.randn((1024, 1), generator=replay, dtype=torch.float64)
                       for _ in range(-(-n // 1024))])[:n]
    with torch.no_grad():
        expected = policy.mean_net(torch.as_tensor(rollout.obs)) + torch.exp(policy.log_std) * noise
    np.testing.assert_allclose(rollout.act, expected.numpy(), rtol=0, atol=1e-12)


def test_same_seed_same_metrics_on_a_continuous_task():
    config = TRPOConfig(env_id="InvertedPendulum-v5", total_steps=1_500, steps_per_iter=500,
                        seed=1)

    def untimed(history):
        return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in history]

    first, second = untimed(train(config)), untimed(train(config))
    assert len(first) >= 3
    assert first == second


@pytest.mark.parametrize("normalized", [False, True])
def test_raw_obs_shares_the_obs_array_only_where_normalize_returned_its_input(normalized):
    """Frames (normalize = np.asarray) keep one array for obs and raw_obs; a normalizer's
    output is a new array per row, so raw_obs is its own copy of the env's rows."""
    config = TRPOConfig(env_id="InvertedPendulum-v5", seed=4)
    env = make_env(config.env_id)
    try:
        policy = make_policy(config, env)
        normalize = RunningObsNormalizer(env.observation_space.shape[0]) if normalized \
            else np.asarray
        rollout = collect_rollout(env, policy, normalize, 50, torch.Generator().manual_seed(0),
                                  reset_seed=4)
    finally:
        env.close()
    assert (rollout.raw_obs is rollout.obs) is not normalized
    expected = np.clip(rollout.raw_obs, -10, 10) if normalized else rollout.raw_obs
    np.testing.assert_allclose(rollout.obs, expected, rtol=0, atol=1e-7)
