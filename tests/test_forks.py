"""The seeded-bug forks (claims.faults.forks): each bug changes what the update does, in the way its
description says, and leaves trpo_ref exactly as it was afterwards."""

from __future__ import annotations

import math

import pytest
import torch

from claims.faults.forks import BUGS, LINE_SEARCH_BUGS, seeded_bug
from trpo_ref.deep import policies, step, trpo

DELTA = 0.01


def hopper_policy_and_batch(seed: int = 0, n: int = 512, zero_adv: bool = False):
    torch.manual_seed(seed)
    policy = policies.DiagGaussianMLP(11, 3, (64, 64), 0.0).double()
    obs = torch.randn(n, 11, dtype=torch.float64)
    with torch.no_grad():
        act = policy.sample(obs)
    adv = torch.zeros(n, dtype=torch.float64) if zero_adv else torch.randn(n, dtype=torch.float64)
    return policy, obs, act, adv


def one_update(bug, zero_adv=False, **kwargs):
    """One trpo update through trpo_ref's step module, as an adapter would call it; returns
    (policy, batch's pi_old params, metrics, KL(old || new) per state by the static formula)."""
    policy, obs, act, adv = hopper_policy_and_batch(zero_adv=zero_adv)
    with seeded_bug(bug):
        batch = step.make_batch(policy, obs, act, adv)
        old_bits = step.get_flat_params(policy).clone()
        metrics = step.update(policy, batch, delta=DELTA, **kwargs)
    with torch.no_grad():
        kl = policies.DiagGaussianMLP.kl_from(batch.old_params, policy.dist_params(obs))
    return policy, batch, metrics, kl, old_bits


def snapshot():
    return ({name: getattr(step, name) for name in dir(step)},
            {name: getattr(trpo, name) for name in dir(trpo)},
            dict(vars(policies.PolicyModule)), dict(vars(policies.DiagGaussianMLP)))


@pytest.mark.parametrize("bug", [*BUGS, *LINE_SEARCH_BUGS])
def test_every_bug_is_undone_on_exit_and_patches_no_module(bug):
    before = snapshot()
    with seeded_bug(bug):
        assert step.current_strategies() != step.PAPER, "the bug changed nothing"
        assert snapshot() == before  # the hook points changed, no module attribute did
    assert step.current_strategies() is step.PAPER and snapshot() == before


def test_unknown_bug_is_named():
    with pytest.raises(ValueError, match="unknown seeded bug 'nope'"), seeded_bug("nope"):
        pass


def test_clean_reference_keeps_the_kl_within_delta():
    _, _, metrics, kl, _ = one_update(None)
    assert metrics["train/accepted"] and kl.mean() <= DELTA


def test_kl_averaged_over_action_dims_lets_the_step_reach_act_dim_times_delta():
    _, _, metrics, kl, _ = one_update("kl_mean_over_action_dims")
    assert metrics["train/accepted"] and kl.mean() > DELTA  # Hopper: 3 dims
    assert metrics["train/kl_mean"] <= DELTA  # ... while its own log says it kept delta


def test_per_minibatch_trust_region_lets_the_total_kl_drift():
    _, _, _, kl, _ = one_update("per_minibatch_trust_region")
    assert kl.mean() > DELTA


def test_beta_without_factor_2_halves_the_full_step_kl():
    clean = one_update(None)[2]["train/kl_full_step"]
    short = one_update("beta_without_factor_2")[2]["train/kl_full_step"]
    assert short / clean == pytest.approx(0.5, rel=0.1)


def test_one_cg_iteration_points_the_step_elsewhere():
    clean, *_ = one_update(None)
    bug, *_ = one_update("one_cg_iteration")
    start = one_update(None, max_backtracks=0)[0]  # no step taken: the starting parameters
    d_clean = step.get_flat_params(clean) - step.get_flat_params(start)
    d_bug = step.get_flat_params(bug) - step.get_flat_params(start)
    assert torch.nn.functional.cosine_similarity(d_clean, d_bug, dim=0) < 0.99


def test_fvp_with_pi_old_attached_is_only_the_damping():
    policy, obs, act, adv = hopper_policy_and_batch()
    batch = step.make_batch(policy, obs, act, adv)
    v = torch.randn(sum(p.numel() for p in policy.parameters()), dtype=torch.float64)
    with seeded_bug("fvp_old_attached"):
        product = step.current_strategies().fisher_product(policy, obs, batch.old_params, 0.1)(v)
    torch.testing.assert_close(product, 0.1 * v)
    clean = step.fisher_vector_product_fn(policy, obs, batch.old_params, 0.1)(v)
    assert not torch.allclose(clean, 0.1 * v)


def test_no_restore_on_failure_leaves_a_rejected_candidate_in_place():
    policy, *_ = hopper_policy_and_batch()
    theta = step.get_flat_params(policy).clone()

    def evaluate():  # no candidate improves the surrogate
        return -1.0, 0.0

    result = step.line_search(policy, theta, torch.ones_like(theta), evaluate, 0.0, DELTA)
    assert not result.accepted and result.fraction == 0.0
    assert torch.equal(step.get_flat_params(policy), theta)
    with seeded_bug("no_restore_on_failure"):
        result = step.current_strategies().line_search(policy, theta, torch.ones_like(theta),
                                                       evaluate, 0.0, DELTA)
    assert not result.accepted and result.fraction > 0.0  # so update() does not restore either
    assert not torch.equal(step.get_flat_params(policy), theta)


def test_no_kl_check_accepts_a_step_far_past_delta():
    policy, *_ = hopper_policy_and_batch()
    theta = step.get_flat_params(policy).clone()

    def evaluate():  # every candidate improves the surrogate and breaks the KL bound 10x
        return 1.0, 10 * DELTA

    assert not step.line_search(policy, theta, torch.ones_like(theta), evaluate, 0.0,
                                DELTA).accepted
    with seeded_bug("no_kl_check"):
        assert step.current_strategies().line_search(policy, theta, torch.ones_like(theta),
                                                     evaluate, 0.0, DELTA).accepted


def test_kl_reversed_computes_kl_new_to_old():
    policy, obs, *_ = hopper_policy_and_batch()
    old = tuple(t.detach() + 0.1 for t in policy.dist_params(obs))
    with seeded_bug("kl_reversed"):
        got = step.current_strategies().kl(policy, old, obs)
    want = policies.DiagGaussianMLP.kl_from(policy.dist_params(obs), old)
    torch.testing.assert_close(got, want)
    assert not torch.allclose(got, policies.DiagGaussianMLP.kl_from(old, policy.dist_params(obs)))


def test_flip_advantages_negates_the_batch_the_update_sees():
    policy, obs, act, adv = hopper_policy_and_batch()
    with seeded_bug("flip_advantages"):
        assert torch.equal(step.make_batch(policy, obs, act, adv).adv, -adv)
        assert torch.equal(trpo.make_batch(policy, obs, act, adv).adv, -adv)
    assert math.isfinite(float(adv.sum()))


def test_no_improvement_check_accepts_a_step_that_lowers_the_surrogate():
    policy = torch.nn.Linear(2, 1).double()
    theta = step.get_flat_params(policy)
    for bug, accepted in ((None, False), ("no_improvement_check", True)):
        with seeded_bug(bug):
            result = step.current_strategies().line_search(
                policy, theta, torch.ones_like(theta), lambda: (-1.0, 0.001), 0.0, 0.01)
        assert result.accepted is accepted


@pytest.mark.parametrize(("bug", "cosine_with_g"), [(None, 0.756), ("backtrack_along_gradient",
                                                                     1.0)])
def test_backtrack_along_gradient_turns_the_shorter_steps(bug, cosine_with_g):
    from claims.catalogue.step.line_search import injected

    real_scale = step.step_scale  # never patched: the hook point is UpdateStrategies.step_scale

    def doubled(s_a_s, delta):  # the full step's KL x 4: the line search must backtrack
        beta, reason = real_scale(s_a_s, delta)
        return 2 * beta, reason

    policy, obs, act, adv = hopper_policy_and_batch()
    with seeded_bug(bug), injected(step_scale=doubled):
        batch = step.make_batch(policy, obs, act, adv)
        theta = step.get_flat_params(policy)
        g = step.flat_grad(step.surrogate(policy, batch), policy)
        metrics = step.update(policy, batch, delta=DELTA)
    applied = step.get_flat_params(policy) - theta
    assert metrics["train/accepted"] and metrics["train/backtracks"] > 0
    assert float(applied @ g / (applied.norm() * g.norm())) == pytest.approx(cosine_with_g,
                                                                              abs=1e-3)
    assert step.current_strategies() is step.PAPER  # restored after the update
