"""The vine sampling procedure (Schulman et al. 2015, section 5.2), for :mod:`trpo_ref.deep.trpo`.

One vine batch:
  1. trunk: whole episodes with pi_old, exactly as single path
     (:func:`trpo_ref.deep.rollout.collect_rollout`), while the simulator state is saved before
     each of the N steps of the *rollout set* (drawn uniformly without replacement from the
     first ``trunk_steps`` steps, which every trunk has);
  2. at each rollout-set state s_n, K actions a_k: sampled from q = pi_old for Box actions (the
     paper's choice on continuous tasks), every action for Discrete ones (the paper enumerates
     small finite action spaces);
  3. from each (s_n, a_k), a branch rollout of at most T steps from the *restored* simulator
     state: a_k first, then pi_old. The K branches of one state share their random numbers
     (common random numbers, section 5.2): the same policy-noise sequence; the supported
     environments' steps draw no noise of their own;
  4. Q(s_n, a_k) = sum_{t<h} gamma^t r_t + gamma^h V(s_h) when the branch was cut at the
     horizon T or by the time limit, without the V term when it terminated (the bootstrap is
     our choice; the paper does not say what it did at the cut; ``bootstrap=False`` drops it).

Advantages and surrogate (section 5.2):
  - Box actions: the paper's self-normalized importance-sampling estimate per state,
    L_n(theta) = sum_k w_k Q(s_n, a_k) / sum_k w_k, w_k = pi_theta(a_k|s_n) / pi_old(a_k|s_n)
    (:func:`self_normalized_surrogate`). The update (:func:`trpo_ref.deep.step.update`) uses
    eq. 14's ordinary form mean_{n,k} w_k A_nk with A_nk = Q(s_n, a_k) - mean_k Q(s_n, a_k):
    at theta_old both have exactly the same gradient, (1/K) sum_k grad w_k A_nk, and they
    differ only through the normalizer sum_k w_k / K = 1 + O(theta - theta_old).
  - Discrete actions, all enumerated: L_n(theta) = sum_a pi_theta(a|s_n) Q(s_n, a). With rows
    (s_n, a) for every a and A_na = |A| pi_old(a|s_n) (Q(s_n, a) - b_n), b_n = sum_a pi_old(a|s_n)
    Q(s_n, a), eq. 14's mean_{n,a} w_a A_na equals mean_n L_n(theta) - b_n exactly, at every theta.

Steps are counted exactly: trunk steps plus every branch step.

Supported environments (:data:`SUPPORTED_PREFIXES`): CartPole (its state is
``env.unwrapped.state``) and the MuJoCo tasks whose step reads nothing but the integration
state before it simulates (InvertedPendulum, InvertedDoublePendulum, Swimmer, Hopper, Walker2d,
HalfCheetah); their state is MuJoCo's ``mjSTATE_INTEGRATION`` (time, qpos, qvel, act,
warm-start, controls, applied forces), saved and restored by ``mj_getState`` / ``mj_setState``,
so a restored branch repeats the trunk's next step bit for bit. Others (Ant and Reacher read
derived body positions before simulating; Atari) raise ValueError. Branch rollouts step
``env.unwrapped`` directly, so the wrappers' episode statistics and time-limit counters see only
the trunk. Policies: the tanh-MLP policies (:class:`trpo_ref.deep.fast_rollout.NumpySampler`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch
from gymnasium.envs.classic_control.cartpole import CartPoleEnv
from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

from trpo_ref.deep.fast_rollout import NumpySampler, is_tanh_mlp
from trpo_ref.deep.policies import DiagGaussianMLP, Policy
from trpo_ref.deep.rollout import Rollout, collect_rollout
from trpo_ref.deep.step import current_strategies

SUPPORTED_PREFIXES = ("CartPole-", "InvertedPendulum-", "InvertedDoublePendulum-", "Swimmer-",
                      "Hopper-", "Walker2d-", "HalfCheetah-")
_MUJOCO_STATE = mujoco.mjtState.mjSTATE_INTEGRATION

Normalize = Callable[[np.ndarray], np.ndarray]


# --- simulator state -----------------------------------------------------------------------------

def check_vine_env(env: gym.Env, policy: Policy | None = None) -> None:
    """Raise ValueError unless vine sampling supports ``env`` (and ``policy``, if given)."""
    env_id = env.spec.id if env.spec is not None else repr(env)
    base = env.unwrapped
    if not (env_id.startswith(SUPPORTED_PREFIXES)
            and isinstance(base, CartPoleEnv | MujocoEnv)):
        raise ValueError(f"vine sampling cannot restore the state of {env_id!r}: supported are "
                         f"{', '.join(p.rstrip('-') for p in SUPPORTED_PREFIXES)}")
    if policy is not None:
        net = policy.mean_net if isinstance(policy, DiagGaussianMLP) else policy.logits_net
        if not is_tanh_mlp(net):
            raise ValueError("vine sampling needs a tanh-MLP policy (DiagGaussianMLP or "
                             f"CategoricalMLP), got {type(policy).__name__}")


def get_sim_state(env: gym.Env) -> Any:
    """A copy of everything ``env.unwrapped.step`` reads: MuJoCo's integration state, or
    CartPole's (state, steps_beyond_terminated)."""
    base = env.unwrapped
    if isinstance(base, MujocoEnv):
        state = np.empty(mujoco.mj_stateSize(base.model, _MUJOCO_STATE))
        mujoco.mj_getState(base.model, base.data, state, _MUJOCO_STATE)
        return state
    return np.array(base.state, dtype=np.float64), base.steps_beyond_terminated


def set_sim_state(env: gym.Env, state: Any) -> None:
    """Put ``env.unwrapped`` back into a state saved by :func:`get_sim_state`."""
    base = env.unwrapped
    if isinstance(base, MujocoEnv):
        mujoco.mj_setState(base.model, base.data, state, _MUJOCO_STATE)
    else:
        base.state, base.steps_beyond_terminated = state[0].copy(), state[1]


class StateRecorder(gym.Wrapper):
    """Saves the simulator state before every step whose index (counted over all episodes from
    construction) is in ``indices``: ``snapshots[index]``."""

    def __init__(self, env: gym.Env, indices: np.ndarray) -> None:
        super().__init__(env)
        self.wanted = {int(i) for i in indices}
        self.snapshots: dict[int, Any] = {}
        self.count = 0

    def step(self, action: Any) -> Any:
        if self.count in self.wanted:
            self.snapshots[self.count] = get_sim_state(self.env)
        self.count += 1
        return self.env.step(action)


# --- the pieces ----------------------------------------------------------------------------------

def rollout_set(trunk_steps: int, n_states: int, generator: torch.Generator) -> np.ndarray:
    """N trunk rows drawn uniformly without replacement from range(trunk_steps), sorted."""
    if not 1 <= n_states <= trunk_steps:
        raise ValueError(f"need 1 <= n_states <= trunk_steps, got {n_states}, {trunk_steps}")
    return torch.randperm(trunk_steps, generator=generator)[:n_states].sort().values.numpy()


def steps_into_episode(episode_end: np.ndarray) -> np.ndarray:
    """For each row of a batch of whole episodes, the number of steps its episode had taken
    before it (0 at each episode's first row); shape (N,)."""
    starts = np.concatenate([[True], episode_end[:-1]])
    index = np.arange(len(episode_end))
    return index - np.maximum.accumulate(np.where(starts, index, 0))


def branch_actions(policy: Policy, obs: np.ndarray, n_actions: int,
                   generator: torch.Generator) -> np.ndarray:
    """The actions tried at one rollout-set state: K draws from pi_old(.|obs) for a Gaussian
    policy, every action (0..|A|-1) for a categorical one."""
    if not isinstance(policy, DiagGaussianMLP):
        return np.arange(policy.n_actions)
    obs_k = torch.as_tensor(np.repeat(obs[None], n_actions, axis=0))
    return policy.sample(obs_k, generator).numpy()


def branch_noise(policy: Policy, length: int, generator: torch.Generator) -> np.ndarray:
    """One branch's policy noise for its steps after the first: standard normals (length,
    act_dim) for a Gaussian policy, uniforms (length,) for a categorical one (what
    :class:`NumpySampler` draws). Common random numbers: one draw shared by the K branches."""
    if isinstance(policy, DiagGaussianMLP):
        return torch.randn((length, policy.act_dim), generator=generator,
                           dtype=torch.float64).numpy()
    return torch.rand((length,), generator=generator, dtype=torch.float64).numpy()


class ReplaySampler(NumpySampler):
    """pi_old's :class:`NumpySampler` that takes its noise from a given array (``replay``)."""

    def __init__(self, policy: Policy) -> None:
        super().__init__(policy, torch.Generator())
        self.replay(np.empty((0,)))

    def replay(self, noise: np.ndarray) -> None:
        self.noise, self.next_row = noise, 0

    def _draw(self) -> np.ndarray:
        if self.next_row == len(self.noise):
            raise RuntimeError("branch rollout ran past its noise")
        return super()._draw()


@dataclass
class BranchResult:
    """One branch: discounted reward sum, steps taken, and, when it was cut by the horizon or
    the time limit (not terminated), the normalized observation to bootstrap from (else None)."""

    discounted_return: float
    steps: int
    bootstrap_obs: np.ndarray | None


def run_branch(env: gym.Env, state: Any, first_action: np.ndarray, noise: np.ndarray,
               sampler: ReplaySampler, normalize: Normalize, horizon: int,
               gamma: float) -> BranchResult:
    """From the restored ``state``: ``first_action``, then pi_old with ``noise`` (one row per
    later step), for at most ``horizon`` steps or until termination; ``env.unwrapped`` steps.
    The restore goes through :attr:`trpo_ref.deep.step.UpdateStrategies.branch_start`."""
    current_strategies().branch_start(lambda: set_sim_state(env, state))
    base = env.unwrapped
    box = isinstance(env.action_space, gym.spaces.Box)
    low, high = (env.action_space.low, env.action_space.high) if box else (None, None)
    sampler.replay(noise)
    act, total, discount = first_action, 0.0, 1.0
    for t in range(horizon):
        env_act = np.minimum(np.maximum(act, low), high) if box else int(act)  # = np.clip
        raw, reward, terminated, _, _ = base.step(env_act)
        if not (np.isfinite(raw).all() and np.isfinite(reward)):
            raise ValueError(f"non-finite observation or reward in a vine branch: {raw}, {reward}")
        total += discount * float(reward)
        discount *= gamma
        if terminated:
            return BranchResult(total, t + 1, None)
        obs = normalize(raw)
        if t + 1 < horizon:
            act = sampler(obs)
    return BranchResult(total, horizon, obs)


def q_values(results: list[BranchResult], value_fn: Callable[[torch.Tensor], torch.Tensor] | None,
             gamma: float) -> np.ndarray:
    """Q = discounted return + gamma^steps V(bootstrap obs) where a branch was cut (no V term
    when ``value_fn`` is None); shape (len(results),)."""
    q = np.array([r.discounted_return for r in results])
    cut = [i for i, r in enumerate(results) if r.bootstrap_obs is not None]
    if value_fn is not None and cut:
        with torch.no_grad():
            obs = np.stack([results[i].bootstrap_obs for i in cut])
            values = value_fn(torch.as_tensor(obs, dtype=torch.float64)).numpy()
        steps = np.array([results[i].steps for i in cut])
        q[cut] += gamma**steps * values
    return q


def vine_advantages(q: np.ndarray, probs: np.ndarray | None = None
                    ) -> tuple[np.ndarray, np.ndarray]:
    """(advantages (N, K), baselines (N,)) from Q-values q (N, K) (see the module docstring).

    probs None (K sampled actions): b_n = mean_k Q_nk, A_nk = Q_nk - b_n.
    probs (N, |A|) = pi_old(a|s_n) (every action enumerated): b_n = sum_a p_na Q_na,
    A_na = |A| p_na (Q_na - b_n), so that mean_a w_a A_na = sum_a pi_theta(a|s_n) Q_na - b_n."""
    if probs is None:
        baseline = q.mean(axis=1)
        return q - baseline[:, None], baseline
    baseline = (probs * q).sum(axis=1)
    return q.shape[1] * probs * (q - baseline[:, None]), baseline


def self_normalized_surrogate(log_ratio: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Section 5.2's self-normalized estimate: mean_n sum_k w_nk Q_nk / sum_k w_nk with
    w = exp(log_ratio) = pi_theta(a_k|s_n) / pi_old(a_k|s_n); log_ratio, q: (N, K)."""
    w = torch.exp(log_ratio)
    return ((w * q).sum(dim=1) / w.sum(dim=1)).mean()


# --- one vine batch ------------------------------------------------------------------------------

@dataclass
class VineBatch:
    """A vine batch. trunk: the single-path rollout the states came from (its episodes are the
    true returns); rows: (N,) trunk rows of the rollout set; obs (N*K, obs_dim), normalized,
    row n*K + k for action k at state n; act (N*K, ...); q, adv, branch_steps: (N, K);
    baseline (N,); probs (N, K): pi_old(a_k|s_n) (enumerated actions) or None."""

    trunk: Rollout
    rows: np.ndarray
    obs: np.ndarray
    act: np.ndarray
    q: np.ndarray
    adv: np.ndarray
    baseline: np.ndarray
    branch_steps: np.ndarray
    probs: np.ndarray | None

    @property
    def total_steps(self) -> int:
        """Every env step this batch took: the trunk's plus every branch's."""
        return len(self.trunk.rewards) + int(self.branch_steps.sum())


def collect_vine(
    env: gym.Env,
    policy: Policy,
    value_fn: Callable[[torch.Tensor], torch.Tensor] | None,
    normalize: Normalize,
    *,
    trunk_steps: int,
    n_states: int,
    n_actions: int,
    horizon: int,
    gamma: float,
    generator: torch.Generator,
    reset_seed: int | None,
) -> VineBatch:
    """One vine batch (module docstring): a trunk of >= ``trunk_steps`` steps in whole
    episodes, ``n_states`` rollout-set states, ``n_actions`` (K) actions each (Box actions;
    Discrete ones are all enumerated) and branches of at most ``horizon`` (T) steps,
    bootstrapped with ``value_fn`` at the cut (None: no bootstrap). All randomness comes from
    ``generator``: the rollout set, then the trunk's action noise, then per state the K actions
    and the shared branch noise."""
    check_vine_env(env, policy)
    max_steps = env.spec.max_episode_steps
    rows = rollout_set(trunk_steps, n_states, generator)
    recorder = StateRecorder(env, rows)
    trunk = collect_rollout(recorder, policy, normalize, trunk_steps, generator, reset_seed)
    steps_left = max_steps - steps_into_episode(trunk.episode_end)
    sampler = ReplaySampler(policy)
    results, actions = [], []
    for row in rows:
        acts = branch_actions(policy, trunk.obs[row], n_actions, generator)
        noise = branch_noise(policy, horizon - 1, generator)  # shared: common random numbers
        h = int(min(horizon, steps_left[row]))
        results += [run_branch(env, recorder.snapshots[int(row)], a, noise, sampler, normalize,
                               h, gamma) for a in acts]
        actions.append(acts)
    k = len(actions[0])
    q = q_values(results, value_fn, gamma).reshape(len(rows), k)
    act = np.concatenate(actions)
    obs = np.repeat(trunk.obs[rows], k, axis=0).astype(np.float64)
    probs = None
    if not isinstance(policy, DiagGaussianMLP):
        with torch.no_grad():
            probs = torch.exp(policy.log_prob(torch.as_tensor(obs), torch.as_tensor(act)))
        probs = probs.numpy().reshape(len(rows), k)
    adv, baseline = vine_advantages(q, probs)
    steps = np.array([r.steps for r in results]).reshape(len(rows), k)
    return VineBatch(trunk, rows, obs, act, q, adv, baseline, steps, probs)
