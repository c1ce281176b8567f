"""The training loop on gymnasium: determinism, a short learning check, logs, bad input."""

from __future__ import annotations

import dataclasses
import json
import math

import gymnasium as gym
import numpy as np
import pytest

from trpo_ref.deep.step import ALGOS
from trpo_ref.deep.trpo import TRPOConfig, train

pytestmark = pytest.mark.quick

CARTPOLE = TRPOConfig(env_id="CartPole-v1", total_steps=1_500, steps_per_iter=500, seed=3)


def without_timings(history):
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in history]


def test_same_seed_same_numbers_and_other_seed_differs():
    first, second = train(CARTPOLE), train(CARTPOLE)
    assert len(first) >= 3
    assert without_timings(first) == without_timings(second)
    other = train(dataclasses.replace(CARTPOLE, seed=4))
    assert without_timings(other) != without_timings(first)


def test_cartpole_return_improves_within_10k_steps():
    """Protocol fixed before running: TRPO defaults, 2,000 steps per batch, 10,000 steps, seed 0;
    the last batch's mean episode return must exceed the first's by 50 (random policy: ~22).
    Measured when written: 23 -> 144 (about 2 s)."""
    config = TRPOConfig(env_id="CartPole-v1", total_steps=10_000, steps_per_iter=2_000, seed=0)
    history = train(config)
    first, last = history[0], history[-1]
    assert last["rollout/ep_return_mean"] > first["rollout/ep_return_mean"] + 50
    assert all(m["train/kl_mean"] <= config.delta for m in history if m["train/accepted"])


@pytest.mark.parametrize("algo", ALGOS)
def test_every_algo_runs_on_a_continuous_task(algo, tmp_path):
    config = TRPOConfig(env_id="InvertedPendulum-v5", algo=algo, total_steps=600,
                        steps_per_iter=300, network="paper", hidden=8, seed=1)
    history = train(config, out_dir=tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(history) >= 2
    logged = [json.loads(line) for line in lines]  # standard JSON: NaN is written as null
    assert json.loads((tmp_path / "config.json").read_text())["algo"] == algo
    steps = 0
    for row, metrics in zip(logged, history, strict=True):
        steps += metrics["rollout/steps"]
        assert row["global/steps"] == steps  # counted exactly, batch by batch
        assert metrics["rollout/steps"] >= config.steps_per_iter
        for key in ["train/kl_mean", "train/kl_max", "train/accepted", "train/std_mean",
                    "train/entropy", "rollout/ep_return_mean", "time/rollout_s",
                    "time/update_s", "time/value_fit_s", "value/loss_after"]:
            assert key in row
        if algo in ("trpo", "empirical-fim") and row["train/accepted"]:
            assert row["train/kl_mean"] <= config.delta
        if algo == "max-kl" and row["train/accepted"]:
            assert row["train/kl_max"] <= config.delta


def test_episode_returns_are_the_environments_own_rewards():
    """CartPole pays 1 per step, so each episode's return equals its length."""
    history = train(CARTPOLE)
    for metrics in history:
        assert metrics["rollout/ep_return_mean"] == metrics["rollout/ep_len_mean"]
        assert metrics["rollout/steps"] == pytest.approx(
            metrics["rollout/ep_len_mean"] * metrics["rollout/episodes"])


def test_progress_callback_sees_every_iteration():
    seen = []
    history = train(CARTPOLE, progress=seen.append)
    assert seen == history


# --- bad input ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("field", "value", "match"), [
    ("delta", 0.0, "delta"), ("delta", -0.01, "delta"), ("delta", math.nan, "delta"),
    ("algo", "ppo", "algo"), ("gamma", 1.5, "gamma"), ("fvp_subsample", 0.0, "fvp_subsample"),
    ("backtrack", 1.0, "backtrack"), ("damping", -0.1, "damping"), ("network", "big", "network"),
])
def test_bad_config_raises_before_any_work(field, value, match, tmp_path):
    config = dataclasses.replace(CARTPOLE, **{field: value})
    with pytest.raises(ValueError, match=match):
        train(config, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unknown_env_id_raises(tmp_path):
    with pytest.raises(ValueError, match="unknown environment id 'NoSuchEnv-v0'"):
        train(dataclasses.replace(CARTPOLE, env_id="NoSuchEnv-v0"), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


class ToyEnv(gym.Env):
    """A 1-D Box-observation env whose spaces and faults the tests choose."""

    def __init__(self, action_space=None, nan_obs_at=None, nan_reward_at=None):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float64)
        self.action_space = action_space or gym.spaces.Discrete(2)
        self.nan_obs_at, self.nan_reward_at = nan_obs_at, nan_reward_at
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(2), {}

    def step(self, action):
        self.t += 1
        obs = np.full(2, math.nan) if self.t == self.nan_obs_at else np.zeros(2)
        reward = math.nan if self.t == self.nan_reward_at else 1.0
        return obs, reward, False, False, {}


@pytest.fixture
def toy_env_id():
    ids = []

    def register(**kwargs):
        env_id = f"TrpoRefToy{len(ids)}-v0"
        gym.register(id=env_id, entry_point=lambda: ToyEnv(**kwargs), max_episode_steps=20)
        ids.append(env_id)
        return env_id

    yield register
    for env_id in ids:
        gym.registry.pop(env_id, None)


def test_unsupported_action_space_raises(toy_env_id):
    env_id = toy_env_id(action_space=gym.spaces.MultiDiscrete([2, 3]))
    with pytest.raises(ValueError, match="neither a 1-D Box nor Discrete"):
        train(dataclasses.replace(CARTPOLE, env_id=env_id))


def test_unsupported_observation_space_raises():
    with pytest.raises(ValueError, match="not a 1-D Box"):
        train(dataclasses.replace(CARTPOLE, env_id="FrozenLake-v1"))


@pytest.mark.parametrize(("fault", "match"), [("nan_obs_at", "observation"),
                                              ("nan_reward_at", "reward")])
def test_nan_from_the_env_raises_before_any_update(fault, match, toy_env_id, tmp_path):
    env_id = toy_env_id(**{fault: 7})
    progress = []
    with pytest.raises(ValueError, match=f"non-finite {match}"):
        train(dataclasses.replace(CARTPOLE, env_id=env_id), out_dir=tmp_path, progress=progress)
    assert progress == [] and (tmp_path / "metrics.jsonl").read_text() == ""
