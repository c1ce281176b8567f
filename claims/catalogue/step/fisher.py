"""The Fisher matrix of TRPO's step (App. C, section 8), in three claims.

- step.fvp_exact: the Fisher-vector product by double backprop of the mean KL (pi_old detached)
  equals the explicit Hessian of the mean KL times v plus damping v, and conjugate gradient with
  as many iterations as parameters equals an explicit solve of (H + damping I) x = b.
- step.fisher_unbiased: the empirical Fisher (covariance of score gradients, section 8's
  "empirical FIM") agrees in expectation with the analytic one (the KL Hessian of App. C).
- step.fisher_variance: at equal batch size the analytic estimate F v varies less across
  batches than the empirical one (it averages over actions exactly instead of sampling them).

The implementations under test are callables passed in (defaults: trpo_ref.deep.step); each
negative control swaps in a small broken variant defined here.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from claims.catalogue.step.batches import task_config, trained_batch
from claims.faults import fvp_old_attached
from claims.framework.core import (
    Budget,
    Claim,
    Comparison,
    DecisionRule,
    Evidence,
    Kind,
    Verdict,
    per_example,
)
from claims.framework.registry import register
from claims.framework.stats import bootstrap_ci, leave_one_out_terms, norm_of_mean
from trpo_ref.deep import step
from trpo_ref.deep.policies import CategoricalMLP, DiagGaussianMLP, DistParams, Policy
from trpo_ref.deep.runtime import torch_threads
from trpo_ref.deep.trpo import make_env

FvpFactory = Callable[[Policy, torch.Tensor, DistParams, float], step.VectorProduct]
# (policy, obs (n, .), act (n, .), directions (K, P)) -> estimates of F v_k, shape (K, P)
FisherEstimator = Callable[[Policy, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _detached(policy: Policy, obs: torch.Tensor) -> DistParams:
    with torch.no_grad():
        return tuple(t.detach().clone() for t in policy.dist_params(obs))


# --------------------------------------------------------------------------------------------
# step.fvp_exact
# --------------------------------------------------------------------------------------------


def explicit_kl_hessian(policy: Policy, obs: torch.Tensor, old_params: DistParams) -> np.ndarray:
    """H = d^2/dtheta^2 mean_n KL(pi_old(.|s_n) || pi_theta(.|s_n)) at the policy's parameters,
    formed entry by entry by torch.autograd.functional.hessian; shape (P, P)."""
    theta = step.get_flat_params(policy)

    def mean_kl(flat: torch.Tensor) -> torch.Tensor:
        return policy.kl_from(old_params, step.functional_dist_params(policy, flat, obs)).mean()

    return torch.autograd.functional.hessian(mean_kl, theta).detach().numpy()


# BUG (negative control): the Fisher-vector product with the KL against the live policy, pi_old
# not detached (KL(pi_theta || pi_theta) = 0, so A = damping I); one definition, in claims.faults
_fvp_bug_live_old = fvp_old_attached


def _reference_fvp(
    policy: Policy, obs: torch.Tensor, old_params: DistParams, damping: float
) -> step.VectorProduct:
    """trpo_ref.deep.step.fisher_vector_product_fn without a subsample (the code under test)."""
    return step.fisher_vector_product_fn(policy, obs, old_params, damping)


def _real_observations(env_id: str, n: int, seed: int) -> np.ndarray:
    """``n`` observations of ``env_id`` along episodes driven by seeded uniform random actions."""
    env = make_env(env_id)
    try:
        env.action_space.seed(seed)
        obs, _ = env.reset(seed=seed)
        rows = []
        while len(rows) < n:
            rows.append(np.asarray(obs, dtype=np.float64))
            obs, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                obs, _ = env.reset()
        return np.stack(rows)
    finally:
        env.close()


def _small_policy(case: dict[str, Any], obs_dim: int, seed: int) -> Policy:
    """A tiny MLP policy with every parameter moved by N(0, scale^2) noise from its init, so the
    output layer and log-std are not at their near-trivial initial values."""
    torch.manual_seed(seed)
    hidden = tuple(case["hidden"])
    if case["family"] == "gaussian":
        policy: Policy = DiagGaussianMLP(obs_dim, case["n_out"], hidden)
    else:
        policy = CategoricalMLP(obs_dim, case["n_out"], hidden)
    gen = torch.Generator().manual_seed(seed)
    theta = step.get_flat_params(policy)
    noise = torch.randn(theta.shape, generator=gen, dtype=theta.dtype)
    step.set_flat_params(policy, theta + case["param_scale"] * noise)
    return policy


def fvp_and_cg_errors(
    policy: Policy,
    obs: torch.Tensor,
    damping: float,
    n_vectors: int,
    fvp_fn: FvpFactory,
    seed: int,
) -> dict[str, Any]:
    """Relative errors of ``fvp_fn``'s products against (H + damping I) v with H explicit, for
    ``n_vectors`` random v, and of CG (iters = P) on those products against
    np.linalg.solve(H + damping I, b) for ``n_vectors`` random b."""
    old = _detached(policy, obs)
    h = explicit_kl_hessian(policy, obs, old)
    p = h.shape[0]
    a = h + damping * np.eye(p)
    a_v = fvp_fn(policy, obs, old, damping)
    gen = torch.Generator().manual_seed(seed)
    fvp_err, cg_err, cg_res = [], [], []
    for _ in range(n_vectors):
        v = torch.randn(p, generator=gen, dtype=torch.float64)
        exact = a @ v.numpy()
        got = a_v(v).detach().numpy()
        fvp_err.append(float(np.linalg.norm(got - exact) / np.linalg.norm(exact)))
        b = torch.randn(p, generator=gen, dtype=torch.float64)
        # stop only on a residual at float64 resolution: |r| < 1e-14 |b|
        tol = float((1e-14 * b.norm()) ** 2)
        x, residual = step.conjugate_gradient(a_v, b, iters=p, residual_tol=tol)
        solve = np.linalg.solve(a, b.numpy())
        cg_err.append(float(np.linalg.norm(x.detach().numpy() - solve) / np.linalg.norm(solve)))
        cg_res.append(residual / float(b.norm()))
    eig = np.linalg.eigvalsh(a)
    return {
        "n_params": p,
        "fvp_rel_error": fvp_err,
        "cg_rel_error": cg_err,
        "cg_rel_residual": cg_res,
        "cond": float(eig[-1] / eig[0]),
        "hessian_norm": float(np.linalg.norm(h, 2)),
    }


@dataclass(frozen=True)
class FVPBudget(Budget):
    """step.fvp_exact: small policies on which the FVP is checked against the exact matrix."""

    n_vectors: int  # random vectors v per case
    n_obs: int  # observations per case
    damping: float  # damping added to both products
    cases: tuple[Mapping[str, Any], ...]  # policies: family, obs source, sizes, param scale


@dataclass(frozen=True)
class FisherBudget(Budget):
    """step.fisher_unbiased and step.fisher_variance: replicated batches from a fixed policy."""

    envs: tuple[str, ...]  # tasks
    steps_per_iter: int  # env steps per training batch (the reference state set's size)
    warmup_iters: int  # training iterations before the policy is held fixed
    batch_states: int  # states drawn (with replacement) per replicate
    replicates: int  # independent replicated batches
    n_directions: int  # random unit directions v_k
    n_resamples: int  # bootstrap resamples


@register
class FvpExact(Claim[FVPBudget]):
    id = "step.fvp_exact"
    comparison = Comparison(
        statistic="relative error of FVP and CG, per (case, direction)",
        better="lower", margin=1e-8)
    title = "The Fisher-vector product is the KL Hessian times v; CG solves the damped system"
    statement = (
        "TRPO applies the Fisher matrix as the analytic Hessian of the mean KL, by double "
        "backprop without forming it, and solves A s = g (A = H + damping I) by conjugate "
        "gradient (App. C). On small networks both are checkable exactly."
    )
    source = "TRPO App. C (Fisher-vector products, conjugate gradient)"
    kind = Kind.EXACT
    protocol = (
        "Small MLP policies (Gaussian and categorical; one or two tanh hidden layers of 3-6 "
        "units; every parameter moved N(0, 0.5^2) from its init) on real observations (random-"
        "action episodes of a gymnasium task) or N(0, 1) observations. Per case: H = the "
        "explicit Hessian of the mean KL(pi_old || pi_theta) by torch.autograd.functional."
        "hessian through step.functional_dist_params; for `n_vectors` random v the relative "
        "error |fvp(v) - (H + damping I) v| / |(H + damping I) v|, fvp = step.fisher_vector_"
        "product_fn; for `n_vectors` random b the relative error of step.conjugate_gradient "
        "(iters = P, stopping only at |r| < 1e-14 |b|) on those products against np.linalg."
        "solve(H + damping I, b). damping = 0.1 (TRPOConfig's)."
    )
    negative_control = (
        "The FVP with pi_old not detached: the KL computed against the live policy, "
        "KL(pi_theta || pi_theta), whose Hessian is identically 0 (not the Fisher), so the "
        "product is damping * v -- a real bug when the old distribution is recomputed from the "
        "policy inside the FVP instead of frozen."
    )
    rule = DecisionRule(
        statistic="max relative error over cases of FVP vs explicit Hessian and CG vs solve",
        comparator="<=",
        threshold=1e-8,
        description=(
            "SUPPORTED iff every FVP and CG solution matches its explicit counterpart to a "
            "relative error <= 1e-8. Both sides are float64 (eps 1.1e-16): the FVP and the "
            "explicit Hessian differ only by rounding in O(P)-term sums (~1e-14); CG vs a LU "
            "solve differs by ~cond(A) * eps * growth with cond(A) <= ~1e4 under damping 0.1 "
            "(logged), ~1e-11; 1e-8 leaves a margin of >= 1000 while a wrong matrix is O(1) off."
        ),
    )
    budgets: ClassVar[dict[str, FVPBudget | None]] = {
        "quick": FVPBudget(
            n_vectors=3,
            n_obs=64,
            damping=0.1,
            cases=[
                {"family": "gaussian", "obs": "Hopper-v5", "n_out": 3, "hidden": [4],
                 "param_scale": 0.5},
                {"family": "gaussian", "obs": "random", "obs_dim": 3, "n_out": 2,
                 "hidden": [3, 3], "param_scale": 0.5},
                {"family": "categorical", "obs": "CartPole-v1", "n_out": 2, "hidden": [5],
                 "param_scale": 0.5},
                {"family": "categorical", "obs": "random", "obs_dim": 3, "n_out": 4,
                 "hidden": [3, 3], "param_scale": 0.5},
            ],
        ),
        "standard": FVPBudget(
            n_vectors=10,
            n_obs=256,
            damping=0.1,
            cases=[
                {"family": "gaussian", "obs": env, "n_out": n_out, "hidden": hidden,
                 "param_scale": 0.5}
                for env, n_out in (("Hopper-v5", 3), ("InvertedPendulum-v5", 1))
                for hidden in ([4], [6, 4])
            ] + [
                {"family": "categorical", "obs": "CartPole-v1", "n_out": 2, "hidden": hidden,
                 "param_scale": 0.5}
                for hidden in ([5], [6, 4])
            ] + [
                {"family": family, "obs": "random", "obs_dim": 5, "n_out": 3, "hidden": [4, 4],
                 "param_scale": 1.0}
                for family in ("gaussian", "categorical")
            ],
        ),
        "full": FVPBudget(
            n_vectors=20,
            n_obs=1024,
            damping=0.1,
            cases=[
                {"family": "gaussian", "obs": env, "n_out": n_out, "hidden": hidden,
                 "param_scale": scale}
                for env, n_out in (("Hopper-v5", 3), ("Walker2d-v5", 6), ("Swimmer-v5", 2))
                for hidden in ([6], [8, 6])
                for scale in (0.5, 1.0)
            ] + [
                {"family": "categorical", "obs": "CartPole-v1", "n_out": 2, "hidden": hidden,
                 "param_scale": scale}
                for hidden in ([6], [8, 6])
                for scale in (0.5, 1.0)
            ],
        ),
    }

    def run(
        self,
        tier: str,
        *,
        control: bool = False,
        seed: int = 0,
        fvp_fn: FvpFactory | None = None,
    ) -> Evidence:
        budget = self.tier_budget(tier)
        if fvp_fn is None:
            fvp_fn = _fvp_bug_live_old if control else _reference_fvp
        rows = []
        with torch_threads(1):
            for i, case in enumerate(budget.cases):
                case_seed = seed * 1000 + i
                if case["obs"] == "random":
                    rng = np.random.default_rng([seed, 71, i])
                    obs_np = rng.standard_normal((budget.n_obs, case["obs_dim"]))
                else:
                    obs_np = _real_observations(case["obs"], budget.n_obs, case_seed)
                obs = torch.as_tensor(obs_np)
                policy = _small_policy(case, obs.shape[1], case_seed)
                result = fvp_and_cg_errors(
                    policy, obs, budget.damping, budget.n_vectors, fvp_fn, case_seed
                )
                rows.append({"case": _case_name(case), **result})
        config = {
            "seed": seed,
            **budget.to_json(),
            "fvp": "control bug: KL against the live policy (pi_old not detached)" if control
            else getattr(fvp_fn, "__qualname__", repr(fvp_fn)),
            "cg": "step.conjugate_gradient, iters = P, residual_tol = (1e-14 |b|)^2",
            "hessian": "torch.autograd.functional.hessian through step.functional_dist_params",
            "torch_threads": 1,
        }
        fvp_all = [e for r in rows for e in r["fvp_rel_error"]]
        cg_all = [e for r in rows for e in r["cg_rel_error"]]
        summary = {
            "n_cases": len(rows),
            "max_fvp_rel_error": max(fvp_all) if fvp_all else float("nan"),
            "max_cg_rel_error": max(cg_all) if cg_all else float("nan"),
            "max_cond": max((r["cond"] for r in rows), default=float("nan")),
            "n_params": [r["n_params"] for r in rows],
        }
        return Evidence(self.id, tier, control, config, {"cases": rows}, summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        rows = evidence.data.get("cases", [])
        return per_example([e for r in rows for e in (*r["fvp_rel_error"], *r["cg_rel_error"])],
                           prefix="error ")

    def decide(self, evidence: Evidence) -> Verdict:
        rows = evidence.data.get("cases", [])
        errors = [e for r in rows for e in (*r["fvp_rel_error"], *r["cg_rel_error"])]
        if not errors:
            return Verdict.inconclusive("the evidence holds no cases, so there is nothing to judge")
        s = evidence.summary
        message = (
            f"{len(rows)} small networks (P = {s['n_params']}); max relative error: FVP "
            f"{s['max_fvp_rel_error']:.2e}, CG {s['max_cg_rel_error']:.2e}; "
            f"max cond(H + damping I) {s['max_cond']:.3g}."
        )
        return self.rule.judge(float(max(errors)), n=len(errors), message=message)


def _case_name(case: dict[str, Any]) -> str:
    hidden = "x".join(str(h) for h in case["hidden"])
    return (f"{case['family']} MLP ({hidden}) on {case['obs']} obs, "
            f"param scale {case['param_scale']}")


# --------------------------------------------------------------------------------------------
# step.fisher_unbiased and step.fisher_variance: replicated batches from a fixed policy
# --------------------------------------------------------------------------------------------


def analytic_fisher_products(
    policy: Policy, obs: torch.Tensor, act: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """F v_k with F the Hessian of the mean KL on ``obs`` (App. C), damping 0; ``act`` unused.
    directions (K, P) -> (K, P)."""
    del act
    a_v = step.fisher_vector_product_fn(policy, obs, _detached(policy, obs), 0.0)
    return torch.stack([a_v(v) for v in directions]).detach()


def empirical_fisher_products(
    policy: Policy, obs: torch.Tensor, act: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """F_emp v_k with F_emp the covariance of the scores at (obs, act) (section 8), damping 0.
    directions (K, P) -> (K, P)."""
    a_v = step.empirical_fisher_vector_product_fn(policy, obs, act, 0.0)
    return torch.stack([a_v(v) for v in directions]).detach()


def _empirical_bug_clipped_actions(low: torch.Tensor, high: torch.Tensor) -> FisherEstimator:
    """BUG (negative control of step.fisher_unbiased): the scores evaluated at the actions
    clipped to the action space's bounds (what the environment received) instead of the
    sampled actions; clipped actions are not draws from pi_old, so E[score score^T] != F."""

    def estimate(
        policy: Policy, obs: torch.Tensor, act: torch.Tensor, directions: torch.Tensor
    ) -> torch.Tensor:
        return empirical_fisher_products(
            policy, obs, torch.minimum(torch.maximum(act, low), high), directions
        )

    return estimate


def _analytic_bug_sampled_kl(
    policy: Policy, obs: torch.Tensor, act: torch.Tensor, directions: torch.Tensor
) -> torch.Tensor:
    """BUG (negative control of step.fisher_variance): the "analytic" FVP as the Hessian of a
    sampled KL estimate, mean_n [log pi_old(a_n|s_n) - log pi_theta(a_n|s_n)] at the batch's
    actions, instead of the closed-form KL. Its expectation is still F, but it carries the
    actions' sampling noise (the Hessian of log pi at a sampled action)."""
    old_log_prob = policy.log_prob_from(_detached(policy, obs), act)
    sampled_kl = (old_log_prob - policy.log_prob(obs, act)).mean()
    grad = step.flat_grad(sampled_kl, policy, create_graph=True)
    params = list(policy.parameters())
    out = []
    for v in directions:
        hv = torch.autograd.grad(grad @ v, params, retain_graph=True)
        out.append(torch.cat([h.reshape(-1) for h in hv]))
    return torch.stack(out).detach()


def replicate_fisher_products(
    budget: FisherBudget,
    env_id: str,
    seed: int,
    estimators: dict[str, FisherEstimator],
    action_map: Callable[[torch.Tensor], torch.Tensor] | None = None,
) -> dict[str, Any]:
    """The replicated-batch experiment on one task.

    A policy trained `warmup_iters` TRPO iterations on ``env_id`` (claims.catalogue.step.batches) is
    held fixed; its next batch's observations are the reference state set S. Target: the analytic
    F v_k on all of S (damping 0). Replicates r = 1..R: `batch_states` states drawn uniformly
    with replacement from S, actions drawn from pi_old; every estimator sees the same states
    and actions. Returns the flattened estimates X[name] (R, K * P) and the target (K * P,).
    """
    config = task_config(env_id, budget.steps_per_iter, seed)
    item = trained_batch(config, budget.warmup_iters)
    policy, ref_obs = item.policy, item.batch.obs
    n_params = step.get_flat_params(policy).numel()
    gen = torch.Generator().manual_seed(seed * 7919 + 17)
    directions = torch.randn(budget.n_directions, n_params, generator=gen, dtype=torch.float64)
    directions /= directions.norm(dim=1, keepdim=True)
    target = analytic_fisher_products(policy, ref_obs, ref_obs, directions).reshape(-1)
    estimates: dict[str, list[torch.Tensor]] = {name: [] for name in estimators}
    for _ in range(budget.replicates):
        index = torch.randint(len(ref_obs), (budget.batch_states,), generator=gen)
        obs = ref_obs[index]
        act = policy.sample(obs, gen)
        for name, estimate in estimators.items():
            estimates[name].append(estimate(policy, obs, act, directions).reshape(-1))
    return {
        "X": {name: torch.stack(xs).numpy() for name, xs in estimates.items()},
        "target": target.numpy(),
        "n_params": n_params,
        "n_reference_states": len(ref_obs),
        "episode_return_mean": item.episode_return_mean,
    }


def _counts(index: np.ndarray, r: int) -> np.ndarray:
    return np.bincount(np.asarray(index, dtype=np.int64), minlength=r).astype(float)


def relative_error_of_mean(x: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, Callable]:
    """|mean_r x_r - t| / |t| for x (R, D), t (D,), as per-replicate terms and a resampler.

    Returns (d, stat): d_r = (x_r - t) . (xbar - t) / |t|^2, so sqrt(mean_r d_r) is the
    statistic (JSON-small and recomputable); stat(index) the statistic on the resample
    x[index], from the Gram matrix of x - t (O(R^2) per resample)."""
    e = (x - target) / np.linalg.norm(target)
    gram = e @ e.T
    d = e @ e.mean(axis=0)
    r = x.shape[0]

    def stat(index: np.ndarray) -> float:
        c = _counts(index, r)
        return float(np.sqrt(max(c @ gram @ c, 0.0)) / r)

    return d, stat


def variance_ratio(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, Callable]:
    """trace Cov(x) / trace Cov(y) over replicates (rows), x, y (R, D) paired by row.

    Returns (sx, sy, stat): s_r = |x_r - xbar|^2 (so sum(sx) / sum(sy) is the statistic) and
    stat(index) the ratio on the paired resample, from Gram matrices (O(R^2) per resample)."""
    gx, gy = x @ x.T, y @ y.T
    r = x.shape[0]
    sx = ((x - x.mean(axis=0)) ** 2).sum(axis=1)
    sy = ((y - y.mean(axis=0)) ** 2).sum(axis=1)

    def spread(gram: np.ndarray, c: np.ndarray) -> float:
        return float(c @ np.diag(gram) - c @ gram @ c / r)

    def stat(index: np.ndarray) -> float:
        c = _counts(index, r)
        return spread(gx, c) / spread(gy, c)

    return sx, sy, stat


def _bootstrap(stat: Callable, r: int, alpha: float, n_resamples: int, seed: int) -> tuple:
    """Percentile bootstrap over replicates: claims.framework.stats.bootstrap_ci on the replicate
    indices."""
    return bootstrap_ci(np.arange(r, dtype=float), stat, alpha=alpha, n_resamples=n_resamples,
                        seed=seed)


_FISHER_BUDGETS: dict[str, FisherBudget | None] = {
    "quick": FisherBudget(envs=["Hopper-v5"], steps_per_iter=2000, warmup_iters=2,
                          batch_states=500, replicates=200, n_directions=2, n_resamples=1000),
    "standard": FisherBudget(envs=["Hopper-v5", "Walker2d-v5"], steps_per_iter=5000,
                             warmup_iters=5, batch_states=1000, replicates=1000,
                             n_directions=4, n_resamples=2000),
    "full": FisherBudget(envs=["Hopper-v5", "Walker2d-v5", "Swimmer-v5"], steps_per_iter=20000,
                         warmup_iters=20, batch_states=2000, replicates=2000,
                         n_directions=2, n_resamples=2000),
}

_FISHER_PROTOCOL = (
    "Per task: a 64x64 Gaussian policy trained `warmup_iters` TRPO iterations "
    "(claims.catalogue.step.batches.trained_batch, `steps_per_iter` steps per batch) is held "
    "fixed; the "
    "observations of its next batch are the reference state set S. `n_directions` random unit "
    "directions v_k. Target: the analytic F v_k on all of S (damping 0). `replicates` "
    "independent batches: `batch_states` states drawn uniformly with replacement from S, one "
    "action per state drawn from pi_old; on each batch the analytic estimate (step.fisher_"
    "vector_product_fn) and the empirical one (step.empirical_fisher_vector_product_fn, the "
    "centred covariance of the scores) of F v_k, both damping 0, stacked over k."
)


def _fisher_config(budget: FisherBudget, seed: int, control: bool, estimators: str) -> dict:
    return {"seed": seed, **budget.to_json(), "alpha": 0.05, "estimators": estimators,
            "control": control, "policy": "64x64 tanh Gaussian (TRPOConfig defaults)",
            "torch_threads": 1}


@register
class FisherUnbiased(Claim[FisherBudget]):
    id = "step.fisher_unbiased"
    comparison = Comparison(
        statistic="|E F_emp v - F v| / |F v| per task",
        better="lower", margin=0.02)
    title = "The empirical Fisher agrees with the analytic Fisher in expectation"
    statement = (
        "The covariance of the score gradients (section 8's empirical FIM) and the Hessian of "
        "the mean KL (App. C's analytic Fisher) estimate the same matrix: with actions drawn "
        "from pi_old, E[score score^T | s] is the Fisher information of pi(.|s)."
    )
    source = "TRPO section 8 (empirical FIM comparison) and App. C (analytic Hessian)"
    kind = Kind.EMPIRICAL
    protocol = _FISHER_PROTOCOL + (
        " Statistic per task: |E F_emp v - F v| / |F v| over all directions, estimated without "
        "the Monte Carlo bias of the plug-in |mean_r F_emp,r v - F v| (the square root of the "
        "U-statistic sum_{i != j} e_i . e_j / (R (R - 1)), e_r = (F_emp,r v - F v) / |F v|), "
        "with a normal interval for the U-statistic mapped through the square root "
        "(claims.framework.stats.norm_of_mean); the plug-in is reported. Over tasks the max "
        "(interval: "
        "max of the lower ends, max of the upper ends)."
    )
    negative_control = (
        "The scores evaluated at the actions clipped to the action space's bounds (the action "
        "the environment received) instead of the sampled, unclipped ones: a real bug when the "
        "rollout stores env actions; clipped actions are not draws from pi_old, so the score "
        "covariance is no longer the Fisher (Hopper's bounds are +-1 at std ~1)."
    )
    rule = DecisionRule(
        statistic="max over tasks of |E F_emp v - F v| / |F v| (relative error, unbiased)",
        comparator="<=",
        threshold=0.1,
        alpha=0.05,
        description=(
            "SUPPORTED iff the 95% bootstrap interval of the relative error lies below 0.1. The "
            "centred estimator's known bias is 1/batch_states (<= 0.2%) and the budgets make "
            "the Monte Carlo error of the mean (sqrt(trace Cov / R) / |F v|, in the summary) a "
            "few percent, so an estimator of the same matrix lands well under 10% while a "
            "biased Fisher (wrong actions, a lost factor) is off by tens of percent."
        ),
    )
    budgets: ClassVar[dict[str, FisherBudget | None]] = _FISHER_BUDGETS

    def run(
        self,
        tier: str,
        *,
        control: bool = False,
        seed: int = 0,
        estimator: FisherEstimator | None = None,
    ) -> Evidence:
        budget = self.tier_budget(tier)
        tasks = []
        with torch_threads(1):
            for env_id in budget.envs:
                est = estimator
                if est is None and control:
                    env = make_env(env_id)
                    space = env.action_space
                    env.close()
                    est = _empirical_bug_clipped_actions(
                        torch.as_tensor(space.low, dtype=torch.float64),
                        torch.as_tensor(space.high, dtype=torch.float64),
                    )
                est = est or empirical_fisher_products
                res = replicate_fisher_products(
                    budget, env_id, seed, {"empirical": est, "analytic": analytic_fisher_products}
                )
                tasks.append(self._task(budget, env_id, res, seed))
        config = _fisher_config(
            budget, seed, control,
            "control bug: scores at clipped actions" if control
            else "step.empirical_fisher_vector_product_fn",
        )
        summary = {
            "max_rel_error": max((t["rel_error"] for t in tasks), default=float("nan")),
            "by_task": {t["env_id"]: {k: t[k] for k in ("rel_error", "ci", "mc_floor",
                                                        "analytic_rel_error")} for t in tasks},
        }
        return Evidence(self.id, tier, control, config, {"tasks": tasks}, summary)

    @staticmethod
    def _task(budget: FisherBudget, env_id: str, res: dict[str, Any], seed: int) -> dict:
        x, target = res["X"]["empirical"], res["target"]
        d, _ = relative_error_of_mean(x, target)
        r = x.shape[0]
        tt = float(target @ target)
        u = leave_one_out_terms((x - target) / np.sqrt(tt))
        rel_error, ci = norm_of_mean(u, alpha=0.05)
        d_analytic, _ = relative_error_of_mean(res["X"]["analytic"], target)
        return {
            "env_id": env_id,
            "d": d.tolist(),
            # u_r = e_r . mean_{j != r} e_j, e_r = (F_emp,r v - F v) / |F v|: the unbiased
            # estimate of |E F_emp v - F v|^2 / |F v|^2 is mean(u) (stats.norm_of_mean)
            "u": u.tolist(),
            "rel_error": rel_error,
            "ci": list(ci),
            # |mean_r F_emp,r v - F v| / |F v| (the plug-in, biased upward by the Monte Carlo
            # error; the statistic before issue 15), reported
            "plugin_rel_error": float(np.sqrt(max(d.mean(), 0.0))),
            # the error expected from Monte Carlo noise alone: sqrt(trace Cov / R) / |F v|
            "mc_floor": float(np.sqrt(x.var(axis=0, ddof=1).sum() / r / tt)),
            "analytic_rel_error": float(np.sqrt(max(d_analytic.mean(), 0.0))),
            "n_params": res["n_params"],
            "n_reference_states": res["n_reference_states"],
            "episode_return_mean": res["episode_return_mean"],
        }

    def samples(self, evidence: Evidence) -> dict[str, float]:
        tasks = [_rejudged(t, 0.05) for t in evidence.data.get("tasks", [])]
        return per_example([t["rel_error"] for t in tasks], [t["env_id"] for t in tasks])

    def decide(self, evidence: Evidence) -> Verdict:
        tasks = evidence.data.get("tasks", [])
        if not tasks:
            return Verdict.inconclusive("the evidence holds no tasks, so there is nothing to judge")
        tasks = [_rejudged(t, self.rule.alpha or 0.05) for t in tasks]
        value = max(t["rel_error"] for t in tasks)
        ci = (max(t["ci"][0] for t in tasks), max(t["ci"][1] for t in tasks))
        parts = "; ".join(
            f"{t['env_id']}: {t['rel_error']:.3g} [{t['ci'][0]:.3g}, {t['ci'][1]:.3g}] "
            f"(MC floor {t['mc_floor']:.3g}, analytic on batches {t['analytic_rel_error']:.3g})"
            for t in tasks
        )
        n = sum(len(t["d"]) for t in tasks)
        return self.rule.judge(value, n=n, ci=ci, message=f"relative error of the mean: {parts}.")


def _rejudged(task: dict[str, Any], alpha: float) -> dict[str, Any]:
    """A task row with rel_error and ci recomputed from its per-replicate terms ``u`` (rows of
    evidence from before issue 15 have none and keep their stored values)."""
    if "u" not in task:
        return task
    estimate, ci = norm_of_mean(np.asarray(task["u"]), alpha=alpha)
    return {**task, "rel_error": estimate, "ci": [ci[0], ci[1]]}


@register
class FisherVariance(Claim[FisherBudget]):
    id = "step.fisher_variance"
    comparison = Comparison(
        statistic="trace Cov(empirical F v) / trace Cov(analytic F v) per task",
        better="either", margin=0.2, relative=True)
    title = "At equal batch size the analytic Fisher estimate varies less than the empirical one"
    statement = (
        "The analytic Fisher (Hessian of the KL, App. C) integrates over actions in closed "
        "form, so at equal batch size its estimate F v varies less across batches than the "
        "empirical FIM's (covariance of sampled scores), the estimator section 8 compares with."
    )
    source = "TRPO App. C (analytic Hessian rather than the covariance of gradients), section 8"
    kind = Kind.EMPIRICAL
    protocol = _FISHER_PROTOCOL + (
        " Statistic per task: trace Cov_r(F_emp,r v) / trace Cov_r(F_an,r v) over replicates "
        "(all directions stacked), with a paired percentile bootstrap interval over replicates; "
        "over tasks the min (interval: min of the lower ends, min of the upper ends)."
    )
    negative_control = (
        "The 'analytic' FVP as the Hessian of a sampled KL estimate, mean_n [log pi_old(a_n|"
        "s_n) - log pi_theta(a_n|s_n)] at the batch's actions (the usual sample-based KL of "
        "many policy-gradient codes), instead of the closed-form KL: unbiased, but it carries "
        "the actions' noise through the Hessian of log pi, so it is not the low-variance "
        "estimator the claim is about."
    )
    rule = DecisionRule(
        statistic="min over tasks of trace Cov(empirical F v) / trace Cov(analytic F v)",
        comparator=">",
        threshold=1.0,
        alpha=0.05,
        description=(
            "SUPPORTED iff the 95% bootstrap interval of the variance ratio lies above 1: the "
            "empirical estimate is noisier. 1 is the claim's own boundary (lower variance, no "
            "size asked); the paired interval accounts for the finite number of replicates."
        ),
    )
    budgets: ClassVar[dict[str, FisherBudget | None]] = _FISHER_BUDGETS

    def run(
        self,
        tier: str,
        *,
        control: bool = False,
        seed: int = 0,
        analytic: FisherEstimator | None = None,
    ) -> Evidence:
        budget = self.tier_budget(tier)
        if analytic is None:
            analytic = _analytic_bug_sampled_kl if control else analytic_fisher_products
        tasks = []
        with torch_threads(1):
            for env_id in budget.envs:
                res = replicate_fisher_products(
                    budget, env_id, seed,
                    {"empirical": empirical_fisher_products, "analytic": analytic},
                )
                x, y = res["X"]["empirical"], res["X"]["analytic"]
                sx, sy, stat = variance_ratio(x, y)
                ci = _bootstrap(stat, x.shape[0], 0.05, budget.n_resamples, seed)
                tasks.append({
                    "env_id": env_id,
                    "sq_dev_empirical": sx.tolist(),
                    "sq_dev_analytic": sy.tolist(),
                    "ratio": float(sx.sum() / sy.sum()),
                    "ci": list(ci),
                    "n_params": res["n_params"],
                    "n_reference_states": res["n_reference_states"],
                    "episode_return_mean": res["episode_return_mean"],
                })
        config = _fisher_config(
            budget, seed, control,
            "control bug: Hessian of the sampled KL" if control
            else "step.fisher_vector_product_fn vs step.empirical_fisher_vector_product_fn",
        )
        summary = {
            "min_ratio": min((t["ratio"] for t in tasks), default=float("nan")),
            "by_task": {t["env_id"]: {"ratio": t["ratio"], "ci": t["ci"]} for t in tasks},
        }
        return Evidence(self.id, tier, control, config, {"tasks": tasks}, summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        tasks = evidence.data.get("tasks", [])
        return per_example([t["ratio"] for t in tasks], [t["env_id"] for t in tasks])

    def decide(self, evidence: Evidence) -> Verdict:
        tasks = evidence.data.get("tasks", [])
        if not tasks:
            return Verdict.inconclusive("the evidence holds no tasks, so there is nothing to judge")
        value = min(t["ratio"] for t in tasks)
        ci = (min(t["ci"][0] for t in tasks), min(t["ci"][1] for t in tasks))
        parts = "; ".join(
            f"{t['env_id']}: {t['ratio']:.3g} [{t['ci'][0]:.3g}, {t['ci'][1]:.3g}]"
            for t in tasks
        )
        n = sum(len(t["sq_dev_empirical"]) for t in tasks)
        return self.rule.judge(value, n=n, ci=ci, message=f"variance ratio: {parts}.")
