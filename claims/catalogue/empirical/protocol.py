"""The empirical claims' shared protocol (paper section 8, Figure 4), fixed before anything runs.

Everything the section-8 claims train is declared here: the tasks and the published thresholds
they are judged against, the Figure 4 methods per task, each tier's budget (steps, seeds), the
natural-gradient step sweep, the delta sweep, the Atari games (Table 1) and the broken trainers
of the negative controls. A training's configuration is a :class:`Method`, whose label is the
job's ``algo`` in cache keys and reports. The claims only *read* these trainings
(:func:`results` runs whatever the cache lacks), so one training serves every claim that needs
it and a long run resumes job by job.

Per-seed summaries are pure functions of one job's result: :func:`final_return` (mean episode
return over the last 10% of iterations), :func:`mean_return` (the learning curve's average,
i.e. its area divided by its length), :func:`final_velocity`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from claims.framework.core import Budget as ClaimBudget
from claims.framework.jobs import Job, register_methods, run_in_context

TRAIN_FN = "claims.catalogue.training_jobs:train_job"
FINAL_FRACTION = 0.1  # final return: mean over the last 10% of iterations (at least one)


@dataclass(frozen=True)
class Task:
    """A Figure 4 task: gymnasium id, the published score a "learns" claim must pass (never one
    of our own runs), where that score comes from, and the methods Figure 4 ran on it."""

    env_id: str
    threshold: float
    threshold_source: str
    methods: tuple[str, ...]
    vine: Mapping[str, Any]  # vine sampling settings (TRPOConfig fields) for this task
    locomotion: bool = True


_SPINNING_UP = ("Spinning Up TRPO benchmark at 1M steps (10 seeds, -v2 environments, read off "
                "its plot; paper-facts.md)")
# Vine (section 5.2, Table 2): branch length from Table 2 (cart-pole: 50), 4 actions per state
# (cart-pole: both). The paper's 500 / 2500 Q-values came with 50K / 1M steps per iteration; at
# our 5K-step trunks every task gets 100 Q-values per batch (25 states x 4, cart-pole 50 x 2).
TASKS: dict[str, Task] = {
    "CartPole-v1": Task(
        "CartPole-v1", 475.0,
        "gymnasium's registered reward_threshold for CartPole-v1 (its 'solved' score), which "
        "published TRPO reaches: rl-baselines3-zoo's benchmark.md lists sb3-contrib TRPO at "
        "500 +- 0 after 100K steps (one agent). The paper's cart-pole is rllab's, a different task",
        ("trpo", "vine", "npg", "max-kl", "empirical-fim", "cem", "cma"),
        {"sampling": "vine", "vine_states": 50, "vine_horizon": 50}, locomotion=False),
    "Swimmer-v5": Task(
        "Swimmer-v5", 85.0, _SPINNING_UP,
        ("trpo", "vine", "npg", "empirical-fim", "cem", "cma"),
        {"sampling": "vine", "vine_states": 25, "vine_actions": 4, "vine_horizon": 50}),
    "Hopper-v5": Task(
        "Hopper-v5", 1160.0, _SPINNING_UP, ("trpo", "vine", "npg", "cem"),
        {"sampling": "vine", "vine_states": 25, "vine_actions": 4, "vine_horizon": 100}),
    "Walker2d-v5": Task(
        "Walker2d-v5", 550.0, _SPINNING_UP, ("trpo", "vine", "npg", "cem"),
        {"sampling": "vine", "vine_states": 25, "vine_actions": 4, "vine_horizon": 100}),
}
DERIVATIVE_FREE = ("cem", "cma")
NPG_STEPS = tuple(3.0**k for k in range(-3, 2))  # the fixed-step sweep, factors of 3 (section 8)
DELTAS = (0.003, 0.01, 0.03, 0.1)  # the monotonicity sweep; 0.01 is the paper's (Figure 4) run


@dataclass(frozen=True)
class Budget:
    """One tier's trainings. ``steps``: env steps per run for each task the tier covers."""

    steps: Mapping[str, int]
    seeds: tuple[int, ...]  # Figure 4 runs (the paper: 5 per method)
    control_seeds: tuple[int, ...]  # negative controls, at the same steps
    sweep_seeds: tuple[int, ...]  # NPG step sweep (disjoint from ``seeds``)
    sweep_fraction: float  # NPG step sweep: this fraction of ``steps``
    delta_seeds: tuple[int, ...]  # delta sweep (deltas other than 0.01; 0.01 reuses Figure 4)
    note: str = ""  # what the tier cannot decide
    methods: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # override per task

    def tasks(self) -> list[str]:
        return list(self.steps)

    def task_methods(self, env_id: str) -> tuple[str, ...]:
        return self.methods.get(env_id, TASKS[env_id].methods)


BUDGETS: dict[str, Budget] = {
    "quick": Budget(
        steps={"CartPole-v1": 75_000}, seeds=(0, 1), control_seeds=(0,), sweep_seeds=(100,),
        sweep_fraction=0.5, delta_seeds=(0,),
        note="cart-pole only, 2 seeds: the locomotion claims are not decided here"),
    "standard": Budget(
        steps={"CartPole-v1": 250_000, "Hopper-v5": 300_000}, seeds=(0, 1, 2, 3, 4),
        control_seeds=(0, 1), sweep_seeds=(100, 101), sweep_fraction=0.3, delta_seeds=(0, 1),
        methods={"Hopper-v5": ("trpo",)},
        note="cart-pole in full; Hopper at 300K steps for the step audits only"),
    "full": Budget(
        steps={"CartPole-v1": 250_000, "Swimmer-v5": 1_000_000, "Hopper-v5": 1_000_000,
               "Walker2d-v5": 1_000_000},
        seeds=(0, 1, 2, 3, 4), control_seeds=(0, 1), sweep_seeds=(100, 101),
        sweep_fraction=0.3, delta_seeds=(0, 1, 2)),
}


def budget(tier: str) -> Budget:
    try:
        return BUDGETS[tier]
    except KeyError:
        raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(BUDGETS)}") from None


# --- the trainings -------------------------------------------------------------------------------

METHODS = ("trpo", "vine", "npg", "max-kl", "empirical-fim", *DERIVATIVE_FREE)


@dataclass(frozen=True)
class Method:
    """One training configuration of the protocol. Its :meth:`label` is the job's ``algo``
    ("trpo", "npg@0.333333", "trpo@delta=0.03", "vine+flip_advantages"): part of every job
    cache key and of the reports, so it is written and read back here only."""

    name: str  # a Figure 4 method (METHODS)
    npg_step: float | None = None  # NPG's fixed step size, "npg@S" (None: name is not "npg")
    delta: float | None = None  # TRPO's KL bound other than TRPOConfig's, "trpo@delta=D"
    fault: str | None = None  # the negative control's fault (training_jobs.FAULTS), "+fault"

    def __post_init__(self) -> None:
        if self.name not in METHODS:
            raise ValueError(f"unknown method {self.name!r}; choose one of {', '.join(METHODS)}")
        if (self.npg_step is not None) != (self.name == "npg" and self.delta is None):
            raise ValueError(f"an NPG run needs its step size, and only NPG has one: {self}")
        if self.delta is not None and self.name != "trpo":
            raise ValueError(f"only single-path TRPO runs the delta sweep: {self}")
        # the label keeps 6 significant digits, and the trainer is given the label's value
        # (that is what every cached run was trained with), so the spec holds it too
        if self.npg_step is not None:
            object.__setattr__(self, "npg_step", float(f"{self.npg_step:.6g}"))
        if self.delta is not None:
            object.__setattr__(self, "delta", float(f"{self.delta:g}"))

    def label(self) -> str:
        if self.npg_step is not None:
            base = f"npg@{self.npg_step:.6g}"
        elif self.delta is not None:
            base = f"trpo@delta={self.delta:g}"
        else:
            base = self.name
        return base if self.fault is None else f"{base}+{self.fault}"

    @classmethod
    def parse(cls, label: str) -> Method:
        """The Method whose :meth:`label` is ``label``; ValueError if none is."""
        base, plus, fault = label.partition("+")
        if plus and not fault:
            raise ValueError(f"{label!r}: nothing after '+'")
        extra: dict[str, Any] = {"fault": fault or None}
        if base.startswith("npg@"):
            method = cls("npg", npg_step=float(base.removeprefix("npg@")), **extra)
        elif base.startswith("trpo@delta="):
            method = cls("trpo", delta=float(base.removeprefix("trpo@delta=")), **extra)
        else:
            method = cls(base, **extra)
        if method.label() != label:
            raise ValueError(f"{label!r} is not a label this protocol writes "
                             f"(it would be {method.label()!r})")
        return method

    def trainer(self, env_id: str) -> tuple[str, dict[str, Any]]:
        """(algo, config overrides) this method trains with on ``env_id``."""
        if self.npg_step is not None:
            return "npg", {"step_size": self.npg_step}
        if self.delta is not None:
            return "trpo", {"delta": self.delta}
        if self.name == "vine":
            return "trpo", dict(TASKS[env_id].vine)
        return self.name, {}


def trainings_table_method(label: str) -> str:
    """The method a training of ``label`` counts under in a run's trainings table: NPG's runs at
    every step size (the sweep's too) are one method, "npg"; any other label is its own."""
    return "npg" if Method.parse(label).name == "npg" else label


register_methods(TRAIN_FN, trainings_table_method)


def training(group: str, env_id: str, method: Method | str, seed: int, steps: int,
             fault: str | None = None) -> Job:
    """The job training ``method`` (a :class:`Method`, or its label) on ``env_id``, with
    ``fault`` when given. ``group`` labels the job (it is part of the cache key, so every claim
    naming the same group, task, method and seed shares one run)."""
    method = Method.parse(method) if isinstance(method, str) else method
    if fault is not None:
        method = dataclasses.replace(method, fault=fault)
    algo, overrides = method.trainer(env_id)
    kwargs: dict[str, Any] = {"env_id": env_id, "algo": algo, "seed": seed,
                              "total_steps": steps, "overrides": overrides}
    if method.fault is not None:
        kwargs["fault"] = method.fault
    return Job(group, env_id, method.label(), seed, TRAIN_FN, kwargs)


def npg(step: float, fault: str | None = None) -> Method:
    """NPG at a fixed step size (the sweep's, or the sweep winner's)."""
    return Method("npg", npg_step=step, fault=fault)


def named(method: str, fault: str | None = None) -> Method:
    """A Figure 4 method by name; "npg" needs its step, so use :func:`npg` for it."""
    return Method(method, fault=fault)


def figure4_jobs(tier: str, methods: Sequence[str] | None = None,
                 tasks: Sequence[str] | None = None) -> list[Job]:
    """The Figure 4 runs at ``tier`` (NPG excluded: its step comes from the sweep)."""
    b = budget(tier)
    return [training("figure4", env, named(m), s, b.steps[env])
            for env in (tasks or b.tasks()) for m in b.task_methods(env)
            if m != "npg" and (methods is None or m in methods) for s in b.seeds]


def npg_sweep_jobs(tier: str, tasks: Sequence[str] | None = None) -> list[Job]:
    b = budget(tier)
    return [training("npg-sweep", env, npg(step), s,
                     max(1, int(b.sweep_fraction * b.steps[env])))
            for env in (tasks or b.tasks()) if "npg" in b.task_methods(env)
            for step in NPG_STEPS for s in b.sweep_seeds]


def best_npg_step(tier: str, env_id: str) -> tuple[float, dict[str, float]]:
    """The sweep's winner on ``env_id`` (highest mean final return over the sweep seeds, as the
    paper kept the best) and every step's mean final return. Runs the sweep if needed."""
    jobs = npg_sweep_jobs(tier, [env_id])
    scores: dict[str, list[float]] = {}
    for job, result in zip(jobs, results(jobs), strict=True):
        scores.setdefault(f"{Method.parse(job.algo).npg_step:.6g}", []).append(
            final_return(result))
    means = {step: float(np.mean(v)) for step, v in scores.items()}
    return float(max(means, key=lambda k: means[k])), means


def npg_jobs(tier: str, tasks: Sequence[str] | None = None) -> list[Job]:
    """NPG's Figure 4 runs, each task at its swept step (runs the sweep first if needed)."""
    b = budget(tier)
    out = []
    for env in (tasks or b.tasks()):
        if "npg" in b.task_methods(env):
            step, _ = best_npg_step(tier, env)
            out += [training("figure4", env, npg(step), s, b.steps[env]) for s in b.seeds]
    return out


def control_jobs(tier: str, method: str, fault: str,
                 tasks: Sequence[str] | None = None) -> list[Job]:
    """A broken ``method`` (``fault``: see :mod:`claims.catalogue.training_jobs`) on the tier's
    tasks that run it, at the same steps as the real runs, with the tier's control seeds."""
    b = budget(tier)
    return [training("control", env, named(method, fault), s, b.steps[env])
            for env in (tasks or b.tasks())
            if method in b.task_methods(env) or method.startswith("trpo")
            for s in b.control_seeds]


def delta_jobs(tier: str) -> list[Job]:
    """The delta sweep's runs (delta 0.01 is the Figure 4 single-path run itself)."""
    b = budget(tier)
    return [training("delta-sweep", env, Method("trpo", delta=d), s, b.steps[env])
            for env in b.tasks() for d in DELTAS if d != 0.01 for s in b.delta_seeds]


def delta_run(tier: str, env_id: str, delta: float, seed: int) -> Job:
    b = budget(tier)
    if delta == 0.01:
        return training("figure4", env_id, named("trpo"), seed, b.steps[env_id])
    return training("delta-sweep", env_id, Method("trpo", delta=delta), seed, b.steps[env_id])


# --- Atari (Table 1) ------------------------------------------------------------------------------

ATARI_GAMES = ("BeamRider", "Breakout", "Enduro", "Pong", "Qbert", "Seaquest", "SpaceInvaders")
ATARI_CONTROL_GAMES = ("Pong", "Breakout")


@dataclass(frozen=True)
class AtariBudget(ClaimBudget):
    """One single-path TRPO run per game (Table 1's rows are single runs too)."""

    games: tuple[str, ...]  # the games run (Table 1's names)
    steps: int  # agent steps per game
    steps_per_iter: int  # agent steps per TRPO batch
    seed: int  # the runs' seed
    control_games: tuple[str, ...]  # games of the negative control (flipped advantages)


# the largest budget this 2-core machine gives seven games in a session: ~100 agent steps/s/core
ATARI_BUDGETS: dict[str, AtariBudget | None] = {
    "quick": None,
    "standard": None,
    "full": AtariBudget(games=ATARI_GAMES, steps=200_000, steps_per_iter=5_000, seed=0,
                        control_games=ATARI_CONTROL_GAMES),
}


def atari_env_id(game: str) -> str:
    return f"ALE/{game}-v5"


def atari_jobs(tier: str, control: bool = False) -> list[Job]:
    """One single-path TRPO run per game (the paper's Table 1 rows are single runs too)."""
    budget = ATARI_BUDGETS[tier]
    if budget is None:
        return []
    games = budget.control_games if control else budget.games
    method = named("trpo", "flip_advantages" if control else None)
    return [Job("atari", atari_env_id(game), method.label(), budget.seed, TRAIN_FN,
                {"env_id": atari_env_id(game), "algo": "trpo", "seed": budget.seed,
                 "total_steps": budget.steps,
                 "overrides": {"steps_per_iter": budget.steps_per_iter}}
                | ({"fault": method.fault} if method.fault else {}))
            for game in games]


VINE_CONTROL = "vine_branch_not_restored"  # empirical.vine_solves' fault
CONTROLS: tuple[tuple[str, str], ...] = (
    ("trpo", "flip_advantages"), ("vine", VINE_CONTROL),
    ("empirical-fim", "flip_advantages"), ("trpo", "unchecked_big_step"),
)
# mechanism controls measured but not judged (docs/claims-controls.md): not REFUTED at quick
EMPIRICAL_FIM_CONTROL = "empirical_fim_uncentred_clipped"  # empirical.empirical_fim_similar's
DELTA_CONTROL = "parameter_space_trust_region"  # empirical.delta_transfers'
MECHANISM_CANDIDATES: tuple[tuple[str, str], ...] = (
    ("empirical-fim", EMPIRICAL_FIM_CONTROL), ("trpo", DELTA_CONTROL),
)
MAX_KL_CONTROL = "max_kl_reads_mean"  # empirical.max_kl_slower's fault


def stages(tier: str) -> list[Callable[[], list[Job]]]:
    """Every training of the tier, as stages to plan and run in order: planning stage 2 needs
    stage 1's results (NPG's runs use the sweep's best step). Figure 4 runs come first, the
    Atari games (Table 1) last."""
    b = budget(tier)
    npg_tasks = [env for env in b.tasks() if "npg" in b.task_methods(env)]

    def second() -> list[Job]:
        controls = [job for method, fault in CONTROLS for job in control_jobs(tier, method, fault)]
        return (npg_jobs(tier, npg_tasks) + npg_control_jobs(tier) + controls
                + max_kl_control_jobs(tier) + delta_jobs(tier))

    return [lambda: figure4_jobs(tier) + npg_sweep_jobs(tier), second,
            lambda: atari_jobs(tier) + atari_jobs(tier, control=True)]


def max_kl_control_jobs(tier: str) -> list[Job]:
    """empirical.max_kl_slower's control: max KL with its flag dropped (:data:`MAX_KL_CONTROL`)
    and the mean-KL runs it is paired with, trained side by side as control jobs (same machine,
    same seeds), on the tier's tasks that run max KL: the faulted arm then repeats its partner
    bit for bit wherever the two run on one machine, whatever machine made the Figure 4 runs."""
    b = budget(tier)
    tasks = [env for env in b.tasks() if "max-kl" in b.task_methods(env)]
    return ([training("control", env, named("max-kl", MAX_KL_CONTROL), s, b.steps[env])
             for env in tasks for s in b.control_seeds]
            + [training("control", env, named("trpo"), s, b.steps[env])
               for env in tasks for s in b.control_seeds])


NPG_EASY_TASKS = ("CartPole-v1", "Swimmer-v5")  # section 8: NPG "performed well" on these


def _npg_sweep_keeps_worst_bug(means: Mapping[str, float]) -> float:
    """The sweep's selection with its comparison reversed (argmin for argmax): the step whose
    mean final return was lowest (fault ``npg_sweep_keeps_worst``, empirical.npg_easy_tasks'
    control: the step-size choice is that claim's mechanism)."""
    return float(min(means, key=lambda k: means[k]))


def npg_control_jobs(tier: str, tasks: Sequence[str] = NPG_EASY_TASKS) -> list[Job]:
    """empirical.npg_easy_tasks' control: NPG at the step a reversed selection keeps from each
    task's sweep (:func:`_npg_sweep_keeps_worst_bug`), control seeds, the task's full budget."""
    b = budget(tier)
    out = []
    for env in tasks:
        if env in b.steps and "npg" in b.task_methods(env):
            step = _npg_sweep_keeps_worst_bug(best_npg_step(tier, env)[1])
            out += [training("control", env, npg(step), s, b.steps[env])
                    for s in b.control_seeds]
    return out


# --- results and per-seed summaries --------------------------------------------------------------

def results(jobs: Sequence[Job]) -> list[dict[str, Any]]:
    """The jobs' results, from the cache or run now (see
    :func:`claims.framework.jobs.run_in_context`)."""
    return run_in_context(jobs)


def final_return(result: Mapping[str, Any]) -> float:
    """Mean episode return over the last 10% of iterations (at least one)."""
    returns = np.asarray(result["returns"], dtype=float)
    k = max(1, math.ceil(FINAL_FRACTION * returns.size))
    return float(returns[-k:].mean())


def final_velocity(result: Mapping[str, Any]) -> float:
    """Mean forward velocity (m/s, from info["x_velocity"]) over the last 10% of iterations."""
    v = np.asarray(result["x_velocity"], dtype=float)
    last = v[-max(1, math.ceil(FINAL_FRACTION * v.size)):]
    last = last[np.isfinite(last)]
    return float(last.mean()) if last.size else math.nan


def mean_return(result: Mapping[str, Any]) -> float:
    """The learning curve's area per env step: sum_i return_i * steps_i / total steps."""
    steps = np.diff(np.concatenate([[0.0], np.asarray(result["steps"], dtype=float)]))
    returns = np.asarray(result["returns"], dtype=float)
    return float((returns * steps).sum() / steps.sum())


def runs(tier: str, method: str, tasks: Sequence[str], fault: str | None = None) -> list[Job]:
    """The Figure 4 runs of ``method`` on ``tasks`` (NPG at its swept step), or with ``fault``
    its negative-control runs (the tier's control seeds, same steps)."""
    b = budget(tier)
    out = []
    for env in tasks:
        spec = npg(best_npg_step(tier, env)[0], fault) if method == "npg" else named(method, fault)
        if fault is None:
            out += [training("figure4", env, spec, s, b.steps[env]) for s in b.seeds]
        else:
            out += [training("control", env, spec, s, b.steps[env]) for s in b.control_seeds]
    return out
