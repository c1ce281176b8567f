"""GAE by hand (termination vs truncation), its wiring in the loop, value fit, obs normalization."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from trpo_ref.deep.gae import gae
from trpo_ref.deep.normalize import RunningObsNormalizer
from trpo_ref.deep.policies import DiagGaussianMLP
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import get_flat_params
from trpo_ref.deep.trpo import Rollout, advantages_and_targets
from trpo_ref.deep.value import ValueMLP, fit_value

pytestmark = pytest.mark.quick

GAMMA, LAM = 0.9, 0.8
REWARDS = np.array([1.0, 2.0, 3.0])
VALUES = np.array([0.5, 1.0, 1.5])  # V(s_0), V(s_1), V(s_2)
V_FINAL = 2.0  # V(s_3), the observation after the last step


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    with torch_threads(1):
        yield


def three_step(terminated_at_end: bool) -> np.ndarray:
    next_values = np.array([1.0, 1.5, V_FINAL])
    terminated = np.array([False, False, terminated_at_end])
    episode_end = np.array([False, False, True])
    return gae(REWARDS, VALUES, next_values, terminated, episode_end, GAMMA, LAM)


def test_gae_three_step_episode_with_termination():
    # delta = (1 + .9*1 - .5, 2 + .9*1.5 - 1, 3 - 1.5) = (1.4, 2.35, 1.5); gamma*lam = .72
    # A_2 = 1.5; A_1 = 2.35 + .72 * 1.5 = 3.43; A_0 = 1.4 + .72 * 3.43 = 3.8696
    np.testing.assert_allclose(three_step(True), [3.8696, 3.43, 1.5], rtol=1e-12)


def test_gae_three_step_episode_with_truncation_bootstraps():
    # last delta = 3 + .9 * V_FINAL - 1.5 = 3.3; A_1 = 2.35 + .72 * 3.3 = 4.726;
    # A_0 = 1.4 + .72 * 4.726 = 4.80272
    np.testing.assert_allclose(three_step(False), [4.80272, 4.726, 3.3], rtol=1e-12)


def test_gae_does_not_leak_across_episodes():
    one = three_step(False)
    rewards = np.concatenate([REWARDS, REWARDS])
    values = np.concatenate([VALUES, VALUES])
    next_values = np.array([1.0, 1.5, V_FINAL] * 2)
    terminated = np.array([False, False, False, False, False, True])
    episode_end = np.array([False, False, True, False, False, True])
    both = gae(rewards, values, next_values, terminated, episode_end, GAMMA, LAM)
    np.testing.assert_allclose(both[:3], one, rtol=1e-12)
    np.testing.assert_allclose(both[3:], three_step(True), rtol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 0.99, 1.0])
def test_gae_lambda_one_zero_baseline_is_discounted_return(gamma):
    rewards = np.array([1.0, -2.0, 0.5, 4.0])
    zeros = np.zeros(4)
    ends = np.array([False, False, False, True])
    adv = gae(rewards, zeros, zeros, ends, ends, gamma, 1.0)
    expected = [sum(gamma**k * r for k, r in enumerate(rewards[t:])) for t in range(4)]
    np.testing.assert_allclose(adv, expected, rtol=1e-12)


def test_gae_lambda_zero_is_one_step_td_error():
    adv = gae(REWARDS, VALUES, np.array([1.0, 1.5, V_FINAL]), np.array([False] * 3),
              np.array([False, False, True]), GAMMA, 0.0)
    np.testing.assert_allclose(adv, [1.4, 2.35, 3.3], rtol=1e-12)


def test_gae_rejects_malformed_batches():
    with pytest.raises(ValueError, match="episode end"):
        gae(REWARDS, VALUES, VALUES, np.zeros(3, bool), np.zeros(3, bool), GAMMA, LAM)
    with pytest.raises(ValueError, match="shape"):
        gae(REWARDS, VALUES[:2], VALUES, np.zeros(3, bool), np.ones(3, bool), GAMMA, LAM)
    with pytest.raises(ValueError, match="terminated"):
        gae(REWARDS, VALUES, VALUES, np.array([True, False, False]),
            np.array([False, False, True]), GAMMA, LAM)


def constant_value(obs_dim: int, c: float) -> ValueMLP:
    value_fn = ValueMLP(obs_dim, hidden=(4,))
    with torch.no_grad():
        value_fn.net[-1].weight.zero_()
        value_fn.net[-1].bias.fill_(c)
    return value_fn


@pytest.mark.parametrize("terminated", [True, False])
def test_loop_bootstraps_from_final_observation_only_at_truncation(terminated):
    """advantages_and_targets wires V(final obs) in at truncation and 0 at termination."""
    c = 2.0
    obs = np.zeros((3, 2))
    rollout = Rollout(
        obs=obs, raw_obs=obs, act=np.zeros((3, 1)), rewards=REWARDS.copy(),
        terminated=np.array([False, False, terminated]),
        episode_end=np.array([False, False, True]),
        truncated_final={} if terminated else {2: np.ones(2)},
        episode_returns=[6.0], episode_lengths=[3],
    )
    adv, targets = advantages_and_targets(rollout, constant_value(2, c), GAMMA, LAM)
    values, next_values = np.full(3, c), np.full(3, c)
    expected = gae(REWARDS, values, next_values, rollout.terminated, rollout.episode_end,
                   GAMMA, LAM)
    np.testing.assert_allclose(adv, expected, rtol=1e-12)
    np.testing.assert_allclose(targets, expected + c, rtol=1e-12)
    assert adv[2] == pytest.approx(3.0 - c + (0.0 if terminated else GAMMA * c))


def test_value_fit_reduces_loss_and_never_moves_the_policy():
    torch.manual_seed(0)
    policy = DiagGaussianMLP(3, 2, hidden=(8,))
    value_fn = ValueMLP(3, hidden=(16,))
    policy_before = get_flat_params(policy)
    obs = torch.randn(512, 3, dtype=torch.float64)
    targets = 1.0 + obs[:, 0] - 2 * torch.tanh(obs[:, 1])
    optimizer = torch.optim.Adam(value_fn.parameters(), lr=1e-2)
    result = fit_value(value_fn, optimizer, obs, targets, epochs=20, minibatch_size=64,
                       generator=torch.Generator().manual_seed(0))
    assert result["value/loss_after"] < 0.5 * result["value/loss_before"]
    assert result["value/explained_variance"] > 0.5
    assert torch.equal(get_flat_params(policy), policy_before)
    wrong = torch.optim.Adam([*value_fn.parameters(), *policy.parameters()], lr=1e-2)
    with pytest.raises(ValueError, match="exactly the value network"):
        fit_value(value_fn, wrong, obs, targets)


def test_obs_normalizer_matches_pooled_statistics_and_stays_frozen():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 4)) for n in (5, 50, 17)]
    normalizer = RunningObsNormalizer(4, clip=100.0)
    x = rng.normal(size=(3, 4))
    np.testing.assert_allclose(normalizer(x), x / np.sqrt(1 + 1e-8))  # identity before data
    for batch in batches:
        normalizer.update(batch)
    pooled = np.concatenate(batches)
    np.testing.assert_allclose(normalizer.mean, pooled.mean(0), rtol=1e-12)
    np.testing.assert_allclose(normalizer.var, pooled.var(0), rtol=1e-12)
    first = normalizer(x)
    np.testing.assert_array_equal(normalizer(x), first)  # only update() changes it
    np.testing.assert_allclose(
        first, (x - pooled.mean(0)) / np.sqrt(pooled.var(0) + 1e-8), rtol=1e-12)
    assert RunningObsNormalizer(1, clip=1.0)(np.array([50.0])) == 1.0
