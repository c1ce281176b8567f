"""``trpo-claims bench``: the speed lead of issue 3, section 3, measured side by side in one run.

In one process, one after another, on one environment:
  (a) raw gymnasium stepping of a single environment with pre-drawn random actions; with it, as
      the physical limits below it, the same actions through the unwrapped environment's own
      ``step`` (no gymnasium wrappers) and, for a MuJoCo environment, bare ``mujoco.mj_step``
      calls (``frame_skip`` per env step: the simulator alone, no observation or reward);
  (b) ``trpo_ref`` end-to-end training (:func:`trpo_ref.deep.trpo.train`, network 64x64);
  (c) sb3-contrib's TRPO with matched settings (skipped, with a note, if it is not installed:
      it is an optional dependency, the ``external`` extra).

Throughput is env steps taken divided by the wall time of the whole training call (environment
and network construction included; one-off imports are paid before any clock starts, see
:func:`warm_up`, and sb3-contrib is imported before its clock starts). The ratios and their targets:
  - trpo_ref / sb3-contrib throughput >= 3;
  - trpo_ref / raw gymnasium stepping rate >= 0.5;
  - update share = (policy update + value fit) / iteration time <= 0.15, summed over iterations.

sb3-contrib is matched to :class:`~trpo_ref.deep.trpo.TRPOConfig`'s defaults where it has the
same knob (see :func:`sb3_settings`). Differences that remain: sb3 collects exactly ``n_steps``
per batch (trpo_ref runs whole episodes, so its batches may run over); sb3 computes in float32
(trpo_ref in float64); sb3's ``sub_sampling_factor`` would subsample the gradient and line search
too, not only the Fisher products, so it is left at 1 (trpo_ref's FVP uses 10% of the states);
sb3 initializes with orthogonal weights. Both run with one torch thread on the CPU.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym

from claims.framework.fingerprint import fingerprint, package_version
from claims.framework.serialize import write_json_atomic

TARGETS: dict[str, float] = {
    "trpo_ref_over_sb3": 3.0,  # end-to-end throughput, at least
    "trpo_ref_over_raw_env": 0.5,  # of the single-env gymnasium stepping rate, at least
    "update_share": 0.15,  # (policy update + value fit) / iteration time, at most
}
AT_MOST = frozenset({"update_share"})
VERSIONED = ("gymnasium", "mujoco", "torch", "numpy", "stable_baselines3", "sb3_contrib")
RAW_ENV_STEPS = 20_000


def raw_env_rate(env_id: str, n_steps: int, seed: int) -> dict[str, float]:
    """Steps per second of ``gym.make(env_id)`` stepped ``n_steps`` times with random actions,
    resetting at episode ends. The actions are drawn before the clock starts, so the rate is the
    environment's (gymnasium's wrappers included), not the sampler's."""
    env = gym.make(env_id)
    try:
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(n_steps)]
        env.reset(seed=seed)
        started, cpu_started = time.perf_counter(), time.process_time()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    finally:
        env.close()
    return {"steps": n_steps, "seconds": seconds, "steps_per_s": n_steps / seconds,
            **cpu_rate(n_steps, cpu_seconds)}


def cpu_rate(steps: int, cpu_seconds: float) -> dict[str, float]:
    """This process's CPU time for ``steps`` and the rate per CPU second: on a machine shared
    with other jobs the wall-clock rates move with their load, the CPU-time ones much less (each
    rate function runs in this process, one torch thread)."""
    return {"cpu_seconds": cpu_seconds,
            "steps_per_cpu_s": steps / cpu_seconds if cpu_seconds > 0 else math.nan}


def unwrapped_env_rate(env_id: str, n_steps: int, seed: int) -> dict[str, float]:
    """As :func:`raw_env_rate` through ``env.unwrapped.step``: the environment without
    gymnasium's wrappers (time limit, order and passive checks), resetting at termination or
    every ``max_episode_steps`` steps, as the time limit would."""
    env = gym.make(env_id)
    try:
        limit = env.spec.max_episode_steps if env.spec is not None else None
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(n_steps)]
        base = env.unwrapped
        base.reset(seed=seed)
        length = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for action in actions:
            _, _, terminated, _, _ = base.step(action)
            length += 1
            if terminated or length == limit:
                base.reset()
                length = 0
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    finally:
        env.close()
    return {"steps": n_steps, "seconds": seconds, "steps_per_s": n_steps / seconds,
            **cpu_rate(n_steps, cpu_seconds)}


def raw_mujoco_rate(env_id: str, n_steps: int, seed: int) -> dict[str, float] | None:
    """Env steps per second of the bare simulator: ``frame_skip`` ``mujoco.mj_step`` calls per
    env step on the environment's own model and data, the pre-drawn random actions written to
    ``data.ctrl``, the state reset every ``max_episode_steps`` steps; None for an environment
    that is not a MuJoCo one. No observation, reward or termination is computed: the floor under
    any MuJoCo training loop."""
    env = gym.make(env_id)
    try:
        base = env.unwrapped
        if not all(hasattr(base, name) for name in ("model", "data", "frame_skip")):
            return None
        import mujoco

        limit = env.spec.max_episode_steps if env.spec is not None else None
        env.action_space.seed(seed)
        actions = [env.action_space.sample() for _ in range(n_steps)]
        env.reset(seed=seed)
        model, data, frame_skip = base.model, base.data, int(base.frame_skip)
        length = 0
        started, cpu_started = time.perf_counter(), time.process_time()
        for action in actions:
            data.ctrl[:] = action
            mujoco.mj_step(model, data, nstep=frame_skip)
            length += 1
            if length == limit:
                mujoco.mj_resetData(model, data)
                length = 0
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
    finally:
        env.close()
    return {"steps": n_steps, "mj_steps": n_steps * frame_skip, "seconds": seconds,
            "steps_per_s": n_steps / seconds, **cpu_rate(n_steps, cpu_seconds)}


def time_shares(history: list[dict[str, Any]]) -> dict[str, float]:
    """Fractions of the summed ``time/iteration_s`` spent in each phase of an iteration.

    ``update`` is the policy update plus the value fit (what the target bounds)."""
    total = sum(m["time/iteration_s"] for m in history)
    phase = {
        name: sum(m[f"time/{name}_s"] for m in history) / total
        for name in ("rollout", "advantages", "update", "value_fit")
    }
    return {
        "rollout_share": phase["rollout"],
        "advantages_share": phase["advantages"],
        "policy_update_share": phase["update"],
        "value_fit_share": phase["value_fit"],
        "update_share": phase["update"] + phase["value_fit"],
    }


def trpo_ref_rate(env_id: str, steps: int, steps_per_iter: int, seed: int) -> dict[str, Any]:
    """Train ``trpo_ref`` for ``steps`` (no output directory); throughput and time shares."""
    from trpo_ref.deep.trpo import TRPOConfig, train

    config = TRPOConfig(env_id=env_id, seed=seed, total_steps=steps,
                        steps_per_iter=steps_per_iter, network="64x64", threads=1)
    started, cpu_started = time.perf_counter(), time.process_time()
    history = train(config)
    seconds = time.perf_counter() - started
    cpu_seconds = time.process_time() - cpu_started
    taken = int(history[-1]["global/steps"])
    iteration_s = sum(m["time/iteration_s"] for m in history)
    return {
        "steps": taken,
        "iterations": len(history),
        "seconds": seconds,
        "steps_per_s": taken / seconds,
        **cpu_rate(taken, cpu_seconds),
        # the wall time outside iterations: env and network construction
        "setup_share": 1.0 - iteration_s / seconds,
        **time_shares(history),
        "last_ep_return_mean": float(history[-1]["rollout/ep_return_mean"]),
    }


def sb3_settings(steps_per_iter: int, seed: int) -> dict[str, Any]:
    """sb3-contrib TRPO's constructor arguments, each matched to a TRPOConfig default."""
    from trpo_ref.deep.trpo import TRPOConfig

    ref = TRPOConfig()
    return {
        "n_steps": steps_per_iter,
        "batch_size": ref.vf_minibatch,  # sb3: the value-fit minibatch (the policy step is full)
        "n_critic_updates": ref.vf_epochs,  # sb3: passes over the batch per value fit
        "learning_rate": ref.vf_lr,  # sb3: the value-fit Adam learning rate
        "gamma": ref.gamma,
        "gae_lambda": ref.lam,
        "target_kl": ref.delta,
        "cg_max_steps": ref.cg_iters,
        "cg_damping": ref.damping,
        "line_search_shrinking_factor": ref.backtrack,
        "line_search_max_iter": ref.max_backtracks,
        "normalize_advantage": ref.normalize_advantages,
        "sub_sampling_factor": 1,  # sb3's would subsample gradient and line search too
        "seed": seed,
        "device": "cpu",
        "verbose": 0,
    }


def sb3_rate(env_id: str, steps: int, steps_per_iter: int, seed: int) -> dict[str, Any]:
    """Train sb3-contrib's TRPO for ``steps`` with :func:`sb3_settings`, a 64x64 tanh policy and
    value network, and observation normalization (VecNormalize, clip 10, rewards untouched) as
    trpo_ref does; throughput and the share of time in rollouts (from callback timestamps)."""
    from sb3_contrib import TRPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize
    from torch import nn

    from trpo_ref.deep.trpo import TRPOConfig

    class RolloutClock(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.rollout_s, self._start = 0.0, 0.0

        def _on_rollout_start(self) -> None:
            self._start = time.perf_counter()

        def _on_rollout_end(self) -> None:
            self.rollout_s += time.perf_counter() - self._start

        def _on_step(self) -> bool:
            return True

    ref = TRPOConfig()
    settings = sb3_settings(steps_per_iter, seed)
    policy_kwargs = {"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": nn.Tanh,
                     "log_std_init": ref.log_std_init}
    clock = RolloutClock()
    started, cpu_started = time.perf_counter(), time.process_time()
    env = VecNormalize(DummyVecEnv([lambda: Monitor(gym.make(env_id))]), norm_obs=True,
                       norm_reward=False, clip_obs=ref.obs_clip, gamma=ref.gamma)
    try:
        with warnings.catch_warnings():  # trpo_ref's last value minibatch is short too
            warnings.filterwarnings("ignore", message="You have specified a mini-batch size")
            model = TRPO("MlpPolicy", env, policy_kwargs=policy_kwargs, **settings)
        model.learn(total_timesteps=steps, callback=clock)
        seconds = time.perf_counter() - started
        cpu_seconds = time.process_time() - cpu_started
        taken = int(model.num_timesteps)
    finally:
        env.close()
    return {
        "steps": taken,
        "seconds": seconds,
        "steps_per_s": taken / seconds,
        **cpu_rate(taken, cpu_seconds),
        "rollout_share": clock.rollout_s / seconds,
        "settings": {
            **settings,
            "net_arch": "pi 64x64, vf 64x64, tanh",
            "log_std_init": ref.log_std_init,
            "obs_normalization": f"VecNormalize(norm_reward=False, clip_obs={ref.obs_clip})",
        },
    }


def sb3_available() -> bool:
    try:
        import sb3_contrib  # noqa: F401
    except ImportError:
        return False
    return True


def ratios(raw: dict[str, Any], ours: dict[str, Any], sb3: dict[str, Any] | None
           ) -> dict[str, float | None]:
    return {
        "trpo_ref_over_sb3": None if sb3 is None else ours["steps_per_s"] / sb3["steps_per_s"],
        "trpo_ref_over_raw_env": ours["steps_per_s"] / raw["steps_per_s"],
        "update_share": ours["update_share"],
    }


def cpu_ratios(result: dict[str, Any]) -> dict[str, float | None]:
    """trpo_ref's rate per CPU second over each other rate per CPU second (None where that rate
    was not measured): the ratios of :func:`ratios` with the other jobs' load taken out."""
    ours = result["trpo_ref"]["steps_per_cpu_s"]
    others = {"raw_env": result["raw_env"], "unwrapped_env": result["unwrapped_env"],
              "bare_mujoco": result["raw_mujoco"], "sb3": result["sb3"]}
    return {f"trpo_ref_over_{name}": None if other is None else ours / other["steps_per_cpu_s"]
            for name, other in others.items()}


def meets_targets(measured: dict[str, float | None]) -> dict[str, bool | None]:
    """Each ratio against :data:`TARGETS` (None where it was not measured)."""
    return {
        name: None if value is None
        else value <= TARGETS[name] if name in AT_MOST else value >= TARGETS[name]
        for name, value in measured.items()
    }


def warm_up() -> None:
    """Pay the process's one-off costs before any clock starts, so neither trainer is charged
    for them: the first torch.optim.Adam imports torch._dynamo (about 1.3 s here)."""
    import torch

    torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))])


def bench(
    env_id: str = "Hopper-v5",
    steps: int = 100_000,
    steps_per_iter: int = 5_000,
    seed: int = 0,
    include_sb3: bool = True,
    raw_env_steps: int = RAW_ENV_STEPS,
) -> dict[str, Any]:
    """Measure (a), (b) and (c) of the module doc, one after another, and the ratios.

    Keys: ``config``, ``machine`` (:func:`claims.framework.fingerprint.fingerprint`), ``versions``,
    ``load_average`` (before and after: other jobs slow every rate), ``raw_env``, ``trpo_ref``,
    ``sb3`` (None when skipped), ``sb3_note`` (why it was skipped, else None), ``ratios``,
    ``targets`` and ``meets`` (bool per ratio, None where not measured).
    """
    import torch

    from trpo_ref.deep.runtime import torch_threads

    warm_up()
    load_before = os.getloadavg()
    raw = raw_env_rate(env_id, raw_env_steps, seed)
    unwrapped = unwrapped_env_rate(env_id, raw_env_steps, seed)
    mujoco_rate = raw_mujoco_rate(env_id, raw_env_steps, seed)
    ours = trpo_ref_rate(env_id, steps, steps_per_iter, seed)
    sb3, note = None, None
    if not include_sb3:
        note = "skipped on request (include_sb3=False)"
    elif not sb3_available():
        note = ("skipped: sb3_contrib is not importable (install the optional extra: "
                "pip install 'trpo-claims[external]')")
    else:
        with torch_threads(1):
            sb3 = sb3_rate(env_id, steps, steps_per_iter, seed)
    measured = ratios(raw, ours, sb3)
    result = {
        "config": {"env_id": env_id, "steps": steps, "steps_per_iter": steps_per_iter,
                   "seed": seed, "include_sb3": include_sb3, "raw_env_steps": raw_env_steps,
                   "torch_threads": 1},
        "machine": fingerprint(),
        "versions": {name: package_version(name) for name in VERSIONED},
        "load_average": {"before": list(load_before), "after": list(os.getloadavg())},
        "torch_default_threads": torch.get_num_threads(),
        "raw_env": raw,
        "unwrapped_env": unwrapped,
        "raw_mujoco": mujoco_rate,
        "trpo_ref": ours,
        "sb3": sb3,
        "sb3_note": note,
        "ratios": measured,
        "targets": dict(TARGETS),
        "meets": meets_targets(measured),
    }
    result["cpu_ratios"] = cpu_ratios(result)
    return result


# --- command line --------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--env", default="Hopper-v5", help="gymnasium id (default: Hopper-v5)")
    parser.add_argument("--steps", type=int, default=100_000,
                        help="env steps each trainer takes (default: 100000)")
    parser.add_argument("--steps-per-iter", type=int, default=5_000,
                        help="batch size: trpo_ref's steps_per_iter, sb3's n_steps (default: 5000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of every run (default: 0)")
    parser.add_argument("--raw-env-steps", type=int, default=RAW_ENV_STEPS,
                        help=f"steps of the raw gymnasium rate (default: {RAW_ENV_STEPS})")
    parser.add_argument("--no-sb3", action="store_true",
                        help="skip sb3-contrib's TRPO (skipped anyway when not installed)")
    parser.add_argument("--json", metavar="OUT", default=None,
                        help="write every measurement and the machine's fingerprint to OUT")


def _format_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def render_table(result: dict[str, Any]) -> str:
    """The rates, then the three ratios with their targets and whether each is met."""
    machine, load = result["machine"], result["load_average"]
    lines = [
        f"{result['config']['env_id']}, {result['config']['steps']:,} steps, batch "
        f"{result['config']['steps_per_iter']:,}; {machine['cpu_model']}, "
        f"{machine['usable_cores']} usable cores; load average before "
        f"{load['before'][0]:.2f}, after {load['after'][0]:.2f}",
        f"  raw gymnasium stepping   {result['raw_env']['steps_per_s']:>10,.0f} env-steps/s",
    ]
    if result.get("unwrapped_env") is not None:
        lines.append(f"  unwrapped env.step       "
                     f"{result['unwrapped_env']['steps_per_s']:>10,.0f} env-steps/s")
    bare = result.get("raw_mujoco")
    if bare is not None:
        lines.append(f"  bare mujoco.mj_step      {bare['steps_per_s']:>10,.0f} env-steps/s "
                     f"({bare['mj_steps'] // bare['steps']} mj_step each)")
    lines += [
        f"  trpo_ref training        {result['trpo_ref']['steps_per_s']:>10,.0f} env-steps/s "
        f"(rollout {result['trpo_ref']['rollout_share']:.1%}, "
        f"update + value fit {result['trpo_ref']['update_share']:.1%})",
    ]
    if result["sb3"] is None:
        lines.append(f"  sb3-contrib TRPO         {result['sb3_note']}")
    else:
        lines.append(f"  sb3-contrib TRPO         {result['sb3']['steps_per_s']:>10,.0f} "
                     f"env-steps/s (rollout {result['sb3']['rollout_share']:.1%})")
    if result.get("cpu_ratios") is not None:
        lines += ["", "  per CPU second of this process (other jobs' load taken out):"]
        lines += [f"  {name:<32}{_format_ratio(value):>10}"
                  for name, value in result["cpu_ratios"].items()]
    lines += ["", f"  {'ratio':<24}{'measured':>10}{'target':>10}  met"]
    for name, value in result["ratios"].items():
        bound = ("<= " if name in AT_MOST else ">= ") + f"{TARGETS[name]:g}"
        met = result["meets"][name]
        lines.append(f"  {name:<24}{_format_ratio(value):>10}{bound:>10}  "
                     f"{'-' if met is None else 'yes' if met else 'NO'}")
    return "\n".join(lines)


def handle(args: argparse.Namespace) -> int:
    for name in ("steps", "steps_per_iter", "raw_env_steps"):
        if getattr(args, name) < 1:
            print(f"trpo-claims bench: error: --{name.replace('_', '-')} must be >= 1",
                  file=sys.stderr)
            return 2
    if args.json is not None and Path(args.json).is_dir():  # checked now, not after the bench
        print(f"trpo-claims bench: error: {args.json}: is a directory; --json takes a file name",
              file=sys.stderr)
        return 2
    try:
        result = bench(args.env, args.steps, args.steps_per_iter, args.seed,
                       include_sb3=not args.no_sb3, raw_env_steps=args.raw_env_steps)
    except ValueError as exc:
        print(f"trpo-claims bench: error: {exc}", file=sys.stderr)
        return 2
    except gym.error.Error as exc:
        print(f"trpo-claims bench: error: unknown environment {args.env!r}: {exc}",
              file=sys.stderr)
        return 2
    print(render_table(result))
    if args.json is not None:
        write_json_atomic(Path(args.json), result)
        print(f"measurements in {args.json}")
    return 0
