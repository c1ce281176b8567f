"""CEM and CMA-ES (trpo_ref.deep.derivative_free) and their `trpo-claims train` dispatch."""

import dataclasses
import json

import gymnasium as gym
import numpy as np
import pytest

from claims.cli.main import main
from trpo_ref.deep import derivative_free
from trpo_ref.deep.derivative_free import (
    DerivativeFreeConfig,
    cem_refit,
    cem_sample_std,
    train,
)
from trpo_ref.deep.trpo import TRPOConfig

# A tiny policy (one hidden layer of 8 tanh units: 58 parameters) keeps every run well under 1 s.
SMALL = {"env_id": "CartPole-v1", "network": "paper", "hidden": 8}
SMALL_CEM = {**SMALL, "algo": "cem", "population": 20, "elite_frac": 0.2}
SMALL_CMA = {**SMALL, "algo": "cma"}
ES_KEYS = ("global/iteration", "global/steps", "rollout/ep_return_mean", "rollout/ep_return_max",
           "es/fitness_best", "es/fitness_mean", "es/sigma", "time/iteration_s")


def without_times(history):
    return [{k: v for k, v in m.items() if not k.startswith("time/")} for m in history]


# --- config ---------------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "field, value",
    [
        ("algo", "trpo"),
        ("seed", -1),
        ("total_steps", 0),
        ("population", 1),
        ("episodes_per_candidate", 0),
        ("elite_frac", 0.0),
        ("elite_frac", 1.5),
        ("init_std", 0.0),
        ("extra_std", -1.0),
        ("extra_std", float("nan")),
        ("extra_decay_generations", 0),
        ("sigma0", 0.0),
        ("network", "huge"),
        ("hidden", 0),
        ("log_std_init", float("inf")),
        ("obs_clip", 0.0),
        ("threads", 0),
    ],
)
def test_bad_config_raises_naming_the_field_before_any_work(field, value, tmp_path):
    config = DerivativeFreeConfig(**{**SMALL_CEM, field: value})
    with pytest.raises(ValueError, match=field):
        train(config, out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_unknown_env_raises_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="unknown environment id"):
        train(DerivativeFreeConfig(env_id="NoSuchEnv-v0"), out_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_shared_fields_have_trpo_defaults():
    """The CLI gives shared options TRPOConfig's defaults; they must be this config's too."""
    trpo = {f.name: f.default for f in dataclasses.fields(TRPOConfig)}
    shared = [f for f in dataclasses.fields(DerivativeFreeConfig) if f.name in trpo]
    assert {f.name for f in shared} >= {"env_id", "seed", "total_steps", "network", "hidden",
                                         "normalize_obs", "obs_clip", "threads"}
    for field in shared:
        if field.name != "algo":
            assert field.default == trpo[field.name], field.name


@pytest.mark.parametrize(
    "population, elite_frac, n_elite",
    [(0, 0.05, 5), (100, 0.05, 5), (20, 0.2, 4), (10, 0.01, 1), (7, 1.0, 7)],
)
def test_n_elite_is_floor_of_fraction_at_least_one(population, elite_frac, n_elite):
    config = DerivativeFreeConfig(population=population, elite_frac=elite_frac)
    assert config.n_elite() == n_elite


# --- CEM's pure functions -------------------------------------------------------------------------

@pytest.mark.parametrize(
    "generation, expected",
    [
        (0, [4.0, 5.0]),  # sqrt(0 + 16), sqrt(9 + 16)
        (50, [np.sqrt(8.0), np.sqrt(17.0)]),  # extra variance 16 * (1 - 50/100) = 8
        (100, [0.0, 3.0]),  # fully decayed
        (250, [0.0, 3.0]),  # stays at zero afterwards
    ],
)
def test_cem_sample_std_adds_linearly_decaying_variance(generation, expected):
    std = np.array([0.0, 3.0])
    np.testing.assert_allclose(cem_sample_std(std, 4.0, generation, 100), expected)


def test_cem_refit_takes_mean_and_std_of_the_best():
    candidates = np.array([[0.0, 10.0], [1.0, 20.0], [2.0, 30.0], [3.0, 40.0]])
    fitness = np.array([3.0, 1.0, 2.0, 0.0])
    mean, std = cem_refit(candidates, fitness, n_elite=2)  # elites: rows 0 and 2
    np.testing.assert_allclose(mean, [1.0, 20.0])
    np.testing.assert_allclose(std, [1.0, 10.0])


def test_cem_refit_breaks_ties_by_order():
    candidates = np.arange(4.0)[:, None]
    mean, std = cem_refit(candidates, np.ones(4), n_elite=1)
    assert mean[0] == 0.0 and std[0] == 0.0


# --- runs -----------------------------------------------------------------------------------------

@pytest.mark.quick
@pytest.mark.parametrize("kwargs", [SMALL_CEM, SMALL_CMA], ids=["cem", "cma"])
def test_same_seed_same_numbers(kwargs):
    config = DerivativeFreeConfig(**kwargs, seed=5, total_steps=1500)
    first, second = train(config), train(config)
    assert len(first) >= 2
    assert without_times(first) == without_times(second)
    other = train(dataclasses.replace(config, seed=6))
    assert without_times(other) != without_times(first)


class StepCounter(gym.Wrapper):
    """Counts env.step calls, independently of the trainer's own count."""

    def __init__(self, env):
        super().__init__(env)
        self.steps = 0

    def step(self, action):
        self.steps += 1
        return self.env.step(action)


@pytest.mark.quick
@pytest.mark.parametrize("kwargs", [SMALL_CEM, SMALL_CMA], ids=["cem", "cma"])
def test_steps_counted_exactly_and_run_stops_after_reaching_total(kwargs, monkeypatch):
    envs, original_make_env = [], derivative_free.make_env

    def counting_make_env(env_id):
        envs.append(StepCounter(original_make_env(env_id)))
        return envs[-1]

    monkeypatch.setattr(derivative_free, "make_env", counting_make_env)
    total = 1200
    history = train(DerivativeFreeConfig(**kwargs, seed=1, total_steps=total))
    steps = [m["global/steps"] for m in history]
    assert steps[-1] == envs[0].steps
    assert steps[-1] >= total and (len(steps) == 1 or steps[-2] < total)
    for m in history:
        # CartPole pays 1 per step: the returns add up to the generation's steps
        assert m["rollout/ep_return_mean"] * m["rollout/episodes"] == pytest.approx(
            m["rollout/steps"])
        assert m["rollout/ep_len_mean"] * m["rollout/episodes"] == pytest.approx(
            m["rollout/steps"])
    assert np.diff([0, *steps]).tolist() == [m["rollout/steps"] for m in history]


@pytest.mark.quick
@pytest.mark.parametrize("algo", ["cem", "cma"])
def test_gaussian_policy_env_runs_and_counts_steps(algo, monkeypatch):
    """Box actions (InvertedPendulum-v5, a Gaussian policy) run end to end."""
    envs, original_make_env = [], derivative_free.make_env

    def counting_make_env(env_id):
        envs.append(StepCounter(original_make_env(env_id)))
        return envs[-1]

    monkeypatch.setattr(derivative_free, "make_env", counting_make_env)
    config = DerivativeFreeConfig(env_id="InvertedPendulum-v5", algo=algo, network="paper",
                                  hidden=8, population=6, seed=0, total_steps=200)
    history = train(config)
    assert history[-1]["global/steps"] == envs[0].steps >= 200
    assert all(np.isfinite(m["es/fitness_mean"]) for m in history)


@pytest.mark.quick
@pytest.mark.parametrize("episodes", [1, 3])
def test_every_candidate_runs_its_episodes(episodes):
    config = DerivativeFreeConfig(**SMALL_CEM, episodes_per_candidate=episodes, total_steps=1)
    (metrics,) = train(config)
    assert metrics["es/population"] == 20
    assert metrics["rollout/episodes"] == 20 * episodes
    assert metrics["es/n_elite"] == 4
    assert metrics["es/fitness_best"] <= metrics["rollout/ep_return_max"]
    assert metrics["es/fitness_mean"] == pytest.approx(metrics["rollout/ep_return_mean"])


@pytest.mark.quick
def test_cma_uses_the_given_population_and_logs_its_step_size():
    config = DerivativeFreeConfig(**SMALL_CMA, population=6, sigma0=0.5, total_steps=1)
    (metrics,) = train(config)
    assert metrics["es/population"] == 6 and metrics["rollout/episodes"] == 6
    assert metrics["es/sigma"] == 0.5  # the step size generation 1 was drawn with
    assert metrics["es/stop"] == ""


@pytest.mark.quick
@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kwargs", [SMALL_CEM, SMALL_CMA], ids=["cem", "cma"])
def test_cartpole_mean_return_improves_over_the_first_generation(kwargs, seed):
    """Measured before writing this test, seeds 0-5 at 5,000 steps: CEM's first-generation
    mean return 13-20 and last 77-161, CMA-ES's 13-21 and 89-249."""
    history = train(DerivativeFreeConfig(**kwargs, seed=seed, total_steps=5000))
    first, last = history[0], history[-1]
    assert last["rollout/ep_return_mean"] > first["rollout/ep_return_mean"]
    assert last["es/fitness_best"] >= first["es/fitness_best"]


@pytest.mark.quick
def test_writes_config_and_one_metrics_line_per_generation(tmp_path):
    config = DerivativeFreeConfig(**SMALL_CEM, seed=2, total_steps=1000)
    history = train(config, out_dir=tmp_path)
    lines = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == len(history) >= 2
    assert [m["global/iteration"] for m in lines] == list(range(1, len(lines) + 1))
    for key in ES_KEYS:
        assert all(key in m for m in lines), key
    assert json.loads((tmp_path / "config.json").read_text()) == dataclasses.asdict(config)


# --- CLI ------------------------------------------------------------------------------------------

CLI_SMALL = ["--env", "CartPole-v1", "--network", "paper", "--hidden", "8"]


@pytest.mark.quick
@pytest.mark.parametrize("algo", ["cem", "cma"])
def test_cli_dispatches_cem_and_cma(algo, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["train", "--algo", algo, *CLI_SMALL, "--steps", "600", "--population", "10"]
    assert main([*argv, "--seed", "3", "--out", str(out)]) == 0
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert lines[-1]["global/steps"] >= 600 and lines[0]["es/population"] == 10
    captured = capsys.readouterr()
    assert "gen    1" in captured.err and f"trained {algo}" in captured.out
    assert json.loads((out / "config.json").read_text())["algo"] == algo


def test_help_lists_derivative_free_options(capsys):
    assert main(["train", "--help"]) == 0
    out = capsys.readouterr().out
    for flag in ("--population", "--elite-frac", "--extra-std", "--sigma0", "--cma-diagonal"):
        assert flag in out
    assert "cem | cma" in out


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--algo", "cem", "--delta", "0.02"], "--delta does not apply to --algo cem"),
        (["--algo", "cma", "--steps-per-iter", "100"], "--steps-per-iter does not apply"),
        (["--algo", "trpo", "--population", "10"], "--population does not apply to --algo trpo"),
        (["--algo", "cem", "--resume"], "--resume does not apply"),
        (["--algo", "cem", "--elite-frac", "0"], "elite_frac must be in (0, 1]"),
        (["--algo", "cma", "--sigma0", "-1"], "sigma0 must be > 0"),
        (["--algo", "sgd"], "'cem', 'cma'"),
    ],
)
def test_cli_bad_input_exits_2_before_any_work(argv, message, tmp_path, capsys):
    assert main(["train", *CLI_SMALL, *argv, "--out", str(tmp_path / "run")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
