"""Step 1 of an iteration: whole episodes with pi_old (Schulman et al. 2015, section 5.1).

:func:`collect_rollout` runs whole episodes until the batch holds at least ``min_steps`` steps,
so every trajectory in a batch is complete and timesteps are counted exactly; the single-path
batches of :mod:`trpo_ref.deep.trpo` and the trunks of :mod:`trpo_ref.deep.vine` both come from it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import torch

from trpo_ref.deep.fast_rollout import all_finite, make_sampler
from trpo_ref.deep.policies import Policy


@dataclass
class Rollout:
    """A batch of whole episodes, rows in time order. obs: normalized (N, obs_dim); raw_obs:
    as the env gave them; act (N, ...); rewards, terminated, episode_end (N,); truncated_final:
    {row: normalized final observation} for episodes cut by the time limit; episode_returns and
    episode_lengths of the batch's episodes (from RecordEpisodeStatistics); x_velocity (N,): the
    forward velocity the env reports as ``info["x_velocity"]`` after each step (the MuJoCo
    locomotion tasks), None where it reports none."""

    obs: np.ndarray
    raw_obs: np.ndarray
    act: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    episode_end: np.ndarray
    truncated_final: dict[int, np.ndarray]
    episode_returns: list[float]
    episode_lengths: list[int]
    x_velocity: np.ndarray | None = None


def _check_finite(obs: np.ndarray, reward: float, what: str) -> None:
    if not np.all(np.isfinite(obs)):
        raise ValueError(f"environment returned a non-finite observation {what}: {obs}")
    if not math.isfinite(reward):
        raise ValueError(f"environment returned a non-finite reward {what}: {reward}")


def collect_rollout(
    env: gym.Env,
    policy: Policy,
    normalize: Callable[[np.ndarray], np.ndarray],
    min_steps: int,
    generator: torch.Generator,
    reset_seed: int | None,
) -> Rollout:
    """Run whole episodes with ``policy`` until >= ``min_steps`` steps; Box actions are clipped
    to the action space's bounds for the env (the unclipped sample is stored and scored).
    MLP policies run as a numpy copy for speed (see :mod:`trpo_ref.deep.fast_rollout`)."""
    sample = make_sampler(policy, generator)
    box = isinstance(env.action_space, gym.spaces.Box)
    low, high = (env.action_space.low, env.action_space.high) if box else (None, None)
    obs_rows, raw_rows, act_rows, rewards, terminated, episode_end = [], [], [], [], [], []
    truncated_final: dict[int, np.ndarray] = {}
    returns, lengths, x_velocity = [], [], []
    raw, _ = env.reset(seed=reset_seed)
    _check_finite(raw, 0.0, "at reset")
    while True:
        obs = normalize(raw)
        act = sample(obs)
        env_act = np.minimum(np.maximum(act, low), high) if box else int(act)  # = np.clip
        next_raw, reward, term, trunc, info = env.step(env_act)
        if not all_finite(next_raw, float(reward)):
            _check_finite(next_raw, float(reward), f"at batch step {len(rewards)}")
        obs_rows.append(obs)
        raw_rows.append(raw)
        act_rows.append(act)
        rewards.append(float(reward))
        terminated.append(bool(term))
        episode_end.append(bool(term or trunc))
        x_velocity.append(info.get("x_velocity", math.nan))
        if term or trunc:
            if not term:
                truncated_final[len(rewards) - 1] = normalize(next_raw)
            returns.append(float(info["episode"]["r"]))
            lengths.append(int(info["episode"]["l"]))
            if len(rewards) >= min_steps:
                break
            raw, _ = env.reset()
            _check_finite(raw, 0.0, "at reset")
        else:
            raw = next_raw
    obs_array = np.asarray(obs_rows)
    # Where normalize returned its input (frames: np.asarray), obs and raw_obs are the same rows:
    # one array for both, not a second copy of the batch (27K Atari steps: 0.9 GB).
    same = all(o is r for o, r in zip(obs_rows, raw_rows, strict=True))
    return Rollout(
        obs_array, obs_array if same else np.asarray(raw_rows), np.asarray(act_rows),
        np.asarray(rewards), np.asarray(terminated), np.asarray(episode_end),
        truncated_final, returns, lengths,
        None if np.isnan(x_velocity).all() else np.asarray(x_velocity, dtype=np.float64),
    )
