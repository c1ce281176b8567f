"""The paper's Atari network and ALE games in the training loop: shapes, KL, FVP, preprocessing,
a deterministic smoke run on Pong."""

from __future__ import annotations

import dataclasses
import math

import gymnasium as gym
import numpy as np
import pytest
import torch

from trpo_ref.deep.atari import Downsample2x2
from trpo_ref.deep.policies import FRAME_DTYPE, AtariCategoricalCNN, ValueCNN
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import (
    fisher_vector_product,
    functional_dist_params,
    get_flat_params,
    make_batch,
    set_flat_params,
)
from trpo_ref.deep.trpo import TRPOConfig, make_env, make_policy, make_value, train

pytestmark = pytest.mark.quick

PONG_FRAMES = (4, 105, 80)  # frame stack of 2x2-pooled 210x160 screens


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    with torch_threads(1):
        yield


def random_frames(n: int, frame_shape, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, *frame_shape), generator=gen, dtype=torch.uint8)


def moved_tiny_cnn(seed: int = 0, frame_shape=(1, 10, 10), n_actions: int = 3):
    """A CNN small enough for an explicit Hessian (121 parameters), moved away from its
    near-uniform initial policy; float64, so the identities below hold to float64 precision."""
    torch.manual_seed(seed)
    policy = AtariCategoricalCNN(frame_shape, n_actions, hidden=3, channels=2,
                                 dtype=torch.float64)
    theta = get_flat_params(policy)
    gen = torch.Generator().manual_seed(seed)
    set_flat_params(policy, theta + torch.randn(theta.shape, generator=gen, dtype=theta.dtype))
    return policy


# --- the network ---------------------------------------------------------------------------------

def test_paper_network_layers_and_output_shapes():
    policy, value_fn = AtariCategoricalCNN(PONG_FRAMES, 6), ValueCNN(PONG_FRAMES)
    convs = [m for m in policy.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(16, (4, 4), (2, 2))] * 2
    dense = [m for m in policy.modules() if isinstance(m, torch.nn.Linear)]
    # 105x80 -> 51x39 -> 24x18 after the two convolutions; then 20 units; then 6 logits.
    assert [(d.in_features, d.out_features) for d in dense] == [(16 * 24 * 18, 20), (20, 6)]
    frames = random_frames(5, PONG_FRAMES)
    (log_p,) = policy.dist_params(frames)
    assert log_p.shape == (5, 6) and log_p.dtype == FRAME_DTYPE == torch.float32
    assert value_fn(frames).dtype == FRAME_DTYPE
    torch.testing.assert_close(log_p.exp().sum(-1), torch.ones(5, dtype=FRAME_DTYPE))
    assert policy.dist_params(frames[0])[0].shape == (6,)  # one unbatched observation
    torch.testing.assert_close(policy.dist_params(frames[0])[0], log_p[0])
    assert policy.sample(frames, torch.Generator().manual_seed(0)).shape == (5,)
    assert policy.entropy(frames).shape == policy.log_prob(frames, torch.zeros(5)).shape == (5,)
    assert value_fn(frames).shape == (5,) and value_fn(frames[0]).shape == ()


def test_frames_are_scaled_by_1_over_255():
    policy = moved_tiny_cnn()
    frames = random_frames(4, (1, 10, 10))
    scaled = frames.to(torch.float64) / 255.0
    torch.testing.assert_close(policy.logits_net(frames),
                               policy.logits_net[1](policy.logits_net[0].layers(scaled)))


def test_too_small_frames_raise():
    with pytest.raises(ValueError, match="too small"):
        AtariCategoricalCNN((4, 8, 8), 6)


def test_cnn_kl_is_the_categorical_kl_old_to_new():
    policy = moved_tiny_cnn()
    frames = random_frames(16, (1, 10, 10))
    with torch.no_grad():
        old = tuple(t.clone() for t in policy.dist_params(frames))
        set_flat_params(policy, get_flat_params(policy) * 1.1)
        kl = policy.kl(old, frames)
        p = torch.softmax(policy.logits_net(frames), -1).numpy()
    p_old = np.exp(old[0].numpy())
    manual = (p_old * np.log(p_old / p)).sum(-1)  # sum_a p_old(a) log(p_old(a) / p_new(a))
    np.testing.assert_allclose(kl.numpy(), manual, rtol=1e-10)
    reverse = (p * np.log(p / p_old)).sum(-1)
    assert not np.allclose(manual, reverse)  # the direction matters, and it is old -> new
    assert (kl > 0).all()


@pytest.mark.parametrize("moved", [False, True])
def test_cnn_fvp_equals_explicit_hessian_of_mean_kl(moved):
    policy = moved_tiny_cnn()
    frames = random_frames(32, (1, 10, 10))
    batch = make_batch(policy, frames, policy.sample(frames, torch.Generator().manual_seed(1)),
                       torch.zeros(32, dtype=torch.float64))
    theta = get_flat_params(policy)
    if moved:  # the identity holds at any theta, not only at theta_old
        set_flat_params(policy, theta + 0.05 * torch.randn_like(theta))
        theta = get_flat_params(policy)

    def mean_kl(flat: torch.Tensor) -> torch.Tensor:
        new = functional_dist_params(policy, flat, frames)
        return policy.kl_from(batch.old_params, new).mean()

    hessian = torch.autograd.functional.hessian(mean_kl, theta)
    assert hessian.abs().max() > 0
    for v in torch.randn(3, theta.numel(), dtype=torch.float64):
        fvp = fisher_vector_product(policy, frames, batch.old_params, v, damping=0.1)
        torch.testing.assert_close(fvp, hessian @ v + 0.1 * v, rtol=1e-9, atol=1e-12)


# --- the environment -----------------------------------------------------------------------------

def test_downsample_averages_2x2_blocks_with_rounding():
    class Frames(gym.Env):
        observation_space = gym.spaces.Box(0, 255, (2, 4), np.uint8)
        action_space = gym.spaces.Discrete(1)

    frame = np.array([[0, 1, 255, 255], [2, 3, 255, 254]], dtype=np.uint8)
    wrapper = Downsample2x2(Frames())
    assert wrapper.observation_space.shape == (1, 2)
    # (0 + 1 + 2 + 3) / 4 = 1.5 -> 2; (3 * 255 + 254) / 4 = 254.75 -> 255
    np.testing.assert_array_equal(wrapper.observation(frame), [[2, 255]])


@pytest.mark.parametrize("shape", [(210, 160), (7, 5)])
def test_downsample_equals_the_rounded_block_mean(shape):
    """The strided adds give a rounded 2x2 block mean on any frame, odd sizes cropped."""
    class Frames(gym.Env):
        observation_space = gym.spaces.Box(0, 255, shape, np.uint8)
        action_space = gym.spaces.Discrete(1)

    wrapper = Downsample2x2(Frames())
    height, width = shape[0] // 2, shape[1] // 2
    rng = np.random.default_rng(0)
    for frame in [*rng.integers(0, 256, (20, *shape), dtype=np.uint8),
                  np.full(shape, 255, np.uint8)]:
        blocks = frame[: 2 * height, : 2 * width].reshape(height, 2, width, 2).astype(np.int64)
        expected = np.floor(blocks.mean(axis=(1, 3)) + 0.5).astype(np.uint8)  # half up
        out = wrapper.observation(frame)
        assert out.dtype == np.uint8
        np.testing.assert_array_equal(out, expected)


def test_make_env_gives_preprocessed_pong_with_game_scores():
    config = TRPOConfig(env_id="ALE/Pong-v5", atari_repeat_action_probability=0.25)
    env = make_env(config.env_id, config)
    try:
        assert isinstance(env, gym.wrappers.RecordEpisodeStatistics)  # around everything
        assert env.observation_space.shape == PONG_FRAMES
        assert env.observation_space.dtype == np.uint8
        assert env.action_space == gym.spaces.Discrete(6)
        assert env.unwrapped.ale.getFloat("repeat_action_probability") == pytest.approx(0.25)
        assert isinstance(make_policy(config, env), AtariCategoricalCNN)
        assert isinstance(make_value(config, env), ValueCNN)
    finally:
        env.close()


def test_unknown_atari_id_raises():
    with pytest.raises(ValueError, match="unknown environment id 'ALE/NoSuchGame-v5'"):
        make_env("ALE/NoSuchGame-v5")


@pytest.mark.parametrize(("field", "value"), [
    ("atari_frame_skip", 0), ("atari_frame_stack", 0),
    ("atari_repeat_action_probability", 1.5), ("atari_max_episode_frames", 0),
])
def test_bad_atari_config_raises(field, value):
    config = dataclasses.replace(TRPOConfig(env_id="ALE/Pong-v5"), **{field: value})
    with pytest.raises(ValueError, match=field):
        config.validate()


# --- the training loop ---------------------------------------------------------------------------

# 400 frames = 100 agent steps at frame skip 4, so every episode is cut by the time limit after
# exactly 100 steps (exercises the truncation bootstrap); one value epoch keeps the test short.
PONG_SMOKE = TRPOConfig(env_id="ALE/Pong-v5", total_steps=200, steps_per_iter=100,
                        atari_max_episode_frames=400, vf_epochs=1, seed=0)


def without_timings(history):
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in history]


def test_pong_smoke_run_is_deterministic_and_logs_game_scores():
    first, second = train(PONG_SMOKE), train(PONG_SMOKE)
    assert len(first) == 2
    assert without_timings(first) == without_timings(second)
    for metrics in first:
        assert metrics["rollout/steps"] == 100 and metrics["rollout/ep_len_mean"] == 100
        score = metrics["rollout/ep_return_mean"]  # Pong's own points, unclipped: -21..21
        assert score == int(score) and -21 <= score <= 21
        assert math.isfinite(metrics["train/kl_mean"]) and math.isfinite(
            metrics["value/loss_after"])
        if metrics["train/accepted"]:
            assert metrics["train/kl_mean"] <= PONG_SMOKE.delta


def test_update_memory_script_reports_phase_peaks_that_grow_with_the_batch(capfd, load_script):
    import re

    script = load_script("atari_update_memory")
    peaks = script.measure(16)  # in this process: its peak so far may hide the growth
    assert list(peaks) == ["start", "value forward", "policy update", "value fit"]
    assert list(peaks.values()) == sorted(peaks.values()) and peaks["start"] > 0
    # Ballast makes this process large, as pytest is late in a full run: a child must still
    # report its own peak (ru_maxrss would report this process's, the same for every size).
    ballast_mb = 1500
    ballast = np.ones(ballast_mb * 2**20 // 8)
    assert script.main(["16", "800"]) == 0  # a fresh process per size
    del ballast
    lines = [line for line in capfd.readouterr().out.splitlines() if "steps:" in line]
    update_mb = [float(re.search(r"policy update ([\d,]+) MB", line)[1].replace(",", ""))
                 for line in lines]
    # 800 frames at ~0.65 MiB each in the update
    assert len(update_mb) == 2 and update_mb[1] - update_mb[0] > 100
    assert update_mb[0] < ballast_mb
