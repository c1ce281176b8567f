"""Vine sampling (section 5.2): state restore, common random numbers, exact step counts,
determinism, the advantages and surrogates, unsupported environments, and training runs."""

from __future__ import annotations

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest
import torch

import trpo_ref.deep.vine as vine
from trpo_ref.deep.trpo import TRPOConfig, make_env, make_policy, make_value, seed_everything, train
from trpo_ref.deep.vine import (
    BranchResult,
    ReplaySampler,
    collect_vine,
    get_sim_state,
    q_values,
    run_branch,
    self_normalized_surrogate,
    set_sim_state,
    steps_into_episode,
    vine_advantages,
)

pytestmark = pytest.mark.quick

TASKS = ["CartPole-v1", "InvertedPendulum-v5", "Hopper-v5"]


def setup(env_id: str, seed: int = 0):
    """A seeded env, a small policy and value network for it."""
    config = TRPOConfig(env_id=env_id, network="paper", hidden=8, seed=seed)
    env = make_env(env_id)
    seed_everything(seed)
    env.action_space.seed(seed)
    return env, make_policy(config, env), make_value(config, env)


def vine_batch(env, policy, value_fn, seed: int, **overrides):
    settings = {"trunk_steps": 100, "n_states": 6, "n_actions": 3, "horizon": 15, "gamma": 0.99}
    settings.update(overrides)
    return collect_vine(env, policy, value_fn, np.asarray, generator=torch.Generator()
                        .manual_seed(seed), reset_seed=seed, **settings)


def safe_actions(env, n: int) -> list:
    """Actions that keep CartPole up for a few steps (alternating); random ones elsewhere."""
    if isinstance(env.action_space, gym.spaces.Discrete):
        return [i % 2 for i in range(n)]
    return [env.action_space.sample() * 0.1 for _ in range(n)]


@pytest.mark.parametrize("env_id", TASKS)
def test_restored_state_repeats_the_next_steps_bit_for_bit(env_id):
    env, _, _ = setup(env_id)
    env.reset(seed=1)
    actions = safe_actions(env, 12)
    for a in actions[:4]:
        env.step(a)
    saved = get_sim_state(env)
    first = [env.unwrapped.step(a)[:2] for a in actions[4:8]]
    for a in actions[8:]:  # wander off, then come back
        env.unwrapped.step(a)
    set_sim_state(env, saved)
    again = [env.unwrapped.step(a)[:2] for a in actions[4:8]]
    for (obs1, r1), (obs2, r2) in zip(first, again, strict=True):
        assert np.array_equal(obs1, obs2) and r1 == r2


@pytest.mark.parametrize("env_id", TASKS)
def test_a_branch_replays_exactly_and_depends_on_its_action_and_noise(env_id):
    env, policy, _ = setup(env_id)
    obs, _ = env.reset(seed=2)
    saved = get_sim_state(env)
    gen = torch.Generator().manual_seed(0)
    noise = vine.branch_noise(policy, 9, gen)
    other_noise = vine.branch_noise(policy, 9, gen)
    sampler = ReplaySampler(policy)
    a0, a1 = vine.branch_actions(policy, obs, 2, gen)[:2]

    def branch(action, eps):
        return run_branch(env, saved, action, eps, sampler, np.asarray, 10, 0.99)

    def key(result):
        final = None if result.bootstrap_obs is None else result.bootstrap_obs.tolist()
        return result.discounted_return, result.steps, final

    first = branch(a0, noise)
    branch(a1, other_noise)
    assert key(branch(a0, noise)) == key(first)
    assert 1 <= first.steps <= 10
    if isinstance(env.action_space, gym.spaces.Box):  # continuous states: anything changes them
        assert key(branch(a0, other_noise)) != key(first)
        assert key(branch(a1, noise)) != key(first)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
def test_the_k_branches_of_a_state_share_their_noise(env_id, monkeypatch):
    env, policy, value_fn = setup(env_id)
    calls = []
    real_run_branch = vine.run_branch

    def spy(env, state, first_action, noise, *args):
        calls.append((id(state), noise))
        return real_run_branch(env, state, first_action, noise, *args)

    monkeypatch.setattr(vine, "run_branch", spy)
    batch = vine_batch(env, policy, value_fn, seed=3, n_actions=4)
    k = batch.q.shape[1]
    assert k == (2 if env_id == "CartPole-v1" else 4)  # Discrete actions: all enumerated
    assert len(calls) == len(batch.rows) * k
    for n in range(len(batch.rows)):
        group = calls[n * k:(n + 1) * k]
        assert len({state for state, _ in group}) == 1  # one restored state per rollout-set row
        assert all(noise is group[0][1] for _, noise in group)  # common random numbers
    assert calls[0][1] is not calls[k][1]  # states draw their own noise


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5", "Hopper-v5"])
def test_steps_are_counted_exactly(env_id, monkeypatch):
    env, policy, value_fn = setup(env_id)
    base = env.unwrapped
    count = {"n": 0}
    real_step = type(base).step

    def counting_step(self, action):
        count["n"] += 1
        return real_step(self, action)

    monkeypatch.setattr(type(base), "step", counting_step)
    batch = vine_batch(env, policy, value_fn, seed=4)
    assert batch.total_steps == count["n"]
    assert batch.total_steps == len(batch.trunk.rewards) + int(batch.branch_steps.sum())
    assert (batch.branch_steps >= 1).all() and (batch.branch_steps <= 15).all()
    assert len(batch.trunk.rewards) >= 100 and len(batch.rows) == 6


def test_branches_stop_at_the_time_limit():
    """A rollout-set state t steps into its episode gets at most max_episode_steps - t steps."""
    _, policy, value_fn = setup("InvertedPendulum-v5")
    env = gym.wrappers.RecordEpisodeStatistics(gym.make("InvertedPendulum-v5",
                                                        max_episode_steps=12))
    batch = vine_batch(env, policy, value_fn, seed=5, trunk_steps=60, n_states=30, horizon=50)
    left = 12 - steps_into_episode(batch.trunk.episode_end)[batch.rows]
    assert (batch.branch_steps <= left[:, None]).all()
    assert (batch.branch_steps == left[:, None]).any()


def test_same_seed_same_batch_other_seed_differs():
    env, policy, value_fn = setup("InvertedPendulum-v5")
    a = vine_batch(env, policy, value_fn, seed=6)
    b = vine_batch(env, policy, value_fn, seed=6)
    c = vine_batch(env, policy, value_fn, seed=7)
    for field in ("rows", "obs", "act", "q", "adv", "branch_steps"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert not np.array_equal(a.q, c.q)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Acrobot-v1", "MountainCarContinuous-v0"])
def test_unsupported_environments_raise_before_anything_is_written(env_id, tmp_path):
    env, policy, value_fn = setup(env_id)
    with pytest.raises(ValueError, match="cannot restore the state"):
        vine_batch(env, policy, value_fn, seed=0)
    config = TRPOConfig(env_id=env_id, sampling="vine", total_steps=200, steps_per_iter=100,
                        vine_states=5)
    with pytest.raises(ValueError, match="cannot restore the state"):
        train(config, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(("changes", "field"), [
    ({"sampling": "tree"}, "sampling"),
    ({"sampling": "vine", "vine_states": 101, "steps_per_iter": 100}, "vine_states"),
    ({"vine_states": 0}, "vine_states"),
    ({"vine_actions": 1}, "vine_actions"),
    ({"vine_horizon": 0}, "vine_horizon"),
])
def test_bad_vine_settings_raise_naming_the_field(changes, field):
    with pytest.raises(ValueError, match=field):
        TRPOConfig(env_id="CartPole-v1", **changes).validate()


def test_steps_into_episode_by_hand():
    ends = np.array([False, False, True, False, True, False])
    assert steps_into_episode(ends).tolist() == [0, 1, 2, 0, 1, 0]


def test_q_values_bootstrap_only_where_cut():
    results = [BranchResult(2.0, 3, np.zeros(2)), BranchResult(1.5, 2, None)]

    def value_fn(obs):
        return torch.full((obs.shape[0],), 10.0, dtype=torch.float64)

    np.testing.assert_allclose(q_values(results, value_fn, 0.5), [2.0 + 0.125 * 10.0, 1.5])
    np.testing.assert_allclose(q_values(results, None, 0.5), [2.0, 1.5])


def test_vine_advantages_by_hand():
    adv, baseline = vine_advantages(np.array([[1.0, 2.0, 3.0, 6.0]]))
    assert baseline.tolist() == [3.0] and adv.tolist() == [[-2.0, -1.0, 0.0, 3.0]]
    adv, baseline = vine_advantages(np.array([[4.0, 8.0]]), np.array([[0.25, 0.75]]))
    assert baseline.tolist() == [7.0] and adv.tolist() == [[-1.5, 1.5]]


def test_enumerated_rows_give_the_papers_finite_action_surrogate_exactly():
    """mean_a (pi_theta(a)/pi_old(a)) A_a = sum_a pi_theta(a) Q_a - b at any pi_theta."""
    rng = np.random.default_rng(0)
    q, p_old = rng.normal(size=(5, 3)), rng.dirichlet(np.ones(3), size=5)
    p_new = rng.dirichlet(np.ones(3), size=5)
    adv, baseline = vine_advantages(q, p_old)
    np.testing.assert_allclose((p_new / p_old * adv).mean(axis=1),
                               (p_new * q).sum(axis=1) - baseline, atol=1e-12)


def test_self_normalized_surrogate_has_the_baselined_gradient_at_theta_old():
    """At w = 1 the gradient of sum_k w_k Q_k / sum_k w_k equals that of mean_k w_k (Q_k -
    mean Q), the form the update optimizes; values: the mean Q at w = 1."""
    rng = np.random.default_rng(1)
    q = torch.as_tensor(rng.normal(size=(4, 5)))
    log_ratio = torch.zeros(4, 5, dtype=torch.float64, requires_grad=True)
    value = self_normalized_surrogate(log_ratio, q)
    (grad_sn,) = torch.autograd.grad(value, log_ratio)
    adv = torch.as_tensor(vine_advantages(q.numpy())[0])
    (grad_is,) = torch.autograd.grad((torch.exp(log_ratio) * adv).mean(dim=1).mean(), log_ratio)
    torch.testing.assert_close(grad_sn, grad_is, rtol=1e-12, atol=1e-15)
    assert float(value.detach()) == pytest.approx(float(q.mean()))
    assert float(self_normalized_surrogate(torch.zeros(1, 2), torch.tensor([[1.0, 3.0]]))) == 2.0


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
def test_a_short_vine_training_run_runs_and_logs(env_id, tmp_path):
    config = TRPOConfig(env_id=env_id, sampling="vine", total_steps=1_500, steps_per_iter=200,
                        vine_states=20, vine_horizon=20, network="paper", hidden=8, seed=2)
    history = train(config, out_dir=tmp_path)
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(logged) == len(history) >= 2
    steps = 0
    for row in logged:
        steps += row["rollout/steps"]
        assert row["global/steps"] == steps
        assert row["rollout/steps"] == row["vine/trunk_steps"] + row["vine/branch_steps"]
        assert row["vine/trunk_steps"] >= 200 and row["vine/states"] == 20
        assert row["vine/actions_per_state"] == (2 if env_id == "CartPole-v1" else 4)
        if row["train/accepted"]:
            assert row["train/kl_mean"] <= config.delta
        if env_id == "InvertedPendulum-v5":
            assert row["vine/surrogate_self_normalized_actual"] is not None
    assert without_times(train(config)) == without_times(history)


def without_times(history):
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in history]


def test_vine_run_resumes_to_the_uninterrupted_numbers(tmp_path):
    config = TRPOConfig(env_id="InvertedPendulum-v5", sampling="vine", total_steps=1_200,
                        steps_per_iter=150, vine_states=10, vine_horizon=20, network="paper",
                        hidden=8, seed=1, checkpoint_every=0)
    whole = train(config, out_dir=tmp_path / "whole")
    train(dataclasses.replace(config, total_steps=500), out_dir=tmp_path / "parts")
    resumed = train(config, out_dir=tmp_path / "parts", resume=True)
    assert without_times(resumed) == without_times(whole)[-len(resumed):]
    assert len(resumed) < len(whole)
