"""CEM and CMA-ES: the paper's derivative-free baselines (section 8, Figure 4), on the same
policies and environments as :mod:`trpo_ref.deep.trpo`.

Both evolve the policy's flat parameter vector (:func:`~trpo_ref.deep.step.get_flat_params`,
every parameter, the Gaussian's log-std included) starting from the freshly initialized policy.
One generation:
  1. draw ``population`` candidate vectors from the search distribution;
  2. fitness of a candidate = the mean *undiscounted* return of ``episodes_per_candidate`` whole
     episodes with its **stochastic** policy (actions sampled, as TRPO's rollouts and rllab's
     CEM/CMA-ES do), so every algorithm optimizes and reports the same quantity;
  3. update the distribution from (candidate, fitness) pairs and load its mean into the policy.

CEM (Szita & Lorincz 2006, "noisy cross-entropy method"; rllab's ``CEM`` in the parametrization
used here): a diagonal Gaussian N(mu, diag(s^2)). Candidates are drawn with the variance
``s^2 + extra_std^2 * max(1 - g / extra_decay_generations, 0)`` (the extra noise keeps the
distribution from collapsing early, and decays linearly to 0); mu and s are then the mean and
standard deviation of the best ``elite_frac`` of the candidates (:func:`cem_refit`).

CMA-ES (Hansen): the ``cma`` package's ``CMAEvolutionStrategy`` with ask/tell, minimizing the
negative fitness, initial mean the initial policy and initial step size ``sigma0``. When
``cma`` reports a termination criterion (``es.stop()``, e.g. flat fitness) the run ends there,
and the last line's ``es/stop`` names the criteria.

Steps are counted exactly (every env step of every candidate episode). Generations are whole:
the run stops after the first generation at which the total reaches ``total_steps`` (so it may
run over by up to one generation, as TRPO's last batch may). The distribution's mean itself is
not evaluated (no steps are spent outside the candidates).

Observation normalization (``normalize_obs``): TRPO's running statistics, frozen during a
generation so that all candidates of a generation see the same inputs, then updated with every
observation of that generation. Same config, same numbers: torch (initialization), numpy (CEM's
generator and the ``cma`` package's global draws, seeded by its ``seed`` option), the environment
(first reset), its action and observation spaces and the action noise are seeded from ``seed``.

Each generation appends one JSON line to ``out_dir/metrics.jsonl``, with TRPO's key names where
they mean the same thing (``global/iteration``, ``global/steps``, ``rollout/*``, ``time/*``) and
``es/*`` for the search distribution.
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

from trpo_ref.deep.normalize import RunningObsNormalizer
from trpo_ref.deep.policies import PRESETS, Policy
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import get_flat_params, set_flat_params
from trpo_ref.deep.trpo import (
    Metrics,
    check_finite_parameters,
    collect_rollout,
    has_frames,
    jsonable_metrics,
    make_env,
    make_policy,
    seed_everything,
)

DF_ALGOS = ("cem", "cma")
CEM_DEFAULT_POPULATION = 100  # rllab CEM's n_samples


@dataclass(frozen=True)
class DerivativeFreeConfig:
    """Hyperparameters of one CEM or CMA-ES run (defaults: rllab's CEM / CMAES where the paper
    gives none; the fields shared with TRPOConfig have its defaults)."""

    env_id: str = "Hopper-v5"  # gymnasium id (as TRPO; ALE ids work but are slow)
    algo: str = "cem"  # cem | cma
    seed: int = 0  # seeds torch, numpy, the env, its spaces, the action noise and cma
    total_steps: int = 1_000_000  # stop after the generation that reaches this many env steps
    population: int = 0  # candidates per generation (0: CEM 100 as rllab, CMA-ES 4 + 3 ln n)
    episodes_per_candidate: int = 1  # whole episodes per candidate; fitness = mean return
    elite_frac: float = 0.05  # CEM: best fraction refit as the new mean/std (rllab: 0.05)
    init_std: float = 1.0  # CEM: initial std of every parameter (rllab: 1)
    extra_std: float = 1.0  # CEM: std of the decaying extra noise (Szita & Lorincz; rllab: 1)
    extra_decay_generations: int = 100  # CEM: extra variance falls linearly to 0 (rllab: 100)
    sigma0: float = 1.0  # CMA-ES: initial step size (rllab: 1)
    cma_diagonal: bool = False  # CMA-ES: diagonal covariance only (sep-CMA; for big networks)
    network: str = "64x64"  # policy hidden layers: "paper" (one layer) or "64x64"
    hidden: int = 50  # hidden units of the "paper" preset (Table 2: 30 Swimmer, 50 Hopper)
    log_std_init: float = 0.0  # initial log standard deviation of Gaussian policies
    normalize_obs: bool = True  # running obs normalization, frozen per generation
    obs_clip: float = 10.0  # clip normalized observations to +-obs_clip
    threads: int = 1  # torch intra-op threads (small nets lose with more)

    def validate(self) -> None:
        """Raise ValueError naming the first bad field (called by :func:`train` before work)."""
        finite = math.isfinite
        checks = [
            (self.algo in DF_ALGOS, f"algo must be one of {DF_ALGOS}, got {self.algo!r}"),
            (0 <= self.seed < 2**32 - 1, f"seed must be in [0, 2**32 - 1), got {self.seed}"),
            (self.total_steps >= 1, f"total_steps must be >= 1, got {self.total_steps}"),
            (self.population == 0 or self.population >= 2,
             f"population must be 0 (the algorithm's default) or >= 2, got {self.population}"),
            (self.episodes_per_candidate >= 1,
             f"episodes_per_candidate must be >= 1, got {self.episodes_per_candidate}"),
            (finite(self.elite_frac) and 0 < self.elite_frac <= 1,
             f"elite_frac must be in (0, 1], got {self.elite_frac}"),
            (finite(self.init_std) and self.init_std > 0,
             f"init_std must be > 0, got {self.init_std}"),
            (finite(self.extra_std) and self.extra_std >= 0,
             f"extra_std must be >= 0, got {self.extra_std}"),
            (self.extra_decay_generations >= 1,
             f"extra_decay_generations must be >= 1, got {self.extra_decay_generations}"),
            (finite(self.sigma0) and self.sigma0 > 0, f"sigma0 must be > 0, got {self.sigma0}"),
            (self.network in PRESETS, f"network must be one of {PRESETS}, got {self.network!r}"),
            (self.hidden >= 1, f"hidden must be >= 1, got {self.hidden}"),
            (finite(self.log_std_init),
             f"log_std_init must be finite, got {self.log_std_init}"),
            (self.obs_clip > 0, f"obs_clip must be > 0, got {self.obs_clip}"),
            (self.threads >= 1, f"threads must be >= 1, got {self.threads}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ValueError(message)

    def cem_population(self) -> int:
        """CEM's candidates per generation (``population``, or rllab's 100 when it is 0)."""
        return self.population or CEM_DEFAULT_POPULATION

    def n_elite(self) -> int:
        """CEM's elites per generation: max(1, floor(population * elite_frac)) (as rllab)."""
        return max(1, int(self.cem_population() * self.elite_frac))


# --- CEM: pure functions -------------------------------------------------------------------------

def cem_sample_std(
    std: np.ndarray, extra_std: float, generation: int, decay_generations: int
) -> np.ndarray:
    """Std to draw generation ``generation`` (0-based) with: sqrt(s^2 + Z_g), where the extra
    variance Z_g = extra_std^2 * max(1 - g / decay_generations, 0) decays linearly to 0
    (Szita & Lorincz's noisy CEM, in rllab's parametrization). Shape of ``std``: (dim,)."""
    extra_var = extra_std**2 * max(1.0 - generation / decay_generations, 0.0)
    return np.sqrt(std**2 + extra_var)


def cem_refit(
    candidates: np.ndarray, fitness: np.ndarray, n_elite: int
) -> tuple[np.ndarray, np.ndarray]:
    """The cross-entropy step: mean and std (per parameter) of the ``n_elite`` candidates with
    the highest fitness (ties keep the earlier candidate). candidates (n, dim), fitness (n,)
    -> (dim,), (dim,)."""
    order = np.argsort(-fitness, kind="stable")
    elites = candidates[order[:n_elite]]
    return elites.mean(axis=0), elites.std(axis=0)


# --- fitness -------------------------------------------------------------------------------------

@dataclass
class Evaluation:
    """What one candidate's episodes gave: their returns and lengths (from
    RecordEpisodeStatistics) and the raw observations seen (for the normalizer)."""

    returns: list[float]
    lengths: list[int]
    raw_obs: list[np.ndarray]

    @property
    def fitness(self) -> float:
        """Mean undiscounted episode return."""
        return float(np.mean(self.returns))


def evaluate_candidate(
    env: gym.Env,
    policy: Policy,
    params: np.ndarray,
    normalize: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    generator: torch.Generator,
    reset_seed: int | None,
) -> Evaluation:
    """Load ``params`` into ``policy`` and run ``episodes`` whole episodes with sampled actions
    (one :func:`~trpo_ref.deep.trpo.collect_rollout` per episode, min_steps=1). ``reset_seed``
    seeds the first reset only (None: the env's generator goes on)."""
    set_flat_params(policy, torch.as_tensor(params, dtype=get_flat_params(policy).dtype))
    result = Evaluation([], [], [])
    for episode in range(episodes):
        rollout = collect_rollout(env, policy, normalize, 1, generator,
                                  reset_seed if episode == 0 else None)
        result.returns += rollout.episode_returns
        result.lengths += rollout.episode_lengths
        result.raw_obs.append(rollout.raw_obs)
    return result


# --- search distributions behind one interface ---------------------------------------------------

class CEMSearch:
    """CEM's diagonal Gaussian with decaying extra noise (see the module docstring)."""

    def __init__(self, config: DerivativeFreeConfig, x0: np.ndarray) -> None:
        self.config = config
        self.mean = x0.copy()
        self.std = np.full_like(x0, config.init_std)
        self.rng = np.random.default_rng(config.seed)
        self.generation = 0
        self.sample_std = self.std

    def ask(self) -> np.ndarray:
        c = self.config
        self.sample_std = cem_sample_std(self.std, c.extra_std, self.generation,
                                         c.extra_decay_generations)
        noise = self.rng.standard_normal((c.cem_population(), self.mean.size))
        return self.mean + self.sample_std * noise

    def tell(self, candidates: np.ndarray, fitness: np.ndarray) -> Metrics:
        self.mean, self.std = cem_refit(candidates, fitness, self.config.n_elite())
        self.generation += 1
        return {
            "es/sigma": float(self.sample_std.mean()),  # the std the candidates were drawn with
            "es/std_mean": float(self.std.mean()),  # the elites' std (before the extra noise)
            "es/n_elite": self.config.n_elite(),
        }

    def stop_reason(self) -> str:
        return ""


class CMASearch:
    """The ``cma`` package's CMA-ES, maximizing fitness by minimizing its negative."""

    def __init__(self, config: DerivativeFreeConfig, x0: np.ndarray) -> None:
        import cma

        options = {
            "seed": config.seed + 1,  # cma treats seed 0 as "seed from the clock"
            "verbose": -9, "verb_disp": 0, "verb_log": 0,  # silent, and no outcmaes/ files
            "CMA_diagonal": config.cma_diagonal,
        }
        if config.population:
            options["popsize"] = config.population
        self.es = cma.CMAEvolutionStrategy(x0, config.sigma0, options)
        self.mean = np.asarray(self.es.mean, dtype=np.float64)
        self._asked: list[np.ndarray] = []

    def ask(self) -> np.ndarray:
        self._sigma = float(self.es.sigma)
        self._stds = np.asarray(self.es.stds)
        self._asked = self.es.ask()
        return np.asarray(self._asked, dtype=np.float64)

    def tell(self, candidates: np.ndarray, fitness: np.ndarray) -> Metrics:
        self.es.tell(self._asked, (-fitness).tolist())
        self.mean = np.asarray(self.es.mean, dtype=np.float64)
        return {
            "es/sigma": self._sigma,  # the step size the candidates were drawn with
            "es/std_mean": float(self._stds.mean()),  # their mean per-parameter std
        }

    def stop_reason(self) -> str:
        """Termination criteria cma reports after the last tell, comma-separated ('' if none)."""
        return ",".join(sorted(self.es.stop()))


# --- the loop ------------------------------------------------------------------------------------

def train(
    config: DerivativeFreeConfig,
    out_dir: str | Path | None = None,
    progress: Callable[[Metrics], None] | None = None,
) -> list[Metrics]:
    """Run CEM or CMA-ES by ``config``; returns every generation's metrics (also appended to
    out_dir/metrics.jsonl, with out_dir/config.json). ``progress`` is called with each
    generation's metrics.

    Invalid configs, unknown env ids and unsupported spaces raise ValueError before anything is
    written; a non-finite observation or reward raises ValueError; a non-finite distribution
    mean raises :class:`~trpo_ref.deep.trpo.NonFiniteParametersError`."""
    config.validate()
    env = make_env(config.env_id)
    try:
        with torch_threads(config.threads):
            return _train(config, env, out_dir, progress)
    finally:
        env.close()


def _open_log(config: DerivativeFreeConfig, out_dir: str | Path) -> Any:
    """out_dir/config.json written and metrics.jsonl opened (truncated)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2) + "\n")
    return (out / "metrics.jsonl").open("w")


def _generation_metrics(search: CEMSearch | CMASearch, candidates: np.ndarray,
                        fitness: np.ndarray, evaluations: list[Evaluation]) -> Metrics:
    """One generation's episode and search-distribution statistics (no counters, no times)."""
    returns = np.array([r for e in evaluations for r in e.returns])
    lengths = np.array([n for e in evaluations for n in e.lengths])
    return {
        "rollout/steps": int(lengths.sum()),
        "rollout/episodes": len(returns),
        "rollout/ep_return_mean": float(returns.mean()),
        "rollout/ep_return_std": float(returns.std()),
        "rollout/ep_return_min": float(returns.min()),
        "rollout/ep_return_max": float(returns.max()),
        "rollout/ep_len_mean": float(lengths.mean()),
        "es/population": len(candidates),
        "es/fitness_best": float(fitness.max()),
        "es/fitness_mean": float(fitness.mean()),
        "es/fitness_std": float(fitness.std()),
        "es/stop": search.stop_reason(),
    }


def _train(
    config: DerivativeFreeConfig,
    env: gym.Env,
    out_dir: str | Path | None,
    progress: Callable[[Metrics], None] | None,
) -> list[Metrics]:
    seed_everything(config.seed, env)
    policy = make_policy(config, env)  # reads only network, hidden and log_std_init
    frames = has_frames(env)
    normalizer = RunningObsNormalizer(env.observation_space.shape[0] if not frames else 1,
                                      clip=config.obs_clip)
    action_noise = torch.Generator().manual_seed(config.seed)
    x0 = get_flat_params(policy).numpy().astype(np.float64)
    search = (CEMSearch if config.algo == "cem" else CMASearch)(config, x0)
    log_file = _open_log(config, out_dir) if out_dir is not None else None
    history: list[Metrics] = []
    total_steps, generation = 0, 0
    try:
        while total_steps < config.total_steps:
            t_start = time.perf_counter()
            # Frames are scaled inside the CNN; the statistics change only after the generation.
            normalize = np.asarray if frames or not config.normalize_obs else normalizer
            candidates = search.ask()
            evaluations = [
                evaluate_candidate(env, policy, params, normalize, config.episodes_per_candidate,
                                   action_noise,
                                   reset_seed=config.seed if generation == 0 and i == 0 else None)
                for i, params in enumerate(candidates)
            ]
            t_rollout = time.perf_counter()
            fitness = np.array([e.fitness for e in evaluations])
            metrics = search.tell(candidates, fitness)
            set_flat_params(policy, torch.as_tensor(search.mean))
            generation += 1
            check_finite_parameters(generation, policy=policy)
            if not frames:
                normalizer.update(np.concatenate([o for e in evaluations for o in e.raw_obs]))
            t_update = time.perf_counter()
            stats = _generation_metrics(search, candidates, fitness, evaluations)
            total_steps += stats["rollout/steps"]
            metrics.update({"global/iteration": generation, "global/steps": total_steps, **stats,
                            "time/rollout_s": t_rollout - t_start,
                            "time/update_s": t_update - t_rollout,
                            "time/iteration_s": t_update - t_start})
            history.append(metrics)
            if log_file is not None:
                log_file.write(json.dumps(jsonable_metrics(metrics)) + "\n")
                log_file.flush()
            if progress is not None:
                progress(metrics)
            if metrics["es/stop"]:
                break
    finally:
        if log_file is not None:
            log_file.close()
    return history
