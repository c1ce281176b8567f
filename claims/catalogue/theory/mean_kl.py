"""The mean-vs-max KL gap (TRPO section 4): eq. (12) constrains the mean KL, eq. (9) needs the max.

One claim, two parts:

(a) Audit (reported, not judged): a trust-region step along the natural gradient, scaled so that
    its exact mean KL under rho_old is delta, reaches a max KL of how many deltas? On random MDPs
    and on the gridworld, for delta = 0.001 .. 0.1.
(b) Judged: does eq. (9) stay valid with the mean KL in place of the max KL,

        eta(pi_new) >= L_{pi_old}(pi_new) - C kl_mean(pi_old, pi_new),
        C = 4 eps gamma / (1 - gamma)^2 ?

    The paper does not claim this (it calls the mean-KL problem a heuristic approximation); the
    claim asks whether the substitution is still a bound, and searches adversarially for a
    counterexample: hypothesis draws families of (MDP, pi_old, pi_new) built to stress the
    substitution (high gamma, absorbing states, a single start state, near-deterministic pi_old,
    policy changes concentrated on rarely visited states), then scipy's L-BFGS-B maximizes
    (L - eta) / (C kl_mean) over pi_new's logits from the examples that came closest and from
    random restarts. A violation is a triple with slack eta(pi_new) - L + C kl_mean < -1e-10.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from hypothesis import strategies as st
from scipy.optimize import minimize

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
from claims.framework.generation import for_each_example
from claims.framework.plotting import pyplot, save_figure
from claims.framework.registry import register
from trpo_ref.tabular import (
    MDP,
    evaluate,
    gridworld,
    kl_max,
    kl_mean,
    natural_gradient,
    penalty_coefficient,
    random_mdp,
    softmax,
    surrogate,
)
from trpo_ref.tabular.bounds import max_abs_advantage
from trpo_ref.tabular.divergence import state_weights


@dataclass(frozen=True)
class MeanKLBudget(Budget):
    """theory.mean_kl_bound: the hypothesis search, the optimizer, and the max/mean KL audit."""

    n_families: int  # families drawn by hypothesis
    pairs_per_family: int  # (MDP, pi_old, pi_new) triples per family
    n_optimizer_seeds: int  # families whose closest triple seeds the optimizer
    n_restarts: int  # random restarts per optimizer seed
    max_iter: int  # optimizer iterations per start
    audit_n_mdps: int  # random MDPs per audited family
    audit_grid_policies: int  # random gridworld policies audited
    audit_random: tuple[Mapping[str, Any], ...]  # audited random-MDP families (random_mdp kwargs)


AUDIT_DELTAS: tuple[float, ...] = (0.001, 0.003, 0.01, 0.03, 0.1)
AUDIT_DELTA = 0.01  # the delta of the audit's figure and headline numbers (the paper's delta)
LOGIT_BOUND = 60.0  # box on pi_new's logit change in the optimizer (keeps softmax finite)
FD_STEP = 1e-5  # central-difference step of the optimizer's gradient
SAMPLE_EVERY = 10  # every 10th hypothesis example's ratio is kept for the figure
# The ratio (L - eta) / (C kl_mean) is reported only where C kl_mean >= this: eta and L carry
# float64 errors ~1e-12, so below it the ratio is noise (the slack itself is always judged).
MIN_PENALTY = 1e-8


# --------------------------------------------------------------------------------------------
# (a) the audit: max KL at a step of mean KL delta
# --------------------------------------------------------------------------------------------


def step_scale_for_mean_kl(
    mdp: MDP,
    theta_old: np.ndarray,
    direction: np.ndarray,
    delta: float,
    *,
    n_bisect: int = 64,
) -> np.ndarray:
    """t >= 0 with kl_mean(pi_old, softmax(theta_old + t direction)) = delta; shape (...,).

    theta_old, direction: (..., S, A). The mean KL along the ray is convex in t with value and
    slope 0 at t = 0, hence non-decreasing: bracket by doubling, then bisect (relative precision
    2^-n_bisect). NaN where the direction cannot reach delta (e.g. all advantages zero).
    """
    pi_old = softmax(theta_old)
    ev_old = evaluate(mdp, pi_old)

    def kl_at(t: np.ndarray) -> np.ndarray:
        return kl_mean(
            mdp, pi_old, softmax(theta_old + t[..., None, None] * direction), ev_old=ev_old
        )

    batch = np.shape(ev_old.eta)
    lo, hi = np.zeros(batch), np.ones(batch)
    for _ in range(200):
        below = kl_at(hi) < delta
        if not below.any():
            break
        lo, hi = np.where(below, hi, lo), np.where(below, 2.0 * hi, hi)
    reached = kl_at(hi) >= delta
    hi = np.where(reached, hi, lo)
    for _ in range(n_bisect):
        mid = 0.5 * (lo + hi)
        above = kl_at(mid) > delta
        lo, hi = np.where(above, lo, mid), np.where(above, mid, hi)
    return np.where(reached, 0.5 * (lo + hi), np.nan)


def max_over_mean_kl(mdp: MDP, theta: np.ndarray, deltas: tuple[float, ...]) -> np.ndarray:
    """max_s KL(pi_old || pi_new) / delta at natural-gradient steps of exact mean KL delta.

    theta: (..., S, A) logits of pi_old. Returns (len(deltas), ...); NaN where no step exists.
    """
    pi_old = softmax(theta)
    direction = natural_gradient(mdp, theta)
    out = []
    for delta in deltas:
        t = step_scale_for_mean_kl(mdp, theta, direction, delta)
        ok = np.isfinite(t)
        pi_new = softmax(theta + np.where(ok, t, 0.0)[..., None, None] * direction)
        out.append(np.where(ok, kl_max(pi_old, pi_new) / delta, np.nan))
    return np.stack(out)


def _audit_gridworld(n_policies: int, seed: int) -> tuple[MDP, np.ndarray]:
    """The gridworld at the uniform policy and n_policies - 1 random (temperature 1) policies."""
    grid = gridworld()
    P = np.broadcast_to(grid.P, (n_policies, *grid.P.shape))
    mdp = MDP(P, grid.r, grid.gamma, grid.mu0)
    theta = np.random.default_rng([seed, 11]).standard_normal(
        (n_policies, grid.n_states, grid.n_actions)
    )
    theta[0] = 0.0  # policy 0 is uniform
    return mdp, theta


def run_audit(budget: MeanKLBudget, seed: int) -> dict[str, Any]:
    """max KL / delta per MDP and delta: random MDP families and the gridworld."""
    random_out: dict[str, list[list[float]]] = {}
    for k, fam in enumerate(budget.audit_random):
        mdp = random_mdp(
            [seed, 7, k],
            fam["n_states"],
            fam["n_actions"],
            fam["gamma"],
            n_mdps=budget.audit_n_mdps,
            sparsity=fam["sparsity"],
        )
        theta = np.random.default_rng([seed, 8, k]).standard_normal(
            (budget.audit_n_mdps, fam["n_states"], fam["n_actions"])
        )
        random_out[_audit_name(fam)] = max_over_mean_kl(mdp, theta, AUDIT_DELTAS).tolist()
    grid_mdp, grid_theta = _audit_gridworld(budget.audit_grid_policies, seed)
    grid_out = max_over_mean_kl(grid_mdp, grid_theta, AUDIT_DELTAS).tolist()
    return {"random": random_out, "gridworld": grid_out}


def _audit_name(fam: dict[str, Any]) -> str:
    return (
        f"random {fam['n_states']}x{fam['n_actions']} gamma={fam['gamma']} "
        f"sparsity={fam['sparsity']}"
    )


# --------------------------------------------------------------------------------------------
# (b) the bound with mean KL, and the search for a counterexample
# --------------------------------------------------------------------------------------------


def _penalty_bug_one_power(mdp: MDP, ev_old: Any) -> np.ndarray:
    """BUG (negative control): C = 4 eps gamma / (1 - gamma), one power of (1 - gamma) dropped."""
    gamma = np.asarray(mdp.gamma, dtype=float)
    return 4.0 * max_abs_advantage(ev_old) * gamma / (1.0 - gamma)


def mean_kl_bound_check(
    mdp: MDP, pi_old: np.ndarray, pi_new: np.ndarray, *, ev_old: Any, control: bool
) -> dict[str, np.ndarray]:
    """Eq. (9) with mean KL: slack = eta(pi_new) - (L(pi_new) - C kl_mean); arrays (...,).

    ratio = (L - eta) / (C kl_mean): the bound is violated iff ratio > 1 (NaN where C kl_mean
    < MIN_PENALTY, where it would be float noise). ``control`` swaps in the one-power penalty
    bug. pi_new may have probabilities that underflowed to 0 (infinite KL: the bound is vacuous
    there, slack +inf).
    """
    eta_new = evaluate(mdp, pi_new).eta
    surr = surrogate(mdp, pi_old, pi_new, ev_old=ev_old)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        klm = kl_mean(mdp, pi_old, pi_new, ev_old=ev_old)
    coef = (
        _penalty_bug_one_power(mdp, ev_old)
        if control
        else penalty_coefficient(mdp, pi_old, ev_old=ev_old)
    )
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        penalty = np.where(coef > 0, coef * klm, 0.0)
        ratio = np.where(penalty >= MIN_PENALTY, (surr - eta_new) / penalty, np.nan)
    return {
        "eta_new": eta_new,
        "surrogate": surr,
        "kl_mean": klm,
        "coef": coef,
        "slack": eta_new - (surr - penalty),
        "ratio": ratio,
    }


def _log_uniform(lo_exp: float, hi_exp: float) -> st.SearchStrategy[float]:
    return st.floats(lo_exp, hi_exp).map(lambda x: float(10.0**x))


@st.composite
def _family(draw: st.DrawFn) -> dict[str, Any]:
    """One hypothesis example: a family of (MDP, pi_old, pi_new) triples built to stress eq. (9)
    with mean KL (where the max and the mean KL differ most)."""
    return {
        "n_states": draw(st.integers(2, 8)),
        "n_actions": draw(st.integers(2, 4)),
        # up to 0.99: the (1 - gamma)^-2 of C and the horizon effects grow with gamma; above 0.99
        # float64 error of eta approaches the 1e-10 tolerance
        "gamma": draw(st.one_of(st.floats(0.5, 0.99), st.sampled_from([0.9, 0.95, 0.98, 0.99]))),
        "sparsity": draw(st.one_of(st.just(0.0), st.floats(0.0, 1.0), st.just(1.0))),
        # the last n_absorbing states loop on themselves under every action, with a different
        # reward per action: regions that pi_old may rarely enter and pi_new may fall into
        "n_absorbing": draw(st.integers(0, 2)),
        # "single": mu0 on state 0, so other states can be rare; "spread": Dirichlet mu0
        "start": draw(st.sampled_from(["single", "spread"])),
        # pi_old logits N(0, 1) / temperature: 0.05 near-deterministic, 5 near-uniform
        "temperature": draw(_log_uniform(np.log10(0.05), np.log10(5.0))),
        # pi_new logits = pi_old's + step * N(0, 1) * (d(s) / max d)^(-rare_focus / 2), capped
        # at 100x: rare_focus 1 equalizes each state's share of the mean KL, so rarely
        # visited states (d = rho_old normalized) change most; 0 = the same noise everywhere
        "rare_focus": draw(st.sampled_from([0.0, 0.5, 1.0, 1.5])),
        "step": draw(_log_uniform(-3.0, 1.0)),
        "seed": draw(st.integers(0, 2**32 - 1)),
    }


def build_family(
    family: dict[str, Any], *, batch: int, run_seed: int
) -> tuple[MDP, np.ndarray, np.ndarray]:
    """The batch of (MDP, theta_old, z) of one family; pi_new = softmax(theta_old + z).

    Deterministic in (family, run_seed). Shapes: MDP batch (batch,), theta_old and z
    (batch, S, A).
    """
    S, A = family["n_states"], family["n_actions"]
    rng = np.random.default_rng([run_seed, family["seed"]])
    base = random_mdp(rng, S, A, family["gamma"], n_mdps=batch, sparsity=family["sparsity"])
    P, r, mu0 = base.P.copy(), base.r.copy(), base.mu0.copy()
    for s in range(S - min(family["n_absorbing"], S - 1), S):
        P[:, s, :, :] = 0.0
        P[:, s, :, s] = 1.0
        r[:, s, :] = rng.uniform(-1.0, 1.0, (batch, A))
    if family["start"] == "single":
        mu0 = np.zeros_like(mu0)
        mu0[:, 0] = 1.0
    mdp = MDP(P, r, family["gamma"], mu0)
    theta_old = rng.standard_normal((batch, S, A)) / family["temperature"]
    weights = state_weights(evaluate(mdp, softmax(theta_old)).rho)
    z = (
        family["step"]
        * rng.standard_normal((batch, S, A))
        * _rare_scale(weights, family["rare_focus"])[..., None]
    )
    return mdp, theta_old, z


def _rare_scale(weights: np.ndarray, focus: float) -> np.ndarray:
    """(d(s) / max d)^(-focus / 2), capped at 100; 100 where d(s) = 0."""
    rel = weights / weights.max(axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        return np.minimum(np.where(rel > 0, rel ** (-focus / 2.0), np.inf), 100.0)


def check_family(
    family: dict[str, Any], *, batch: int, run_seed: int, control: bool
) -> dict[str, Any]:
    """The bound check for every triple of one family: arrays (batch,) plus the inputs."""
    mdp, theta_old, z = build_family(family, batch=batch, run_seed=run_seed)
    pi_old = softmax(theta_old)
    ev_old = evaluate(mdp, pi_old)
    out: dict[str, Any] = mean_kl_bound_check(
        mdp, pi_old, softmax(theta_old + z), ev_old=ev_old, control=control
    )
    out.update(mdp=mdp, theta_old=theta_old, z=z)
    return out


def optimize_ratio(
    mdp: MDP,
    theta_old: np.ndarray,
    z0: np.ndarray,
    *,
    control: bool,
    max_iter: int,
) -> dict[str, Any]:
    """Maximize (L - eta) / (C kl_mean) over pi_new = softmax(theta_old + z) with L-BFGS-B.

    One MDP (not a batch); theta_old, z0: (S, A). The objective minimized is
    slack / (C kl_mean) = 1 - ratio (scale-free, so the search looks for the worst direction and
    size at once); its gradient is a central difference whose 2 S A + 1 points are evaluated in
    one batched call. Every evaluated triple counts: the result holds the minimum slack and
    maximum ratio seen, with the z that gave them, after a final scan along the best ray
    (z -> t z, t in 0.01 .. 10) to find the most negative slack there.
    """
    S, A = theta_old.shape
    n = S * A
    pi_old = softmax(theta_old)
    ev_old = evaluate(mdp, pi_old)
    basis = np.eye(n).reshape(n, S, A)
    best: dict[str, Any] = {
        "min_slack": np.inf,
        "z_min_slack": z0,
        "max_ratio": -np.inf,
        "z_max_ratio": z0,
        "n_evaluations": 0,
    }

    def check(Z: np.ndarray) -> np.ndarray:
        out = mean_kl_bound_check(
            mdp, pi_old, softmax(theta_old + Z), ev_old=ev_old, control=control
        )
        best["n_evaluations"] += len(Z)
        i = int(np.argmin(out["slack"]))
        if out["slack"][i] < best["min_slack"]:
            best["min_slack"], best["z_min_slack"] = float(out["slack"][i]), Z[i].copy()
        ratio = np.where(np.isfinite(out["ratio"]), out["ratio"], -np.inf)
        j = int(np.argmax(ratio))
        if ratio[j] > best["max_ratio"]:
            best["max_ratio"], best["z_max_ratio"] = float(ratio[j]), Z[j].copy()
        # no information (C kl_mean = 0, or infinite kl) -> the neutral value 1 (ratio 0)
        return np.where(np.isfinite(out["ratio"]), 1.0 - out["ratio"], 1.0)

    def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
        z = x.reshape(S, A)
        f = check(np.concatenate([z[None], z + FD_STEP * basis, z - FD_STEP * basis]))
        return float(f[0]), (f[1 : n + 1] - f[n + 1 :]) / (2.0 * FD_STEP)

    res = minimize(
        objective,
        np.clip(z0, -LOGIT_BOUND, LOGIT_BOUND).ravel(),
        jac=True,
        method="L-BFGS-B",
        bounds=[(-LOGIT_BOUND, LOGIT_BOUND)] * n,
        options={"maxiter": max_iter},
    )
    ray = np.logspace(-2.0, 1.0, 31)[:, None, None] * best["z_max_ratio"][None]
    check(np.clip(ray, -LOGIT_BOUND, LOGIT_BOUND))
    return {
        **best,
        "success": bool(res.success),
        "n_iterations": int(res.nit),
        "message": str(res.message),
    }


def example_record(
    mdp: MDP, theta_old: np.ndarray, z: np.ndarray, *, control: bool, source: str
) -> dict[str, Any]:
    """A triple written out in full (JSON-ready) so that anyone can recheck it."""
    pi_old, pi_new = softmax(theta_old), softmax(theta_old + z)
    out = mean_kl_bound_check(mdp, pi_old, pi_new, ev_old=evaluate(mdp, pi_old), control=control)
    return {
        "source": source,
        "P": mdp.P.tolist(),
        "r": mdp.r.tolist(),
        "gamma": float(mdp.gamma),
        "mu0": mdp.mu0.tolist(),
        "pi_old": pi_old.tolist(),
        "pi_new": pi_new.tolist(),
        "theta_old": theta_old.tolist(),
        "theta_new": (theta_old + z).tolist(),
        "penalty_coefficient": (
            "4 eps gamma / (1 - gamma)" if control else "4 eps gamma / (1 - gamma)^2"
        ),
        **{k: float(v) for k, v in out.items()},
    }


def _flat_argbest(results: list[dict[str, Any]], key: str, pick: Any) -> tuple[int, int]:
    """(family index, pair index) of the pick (np.nanargmin / np.nanargmax) of ``key``."""
    values = np.concatenate([r[key] for r in results])
    values = np.where(np.isfinite(values), values, np.nan)
    flat = int(pick(values))
    ends = np.cumsum([len(r[key]) for r in results])
    k = int(np.searchsorted(ends, flat, side="right"))
    return k, flat - (int(ends[k - 1]) if k else 0)


def _optimizer_starts(
    results: list[dict[str, Any]], budget: MeanKLBudget, seed: int
) -> list[tuple[int, int, str, np.ndarray]]:
    """(family, pair, label, z0): the closest example of each of the families that came
    closest (largest ratio), and random restarts on the same triples' MDP and pi_old."""
    family_best = [
        np.nanmax(np.where(np.isfinite(r["ratio"]), r["ratio"], np.nan))
        if np.isfinite(r["ratio"]).any()
        else -np.inf
        for r in results
    ]
    order = np.argsort(-np.asarray(family_best), kind="stable")[: budget.n_optimizer_seeds]
    rng = np.random.default_rng([seed, 23])
    starts = []
    for k in order:
        r = results[int(k)]
        i = int(np.nanargmax(np.where(np.isfinite(r["ratio"]), r["ratio"], np.nan)))
        starts.append((int(k), i, "closest example", r["z"][i]))
        weights = state_weights(evaluate(r["mdp"][i], softmax(r["theta_old"][i])).rho)
        for j in range(budget.n_restarts):
            scale = 10.0 ** rng.uniform(-1.0, 0.5) * _rare_scale(weights, 1.0)
            z0 = scale[:, None] * rng.standard_normal(r["z"][i].shape)
            starts.append((int(k), i, f"random restart {j}", z0))
    return starts


@register
class MeanKLBound(Claim[MeanKLBudget]):
    id = "theory.mean_kl_bound"
    comparison = Comparison(
        statistic="min slack of eq. (9) with the mean KL, per hypothesis family",
        better="either", margin=1e-6)
    title = "Eq. (9) with mean KL for max KL: still a lower bound on eta? (+ max/mean KL audit)"
    statement = (
        "TRPO's practical problem (eq. 12) constrains the mean KL under rho_old where the theory "
        "(eq. 9) penalizes the max KL. Checked: whether eq. (9) stays valid with the mean KL, "
        "eta(pi_new) >= L_{pi_old}(pi_new) - C E_{s ~ rho_old normalized} KL(pi_old(.|s) || "
        "pi_new(.|s)), C = 4 eps gamma / (1 - gamma)^2. Audited: how large max KL gets at a "
        "step of mean KL delta."
    )
    source = "TRPO section 4, eq. (12) versus eq. (9) (the 'heuristic approximation')"
    kind = Kind.APPROXIMATION
    protocol = (
        "(a) Audit, not judged: random MDPs (`audit_random` families, `audit_n_mdps` each, pi_old "
        "logits N(0, 1)) and the 5x5 gridworld (uniform pi_old and random ones); step along the "
        "natural gradient scaled by bisection to exact mean KL = delta for delta in 0.001, "
        "0.003, 0.01, 0.03, 0.1; record max_s KL / delta. "
        "(b) Counterexample search for eta(pi_new) >= L - C kl_mean: hypothesis (derandomized, "
        "`n_families` examples) draws a family (2-8 states, 2-4 actions, gamma 0.5-0.99 with "
        "extra weight on 0.9-0.99, sparsity 0-1, 0-2 absorbing states with action-dependent "
        "rewards, single or spread start, pi_old temperature 0.05-5, pi_new = logit noise of "
        "size 1e-3..10 scaled per state by d(s)^(-focus/2) to concentrate the change on rarely "
        "visited states) and numpy builds `pairs_per_family` triples from it. Then an optimizer: "
        "for the `n_optimizer_seeds` families whose best triple came closest (largest "
        "(L - eta) / (C kl_mean)), scipy L-BFGS-B minimizes slack / (C kl_mean) over pi_new's "
        "logits (box +-60, central-difference gradient, `max_iter` iterations) from that triple "
        "and from `n_restarts` random restarts, then scans the best ray. Every evaluated triple "
        "counts. The triple of minimum slack and the one of maximum ratio are recorded in full."
    )
    negative_control = (
        "The same search for the bound with a wrong penalty constant, C = 4 eps gamma / "
        "(1 - gamma), one power of (1 - gamma) dropped (a plausible typo of eq. 9's constant). "
        "It must find a violation: this shows the search can find one where one exists."
    )
    rule = DecisionRule(
        statistic="min slack eta(pi_new) - L(pi_new) + C kl_mean over every evaluated triple",
        comparator=">=",
        threshold=-1e-10,
        description=(
            "SUPPORTED iff no evaluated triple violates the mean-KL bound by more than 1e-10 "
            "(float64 error of eta at gamma <= 0.99 with rewards in [-1, 1] is ~1e-12); "
            "SUPPORTED only means no counterexample was found within the budget, not a proof. "
            "REFUTED: a counterexample was found; it is recorded in evidence.data."
        ),
    )
    budgets: ClassVar[dict[str, MeanKLBudget | None]] = {
        "quick": MeanKLBudget(
            n_families=100,
            pairs_per_family=100,
            n_optimizer_seeds=8,
            n_restarts=2,
            max_iter=100,
            audit_n_mdps=100,
            audit_grid_policies=8,
            audit_random=[
                {"n_states": 10, "n_actions": 4, "gamma": 0.9, "sparsity": 0.0},
                {"n_states": 10, "n_actions": 4, "gamma": 0.99, "sparsity": 0.5},
            ],
        ),
        "standard": MeanKLBudget(
            n_families=1_000,
            pairs_per_family=200,
            n_optimizer_seeds=40,
            n_restarts=4,
            max_iter=300,
            audit_n_mdps=1_000,
            audit_grid_policies=50,
            audit_random=[
                {"n_states": 10, "n_actions": 4, "gamma": 0.9, "sparsity": 0.0},
                {"n_states": 10, "n_actions": 4, "gamma": 0.99, "sparsity": 0.5},
                {"n_states": 30, "n_actions": 4, "gamma": 0.99, "sparsity": 0.9},
            ],
        ),
        "full": MeanKLBudget(
            n_families=5_000,
            pairs_per_family=400,
            n_optimizer_seeds=200,
            n_restarts=8,
            max_iter=1_000,
            audit_n_mdps=5_000,
            audit_grid_policies=200,
            audit_random=[
                {"n_states": 10, "n_actions": 4, "gamma": 0.9, "sparsity": 0.0},
                {"n_states": 10, "n_actions": 4, "gamma": 0.99, "sparsity": 0.5},
                {"n_states": 30, "n_actions": 4, "gamma": 0.99, "sparsity": 0.9},
                {"n_states": 50, "n_actions": 2, "gamma": 0.99, "sparsity": 0.95},
            ],
        ),
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        batch = int(budget.pairs_per_family)
        families: list[dict[str, Any]] = []
        results: list[dict[str, Any]] = []

        def _collect(family: dict[str, Any]) -> None:
            families.append(family)
            results.append(check_family(family, batch=batch, run_seed=seed, control=control))

        generator = for_each_example(_family(), int(budget.n_families), _collect)
        config = {
            "seed": seed,
            **budget.to_json(),
            "hypothesis": generator,
            "audit_deltas": list(AUDIT_DELTAS),
            "audit_delta": AUDIT_DELTA,
            "logit_bound": LOGIT_BOUND,
            "fd_step": FD_STEP,
            "penalty_coefficient": "4 eps gamma / (1 - gamma)"
            if control
            else "4 eps gamma / (1 - gamma)^2 (trpo_ref.tabular.penalty_coefficient)",
            "data_sample": f"ratios of every {SAMPLE_EVERY}th hypothesis triple (figure only); "
            "per-family minima and maxima over all triples",
        }
        if not results:
            return Evidence(self.id, tier, control, config)
        runs = []
        for k, i, label, z0 in _optimizer_starts(results, budget, seed):
            r = results[k]
            out = optimize_ratio(
                r["mdp"][i],
                r["theta_old"][i],
                z0,
                control=control,
                max_iter=int(budget.max_iter),
            )
            runs.append({"family_index": k, "pair_index": i, "start": label, **out})
        return self._evidence(
            tier, control, config, families, results, runs, run_audit(budget, seed)
        )

    def _evidence(
        self,
        tier: str,
        control: bool,
        config: dict[str, Any],
        families: list[dict[str, Any]],
        results: list[dict[str, Any]],
        runs: list[dict[str, Any]],
        audit: dict[str, Any],
    ) -> Evidence:
        def finite_max(x: np.ndarray) -> float:
            x = x[np.isfinite(x)]
            return float(x.max()) if x.size else float("nan")

        data: dict[str, Any] = {
            "families": families,
            "family_n": [len(r["slack"]) for r in results],
            "family_min_slack": [float(np.min(r["slack"])) for r in results],
            "family_max_ratio": [finite_max(r["ratio"]) for r in results],
            "optimizer_runs": [
                {k: v for k, v in run.items() if not k.startswith("z_")} for run in runs
            ],
            "audit": audit,
        }
        # the triple of minimum slack and the one of maximum ratio, hypothesis or optimizer
        candidates = []
        k, i = _flat_argbest(results, "slack", np.nanargmin)
        candidates.append(
            (
                "min_slack",
                float(results[k]["slack"][i]),
                k,
                i,
                results[k]["z"][i],
                f"hypothesis family {k}, triple {i}",
            )
        )
        k, i = _flat_argbest(results, "ratio", np.nanargmax)
        candidates.append(
            (
                "max_ratio",
                float(results[k]["ratio"][i]),
                k,
                i,
                results[k]["z"][i],
                f"hypothesis family {k}, triple {i}",
            )
        )
        for n_run, run in enumerate(runs):
            where = (
                f"optimizer run {n_run} ({run['start']}) on family {run['family_index']}, "
                f"triple {run['pair_index']}"
            )
            candidates.append(
                (
                    "min_slack",
                    run["min_slack"],
                    run["family_index"],
                    run["pair_index"],
                    run["z_min_slack"],
                    where,
                )
            )
            candidates.append(
                (
                    "max_ratio",
                    run["max_ratio"],
                    run["family_index"],
                    run["pair_index"],
                    run["z_max_ratio"],
                    where,
                )
            )
        for key, pick in (("min_slack", min), ("max_ratio", max)):
            _, _, k, i, z, where = pick((c for c in candidates if c[0] == key), key=lambda c: c[1])
            data[f"{key}_example"] = example_record(
                results[k]["mdp"][i], results[k]["theta_old"][i], z, control=control, source=where
            )
        n_triples = int(sum(data["family_n"]))
        n_opt = int(sum(run["n_evaluations"] for run in runs))
        min_slack = min(
            min(data["family_min_slack"]), min((run["min_slack"] for run in runs), default=np.inf)
        )
        summary: dict[str, Any] = {
            "n_hypothesis_triples": n_triples,
            "n_optimizer_runs": len(runs),
            "n_optimizer_evaluations": n_opt,
            "n_examples": n_triples + n_opt,
            "min_slack": float(min_slack),
            "max_ratio": float(
                max([*data["family_max_ratio"], *(run["max_ratio"] for run in runs)])
            ),
            "n_hypothesis_violations": int(
                sum(int(np.sum(r["slack"] < self.rule.threshold)) for r in results)
            ),
            "counterexample_found": bool(min_slack < self.rule.threshold),
            "gamma_range": [
                float(min(f["gamma"] for f in families)),
                float(max(f["gamma"] for f in families)),
            ],
        }
        summary.update(_audit_summary(audit))
        ratios = np.concatenate([r["ratio"][::SAMPLE_EVERY] for r in results])
        artifacts = {
            "ratio_sample": ratios[np.isfinite(ratios)],
            "optimizer_max_ratio": np.array([run["max_ratio"] for run in runs]),
        }
        return Evidence(self.id, tier, control, config, data, summary, artifacts)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return per_example(evidence.data.get("family_min_slack", []), prefix="family ")

    def decide(self, evidence: Evidence) -> Verdict:
        n = int(evidence.summary.get("n_examples", 0))
        if n == 0:
            return Verdict.inconclusive(
                "the evidence holds no (MDP, pi_old, pi_new) triples, so there is nothing to judge",
            )
        data = evidence.data
        value = min(
            min(data["family_min_slack"]),
            min((run["min_slack"] for run in data["optimizer_runs"]), default=np.inf),
        )
        s = evidence.summary
        audit = (
            f"Audit at delta = {AUDIT_DELTA}: max KL / delta median {s['audit_median']:.3g}, "
            f"90th pct {s['audit_p90']:.3g}, max {s['audit_max']:.3g} over random MDPs; "
            f"gridworld max {s['audit_gridworld_max']:.3g}."
        )
        searched = (
            f"{s['n_hypothesis_triples']} hypothesis triples and {s['n_optimizer_runs']} "
            f"optimizer runs ({s['n_optimizer_evaluations']} evaluations); largest "
            f"(L - eta) / (C kl_mean) found {s['max_ratio']:.3g} (a violation needs > 1)."
        )
        if value < self.rule.threshold:
            message = (
                f"counterexample found: slack {value:.3g} < {self.rule.threshold:g}; the triple "
                f"is in evidence.data['min_slack_example']. {searched} {audit}"
            )
        else:
            message = (
                f"no counterexample found within the budget: {searched} Absence of a "
                f"counterexample is not a proof. {audit}"
            )
        return self.rule.judge(value, n=n, message=message)

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        plt = pyplot()
        from matplotlib.ticker import NullFormatter

        audit = evidence.data.get("audit")
        if not audit:
            return []
        k = AUDIT_DELTAS.index(AUDIT_DELTA)
        fig, axes = plt.subplots(1, 3, figsize=(12.0, 3.6))
        ax = axes[0]
        for name, values in audit["random"].items():
            x = np.sort(np.asarray(values[k], dtype=float))
            x = x[np.isfinite(x)]
            ax.step(x, np.arange(1, x.size + 1) / x.size, where="post", label=name)
        grid = np.asarray(audit["gridworld"][k], dtype=float)
        for j, g in enumerate(grid[np.isfinite(grid)]):
            ax.axvline(
                g,
                color="k",
                ls="--" if j == 0 else ":",
                lw=1.0,
                label="gridworld (uniform: dashed, random: dotted)" if j == 0 else None,
            )
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(f"max KL / delta at mean KL = delta = {AUDIT_DELTA}")
        ax.set_ylabel("ECDF over MDPs")
        ax.legend(fontsize=6)
        ax = axes[1]
        pooled = np.concatenate(
            [np.asarray(v, dtype=float) for v in audit["random"].values()], axis=1
        )
        for q, style in ((50, "-"), (90, "--"), (100, ":")):
            ax.plot(
                AUDIT_DELTAS,
                np.nanpercentile(pooled, q, axis=1),
                "b" + style,
                label=f"random MDPs, {'max' if q == 100 else f'{q}th pct'}",
            )
        ax.plot(
            AUDIT_DELTAS,
            np.nanmax(np.asarray(audit["gridworld"], dtype=float), axis=1),
            "k:",
            marker="x",
            label="gridworld, max",
        )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("delta (mean KL of the step)")
        ax.set_ylabel("max KL / delta")
        ax.legend(fontsize=6)
        ax = axes[2]
        ratios = np.asarray(evidence.artifacts.get("ratio_sample", []), dtype=float)
        ratios = ratios[ratios > 0]
        if ratios.size:
            ax.hist(np.log10(ratios), bins=50, color="tab:gray", label="hypothesis triples")
        for j, r in enumerate(evidence.artifacts.get("optimizer_max_ratio", [])):
            if r > 0:
                ax.axvline(
                    np.log10(r),
                    color="tab:orange",
                    lw=0.8,
                    label="optimizer runs (best)" if j == 0 else None,
                )
        ax.axvline(0.0, color="r", lw=1.5, label="violation above 0")
        ax.set_xlabel("log10 (L - eta) / (C kl_mean)")
        ax.legend(fontsize=6)
        kind = "negative control (C one power short)" if evidence.control else "real"
        fig.suptitle(f"Mean vs max KL ({kind}, {evidence.tier})", fontsize=9)
        fig.tight_layout()
        return [save_figure(fig, out_dir, "mean_kl_bound", control=evidence.control, dpi=100)]


def _audit_summary(audit: dict[str, Any]) -> dict[str, Any]:
    """Median, 90th percentile and max of max KL / delta per delta, random MDPs pooled."""
    pooled = np.concatenate([np.asarray(v, dtype=float) for v in audit["random"].values()], axis=1)
    grid = np.asarray(audit["gridworld"], dtype=float)
    k = AUDIT_DELTAS.index(AUDIT_DELTA)
    return {
        "audit_median": float(np.nanmedian(pooled[k])),
        "audit_p90": float(np.nanpercentile(pooled[k], 90)),
        "audit_max": float(np.nanmax(pooled[k])),
        "audit_gridworld_uniform": float(grid[k, 0]),
        "audit_gridworld_max": float(np.nanmax(grid[k])),
        "audit_sweep": {
            str(d): {
                "median": float(np.nanmedian(pooled[j])),
                "p90": float(np.nanpercentile(pooled[j], 90)),
                "max": float(np.nanmax(pooled[j])),
                "gridworld_max": float(np.nanmax(grid[j])),
            }
            for j, d in enumerate(AUDIT_DELTAS)
        },
    }
