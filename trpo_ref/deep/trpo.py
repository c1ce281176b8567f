"""TRPO for gymnasium, readable top to bottom: Schulman et al. 2015, sections 5.1-5.2 + 6.

One iteration:
  1. rollout: run whole episodes with pi_old until the batch holds >= ``steps_per_iter`` steps
     (:mod:`trpo_ref.deep.rollout`: every trajectory in the batch is complete; timesteps are
     counted exactly); with ``sampling="vine"`` these episodes are the trunk, and the update's
     rows come from branch rollouts at a rollout set of their states (section 5.2,
     :mod:`trpo_ref.deep.vine`; every branch step counts toward the budget; V is still fit on
     the trunk). :func:`collect_sample` does 1-2 for either sampling, :func:`run_iteration` 1-5;
  2. advantages: GAE(gamma, lambda) from the value function as it was before this iteration's
     fit, bootstrapping at time-limit truncation but not at termination;
  3. policy: one update by :func:`trpo_ref.deep.step.update` (``algo`` switches between trpo,
     npg, max-kl, empirical-fim and pg);
  4. value: fit V to the lambda-return targets (never touches the policy);
  5. observation statistics: fold the batch in (they stay frozen during 1-4).

Every iteration appends one JSON object of metrics to ``out_dir/metrics.jsonl``. Same config,
same numbers: torch, numpy, the environment and its action space are seeded from ``seed``, and
the action noise, FVP subsample and value minibatches draw from their own seeded generators.

Every ``checkpoint_every`` iterations and at the end, ``out_dir/checkpoint.pt`` is replaced
atomically (see :mod:`trpo_ref.deep.checkpoint`) by the networks, the value optimizer, the
observation statistics, every generator's state and the counters. ``train(..., resume=True)``
continues from it and gives the same numbers as the run that was never stopped: batches end at
episode ends, so no environment is in mid-episode at a checkpoint. After each update the policy
and value parameters are checked finite; a run never goes on (or checkpoints) with NaN in them.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from trpo_ref.atomic import write_atomic
from trpo_ref.deep.atari import is_atari_id, make_atari_env
from trpo_ref.deep.checkpoint import (
    CHECKPOINT_NAME,
    FORMAT_VERSION,
    check_compatible,
    load_checkpoint,
    logged_lines_up_to,
    numpy_global_state,
    save_checkpoint,
    set_generator_state,
    set_numpy_global_state,
)
from trpo_ref.deep.gae import gae
from trpo_ref.deep.normalize import RunningObsNormalizer
from trpo_ref.deep.policies import (
    PRESETS,
    AtariCategoricalCNN,
    CategoricalMLP,
    DiagGaussianMLP,
    Policy,
    ValueCNN,
    evaluate_in_chunks,
    hidden_sizes,
)
from trpo_ref.deep.rollout import Rollout, collect_rollout
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import (
    ALGOS,
    PolicyBatch,
    get_flat_params,
    make_batch,
    set_flat_params,
    update,
)
from trpo_ref.deep.value import ValueMLP, fit_value
from trpo_ref.deep.vine import VineBatch, check_vine_env, collect_vine, self_normalized_surrogate

Metrics = dict[str, float | int | bool | str | None]
SAMPLINGS = ("single-path", "vine")


@dataclass(frozen=True)
class TRPOConfig:
    """Hyperparameters of one training run (defaults: the paper where it is explicit)."""

    env_id: str = "Hopper-v5"  # gymnasium id (1-D Box observations) or an ALE game ("ALE/Pong-v5")
    algo: str = "trpo"  # update rule: trpo | npg | max-kl | empirical-fim | pg
    seed: int = 0  # seeds torch, numpy, the env (first reset), its action space, the generators
    total_steps: int = 1_000_000  # stop once this many env steps have been taken in total
    steps_per_iter: int = 5_000  # minimum env steps per batch, whole episodes (vine: the trunk's)
    delta: float = 0.01  # KL bound (paper: 0.01 everywhere)
    gamma: float = 0.99  # discount (paper: 0.99)
    lam: float = 0.97  # GAE lambda (not in the paper; 0.95-0.98 in public implementations)
    cg_iters: int = 10  # conjugate-gradient iterations (paper, App. C: 10)
    damping: float = 0.1  # added to the Fisher matrix, A = F + damping I (paper: none given)
    backtrack: float = 0.8  # line-search shrink factor per try (paper: none given)
    max_backtracks: int = 10  # line-search tries before the step is rejected
    fvp_subsample: float = 0.1  # fraction of the batch's states for Fisher products (App. C: 10%)
    step_size: float = 0.1  # fixed step size of npg (times F^-1 g) and pg (times g)
    network: str = "64x64"  # policy/value hidden layers: "paper" (one layer) or "64x64"
    hidden: int = 50  # hidden units of the "paper" preset (Table 2: 30 Swimmer, 50 Hopper)
    log_std_init: float = 0.0  # initial log standard deviation of Gaussian policies
    normalize_obs: bool = True  # running obs normalization, frozen per iteration (not for frames)
    obs_clip: float = 10.0  # clip normalized observations to +-obs_clip
    normalize_advantages: bool = True  # standardize advantages per batch before the update
    vf_epochs: int = 5  # Adam passes over the batch per value fit
    vf_minibatch: int = 128  # value-fit minibatch size
    vf_lr: float = 1e-3  # value-fit Adam learning rate
    threads: int = 1  # torch intra-op threads during training (small nets lose with more)
    checkpoint_every: int = 10  # iterations between checkpoints in out_dir (0: only at the end)
    atari_frame_skip: int = 4  # ALE: frames per action, last two max-pooled (DQN's 4; paper: -)
    atari_frame_stack: int = 4  # ALE: last frames stacked as the observation (DQN's 4; paper: -)
    atari_repeat_action_probability: float = 0.0  # ALE sticky actions (paper's ALE: 0; v5: .25)
    atari_max_episode_frames: int = 108_000  # ALE time limit in frames (30 min of play)
    sampling: str = "single-path"  # single-path | vine (section 5.2; vine: see trpo_ref.deep.vine)
    vine_states: int = 625  # vine: rollout-set states per batch, N (Table 2: 2500 Q-values / 4)
    vine_actions: int = 4  # vine: actions per state, K, for Box actions (Table 2: 4; Discrete: all)
    vine_horizon: int = 100  # vine: steps per branch rollout, T (Table 2: 50 Swimmer, 100 Hopper)
    vine_bootstrap: bool = True  # vine: add gamma^T V(s_T) at a branch's cut (paper: not said)

    def validate(self) -> None:
        """Raise ValueError naming the first bad field (called by :func:`train` before work)."""
        checks = [
            (self.algo in ALGOS, f"algo must be one of {ALGOS}, got {self.algo!r}"),
            (math.isfinite(self.delta) and self.delta > 0, f"delta must be > 0, got {self.delta}"),
            (0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}"),
            (0 <= self.lam <= 1, f"lam must be in [0, 1], got {self.lam}"),
            (self.cg_iters >= 1, f"cg_iters must be >= 1, got {self.cg_iters}"),
            (math.isfinite(self.damping) and self.damping >= 0,
             f"damping must be >= 0, got {self.damping}"),
            (0 < self.backtrack < 1, f"backtrack must be in (0, 1), got {self.backtrack}"),
            (self.max_backtracks >= 1, f"max_backtracks must be >= 1, got {self.max_backtracks}"),
            (0 < self.fvp_subsample <= 1,
             f"fvp_subsample must be in (0, 1], got {self.fvp_subsample}"),
            (math.isfinite(self.step_size) and self.step_size > 0,
             f"step_size must be > 0, got {self.step_size}"),
            (self.network in PRESETS, f"network must be one of {PRESETS}, got {self.network!r}"),
            (self.hidden >= 1, f"hidden must be >= 1, got {self.hidden}"),
            (self.total_steps >= 1, f"total_steps must be >= 1, got {self.total_steps}"),
            (self.steps_per_iter >= 2, f"steps_per_iter must be >= 2, got {self.steps_per_iter}"),
            (self.obs_clip > 0, f"obs_clip must be > 0, got {self.obs_clip}"),
            (self.vf_epochs >= 0, f"vf_epochs must be >= 0, got {self.vf_epochs}"),
            (self.vf_minibatch >= 1, f"vf_minibatch must be >= 1, got {self.vf_minibatch}"),
            (self.vf_lr > 0, f"vf_lr must be > 0, got {self.vf_lr}"),
            (self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
            (self.checkpoint_every >= 0,
             f"checkpoint_every must be >= 0, got {self.checkpoint_every}"),
            (self.atari_frame_skip >= 1,
             f"atari_frame_skip must be >= 1, got {self.atari_frame_skip}"),
            (self.atari_frame_stack >= 1,
             f"atari_frame_stack must be >= 1, got {self.atari_frame_stack}"),
            (0 <= self.atari_repeat_action_probability <= 1,
             "atari_repeat_action_probability must be in [0, 1], "
             f"got {self.atari_repeat_action_probability}"),
            (self.atari_max_episode_frames >= 1,
             f"atari_max_episode_frames must be >= 1, got {self.atari_max_episode_frames}"),
            (self.sampling in SAMPLINGS,
             f"sampling must be one of {SAMPLINGS}, got {self.sampling!r}"),
            (self.vine_states >= 1, f"vine_states must be >= 1, got {self.vine_states}"),
            (self.sampling != "vine" or self.vine_states <= self.steps_per_iter,
             f"vine_states ({self.vine_states}) must be <= steps_per_iter "
             f"({self.steps_per_iter}), the trunk the rollout set is drawn from"),
            (self.vine_actions >= 2, f"vine_actions must be >= 2, got {self.vine_actions}"),
            (self.vine_horizon >= 1, f"vine_horizon must be >= 1, got {self.vine_horizon}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)


# --- environment and networks --------------------------------------------------------------------

def make_env(env_id: str, config: TRPOConfig | None = None) -> gym.Env:
    """gymnasium.make(env_id) with RecordEpisodeStatistics directly around it, so the recorded
    episode returns are the environment's own rewards. ALE ids ("ALE/Pong-v5") get the frame
    preprocessing of :mod:`trpo_ref.deep.atari` (``config``'s ``atari_*`` fields; defaults if
    None), which never changes rewards. Unknown ids and spaces the policies cannot handle raise
    ValueError."""
    atari = is_atari_id(env_id)
    try:
        if atari:
            config = config or TRPOConfig(env_id=env_id)
            env = make_atari_env(env_id, config.atari_frame_skip, config.atari_frame_stack,
                                 config.atari_repeat_action_probability,
                                 config.atari_max_episode_frames)
        else:
            env = gym.make(env_id)
    except gym.error.Error as error:
        raise ValueError(f"unknown environment id {env_id!r}: {error}") from error
    obs_space, act_space = env.observation_space, env.action_space
    problem = None
    if atari:  # frames: (stack, height, width) uint8, and the CNN policy needs Discrete actions
        if not isinstance(act_space, gym.spaces.Discrete):
            problem = f"action space {act_space} is not Discrete (the Atari policy is categorical)"
    elif not (isinstance(obs_space, gym.spaces.Box) and len(obs_space.shape) == 1):
        problem = f"observation space {obs_space} is not a 1-D Box"
    elif isinstance(act_space, gym.spaces.Box):
        if len(act_space.shape) != 1:
            problem = f"action space {act_space} is not a 1-D Box"
    elif not isinstance(act_space, gym.spaces.Discrete):
        problem = f"action space {act_space} is neither a 1-D Box nor Discrete"
    if problem is None and (env.spec is None or env.spec.max_episode_steps is None):
        problem = "it has no time limit (whole-episode sampling needs max_episode_steps)"
    if problem is not None:
        env.close()
        raise ValueError(f"environment {env_id!r} is not supported: {problem}")
    return gym.wrappers.RecordEpisodeStatistics(env)


def make_policy(config: TRPOConfig, env: gym.Env) -> Policy:
    """The policy for ``env``'s spaces: AtariCategoricalCNN (frame stacks, Discrete actions),
    DiagGaussianMLP (Box actions) or CategoricalMLP."""
    if has_frames(env):
        return AtariCategoricalCNN(env.observation_space.shape, int(env.action_space.n))
    obs_dim = env.observation_space.shape[0]
    hidden = hidden_sizes(config.network, config.hidden)
    if isinstance(env.action_space, gym.spaces.Discrete):
        return CategoricalMLP(obs_dim, int(env.action_space.n), hidden)
    return DiagGaussianMLP(obs_dim, env.action_space.shape[0], hidden, config.log_std_init)


def has_frames(env: gym.Env) -> bool:
    """Observations are stacked frames (C, H, W), as :func:`make_env` gives for ALE games."""
    return len(env.observation_space.shape) == 3


def make_value(config: TRPOConfig, env: gym.Env) -> ValueMLP | ValueCNN:
    """V for ``env``'s observations: ValueCNN on frame stacks (its own copy of the policy's
    architecture), else ValueMLP with the policy's hidden sizes."""
    if has_frames(env):
        return ValueCNN(env.observation_space.shape)
    return ValueMLP(env.observation_space.shape[0], hidden_sizes(config.network, config.hidden))


# --- 2. advantages -------------------------------------------------------------------------------

def advantages_and_targets(
    rollout: Rollout, value_fn: ValueMLP, gamma: float, lam: float
) -> tuple[np.ndarray, np.ndarray]:
    """GAE advantages and lambda-return targets (A + V_old), with V_old = ``value_fn`` now."""
    with torch.no_grad():
        values = evaluate_in_chunks(value_fn, value_fn, torch.as_tensor(rollout.obs)).numpy()
        next_values = np.append(values[1:], 0.0)
        if rollout.truncated_final:
            rows = np.fromiter(rollout.truncated_final, dtype=np.int64)
            finals = torch.as_tensor(np.stack(list(rollout.truncated_final.values())))
            next_values[rows] = value_fn(finals).numpy()
    next_values[rollout.terminated] = 0.0
    adv = gae(rollout.rewards, values, next_values, rollout.terminated, rollout.episode_end,
              gamma, lam)
    return adv, adv + values


# --- the loop ------------------------------------------------------------------------------------

def seed_everything(seed: int, env: gym.Env | None = None) -> None:
    """Seed torch's and numpy's global generators (network initialization, anything global)
    and, given ``env``, its action and observation spaces (the env itself is seeded by its
    first reset)."""
    torch.manual_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 -- the legacy global state is what third-party code uses
    if env is not None:
        env.action_space.seed(seed)
        env.observation_space.seed(seed)


def jsonable_metrics(metrics: Metrics) -> Metrics:
    """NaN / inf -> None so that every line is standard JSON."""
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
            for k, v in metrics.items()}


class NonFiniteParametersError(RuntimeError):
    """A policy or value parameter is NaN or infinite after an update: the run stops there."""


def check_finite_parameters(iteration: int, **modules: torch.nn.Module) -> None:
    """Raise NonFiniteParametersError naming ``iteration`` and every module (by its keyword)
    with a non-finite parameter. The update already refuses non-finite steps; this is the
    backstop that keeps a run from going on, logging or checkpointing with NaN parameters."""
    bad = [name for name, module in modules.items()
           if not bool(torch.isfinite(get_flat_params(module)).all())]
    if bad:
        raise NonFiniteParametersError(
            f"iteration {iteration}: non-finite {' and '.join(bad)} parameters after the update; "
            f"the run stops before logging or checkpointing this iteration")


@dataclass
class TrainingState:
    """Everything an iteration reads or changes besides the environment: what a checkpoint holds
    (with the env's generators and the config)."""

    policy: Policy
    value_fn: ValueMLP
    value_opt: torch.optim.Optimizer
    normalizer: RunningObsNormalizer
    sample_gen: torch.Generator  # action noise
    update_gen: torch.Generator  # FVP subsample and value minibatches
    iteration: int = 0
    total_steps: int = 0

    def checkpoint(self, config: TRPOConfig, env: gym.Env) -> dict[str, Any]:
        """Plain data for :func:`trpo_ref.deep.checkpoint.save_checkpoint`."""
        return {
            "format": FORMAT_VERSION,
            "config": dataclasses.asdict(config),
            "iteration": self.iteration,
            "total_steps": self.total_steps,
            "policy": self.policy.state_dict(),
            "value": self.value_fn.state_dict(),
            "value_optimizer": self.value_opt.state_dict(),
            "normalizer": self.normalizer.state_dict(),
            "rng": {
                "torch": torch.get_rng_state(),
                "numpy": numpy_global_state(),
                "sample": self.sample_gen.get_state(),
                "update": self.update_gen.get_state(),
                **{name: rng.bit_generator.state for name, rng in _env_generators(env).items()},
            },
        }

    def restore(self, checkpoint: dict[str, Any], env: gym.Env) -> None:
        """Load a :meth:`checkpoint` into this state and ``env``'s generators, exactly."""
        self.policy.load_state_dict(checkpoint["policy"])
        self.value_fn.load_state_dict(checkpoint["value"])
        self.value_opt.load_state_dict(checkpoint["value_optimizer"])
        stats = checkpoint["normalizer"]
        self.normalizer.mean = np.asarray(stats["mean"], dtype=np.float64)
        self.normalizer.var = np.asarray(stats["var"], dtype=np.float64)
        self.normalizer.count = int(stats["count"])
        rng = checkpoint["rng"]
        torch.set_rng_state(rng["torch"])
        set_numpy_global_state(rng["numpy"])
        self.sample_gen.set_state(rng["sample"])
        self.update_gen.set_state(rng["update"])
        for name, generator in _env_generators(env).items():
            set_generator_state(generator, rng[name])
        self.iteration, self.total_steps = checkpoint["iteration"], checkpoint["total_steps"]


def _vine_batch(config: TRPOConfig, env: gym.Env, policy: Policy, value_fn: ValueMLP,
                normalize: Callable[[np.ndarray], np.ndarray], generator: torch.Generator,
                reset_seed: int | None) -> VineBatch:
    """One vine batch (:func:`trpo_ref.deep.vine.collect_vine`) with ``config``'s settings."""
    return collect_vine(
        env, policy, value_fn if config.vine_bootstrap else None, normalize,
        trunk_steps=config.steps_per_iter, n_states=config.vine_states,
        n_actions=config.vine_actions, horizon=config.vine_horizon, gamma=config.gamma,
        generator=generator, reset_seed=reset_seed,
    )


def _vine_metrics(policy: Policy, batch: PolicyBatch, vine_batch: VineBatch) -> Metrics:
    """The vine batch's sizes and Q statistics; for sampled (Box) actions also the change of the
    paper's self-normalized surrogate over the update (the update optimizes its first-order
    equivalent, see :mod:`trpo_ref.deep.vine`)."""
    metrics: Metrics = {
        "vine/states": len(vine_batch.rows),
        "vine/actions_per_state": int(vine_batch.q.shape[1]),
        "vine/trunk_steps": len(vine_batch.trunk.rewards),
        "vine/branch_steps": int(vine_batch.branch_steps.sum()),
        "vine/q_mean": float(vine_batch.q.mean()),
        "vine/adv_std": float(vine_batch.adv.std()),
        "vine/surrogate_self_normalized_actual": math.nan,
    }
    if vine_batch.probs is None:
        with torch.no_grad():
            log_ratio = (policy.log_prob(batch.obs, batch.act) - batch.old_log_prob)
            q = torch.as_tensor(vine_batch.q)
            after = self_normalized_surrogate(log_ratio.reshape(q.shape), q)
            before = self_normalized_surrogate(torch.zeros_like(q), q)
        metrics["vine/surrogate_self_normalized_actual"] = float(after - before)
    return metrics


def _env_generators(env: gym.Env) -> dict[str, np.random.Generator]:
    return {"env": env.unwrapped.np_random, "action_space": env.action_space.np_random,
            "observation_space": env.observation_space.np_random}


def train(
    config: TRPOConfig,
    out_dir: str | Path | None = None,
    progress: Callable[[Metrics], None] | None = None,
    resume: bool = False,
) -> list[Metrics]:
    """Train by ``config``; returns the metrics of the iterations run by this call (all of them
    are in out_dir/metrics.jsonl).

    ``progress`` is called with each iteration's metrics (e.g. to drive a progress bar).
    ``resume=True`` continues from out_dir/checkpoint.pt: the config may differ from the
    checkpoint's only in total_steps, threads and checkpoint_every; metrics.jsonl is cut back to
    the checkpoint's iteration and appended to.
    Invalid configs, unknown env ids, unsupported spaces, envs whose state vine sampling cannot
    restore (``sampling="vine"``), and on resume a corrupt or incompatible
    checkpoint raise ValueError (a missing one FileNotFoundError) before anything is written; a
    non-finite observation or reward raises ValueError before it reaches an update; non-finite
    parameters after an update raise NonFiniteParametersError.
    """
    config.validate()
    checkpoint, kept_lines = None, []
    if resume:
        if out_dir is None:
            raise ValueError("resume=True needs the out_dir that holds the checkpoint")
        path = Path(out_dir) / CHECKPOINT_NAME
        checkpoint = load_checkpoint(path)
        check_compatible(checkpoint["config"], dataclasses.asdict(config), path,
                         defaults=dataclasses.asdict(TRPOConfig()))
        kept_lines = logged_lines_up_to(Path(out_dir) / "metrics.jsonl", checkpoint["iteration"])
    env = make_env(config.env_id, config)
    try:
        if config.sampling == "vine":  # before anything is written
            check_vine_env(env)
        with torch_threads(config.threads):
            return _train(config, env, out_dir, progress, checkpoint, kept_lines)
    finally:
        env.close()


@dataclass
class Sample:
    """One iteration's data: the episodes (``rollout``; vine: the trunk, on which V is fit and
    whose episodes are the true returns) and the update's rows (obs, act, adv before
    normalization): the rollout's own (single path) or the vine's branch rows."""

    rollout: Rollout
    obs: np.ndarray
    act: np.ndarray
    adv: np.ndarray
    targets: np.ndarray  # V's lambda-return targets on the rollout's rows
    vine: VineBatch | None = None  # the vine batch (vine sampling only)

    @property
    def steps(self) -> int:
        """Every env step taken for this sample (vine: trunk plus branches)."""
        return len(self.rollout.rewards) if self.vine is None else self.vine.total_steps


def collect_sample(config: TRPOConfig, env: gym.Env, state: TrainingState,
                   normalize: Callable[[np.ndarray], np.ndarray],
                   reset_seed: int | None) -> Sample:
    """Steps 1-2: sample by ``config.sampling`` and compute the advantages (GAE on the rollout;
    vine: the branches' Q-value advantages, GAE only for V's targets)."""
    if config.sampling == "vine":
        vine_batch = _vine_batch(config, env, state.policy, state.value_fn, normalize,
                                 state.sample_gen, reset_seed)
        rollout = vine_batch.trunk
    else:
        vine_batch = None
        rollout = collect_rollout(env, state.policy, normalize, config.steps_per_iter,
                                  state.sample_gen, reset_seed=reset_seed)
    adv, targets = advantages_and_targets(rollout, state.value_fn, config.gamma, config.lam)
    if vine_batch is not None:  # V is fit on the trunk as in single path
        return Sample(rollout, vine_batch.obs, vine_batch.act, vine_batch.adv.ravel(), targets,
                      vine_batch)
    return Sample(rollout, rollout.obs, rollout.act, adv, targets)


def normalized_advantages(config: TRPOConfig, sample: Sample) -> np.ndarray:
    """The advantages the update sees: standardized per batch if ``normalize_advantages``
    (vine's are already centred per state, so they are only scaled)."""
    adv = sample.adv
    if config.normalize_advantages:
        centre = 0.0 if sample.vine is not None else adv.mean()
        adv = (adv - centre) / (adv.std() + 1e-8)
    return adv


def fit_value_safely(config: TRPOConfig, state: TrainingState, sample: Sample) -> Metrics:
    """Step 4: fit V to the sample's targets; non-finite parameters are put back (logged)."""
    value_before = get_flat_params(state.value_fn)
    metrics = fit_value(state.value_fn, state.value_opt, torch.as_tensor(sample.rollout.obs),
                        torch.as_tensor(sample.targets), config.vf_epochs, config.vf_minibatch,
                        state.update_gen)
    value_finite = bool(torch.isfinite(get_flat_params(state.value_fn)).all())
    if not value_finite:  # never keep NaN parameters; the log says so
        set_flat_params(state.value_fn, value_before)
    metrics["value/restored"] = not value_finite
    return metrics


def rollout_metrics(state: TrainingState, sample: Sample) -> Metrics:
    """The iteration's counters and the sample's episode statistics."""
    rollout = sample.rollout
    returns = np.asarray(rollout.episode_returns)
    return {
        "global/iteration": state.iteration,
        "global/steps": state.total_steps,
        "rollout/steps": sample.steps,
        "rollout/episodes": len(returns),
        "rollout/ep_return_mean": float(returns.mean()),
        "rollout/ep_return_std": float(returns.std()),
        "rollout/ep_return_min": float(returns.min()),
        "rollout/ep_return_max": float(returns.max()),
        "rollout/ep_len_mean": float(np.mean(rollout.episode_lengths)),
        # forward progress (section 8: "gaits that made forward progress"), where the
        # env reports it: mean forward velocity over the batch's steps
        "rollout/x_velocity_mean": (math.nan if rollout.x_velocity is None
                                    else float(rollout.x_velocity.mean())),
    }


def run_iteration(config: TRPOConfig, env: gym.Env, state: TrainingState, frames: bool
                  ) -> Metrics:
    """One iteration, steps 1-5 of the module docstring; returns its metrics."""
    t_start = time.perf_counter()
    identity = lambda raw: np.asarray(raw, dtype=np.float64)  # noqa: E731
    # Frames: kept uint8 (8x less memory per row) and scaled by 1/255 inside the CNNs; no
    # running statistics, whatever normalize_obs says.
    normalize = (np.asarray if frames else
                 state.normalizer if config.normalize_obs else identity)
    reset_seed = config.seed if state.iteration == 0 else None
    sample = collect_sample(config, env, state, normalize, reset_seed)
    t_rollout = time.perf_counter()
    # the advantages' scale before normalization converts the surrogate's improvement
    # back into return units (the gap audit in claims.empirical)
    adv_raw_mean, adv_raw_std = float(sample.adv.mean()), float(sample.adv.std())
    batch = make_batch(state.policy, torch.as_tensor(sample.obs), torch.as_tensor(sample.act),
                       torch.as_tensor(normalized_advantages(config, sample)))
    t_advantages = time.perf_counter()
    metrics = update(
        state.policy, batch, algo=config.algo, delta=config.delta, damping=config.damping,
        cg_iters=config.cg_iters, backtrack=config.backtrack,
        max_backtracks=config.max_backtracks, fvp_subsample=config.fvp_subsample,
        step_size=config.step_size, generator=state.update_gen,
    )
    t_update = time.perf_counter()
    metrics.update(fit_value_safely(config, state, sample))
    metrics["train/adv_raw_mean"], metrics["train/adv_raw_std"] = adv_raw_mean, adv_raw_std
    t_value = time.perf_counter()
    check_finite_parameters(state.iteration + 1, policy=state.policy, value=state.value_fn)

    if not frames:
        state.normalizer.update(sample.rollout.raw_obs)
    state.iteration += 1
    if sample.vine is not None:
        metrics.update(_vine_metrics(state.policy, batch, sample.vine))
    state.total_steps += sample.steps
    metrics.update(rollout_metrics(state, sample))
    metrics.update({
        "time/rollout_s": t_rollout - t_start,
        "time/advantages_s": t_advantages - t_rollout,
        "time/update_s": t_update - t_advantages,
        "time/value_fit_s": t_value - t_update,
        "time/iteration_s": t_value - t_start,
    })
    return metrics


def _new_state(config: TRPOConfig, env: gym.Env) -> TrainingState:
    """Seeded networks, optimizer, statistics and generators for a run that starts now."""
    seed_everything(config.seed, env)
    policy = make_policy(config, env)
    value_fn = make_value(config, env)
    return TrainingState(
        policy=policy,
        value_fn=value_fn,
        value_opt=torch.optim.Adam(value_fn.parameters(), lr=config.vf_lr),
        normalizer=RunningObsNormalizer(env.observation_space.shape[0], clip=config.obs_clip),
        sample_gen=torch.Generator().manual_seed(config.seed),
        update_gen=torch.Generator().manual_seed(config.seed + 1),
    )


def _open_log(config: TRPOConfig, out_dir: str | Path, resumed: bool, kept_lines: list[str]
              ) -> Any:
    """out_dir/config.json written and metrics.jsonl opened for appending (on resume: cut back
    to the checkpoint's lines first, atomically)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    log_path = out / "metrics.jsonl"
    if resumed:  # drop lines logged after the checkpoint, atomically
        text = "".join(line + "\n" for line in kept_lines).encode()
        write_atomic(log_path, lambda handle: handle.write(text))
    return log_path.open("a" if resumed else "w")


def _train(
    config: TRPOConfig,
    env: gym.Env,
    out_dir: str | Path | None,
    progress: Callable[[Metrics], None] | None,
    checkpoint: dict[str, Any] | None,
    kept_lines: list[str],
) -> list[Metrics]:
    state = _new_state(config, env)
    if checkpoint is not None:
        state.restore(checkpoint, env)
    frames = has_frames(env)
    log_file, checkpoint_path = None, None
    if out_dir is not None:
        checkpoint_path = Path(out_dir) / CHECKPOINT_NAME
        log_file = _open_log(config, out_dir, checkpoint is not None, kept_lines)
    history: list[Metrics] = []
    saved_iteration = state.iteration
    try:
        while state.total_steps < config.total_steps:
            metrics = run_iteration(config, env, state, frames)
            history.append(metrics)
            if log_file is not None:
                log_file.write(json.dumps(jsonable_metrics(metrics)) + "\n")
                log_file.flush()
            # The line is flushed before the checkpoint, so the log never lags a checkpoint.
            if (checkpoint_path is not None and config.checkpoint_every > 0
                    and state.iteration % config.checkpoint_every == 0):
                save_checkpoint(checkpoint_path, state.checkpoint(config, env))
                saved_iteration = state.iteration
            if progress is not None:
                progress(metrics)
        if checkpoint_path is not None and state.iteration != saved_iteration:
            save_checkpoint(checkpoint_path, state.checkpoint(config, env))
    finally:
        if log_file is not None:
            log_file.close()
    return history
