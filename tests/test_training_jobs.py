"""claims.catalogue.training_jobs: a training run as a cached job, for trpo_ref's rules and CEM /
CMA-ES."""

from __future__ import annotations

import pytest

from claims.catalogue.training_jobs import STEP_KEYS, train_job
from claims.framework.jobs import Job, JobCache, run_jobs

pytestmark = pytest.mark.quick

TINY = {"network": "paper", "hidden": 8}


def test_trpo_job_returns_the_curve_and_step_statistics():
    result = train_job("CartPole-v1", "trpo", seed=0, total_steps=600,
                       overrides={**TINY, "steps_per_iter": 300, "vf_epochs": 1})
    n = len(result["steps"])
    assert n == len(result["returns"]) >= 2
    assert result["steps"] == sorted(result["steps"]) and result["steps"][-1] >= 600
    for key in STEP_KEYS:
        assert len(result[key.removeprefix("train/")]) == n
    delta = result["config"]["delta"]
    assert all(kl <= delta for kl, ok in zip(result["kl_mean"], result["accepted"], strict=True)
               if ok)


@pytest.mark.parametrize("algo", ["cem", "cma"])
def test_derivative_free_job_returns_the_curve(algo):
    result = train_job("CartPole-v1", algo, seed=1, total_steps=400,
                       overrides={**TINY, "population": 4})
    assert len(result["steps"]) == len(result["returns"]) >= 1
    assert "kl_mean" not in result and result["config"]["algo"] == algo


def test_unknown_override_names_the_field():
    with pytest.raises(ValueError, match=r"unknown TRPOConfig fields .*'population'"):
        train_job("CartPole-v1", "trpo", seed=0, total_steps=10, overrides={"population": 4})
    with pytest.raises(ValueError, match=r"unknown DerivativeFreeConfig fields .*'delta'"):
        train_job("CartPole-v1", "cem", seed=0, total_steps=10, overrides={"delta": 0.02})


def test_training_jobs_run_on_a_pool_give_the_serial_results_and_cache(tmp_path):
    jobs = [Job("toy.training", "CartPole-v1", "trpo", seed,
                "claims.catalogue.training_jobs:train_job",
                {"env_id": "CartPole-v1", "algo": "trpo", "seed": seed, "total_steps": 400,
                 "overrides": {**TINY, "steps_per_iter": 200, "vf_epochs": 1}})
            for seed in (0, 1)]
    serial = run_jobs(jobs, JobCache(tmp_path / "serial", version="v"), progress=None)
    cache = JobCache(tmp_path / "pool", version="v")
    pooled = run_jobs(jobs, cache, executor="process", max_workers=2, progress=None)
    drop = lambda r: {k: v for k, v in r.items() if k != "wall_s"}  # noqa: E731
    assert [drop(r) for r in pooled] == [drop(r) for r in serial]  # same seed, same numbers
    assert serial[0]["returns"] != serial[1]["returns"]
    assert all(cache.get(job) is not None for job in jobs)
