"""Generalized advantage estimation, GAE(gamma, lambda) (Schulman et al. 2016, eq. 16).

The TRPO paper's single-path estimator is the discounted return minus a baseline (section 5.1),
which is GAE with lambda = 1; GAE with lambda < 1 is what the authors' later code and every
public TRPO use for the locomotion tasks.

    delta_t = r_t + gamma * (1 - terminated_t) * V(s_{t+1}) - V(s_t)
    A_t     = delta_t + gamma * lambda * (1 - episode_end_t) * A_{t+1}

At a termination the true future value is 0, so no bootstrap. At a time-limit truncation the
episode was cut, not finished: V(s_{t+1}) (the value of the final observation) stands in for
the rest, and the recursion still stops there because the next row belongs to a new episode.
V must be the value function from *before* this iteration's fit, so the advantages do not use
targets the fit has already seen.
"""

from __future__ import annotations

import numpy as np


def gae(
    rewards: np.ndarray,
    values: np.ndarray,
    next_values: np.ndarray,
    terminated: np.ndarray,
    episode_end: np.ndarray,
    gamma: float,
    lam: float,
) -> np.ndarray:
    """GAE advantages of a flat batch of consecutive transitions; all arrays shape (N,).

    rewards[t] = r_t; values[t] = V(s_t); next_values[t] = V(s_{t+1}) (for the last step of a
    truncated episode: V of its final observation; ignored where terminated); terminated[t]:
    s_{t+1} is terminal; episode_end[t]: the episode ends after step t (terminated or truncated;
    the batch's last row must be one). Returns A (N,), float64. Returns targets: A + values.
    """
    rewards, values, next_values = (np.asarray(x, dtype=np.float64) for x in
                                    (rewards, values, next_values))
    terminated = np.asarray(terminated, dtype=bool)
    episode_end = np.asarray(episode_end, dtype=bool)
    n = rewards.shape[0]
    for name, x in (("values", values), ("next_values", next_values),
                    ("terminated", terminated), ("episode_end", episode_end)):
        if x.shape != (n,):
            raise ValueError(f"{name} has shape {x.shape}, need ({n},) like rewards")
    if n and not episode_end[-1]:
        raise ValueError("the batch must end at an episode end (terminated or truncated)")
    if np.any(terminated & ~episode_end):
        raise ValueError("a terminated step must also be an episode end")
    deltas = rewards + gamma * np.where(terminated, 0.0, next_values) - values
    advantages = np.empty(n, dtype=np.float64)
    running = 0.0
    for t in range(n - 1, -1, -1):
        running = deltas[t] + (0.0 if episode_end[t] else gamma * lam * running)
        advantages[t] = running
    return advantages
