"""The TRPO step on small networks: FVP, CG, beta, line search, the update switch, analytic KL."""

from __future__ import annotations

import math

import pytest
import torch

from trpo_ref.deep.policies import CategoricalMLP, DiagGaussianMLP, hidden_sizes
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.step import (
    ALGOS,
    conjugate_gradient,
    empirical_fisher_vector_product_fn,
    fisher_vector_product,
    functional_dist_params,
    get_flat_params,
    kl_per_state,
    line_search,
    make_batch,
    per_state_quadratic,
    set_flat_params,
    step_scale,
    subsample_index,
    surrogate,
    surrogate_rounding,
    update,
)

pytestmark = pytest.mark.quick


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    with torch_threads(1):
        yield

DELTA = 0.01
N_STATES, OBS_DIM = 64, 3


def tiny_setup(kind: str, seed: int = 0, n: int = N_STATES):
    """A small policy, a batch of random states, actions drawn from the policy, advantages."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if kind == "gaussian":
        policy = DiagGaussianMLP(OBS_DIM, 2, hidden=(6,), log_std_init=-0.3)
    else:
        policy = CategoricalMLP(OBS_DIM, 4, hidden=(6,))
    with torch.no_grad():  # move away from the near-constant initial policy
        theta = get_flat_params(policy)
        set_flat_params(policy, theta + 0.5 * torch.randn(theta.shape, generator=gen,
                                                          dtype=theta.dtype))
    obs = torch.randn(n, OBS_DIM, generator=gen, dtype=torch.float64)
    act = policy.sample(obs, gen)
    adv = torch.randn(n, generator=gen, dtype=torch.float64)
    return policy, make_batch(policy, obs, act, adv)


def mean_kl_hessian(policy, batch) -> torch.Tensor:
    theta = get_flat_params(policy)

    def mean_kl(flat: torch.Tensor) -> torch.Tensor:
        new = functional_dist_params(policy, flat, batch.obs)
        return policy.kl_from(batch.old_params, new).mean()

    return torch.autograd.functional.hessian(mean_kl, theta)


def assert_params_equal_bitwise(policy, theta_old: torch.Tensor) -> None:
    theta_now = get_flat_params(policy)
    assert torch.equal(theta_now, theta_old)
    assert torch.equal(theta_now.view(torch.int64), theta_old.view(torch.int64))  # bit patterns


# --- Fisher-vector products ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
@pytest.mark.parametrize("damping", [0.0, 0.1])
@pytest.mark.parametrize("moved", [False, True])
def test_fvp_equals_explicit_hessian_of_mean_kl(kind, damping, moved):
    policy, batch = tiny_setup(kind)
    if moved:  # the identity holds at any theta, not only at theta_old
        theta = get_flat_params(policy)
        set_flat_params(policy, theta + 0.05 * torch.randn_like(theta))
    hessian = mean_kl_hessian(policy, batch)
    eye = torch.eye(hessian.shape[0], dtype=hessian.dtype)
    for v in torch.randn(3, hessian.shape[0], dtype=torch.float64):
        fvp = fisher_vector_product(policy, batch.obs, batch.old_params, v, damping)
        torch.testing.assert_close(fvp, (hessian + damping * eye) @ v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_subsampled_fvp_is_the_hessian_on_the_subsample_only(kind):
    policy, batch = tiny_setup(kind)
    index = subsample_index(len(batch), 0.25, torch.Generator().manual_seed(0))
    sub_policy_batch = make_batch(policy, batch.obs[index], batch.act[index], batch.adv[index])
    hessian = mean_kl_hessian(policy, sub_policy_batch)
    v = torch.randn(hessian.shape[0], dtype=torch.float64)
    fvp = fisher_vector_product(policy, batch.obs, batch.old_params, v, 0.1, index=index)
    torch.testing.assert_close(fvp, hessian @ v + 0.1 * v, rtol=1e-9, atol=1e-12)
    full = fisher_vector_product(policy, batch.obs, batch.old_params, v, 0.1)
    assert not torch.allclose(fvp, full)


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_fisher_is_positive_semidefinite_at_theta_old(kind):
    policy, batch = tiny_setup(kind)
    eigenvalues = torch.linalg.eigvalsh(mean_kl_hessian(policy, batch))
    assert eigenvalues.min() > -1e-10


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_empirical_fvp_equals_explicit_score_covariance(kind):
    policy, batch = tiny_setup(kind, n=20)
    theta = get_flat_params(policy)

    def log_probs(flat):
        return policy.log_prob_from(functional_dist_params(policy, flat, batch.obs), batch.act)

    scores = torch.autograd.functional.jacobian(log_probs, theta)  # (N, P)
    centred = scores - scores.mean(0)
    covariance = centred.T @ centred / scores.shape[0]
    product = empirical_fisher_vector_product_fn(policy, batch.obs, batch.act, damping=0.1)
    v = torch.randn(theta.shape, dtype=torch.float64)
    torch.testing.assert_close(product(v), covariance @ v + 0.1 * v, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_per_state_quadratic_equals_per_state_hessians(kind):
    policy, batch = tiny_setup(kind, n=4)
    theta = get_flat_params(policy)
    s = torch.randn(theta.shape, dtype=torch.float64)
    expected = []
    for n in range(4):
        def kl_n(flat, n=n):
            new = functional_dist_params(policy, flat, batch.obs[n : n + 1])
            return policy.kl_from(tuple(t[n : n + 1] for t in batch.old_params), new).sum()

        expected.append(s @ torch.autograd.functional.hessian(kl_n, theta) @ s)
    got = per_state_quadratic(policy, batch.obs, s)
    torch.testing.assert_close(got, torch.stack(expected), rtol=1e-9, atol=1e-12)


# --- conjugate gradient and the step size --------------------------------------------------------

@pytest.mark.parametrize("dim", [2, 5, 12])
def test_cg_equals_explicit_solve_on_spd_system(dim):
    gen = torch.Generator().manual_seed(dim)
    m = torch.randn(dim, dim, generator=gen, dtype=torch.float64)
    a = m @ m.T + 0.5 * torch.eye(dim, dtype=torch.float64)
    b = torch.randn(dim, generator=gen, dtype=torch.float64)
    x, residual = conjugate_gradient(lambda v: a @ v, b, iters=3 * dim, residual_tol=1e-28)
    torch.testing.assert_close(x, torch.linalg.solve(a, b), rtol=1e-8, atol=1e-10)
    assert residual == pytest.approx(float(torch.linalg.norm(b - a @ x)), abs=1e-8)


def test_cg_starts_from_zero():
    """One iteration from x0 = 0 is the exact line minimum along b: x = (b.b / b.Ab) b."""
    a = torch.tensor([[3.0, 1.0], [1.0, 2.0]], dtype=torch.float64)
    b = torch.tensor([1.0, -2.0], dtype=torch.float64)
    x, residual = conjugate_gradient(lambda v: a @ v, b, iters=1)
    torch.testing.assert_close(x, (b @ b) / (b @ a @ b) * b)
    assert residual == pytest.approx(float(torch.linalg.norm(b - a @ x)))


@pytest.mark.parametrize("s_a_s", [1e-6, 0.3, 7.0, 1e4])
@pytest.mark.parametrize("delta", [0.001, 0.01, 0.1])
def test_beta_puts_quadratic_model_kl_at_delta(s_a_s, delta):
    beta, reason = step_scale(s_a_s, delta)
    assert reason is None
    assert 0.5 * beta**2 * s_a_s == pytest.approx(delta, rel=1e-12)


@pytest.mark.parametrize("s_a_s", [0.0, -1.0, math.nan, math.inf, -math.inf])
def test_beta_guard_rejects_bad_sas(s_a_s):
    beta, reason = step_scale(s_a_s, DELTA)
    assert math.isnan(beta)
    assert reason is not None and "s^T A s" in reason


def test_subsample_index():
    gen = torch.Generator().manual_seed(0)
    index = subsample_index(1000, 0.1, gen)
    assert index.numel() == 100 and torch.all(index[1:] > index[:-1])
    assert torch.equal(subsample_index(7, 1.0, gen), torch.arange(7))
    with pytest.raises(ValueError, match="fvp_subsample"):
        subsample_index(10, 0.0, gen)


# --- line search under injected faults -----------------------------------------------------------

def natural_step(policy, batch):
    """The trust-region step beta * s of the unmodified update, for fault injection."""
    g = torch.autograd.grad(surrogate(policy, batch), list(policy.parameters()))
    g = torch.cat([t.reshape(-1) for t in g])
    s, _ = conjugate_gradient(
        lambda v: fisher_vector_product(policy, batch.obs, batch.old_params, v, 0.1), g, 10
    )
    s_a_s = float(s @ fisher_vector_product(policy, batch.obs, batch.old_params, s, 0.1))
    beta, reason = step_scale(s_a_s, DELTA)
    assert reason is None
    return beta * s


def evaluate_fn(policy, batch):
    def evaluate():
        with torch.no_grad():
            return float(surrogate(policy, batch)), float(kl_per_state(policy, batch).mean())

    return evaluate


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
@pytest.mark.parametrize("fault", ["reversed direction", "inflated beta", "non-finite surrogate",
                                   "non-finite step"])
def test_line_search_rejects_faults_and_restores_bit_for_bit(kind, fault):
    policy, batch = tiny_setup(kind)
    step = natural_step(policy, batch)
    evaluate = evaluate_fn(policy, batch)
    if fault == "reversed direction":
        step = -step
    elif fault == "inflated beta":
        step = 1e3 * step
    elif fault == "non-finite surrogate":
        evaluate = lambda: (math.nan, 0.0)  # noqa: E731
    else:
        step = step.clone()
        step[0] = math.inf
    theta_old = get_flat_params(policy)
    surrogate_old = float(surrogate(policy, batch).detach())
    result = line_search(policy, theta_old.clone(), step, evaluate, surrogate_old, DELTA)
    assert not result.accepted
    assert result.fraction == 0.0 and result.backtracks == 10 and result.reason
    assert_params_equal_bitwise(policy, theta_old)


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_line_search_accepts_the_unmodified_step(kind):
    policy, batch = tiny_setup(kind)
    step = natural_step(policy, batch)
    theta_old = get_flat_params(policy)
    surrogate_old = float(surrogate(policy, batch).detach())
    result = line_search(policy, theta_old, step, evaluate_fn(policy, batch), surrogate_old, DELTA)
    assert result.accepted and result.reason is None
    assert result.surrogate > surrogate_old and result.constraint <= DELTA
    torch.testing.assert_close(get_flat_params(policy), theta_old + result.fraction * step)


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
@pytest.mark.parametrize("delta", [1e4, 1e8, 1e300])
def test_an_accepted_step_leaves_representable_distributions(kind, delta):
    """At a huge delta the full natural step overflows the Gaussian's std to inf while the KL
    (from log-std) stays finite and the surrogate "improves" by a rounding error (impl.ls_finite
    found this): the line search must reject such candidates, so the policy stays usable."""
    policy, batch = tiny_setup(kind)
    update(policy, batch, algo="trpo", delta=delta)
    with torch.no_grad():
        params = policy.dist_params(batch.obs)
        assert policy.representable_from(params)
        assert torch.isfinite(policy.log_prob_from(params, batch.act)).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_surrogate_rounding_is_the_pairwise_mean_error_bound(dtype):
    policy, batch = tiny_setup("gaussian", n=4)
    adv = torch.tensor([1.0, -1.0, 2.0, -2.0], dtype=dtype)
    batch = make_batch(policy, batch.obs, batch.act, adv)
    # ceil(log2 4) = 2 terms of rounding, mean |A| = 1.5
    assert surrogate_rounding(batch) == pytest.approx(3.0 * torch.finfo(dtype).eps)


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("delta", [1e4, 1e8])
def test_an_accepted_step_improves_beyond_rounding(kind, seed, delta):
    """At a huge delta a candidate can collapse the policy until every ratio underflows: then
    L(new) = 0 and L(old) = mean A = 0 up to rounding for standardized advantages, and a strict
    L(new) > L(old) accepted it (gaussian seeds 0, 3 and 4 here before the rounding floor; the
    standard-tier audit found it on Swimmer at delta 1e8). An accepted step must improve L,
    measured in float64 as mean (r - 1) A, by more than the rounding floor."""
    policy, batch = tiny_setup(kind, seed=seed)
    adv = (batch.adv - batch.adv.mean()) / batch.adv.std()
    batch = make_batch(policy, batch.obs, batch.act, adv)
    metrics = update(policy, batch, algo="trpo", delta=delta)
    if metrics["train/accepted"]:
        with torch.no_grad():
            ratio = torch.exp(policy.log_prob(batch.obs, batch.act) - batch.old_log_prob)
        assert float(((ratio - 1) * batch.adv).mean()) > surrogate_rounding(batch)


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_update_rejects_negative_sas_and_restores(kind):
    """Fault: a negative-definite "Fisher" (damping -1e3) gives s^T A s < 0: reject, restore."""
    policy, batch = tiny_setup(kind)
    theta_old = get_flat_params(policy)
    metrics = update(policy, batch, algo="trpo", damping=-1e3)
    assert metrics["train/accepted"] is False
    assert "s^T A s" in metrics["train/reject_reason"]
    assert metrics["train/step_norm"] == 0.0 and metrics["train/kl_mean"] == 0.0
    assert_params_equal_bitwise(policy, theta_old)


@pytest.mark.parametrize("algo", ALGOS)
def test_update_rejects_non_finite_advantages_and_restores(algo):
    policy, batch = tiny_setup("gaussian")
    adv = batch.adv.clone()
    adv[3] = math.nan
    batch = make_batch(policy, batch.obs, batch.act, adv)
    theta_old = get_flat_params(policy)
    metrics = update(policy, batch, algo=algo)
    assert metrics["train/accepted"] is False and "not finite" in metrics["train/reject_reason"]
    assert_params_equal_bitwise(policy, theta_old)


# --- the update switch ---------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
@pytest.mark.parametrize("algo", ["trpo", "empirical-fim", "max-kl"])
@pytest.mark.parametrize("fvp_subsample", [0.1, 1.0])
@pytest.mark.parametrize("seed", range(4))
def test_every_accepted_step_satisfies_the_constraint_on_the_full_batch(
    kind, algo, fvp_subsample, seed
):
    policy, batch = tiny_setup(kind, seed=seed, n=200)
    theta_old = get_flat_params(policy)
    metrics = update(policy, batch, algo=algo, delta=DELTA, fvp_subsample=fvp_subsample,
                     generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        kl = policy.kl(batch.old_params, batch.obs)  # recomputed here, independently
        gain = float(surrogate(policy, batch)) - float(surrogate_at(policy, batch, theta_old))
    constrained = kl.max() if algo == "max-kl" else kl.mean()
    if metrics["train/accepted"]:
        assert float(constrained) <= DELTA
        assert gain > 0
        assert metrics["train/kl_mean"] == pytest.approx(float(kl.mean()))
    else:
        assert_params_equal_bitwise(policy, theta_old)


def surrogate_at(policy, batch, theta):
    current = get_flat_params(policy)
    set_flat_params(policy, theta)
    value = surrogate(policy, batch)
    set_flat_params(policy, current)
    return value


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_trpo_full_step_is_accepted_and_not_tiny(kind):
    """Small network, full batch, default damping: the quadratic model is good here, so the full
    step passes the line search, its KL is of the order of delta (damping makes it smaller)
    and the surrogate gain is close to the linear prediction. A sanity check, not a claim."""
    policy, batch = tiny_setup(kind, n=200)
    metrics = update(policy, batch, algo="trpo", fvp_subsample=1.0)
    assert metrics["train/accepted"] and metrics["train/backtracks"] == 0
    assert DELTA / 4 < metrics["train/kl_mean"] <= DELTA
    assert metrics["train/surrogate_actual"] == pytest.approx(
        metrics["train/surrogate_predicted"], rel=0.2)


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_npg_takes_the_fixed_step_without_line_search(kind):
    policy, batch = tiny_setup(kind, n=200)
    theta_old = get_flat_params(policy)
    g = torch.autograd.grad(surrogate(policy, batch), list(policy.parameters()))
    g = torch.cat([t.reshape(-1) for t in g])
    s, _ = conjugate_gradient(
        lambda v: fisher_vector_product(policy, batch.obs, batch.old_params, v, 0.1), g, 10
    )
    step_size = 5.0  # far larger than a trust region of 0.01 allows
    metrics = update(policy, batch, algo="npg", step_size=step_size, fvp_subsample=1.0)
    assert metrics["train/accepted"] and metrics["train/backtracks"] == 0
    assert metrics["train/step_fraction"] == 1.0
    torch.testing.assert_close(get_flat_params(policy) - theta_old, step_size * s)
    assert metrics["train/kl_mean"] > DELTA  # no KL check


def test_pg_takes_the_plain_gradient_step():
    policy, batch = tiny_setup("gaussian")
    theta_old = get_flat_params(policy)
    g = torch.autograd.grad(surrogate(policy, batch), list(policy.parameters()))
    g = torch.cat([t.reshape(-1) for t in g])
    metrics = update(policy, batch, algo="pg", step_size=0.3)
    torch.testing.assert_close(get_flat_params(policy) - theta_old, 0.3 * g)
    assert metrics["train/surrogate_predicted"] == pytest.approx(0.3 * float(g @ g))


def test_update_reports_namespaced_metrics():
    policy, batch = tiny_setup("gaussian")
    metrics = update(policy, batch)
    for key in ["kl_mean", "kl_max", "surrogate_predicted", "surrogate_actual", "beta", "sAs",
                "cg_residual", "backtracks", "accepted", "reject_reason", "damping", "entropy",
                "std_mean", "step_norm", "fvp_states"]:
        assert f"train/{key}" in metrics
    with pytest.raises(ValueError, match="unknown algo"):
        update(policy, batch, algo="ppo")


# --- the analytic KL: direction and sum over action dimensions -----------------------------------

def gaussian_params(mean, std):
    mean = torch.tensor([mean], dtype=torch.float64)
    return mean, torch.log(torch.tensor([std], dtype=torch.float64))


def test_gaussian_kl_is_old_to_new_and_summed_over_dims():
    # 1-D by hand: KL(N(0,1) || N(1,2^2)) = log 2 + (1 + 1) / 8 - 1/2; reversed: 2 - log 2.
    old, new = gaussian_params([0.0], [1.0]), gaussian_params([1.0], [2.0])
    assert float(DiagGaussianMLP.kl_from(old, new)) == pytest.approx(math.log(2) - 0.25)
    assert float(DiagGaussianMLP.kl_from(new, old)) == pytest.approx(2 - math.log(2))
    # 2-D: the second dim adds KL(N(2, 0.5^2) || N(1, 1)) = log 2 + (0.25 + 1) / 2 - 1/2.
    old, new = gaussian_params([0.0, 2.0], [1.0, 0.5]), gaussian_params([1.0, 1.0], [2.0, 1.0])
    expected = (math.log(2) - 0.25) + (math.log(2) + 0.125)
    assert float(DiagGaussianMLP.kl_from(old, new)) == pytest.approx(expected)


def test_categorical_kl_is_old_to_new():
    # KL((.5,.5) || (.9,.1)) = .5 log(.5/.9) + .5 log 5 = log(5/3); reversed: .9 log 1.8 + .1 log .2
    p = (torch.log(torch.tensor([[0.5, 0.5]], dtype=torch.float64)),)
    q = (torch.log(torch.tensor([[0.9, 0.1]], dtype=torch.float64)),)
    assert float(CategoricalMLP.kl_from(p, q)) == pytest.approx(math.log(5 / 3))
    assert float(CategoricalMLP.kl_from(q, p)) == pytest.approx(
        0.9 * math.log(1.8) + 0.1 * math.log(0.2))


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_policy_kl_compares_old_params_with_current_policy(kind):
    policy, batch = tiny_setup(kind)
    theta = get_flat_params(policy)
    set_flat_params(policy, theta + 0.1 * torch.randn_like(theta))
    with torch.no_grad():
        new = policy.dist_params(batch.obs)
        torch.testing.assert_close(policy.kl(batch.old_params, batch.obs),
                                   policy.kl_from(batch.old_params, new))
        assert not torch.allclose(policy.kl_from(batch.old_params, new),
                                  policy.kl_from(new, batch.old_params))


# --- policies ------------------------------------------------------------------------------------

def test_gaussian_sampling_matches_its_distribution():
    policy = DiagGaussianMLP(2, 3, hidden=(4,), log_std_init=-0.5)
    obs = torch.zeros(20_000, 2, dtype=torch.float64)
    act = policy.sample(obs, torch.Generator().manual_seed(1))
    mean, log_std = policy.dist_params(obs[:1])
    torch.testing.assert_close(act.mean(0), mean[0].detach(), atol=0.02, rtol=0)
    torch.testing.assert_close(act.std(0), torch.exp(log_std[0]).detach(), atol=0.02, rtol=0)


def test_categorical_sampling_matches_its_distribution():
    torch.manual_seed(0)
    policy = CategoricalMLP(2, 3, hidden=(4,))
    with torch.no_grad():
        policy.logits_net[-1].bias.copy_(torch.tensor([0.0, 1.0, -1.0]))
    obs = torch.zeros(20_000, 2, dtype=torch.float64)
    act = policy.sample(obs, torch.Generator().manual_seed(1))
    freq = torch.bincount(act, minlength=3).double() / act.numel()
    probs = torch.exp(policy.dist_params(obs[:1])[0][0]).detach()
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)
    single = policy.sample(obs[0], torch.Generator().manual_seed(1))
    assert single.shape == () and 0 <= int(single) < 3


@pytest.mark.parametrize("kind", ["gaussian", "categorical"])
def test_entropy_and_log_prob_match_torch_distributions(kind):
    policy, batch = tiny_setup(kind)
    params = policy.dist_params(batch.obs)
    if kind == "gaussian":
        dist = torch.distributions.Independent(
            torch.distributions.Normal(params[0], torch.exp(params[1])), 1)
    else:
        dist = torch.distributions.Categorical(logits=params[0])
    torch.testing.assert_close(policy.log_prob(batch.obs, batch.act), dist.log_prob(batch.act))
    torch.testing.assert_close(policy.entropy(batch.obs), dist.entropy())


def test_presets_and_flat_params_round_trip():
    assert hidden_sizes("paper", 30) == (30,) and hidden_sizes("64x64") == (64, 64)
    with pytest.raises(ValueError, match="preset"):
        hidden_sizes("huge")
    policy = DiagGaussianMLP(11, 3, hidden_sizes("paper", 50))
    theta = torch.randn(get_flat_params(policy).shape, dtype=torch.float64)
    set_flat_params(policy, theta)
    assert torch.equal(get_flat_params(policy), theta)
    with pytest.raises(ValueError, match="shape"):
        set_flat_params(policy, theta[:-1])
