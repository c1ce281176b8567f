"""step.kl_constraint at the quick tier, its negative control, and claims.catalogue.step.batches'
helpers."""

import math

import numpy as np
import pytest
import torch

from claims.catalogue.step.batches import (
    kl_per_state,
    mean_kl,
    param_bits,
    surrogate_and_kl,
    task_config,
    trained_batch,
    training_batches,
    trpo_full_step,
    trpo_update,
)
from claims.catalogue.step.kl_constraint import (
    KL_TOLERANCE,
    KLConstraintHolds,
    _update_bug_surrogate_only_line_search,
)
from claims.framework.core import Evidence, Status
from trpo_ref.deep.policies import CategoricalMLP, DiagGaussianMLP
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import get_flat_params, set_flat_params

pytestmark = pytest.mark.quick

CLAIM = KLConstraintHolds()


@pytest.fixture(scope="module")
def runs():
    return CLAIM.run("quick"), CLAIM.run("quick", control=True)


@pytest.fixture(scope="module")
def pendulum_item():
    with torch_threads(1):
        return trained_batch(task_config("InvertedPendulum-v5", 300, seed=3), warmup_iters=1)


# ---- the claim ---------------------------------------------------------------------------------


def test_real_supported(runs):
    verdict = CLAIM.decide(runs[0])
    assert verdict.status is Status.SUPPORTED, verdict.message
    budget = CLAIM.budgets["quick"]
    assert runs[0].summary["n_steps"] == len(budget.tasks) * len(budget.seeds) * budget.n_iters
    assert verdict.n > 0 and verdict.value <= 1.0 + KL_TOLERANCE


def test_control_no_kl_check_refuted(runs):
    verdict = CLAIM.decide(runs[1])
    assert verdict.status is Status.REFUTED, verdict.message
    assert runs[1].summary["n_over"] >= 1 and verdict.value > 1.01  # a real violation


def test_statistic_recomputes_from_data(runs):
    for evidence in runs:
        ratios = np.asarray(evidence.data["kl_over_delta"])[np.asarray(evidence.data["accepted"])]
        verdict = CLAIM.decide(evidence)
        assert verdict.value == ratios.max() == evidence.summary["max_kl_over_delta"]
        assert verdict.n == ratios.size == evidence.summary["n_accepted"]
        assert evidence.summary["n_over"] == int((ratios > 1 + KL_TOLERANCE).sum())


def test_deterministic(runs):
    assert CLAIM.run("quick").summary == runs[0].summary


def test_empty_evidence_is_inconclusive():
    assert CLAIM.decide(Evidence(CLAIM.id, "quick", False, {})).status is Status.INCONCLUSIVE
    none_accepted = Evidence(CLAIM.id, "quick", False, {},
                             {"accepted": [False], "kl_over_delta": [0.0]})
    assert CLAIM.decide(none_accepted).status is Status.INCONCLUSIVE


def test_figure_is_written(runs, tmp_path):
    paths = CLAIM.figures(runs[1], tmp_path)
    assert paths and all(p.exists() and p.stat().st_size > 0 for p in paths)


def test_control_bug_takes_steps_the_real_update_backtracks(pendulum_item):
    """The bug accepts the full step whenever L improves: its KL is >= the real update's."""
    policy, batch, config = pendulum_item.policy, pendulum_item.batch, task_config(
        "InvertedPendulum-v5", 300, seed=3)
    theta = get_flat_params(policy)
    kls = []
    for update_fn in (trpo_update, _update_bug_surrogate_only_line_search):
        set_flat_params(policy, theta)
        with torch_threads(1):
            update_fn(policy, batch, config, torch.Generator().manual_seed(0))
            kls.append(surrogate_and_kl(policy, batch)[1])
    set_flat_params(policy, theta)
    assert kls[0] <= config.delta and kls[1] >= kls[0]


# ---- claims.catalogue.step.batches
# -----------------------------------------------------------------------


def test_gaussian_kl_hand_computed():
    """KL(N(0,1) || N(1,1)) = 1/2 and KL(N(0,1) || N(0,e^2)) = 1 + (e^-2 - 1)/2 per dim; summed."""
    policy = DiagGaussianMLP(1, 2, (4,))
    old = (torch.zeros(1, 2, dtype=torch.float64), torch.zeros(1, 2, dtype=torch.float64))
    new = (torch.tensor([[1.0, 0.0]], dtype=torch.float64),
           torch.tensor([[0.0, 1.0]], dtype=torch.float64))
    expected = 0.5 + (1.0 + 0.5 * (math.exp(-2.0) - 1.0))
    assert float(kl_per_state(policy, old, new)[0]) == pytest.approx(expected, rel=1e-12)


def test_categorical_kl_hand_computed():
    policy = CategoricalMLP(1, 2, (4,))
    old = (torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64)),)
    new = (torch.log(torch.tensor([[0.25, 0.75]], dtype=torch.float64)),)
    expected = 0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75)
    assert float(kl_per_state(policy, old, new)[0]) == pytest.approx(expected, rel=1e-12)


def test_mean_kl_matches_the_policy_formula(pendulum_item):
    policy, batch = pendulum_item.policy, pendulum_item.batch
    theta = get_flat_params(policy)
    assert mean_kl(policy, batch.old_params, batch.obs) == 0.0
    set_flat_params(policy, theta + 0.01 * torch.randn(theta.shape, dtype=theta.dtype,
                                                       generator=torch.Generator().manual_seed(1)))
    ours = mean_kl(policy, batch.old_params, batch.obs)
    with torch.no_grad():
        theirs = float(policy.kl(batch.old_params, batch.obs).mean())
    set_flat_params(policy, theta)
    assert ours > 0 and ours == pytest.approx(theirs, rel=1e-12)


def test_param_bits_sees_signed_zero():
    policy = DiagGaussianMLP(1, 1, (2,))
    with torch.no_grad():
        policy.log_std.fill_(0.0)
    before = param_bits(policy)
    with torch.no_grad():
        policy.log_std.fill_(-0.0)
    assert torch.equal(get_flat_params(policy), get_flat_params(policy))
    assert not torch.equal(before, param_bits(policy))


def test_training_batches_are_deterministic_and_whole_episodes():
    config = task_config("CartPole-v1", 200, seed=5)
    with torch_threads(1):
        first = [item.batch.obs.clone() for item in training_batches(config, 2)]
        second = [item.batch.obs.clone() for item in training_batches(config, 2)]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert all(len(obs) >= 200 for obs in first)


def test_full_step_is_the_updates_full_step(pendulum_item):
    """With the generator in the same state, trpo_full_step's beta is step.update's."""
    policy, batch = pendulum_item.policy, pendulum_item.batch
    config = task_config("InvertedPendulum-v5", 300, seed=3)
    theta = get_flat_params(policy)
    with torch_threads(1):
        step = trpo_full_step(policy, batch, config, torch.Generator().manual_seed(7))
        assert torch.equal(get_flat_params(policy), theta)  # untouched
        metrics = trpo_update(policy, batch, config, torch.Generator().manual_seed(7))
    set_flat_params(policy, theta)
    assert step.reason is None and metrics["train/beta"] == step.beta
    assert metrics["train/sAs"] == step.s_a_s
    assert 0.5 * step.beta**2 * step.s_a_s == pytest.approx(config.delta, rel=1e-12)
