"""Issue 3's speed lead as pytest-benchmark benchmarks: trpo_ref vs raw gymnasium vs sb3-contrib.

The three rates are measured side by side in one run by :func:`claims.cli.bench.bench` (the engine
of ``trpo-claims bench``); the benchmarks put the rates, the ratios and whether each target is met
into ``extra_info``, so ``--benchmark-save`` / ``--benchmark-json`` keep them with
pytest-benchmark's machine and commit info. They do not assert the targets: a timing belongs to
the machine and its load, not to the code. Measure on an otherwise idle machine with:

    OMP_NUM_THREADS=1 .venv/bin/pytest tests/test_bench_speed_lead.py -m benchmark_speed \
        --benchmark-enable --benchmark-json bench-speed.json

Without ``--benchmark-enable`` (the default test run) each benchmark runs once at a smoke-test
size (CartPole-v1, a few hundred steps) and only the bookkeeping is checked.
"""

from __future__ import annotations

import pytest

from claims.cli import bench

# Issue 3, section 3: Hopper-v5, matched batch size and network (the bench's defaults).
MEASURED = {"env_id": "Hopper-v5", "steps": 100_000, "steps_per_iter": 5_000, "seed": 0}
SMOKE = {"env_id": "CartPole-v1", "steps": 600, "steps_per_iter": 300, "seed": 0,
         "raw_env_steps": 500}


def _record(benchmark, result: dict) -> None:
    info = benchmark.extra_info
    info["env_id"] = result["config"]["env_id"]
    info["steps"] = result["config"]["steps"]
    info["raw_env_steps_per_s"] = round(result["raw_env"]["steps_per_s"])
    info["unwrapped_env_steps_per_s"] = round(result["unwrapped_env"]["steps_per_s"])
    bare = result["raw_mujoco"]
    info["bare_mujoco_steps_per_s"] = None if bare is None else round(bare["steps_per_s"])
    info["trpo_ref_steps_per_s"] = round(result["trpo_ref"]["steps_per_s"])
    info["sb3_steps_per_s"] = None if result["sb3"] is None else round(result["sb3"]["steps_per_s"])
    info["policy_update_share"] = result["trpo_ref"]["policy_update_share"]
    info["value_fit_share"] = result["trpo_ref"]["value_fit_share"]
    info["load_average"] = result["load_average"]
    for name, value in result["ratios"].items():
        info[f"ratio/{name}"] = value
        info[f"target/{name}"] = bench.TARGETS[name]
        info[f"meets/{name}"] = result["meets"][name]


@pytest.mark.benchmark_speed
@pytest.mark.parametrize("with_sb3", [False, True], ids=["trpo_ref-vs-raw", "vs-sb3-contrib"])
def test_bench_speed_lead(benchmark, with_sb3: bool) -> None:
    """One side-by-side run; the sb3-contrib variant is skipped when it is not installed."""
    if with_sb3 and not bench.sb3_available():
        pytest.skip("sb3-contrib not installed (optional extra: pip install -e '.[external]')")
    budget = MEASURED if benchmark.enabled else SMOKE
    result = benchmark.pedantic(bench.bench, kwargs={**budget, "include_sb3": with_sb3},
                                rounds=1, iterations=1)
    _record(benchmark, result)
    assert result["trpo_ref"]["steps"] >= budget["steps"]
    assert (result["sb3"] is not None) == with_sb3
    assert set(result["ratios"]) == set(bench.TARGETS)
    measured = {k: v for k, v in result["ratios"].items() if v is not None}
    assert all(v > 0 for v in measured.values())
