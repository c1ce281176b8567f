"""Per-step micro-benchmarks of the rollout's own work (issue 16), with pytest-benchmark:

    .venv/bin/pytest tests/test_bench_micro.py -m benchmark_speed --benchmark-enable

Each benchmarks one call that runs once per env step and checks it computes what its plain
formula computes (in the default run, with benchmarks disabled, each runs once: the check)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from trpo_ref.deep.atari import Downsample2x2
from trpo_ref.deep.fast_rollout import NumpySampler, all_finite
from trpo_ref.deep.normalize import RunningObsNormalizer
from trpo_ref.deep.policies import DiagGaussianMLP

pytestmark = pytest.mark.benchmark_speed


def test_normalizer_call(benchmark):
    rng = np.random.default_rng(0)
    normalizer = RunningObsNormalizer(11)
    normalizer.update(rng.normal(size=(500, 11)) * 3)
    obs = rng.normal(size=11) * 40
    out = benchmark(normalizer, obs)
    plain = np.clip((obs - normalizer.mean) / np.sqrt(normalizer.var + normalizer.eps), -10, 10)
    assert out.tobytes() == plain.tobytes()


def test_downsample_frame(benchmark):
    class Screen(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (210, 160), np.uint8)
        action_space = gym.spaces.Discrete(1)

    frame = np.random.default_rng(0).integers(0, 256, (210, 160), dtype=np.uint8)
    out = benchmark(Downsample2x2(Screen()).observation, frame)
    blocks = frame.reshape(105, 2, 80, 2).sum(axis=(1, 3), dtype=np.uint16)
    np.testing.assert_array_equal(out, ((blocks + 2) // 4).astype(np.uint8))


def test_all_finite_per_step(benchmark):
    obs = np.random.default_rng(0).normal(size=11)
    assert benchmark(all_finite, obs, 1.0) is True


def test_numpy_sampler_per_step(benchmark):
    torch.manual_seed(0)
    policy = DiagGaussianMLP(11, 3, hidden=(64, 64))
    sampler = NumpySampler(policy, torch.Generator().manual_seed(0))
    obs = np.random.default_rng(0).normal(size=11)
    action = benchmark(sampler, obs)
    assert action.shape == (3,) and np.isfinite(action).all()
