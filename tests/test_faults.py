"""The fault registry (claims.faults): every fault the suite names is declared there once, each
"update" fault has its mechanical effect on trpo_ref's update, and taking it away gives back the
paper's update bit for bit."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from claims import faults
from claims.catalogue import training_jobs
from claims.catalogue.step import line_search as step_line_search
from claims.faults import FAULTS, forks
from claims.framework import registry
from trpo_ref.deep import step, vine
from trpo_ref.deep.policies import DiagGaussianMLP
from trpo_ref.deep.trpo import TRPOConfig, make_env, make_policy

CLAIMS_DIR = Path(__file__).resolve().parent.parent / "claims"
UPDATE_FAULTS = [name for name, f in FAULTS.items() if f.kind == "update"]
ARGUMENT_FAULTS = [name for name, f in FAULTS.items() if f.kind == "argument"]
DELTA = 0.01


def tiny_policy_and_batch(seed: int = 0, n: int = 64) -> tuple[DiagGaussianMLP, step.PolicyBatch]:
    """A small Gaussian policy (2 action dims) and a batch, both from ``seed``."""
    torch.manual_seed(seed)
    policy = DiagGaussianMLP(3, 2, (8,), 0.0).double()
    obs = torch.randn(n, 3, dtype=torch.float64)
    with torch.no_grad():
        act = policy.sample(obs)
    adv = torch.randn(n, dtype=torch.float64)
    return policy, step.make_batch(policy, obs, act, adv)


def seeded_update(**kwargs) -> tuple[torch.Tensor, dict]:
    """One seeded update from the same start: (parameters after it, metrics)."""
    policy, batch = tiny_policy_and_batch()
    metrics = step.update(policy, batch, delta=DELTA, fvp_subsample=0.5,
                          generator=torch.Generator().manual_seed(1), **kwargs)
    return step.get_flat_params(policy), metrics


# --- every fault named anywhere is in the registry -----------------------------------------------

def names_in_use() -> dict[str, str]:
    """{fault name: where it is named} over the fork check, claims and training jobs."""
    used = {name: "forks.BUGS" for name in forks.BUGS}
    used |= {name: "forks.LINE_SEARCH_BUGS" for name in forks.LINE_SEARCH_BUGS}
    used |= {name: "training_jobs.FAULTS" for name in training_jobs.FAULTS}
    used |= {name: "step.line_search.FAULTS" for name in step_line_search.FAULTS}
    for claim in registry.all_claims():
        for attr in ("control_bug", "control_variant", "fault", "control_fault",
                     "mechanism_fault"):
            name = getattr(claim, attr, None)
            if isinstance(name, str) and name:
                used[name] = f"{claim.id}.{attr}"
    return used


@pytest.mark.parametrize("name", sorted(names_in_use()))
def test_every_named_fault_is_in_the_registry(name):
    assert name in FAULTS, f"{name} ({names_in_use()[name]}) is not declared in claims.faults"


def bug_functions() -> list[str]:
    """"module:function" of every function in claims named like a control (``_*bug*``)."""
    found = []
    for path in sorted(CLAIMS_DIR.rglob("*.py")):
        module = ".".join(path.relative_to(CLAIMS_DIR.parent).with_suffix("").parts)
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and re.match(r"_\w*_bug(_|$)", node.name):
                found.append(f"{module}:{node.name}")
    return found


def test_every_bug_function_is_a_registered_fault():
    targets = {f.target for f in FAULTS.values()}
    missing = [name for name in bug_functions() if name not in targets]
    assert bug_functions() and not missing, f"controls not declared in claims.faults: {missing}"


@pytest.mark.parametrize("name", ARGUMENT_FAULTS)
def test_argument_faults_resolve_to_their_function(name):
    fault = FAULTS[name]
    function = fault.resolve()
    assert callable(function) and fault.target.endswith(":" + function.__name__)


@pytest.mark.parametrize("name", list(FAULTS))
def test_the_claims_a_fault_names_use_it(name):
    """Each claim in ``used_by`` names the fault (or its function) in its module's source."""
    fault = FAULTS[name]
    names = {name, *([fault.target.partition(":")[2]] if fault.target else [])}
    for claim_id in set(fault.used_by) - {faults.FORK_CHECK, faults.TRAINING}:
        source = inspect.getsource(inspect.getmodule(type(registry.get(claim_id))))
        assert any(n in source for n in names), (claim_id, name)


@pytest.mark.parametrize("name", list(FAULTS))
def test_each_fault_is_declared_completely(name):
    fault = FAULTS[name]
    ids = {c.id for c in registry.all_claims()}
    assert fault.doc and "\n" not in fault.doc and fault.used_by
    assert all(u in ids or u in (faults.FORK_CHECK, faults.TRAINING) for u in fault.used_by)
    assert (fault.pieces is None) != (fault.target is None)
    if fault.pieces is not None:
        fields = {f.name for f in dataclasses.fields(step.UpdateStrategies)}
        assert fault.pieces() and set(fault.pieces()) <= fields


def test_unknown_faults_are_named():
    with pytest.raises(ValueError, match="unknown fault 'nope'"):
        faults.get("nope")
    with pytest.raises(ValueError, match="passed as an argument"):
        faults.strategies("direction_vanilla")


# --- applying and taking away an update fault ----------------------------------------------------

@pytest.mark.parametrize("name", UPDATE_FAULTS)
def test_taking_a_fault_away_restores_the_update_bit_for_bit(name):
    clean, clean_metrics = seeded_update()
    with faults.applied(name):
        assert step.current_strategies() != step.PAPER
        seeded_update()
    assert step.current_strategies() is step.PAPER
    again, again_metrics = seeded_update()
    assert torch.equal(again, clean)
    assert repr(again_metrics) == repr(clean_metrics)


def test_a_fault_is_taken_away_on_error_too():
    with pytest.raises(RuntimeError), faults.applied("kl_reversed"):
        raise RuntimeError("boom")
    assert step.current_strategies() is step.PAPER


def test_the_paper_strategies_are_trpo_refs_own_functions():
    paper = step.PAPER
    assert (paper.line_search, paper.step_scale, paper.conjugate_gradient, paper.surrogate,
            paper.fisher_product, paper.kl, paper.update, paper.empirical_fisher_product,
            paper.branch_start) == (
        step.line_search, step.step_scale, step.conjugate_gradient, step.surrogate,
        step.fisher_vector_product_fn, step.policy_kl, step.trust_region_update,
        step.empirical_fisher_vector_product_fn, step.restore_branch_state)


# --- each update fault's mechanical effect -------------------------------------------------------

def _ops(name: str) -> step.UpdateStrategies:
    return faults.strategies(name)


def _search(name, evaluate, surrogate_old=0.0, limit=DELTA):
    """(result, parameters moved) of the fault's line search on a 2-parameter module."""
    module = torch.nn.Linear(1, 1).double()
    theta = step.get_flat_params(module)
    result = _ops(name).line_search(module, theta, torch.ones_like(theta), evaluate,
                                    surrogate_old, limit)
    return result, not torch.equal(step.get_flat_params(module), theta)


def effect_no_kl_check(name):  # improves, KL 10x the bound: accepted
    assert not _search(None, lambda: (1.0, 10 * DELTA))[0].accepted
    assert _search(name, lambda: (1.0, 10 * DELTA))[0].accepted


def effect_no_improvement_check(name):  # lowers the surrogate, within the bound: accepted
    assert not _search(None, lambda: (-1.0, DELTA / 10))[0].accepted
    assert _search(name, lambda: (-1.0, DELTA / 10))[0].accepted


def effect_no_finite_guard(name):  # a NaN candidate: accepted
    assert not _search(None, lambda: (math.nan, math.nan))[0].accepted
    assert _search(name, lambda: (math.nan, math.nan))[0].accepted


def effect_no_restore_on_failure(name):  # a failed search leaves its last candidate, fraction > 0
    clean, moved = _search(None, lambda: (-1.0, 0.0))
    assert not clean.accepted and clean.fraction == 0.0 and not moved
    result, moved = _search(name, lambda: (-1.0, 0.0))
    assert not result.accepted and result.fraction == pytest.approx(0.8**9) and moved


def effect_unchecked_big_step(name):
    effect_no_kl_check(name)
    assert _ops(name).step_scale(2.0, DELTA)[0] == 10 * step.step_scale(2.0, DELTA)[0]


def effect_beta_without_factor_2(name):  # beta 1/sqrt(2) too short
    ratio = _ops(name).step_scale(2.0, DELTA)[0] / step.step_scale(2.0, DELTA)[0]
    assert ratio == pytest.approx(1 / math.sqrt(2), rel=1e-12)


def effect_inflated_beta_x100(name):
    assert _ops(name).step_scale(2.0, DELTA)[0] == 100 * step.step_scale(2.0, DELTA)[0]


SPD = torch.tensor([[4.0, 1.0, 0.0], [1.0, 3.0, 1.0], [0.0, 1.0, 2.0]], dtype=torch.float64)
B = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)


def _cg(name):
    calls = []

    def product(v):
        calls.append(v)
        return SPD @ v

    x, _ = _ops(name).conjugate_gradient(product, B, 10)
    return x, len(calls)


def effect_one_cg_iteration(name):  # CG stops after one iteration
    assert _cg(None)[1] == 3 and _cg(name)[1] == 1


def effect_reversed_direction(name):  # the direction is -s
    assert torch.equal(_cg(name)[0], -_cg(None)[0])


def _fisher(name, damping=0.1):
    policy, batch = tiny_policy_and_batch()
    v = torch.randn(sum(p.numel() for p in policy.parameters()), dtype=torch.float64)
    with faults.applied(name):  # the product reads the KL piece in force
        product = step.current_strategies().fisher_product(policy, batch.obs, batch.old_params,
                                                           damping)
        return v, product(v)


def effect_fvp_old_attached(name):  # the "Fisher" is just the damping
    v, av = _fisher(name)
    torch.testing.assert_close(av, 0.1 * v)
    v, av = _fisher(None)
    assert not torch.allclose(av, 0.1 * v)


def effect_fvp_negative(name):
    v, av = _fisher(name)
    assert torch.equal(av, -v)


def effect_fvp_zero(name):
    v, av = _fisher(name)
    assert torch.equal(av, torch.zeros_like(v))


def _kl(name):
    policy, batch = tiny_policy_and_batch()
    with torch.no_grad():  # move pi_theta away from pi_old
        for p in policy.parameters():
            p.add_(0.05)
    with faults.applied(name):
        return policy, batch, step.kl_per_state(policy, batch)


def effect_kl_mean_over_action_dims(name):  # averaged over the 2 action dims, not summed
    clean, bug = _kl(None)[2], _kl(name)[2]
    torch.testing.assert_close(bug, clean / 2)


def effect_kl_reversed(name):
    policy, batch, bug = _kl(name)
    want = DiagGaussianMLP.kl_from(policy.dist_params(batch.obs), batch.old_params)
    torch.testing.assert_close(bug, want)
    assert not torch.allclose(bug, _kl(None)[2])


def effect_flip_advantages(name):
    policy, batch = tiny_policy_and_batch()
    with faults.applied(name):
        flipped = step.make_batch(policy, batch.obs, batch.act, batch.adv)
    assert torch.equal(flipped.adv, -batch.adv)


def effect_nonfinite_surrogate(name):
    policy, batch = tiny_policy_and_batch()
    surrogate = _ops(name).surrogate
    assert math.isfinite(float(surrogate(policy, batch).detach()))
    with torch.no_grad():
        assert math.isnan(float(surrogate(policy, batch)))


def effect_per_minibatch_trust_region(name, monkeypatch):  # 4 updates, each on a quarter
    sizes = []
    real = step.trust_region_update

    def spy(policy, batch, **kwargs):
        sizes.append(len(batch))
        return real(policy, batch, **kwargs)

    monkeypatch.setattr(step, "trust_region_update", spy)
    with faults.applied(name):
        seeded_update()
    assert sizes == [16, 16, 16, 16]


def effect_backtrack_along_gradient(name):  # after the full step, candidates lie along g
    def doubled(s_a_s, delta):  # the full step's KL x 4: the line search must backtrack
        beta, reason = step.step_scale(s_a_s, delta)
        return 2 * beta, reason

    cosines = []
    for fault in (None, name):
        policy, batch = tiny_policy_and_batch()
        theta = step.get_flat_params(policy)
        g = step.flat_grad(step.surrogate(policy, batch), policy)
        with step.use_strategies(step_scale=doubled), faults.applied(fault):
            metrics = step.update(policy, batch, delta=DELTA)
        assert metrics["train/accepted"] and metrics["train/backtracks"] > 0
        applied = step.get_flat_params(policy) - theta
        cosines.append(float(applied @ g / (applied.norm() * g.norm())))
    assert cosines[0] < 0.999 and cosines[1] == pytest.approx(1.0, abs=1e-9)


def effect_max_kl_reads_mean(name):  # a max-KL update is plain TRPO's, bit for bit
    trpo, trpo_metrics = seeded_update(algo="trpo")
    max_kl, _ = seeded_update(algo="max-kl")
    assert not torch.equal(max_kl, trpo)
    with faults.applied(name):
        broken, broken_metrics = seeded_update(algo="max-kl")
        npg, _ = seeded_update(algo="npg")  # other rules untouched
    assert torch.equal(broken, trpo) and repr(broken_metrics) == repr(trpo_metrics)
    assert torch.equal(npg, seeded_update(algo="npg")[0])


def effect_parameter_space_trust_region(name):  # |step| = sqrt(2 delta) along g, KL unchecked
    theta, _ = seeded_update(algo="trpo")
    policy, batch = tiny_policy_and_batch()
    g = step.flat_grad(step.surrogate(policy, batch), policy)
    with faults.applied(name):
        broken, metrics = seeded_update(algo="trpo")
    applied = broken - step.get_flat_params(policy)
    assert metrics["train/accepted"] and not torch.equal(broken, theta)
    assert float(applied.norm()) == pytest.approx(
        math.sqrt(2 * DELTA) * metrics["train/step_fraction"], rel=1e-9)
    assert float(applied @ g / (applied.norm() * g.norm())) == pytest.approx(1.0, abs=1e-9)
    assert _search(name, lambda: (1.0, 10 * DELTA))[0].accepted  # no KL test


def effect_empirical_fim_uncentred_clipped(name):  # G^T G / N at actions clipped to [-1, 1]
    policy, batch = tiny_policy_and_batch(n=16)
    act = 3.0 * batch.act  # many actions outside the unit box
    clipped = act.clamp(-1.0, 1.0)
    assert not torch.equal(clipped, act)
    scores = torch.stack([step.flat_grad(policy.log_prob(batch.obs[i:i + 1], clipped[i:i + 1])
                                         .sum(), policy) for i in range(len(batch))])
    v = torch.randn(scores.shape[1], dtype=torch.float64)
    expected = scores.T @ (scores @ v) / len(batch) + 0.1 * v
    with faults.applied(name):
        product = step.current_strategies().empirical_fisher_product(policy, batch.obs, act, 0.1)
        broken, _ = seeded_update(algo="empirical-fim")  # the update uses the broken product
    torch.testing.assert_close(product(v), expected)
    centred = step.empirical_fisher_vector_product_fn(policy, batch.obs, act, 0.1)(v)
    assert not torch.allclose(centred, expected)
    assert not torch.equal(broken, seeded_update(algo="empirical-fim")[0])


def effect_vine_branch_not_restored(name):  # a branch steps on from where the simulator was left
    env = make_env("Hopper-v5")
    policy = make_policy(TRPOConfig(env_id="Hopper-v5", network="paper", hidden=8), env)
    env.reset(seed=2)
    saved = vine.get_sim_state(env)
    for _ in range(5):
        env.unwrapped.step(0.1 * np.ones(env.action_space.shape))
    left = vine.get_sim_state(env)
    noise = vine.branch_noise(policy, 9, torch.Generator().manual_seed(0))
    sampler, action = vine.ReplaySampler(policy), 0.3 * np.ones(env.action_space.shape)

    def branch(start):
        result = vine.run_branch(env, start, action, noise, sampler, np.asarray, 10, 0.99)
        return result.discounted_return, result.steps

    clean = branch(saved)
    vine.set_sim_state(env, left)
    with faults.applied(name):
        broken = branch(saved)  # the saved state is ignored: it runs from ``left``
    assert broken != clean and broken == branch(left)


@pytest.mark.parametrize("name", UPDATE_FAULTS)
def test_each_update_fault_has_its_mechanical_effect(name, monkeypatch):
    effect = globals().get(f"effect_{name}")
    assert effect is not None, f"no mechanical-effect check for {name}: add effect_{name}"
    params = inspect.signature(effect).parameters
    effect(name, monkeypatch) if "monkeypatch" in params else effect(name)
    assert step.current_strategies() is step.PAPER
