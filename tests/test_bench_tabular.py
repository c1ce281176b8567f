"""Speed benchmarks of the exact tabular engine (issue 2, section 6), and their correctness.

Targets: Theorem-1 checks of random (10 states x 4 actions) MDP-policy pairs at >= 100,000 pairs
per second, batched, on one core. The benchmarks report throughput in ``extra_info``; they do
not assert it (timings belong to the machine, not to the code). Measure on one core with:

    OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1 \
        .venv/bin/pytest tests/test_bench_tabular.py -m benchmark_speed --benchmark-enable

Without ``--benchmark-enable`` (the default run) each benchmark executes its function once, as
a smoke test. ``test_batched_theorem1_check_is_correct`` checks what the benchmark computes.
"""

from __future__ import annotations

import numpy as np
import pytest

from trpo_ref.tabular import (
    MDP,
    evaluate,
    expected_return,
    random_mdp,
    random_policy,
    softmax,
    theorem1_bound,
    theorem1_check,
)

N_PAIRS = 1_000
N_STATES, N_ACTIONS, GAMMA = 10, 4, 0.9


def _pairs(seed: int = 0) -> tuple[MDP, np.ndarray, np.ndarray]:
    """N_PAIRS random MDPs, old policies, and new policies perturbed from the old ones."""
    mdp = random_mdp(seed, N_STATES, N_ACTIONS, GAMMA, n_mdps=N_PAIRS)
    pi_old = random_policy(seed + 1, N_STATES, N_ACTIONS, batch_shape=(N_PAIRS,))
    noise = np.random.default_rng(seed + 2).standard_normal(pi_old.shape)
    scale = np.logspace(-3, 0, N_PAIRS)[:, None, None]  # small to large steps
    return mdp, pi_old, softmax(np.log(pi_old) + scale * noise)


def _report(benchmark, n_items: int, unit: str) -> None:
    if benchmark.enabled and benchmark.stats is not None:
        stats = benchmark.stats.stats
        benchmark.extra_info[f"{unit}_per_second_median"] = round(n_items / stats.median)
        benchmark.extra_info[f"{unit}_per_second_best"] = round(n_items / stats.min)
        benchmark.extra_info["batch"] = n_items
        benchmark.extra_info["shape"] = f"{N_STATES} states x {N_ACTIONS} actions"


@pytest.mark.benchmark_speed
def test_bench_evaluate_batch(benchmark) -> None:
    """(a) exact evaluation (v, q, adv, rho, eta) of 1,000 random 10x4 MDPs in one call."""
    mdp, pi, _ = _pairs()
    ev = benchmark(evaluate, mdp, pi)
    assert ev.eta.shape == (N_PAIRS,)
    _report(benchmark, N_PAIRS, "mdps")


@pytest.mark.benchmark_speed
def test_bench_expected_return_batch(benchmark) -> None:
    """(a') eta alone (one linear solve per MDP) of the same 1,000 MDPs."""
    mdp, pi, _ = _pairs()
    eta = benchmark(expected_return, mdp, pi)
    assert eta.shape == (N_PAIRS,)
    _report(benchmark, N_PAIRS, "mdps")


@pytest.mark.benchmark_speed
def test_bench_theorem1_check_batch(benchmark) -> None:
    """(b) Theorem-1 checks of 1,000 pairs: evaluate pi_old (v, q, adv, rho), eta(pi_new),
    L, eps, C, alpha, max KL, both bounds (eqs. 8, 9) and both slacks, in one call."""
    mdp, pi_old, pi_new = _pairs()
    check = benchmark(theorem1_check, mdp, pi_old, pi_new)
    assert check.slack_kl.shape == (N_PAIRS,)
    _report(benchmark, N_PAIRS, "pairs")


@pytest.mark.benchmark_speed
def test_bench_theorem1_via_public_functions(benchmark) -> None:
    """(b') the same check written with the separate public functions a claim might call."""
    mdp, pi_old, pi_new = _pairs()

    def check() -> tuple[np.ndarray, np.ndarray]:
        ev_old = evaluate(mdp, pi_old)
        eta_new = expected_return(mdp, pi_new)
        slack_tv = eta_new - theorem1_bound(mdp, pi_old, pi_new, "tv", ev_old=ev_old)
        slack_kl = eta_new - theorem1_bound(mdp, pi_old, pi_new, "kl", ev_old=ev_old)
        return slack_tv, slack_kl

    slack_tv, _ = benchmark(check)
    assert slack_tv.shape == (N_PAIRS,)
    _report(benchmark, N_PAIRS, "pairs")


@pytest.mark.benchmark_speed
def test_bench_theorem1_check_including_mdp_validation(benchmark) -> None:
    """(b'') as (b), plus building and validating the MDP batch from raw arrays each time."""
    mdp, pi_old, pi_new = _pairs()
    raw = (mdp.P, mdp.r, mdp.gamma, mdp.mu0)

    def check():
        return theorem1_check(MDP(*raw), pi_old, pi_new)

    benchmark(check)
    _report(benchmark, N_PAIRS, "pairs")


def test_batched_theorem1_check_is_correct() -> None:
    """What the benchmark computes: equal to per-pair evaluation, and Theorem 1 holds."""
    mdp, pi_old, pi_new = _pairs(seed=5)
    check = theorem1_check(mdp, pi_old, pi_new)
    assert (check.slack_tv >= -1e-10).all() and (check.slack_kl >= -1e-10).all()
    assert (check.slack_kl >= check.slack_tv - 1e-12).all()
    for i in (0, 1, 499, 998, 999):
        ev_old = evaluate(mdp[i], pi_old[i])
        ev_new = evaluate(mdp[i], pi_new[i])
        assert check.eta_old[i] == pytest.approx(ev_old.eta, rel=1e-12, abs=1e-12)
        assert check.eta_new[i] == pytest.approx(ev_new.eta, rel=1e-12, abs=1e-12)
        for form, bound in (("tv", check.bound_tv), ("kl", check.bound_kl)):
            expected = theorem1_bound(mdp[i], pi_old[i], pi_new[i], form)
            assert bound[i] == pytest.approx(expected, rel=1e-12, abs=1e-12)
