"""Three statements of TRPO sections 2-5 checked exactly (or against exact values) on random finite
MDPs: eq. (1), the identity the rest is built on; eq. (6), the conservative-policy-iteration bound
for mixture policies; eq. (14), the importance-sampled estimator of the surrogate from sampled
trajectories, against the exact L.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from claims.framework import stats
from claims.framework.core import Budget, Claim, Comparison, DecisionRule, Evidence, Kind, Verdict
from claims.framework.registry import register
from trpo_ref.tabular import MDP, evaluate, random_mdp, random_policy, softmax, surrogate, tv_max

SIZES = ((3, 2), (6, 3), (10, 4))
# eq. (14)'s interval is judged where q = pi_old has temperature >= 1: a near-deterministic q
# (T = 0.1) gives ratios up to ~1e4 whose rare draws a few thousand trajectories miss, so the
# normal interval (not the estimator's mean) fails there; that coverage is reported apart.
MIN_TEMPERATURE = 1.0
GAMMAS = (0.5, 0.9, 0.99)
TEMPERATURES = (0.1, 1.0, 3.0)


def family(seed: int, k: int, n_mdps: int) -> tuple[MDP, np.ndarray, np.random.Generator]:
    """Group ``k`` of a run: a batch of random MDPs (size, gamma, sparsity and pi's temperature
    cycle with k), a random pi_old per MDP, and the group's generator for what follows."""
    rng = np.random.default_rng([seed, 15, k])
    n_states, n_actions = SIZES[k % len(SIZES)]
    gamma = GAMMAS[(k // len(SIZES)) % len(GAMMAS)]
    mdp = random_mdp(rng, n_states, n_actions, gamma, n_mdps=n_mdps, sparsity=(k % 4) / 4)
    pi = random_policy(rng, n_states, n_actions, temperature=TEMPERATURES[k % 3],
                       batch_shape=(n_mdps,))
    return mdp, pi, rng


def perturbed(pi: np.ndarray, rng: np.random.Generator, low: float = 1e-2,
              high: float = 3.0) -> np.ndarray:
    """softmax(log pi + sigma * noise), sigma log-uniform on [low, high] per MDP: a general
    (non-mixture) new policy near or far from pi."""
    sigma = np.exp(rng.uniform(np.log(low), np.log(high), size=(pi.shape[0], 1, 1)))
    with np.errstate(divide="ignore"):
        return softmax(np.log(pi) + sigma * rng.standard_normal(pi.shape))


def return_scale(mdp: MDP) -> np.ndarray:
    """max |r| / (1 - gamma): the largest |eta| any policy can have; (B,)."""
    return np.abs(mdp.r).max(axis=(-2, -1)) / (1.0 - mdp.gamma)


@dataclass(frozen=True)
class GroupsBudget(Budget):
    """Groups of random MDPs, each group one batched exact evaluation."""

    n_groups: int  # groups (size, gamma, sparsity and temperature cycle over them)
    n_mdps: int  # MDPs per group


@dataclass(frozen=True)
class EstimatorBudget(GroupsBudget):
    """theory.is_estimator_unbiased: the groups and the sampled trajectories per MDP."""

    n_trajectories: int  # sampled trajectories per MDP for the estimator


def _budgets(quick: int, standard: int, full: int, n_mdps: int) -> dict[str, GroupsBudget]:
    return {tier: GroupsBudget(n_groups=n, n_mdps=n_mdps)
            for tier, n in (("quick", quick), ("standard", standard), ("full", full))}


# --------------------------------------------------------------------------------------------
# theory.performance_difference: eq. (1)
# --------------------------------------------------------------------------------------------

def advantage_sum(mdp: MDP, pi: np.ndarray, pi_new: np.ndarray, *, control: bool) -> np.ndarray:
    """E_{tau ~ pi_new}[sum_t gamma^t A_pi(s_t, a_t)] = sum_s rho_{pi_new}(s) sum_a pi_new A_pi,
    exactly; (B,). ``control``: the visitation of pi in place of pi_new's (BUG)."""
    adv = evaluate(mdp, pi).adv
    rho = evaluate(mdp, pi if control else pi_new).rho
    return (rho * (pi_new * adv).sum(axis=-1)).sum(axis=-1)


@register
class PerformanceDifference(Claim[GroupsBudget]):
    id = "theory.performance_difference"
    title = "eq. (1): eta(pi~) = eta(pi) + E_{pi~}[sum_t gamma^t A_pi(s_t, a_t)], exactly"
    statement = ("The expected return of another policy pi~ in terms of the advantage over pi, "
                 "accumulated over timesteps of pi~'s own trajectories (Kakade & Langford 2002; "
                 "eq. 1, and eq. 2 in state-visitation form): the identity sections 2-3 build on.")
    source = "TRPO section 2, eq. (1)-(2)"
    kind = Kind.EXACT
    protocol = ("`n_groups` groups of `n_mdps` random MDPs (sizes 3x2, 6x3, 10x4; gamma 0.5, 0.9, "
                "0.99; transition sparsity 0-0.75; pi_old softmax of N(0, 1) / T, T in {0.1, 1, "
                "3}); pi~ = softmax(log pi + sigma noise), sigma log-uniform on [0.01, 3]. Exact "
                "float64: eta(pi~) and eta(pi) + sum_s rho_pi~(s) sum_a pi~(a|s) A_pi(s, a) "
                "(trpo_ref.tabular.evaluate). Error in units of max|r| / (1 - gamma).")
    negative_control = ("The visitation of the old policy pi in place of pi~'s (rho_pi for "
                        "rho_pi~): the surrogate L_pi(pi~) of eq. (3), the approximation, not "
                        "the identity; a plausible slip, since eq. (2) and eq. (3) differ only "
                        "in that subscript.")
    rule = DecisionRule(
        statistic="max over MDPs of |eta(pi~) - eta(pi) - E_pi~[sum gamma^t A_pi]| / "
                  "(max|r| / (1 - gamma))",
        comparator="<=", threshold=1e-10,
        description="SUPPORTED iff the identity holds to 1e-10 of the return scale on every MDP "
                    "(float64 linear solves err ~1e-14 there).")
    comparison = Comparison(statistic="max relative error of eq. (1) per group of MDPs",
                            better="lower", margin=1e-10)
    budgets: ClassVar[dict[str, GroupsBudget | None]] = _budgets(18, 90, 360, 50)

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        errors, gaps = [], []
        for k in range(int(budget.n_groups)):
            mdp, pi, rng = family(seed, k, int(budget.n_mdps))
            new = perturbed(pi, rng)
            eta_new, eta_old = evaluate(mdp, new).eta, evaluate(mdp, pi).eta
            err = np.abs(eta_new - eta_old - advantage_sum(mdp, pi, new, control=control))
            errors.append(float((err / return_scale(mdp)).max()))
            gaps.append(float((np.abs(eta_new - eta_old) / return_scale(mdp)).max()))
        summary = {"max_relative_error": max(errors),
                   "median_group_max_relative_error": float(np.median(errors)),
                   "max_relative_change_in_eta": max(gaps),
                   "n_mdps": int(budget.n_groups) * int(budget.n_mdps)}
        return Evidence(self.id, tier, control, {"seed": seed, **budget.to_json()},
                        {"group_max_relative_error": errors}, summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return {f"group {k}": v for k, v in
                enumerate(evidence.data.get("group_max_relative_error", []))}

    def decide(self, evidence: Evidence) -> Verdict:
        errors = evidence.data.get("group_max_relative_error", [])
        if not errors:
            return Verdict.inconclusive("the evidence holds no MDPs, so there is nothing to judge")
        n = int(evidence.summary.get("n_mdps", len(errors)))
        change = evidence.summary.get("max_relative_change_in_eta", 0.0)
        return self.rule.judge(float(max(errors)), n=n,
                               message=f"{n} MDPs; the changes in eta themselves reach "
                                       f"{change:.3g} of the return scale.")


# --------------------------------------------------------------------------------------------
# theory.cpi_mixture_bound: eq. (6)
# --------------------------------------------------------------------------------------------

def cpi_slack(mdp: MDP, pi: np.ndarray, pi_new: np.ndarray, alpha: np.ndarray,
              eps_policy: np.ndarray) -> np.ndarray:
    """eta(pi_new) - [L_pi(pi_new) - 2 eps gamma / (1 - gamma)^2 alpha^2], eq. (6), with
    eps = max_s |E_{a ~ eps_policy}[A_pi(s, a)]|; (B,)."""
    ev = evaluate(mdp, pi)
    eps = np.abs((eps_policy * ev.adv).sum(axis=-1)).max(axis=-1)
    gamma = np.asarray(mdp.gamma)
    rhs = surrogate(mdp, pi, pi_new, ev_old=ev) - 2.0 * eps * gamma / (1 - gamma) ** 2 * alpha**2
    return evaluate(mdp, pi_new).eta - rhs


@register
class CPIMixtureBound(Claim[GroupsBudget]):
    id = "theory.cpi_mixture_bound"
    title = ("eq. (6): the mixture pi_new = (1 - a) pi_old + a pi' has "
             "eta >= L - 2 eps gamma a^2 / (1 - gamma)^2")
    statement = ("Kakade & Langford's conservative policy iteration bound: for the mixture "
                 "pi_new = (1 - alpha) pi_old + alpha pi', eta(pi_new) >= L_{pi_old}(pi_new) - "
                 "2 eps gamma / (1 - gamma)^2 alpha^2 with eps = max_s |E_{a ~ pi'}[A_pi(s, a)]| "
                 "(eq. 6); the bound section 3 extends to general policies.")
    source = "TRPO section 2, eq. (5)-(6)"
    kind = Kind.EXACT
    protocol = ("The groups of theory.performance_difference (pi_old per MDP); pi' a second "
                "random policy (another temperature), alpha log-uniform on [1e-3, 1] per MDP; "
                "pi_new the mixture. Exact slack eta(pi_new) - rhs of eq. (6), in units of "
                "max|r| / (1 - gamma).")
    negative_control = ("Eq. (6) applied to a general, non-mixture update (the step section 3 "
                        "warns needs a different bound): pi_new = softmax(log pi_old + sigma "
                        "noise), alpha = max_s D_TV(pi_old, pi_new), eps from pi_new's own "
                        "advantages. The mixture structure is the mechanism of eq. (6); without "
                        "it the bound must fail somewhere.")
    rule = DecisionRule(
        statistic="min over MDPs of eq. (6)'s slack / (max|r| / (1 - gamma))",
        comparator=">=", threshold=-1e-10,
        description="SUPPORTED iff no MDP violates eq. (6) by more than 1e-10 of the return "
                    "scale (exact float64 evaluation).")
    comparison = Comparison(statistic="min relative slack of eq. (6) per group of MDPs",
                            better="either", margin=1e-6)
    budgets: ClassVar[dict[str, GroupsBudget | None]] = _budgets(18, 90, 360, 50)

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        mins: list[float] = []
        for k in range(int(budget.n_groups)):
            mdp, pi, rng = family(seed, k, int(budget.n_mdps))
            other = random_policy(rng, mdp.n_states, mdp.n_actions,
                                  temperature=TEMPERATURES[(k + 1) % 3], batch_shape=(pi.shape[0],))
            if control:
                new = perturbed(pi, rng)
                alpha, eps_policy = tv_max(pi, new), new
            else:
                alpha = np.exp(rng.uniform(np.log(1e-3), 0.0, size=pi.shape[0]))
                new = (1 - alpha)[:, None, None] * pi + alpha[:, None, None] * other
                eps_policy = other
            slack = cpi_slack(mdp, pi, new, alpha, eps_policy) / return_scale(mdp)
            mins.append(float(slack.min()))
        summary = {"min_relative_slack": min(mins),
                   "n_groups_violating": int(np.sum(np.asarray(mins) < -1e-10)),
                   "median_group_min_relative_slack": float(np.median(mins)),
                   "n_mdps": int(budget.n_groups) * int(budget.n_mdps)}
        return Evidence(self.id, tier, control, {"seed": seed, **budget.to_json()},
                        {"group_min_relative_slack": mins}, summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        return {f"group {k}": v for k, v in
                enumerate(evidence.data.get("group_min_relative_slack", []))}

    def decide(self, evidence: Evidence) -> Verdict:
        mins = evidence.data.get("group_min_relative_slack", [])
        if not mins:
            return Verdict.inconclusive("the evidence holds no MDPs, so there is nothing to judge")
        s = evidence.summary
        return self.rule.judge(float(min(mins)), n=int(s.get("n_mdps", len(mins))),
                               message=f"{s.get('n_groups_violating', 0)} of {len(mins)} groups "
                                       "hold a violating MDP.")


# --------------------------------------------------------------------------------------------
# theory.is_estimator_unbiased: eq. (14) from sampled trajectories
# --------------------------------------------------------------------------------------------

def sample_is_estimates(mdp: MDP, pi: np.ndarray, pi_new: np.ndarray, adv: np.ndarray,
                        n_trajectories: int, rng: np.random.Generator, *,
                        control: bool) -> np.ndarray:
    """Per trajectory of pi (sampling distribution q = pi, single path), the importance-sampled
    estimate sum_t gamma^t [pi_new(a_t|s_t) / q(a_t|s_t)] A_pi(s_t, a_t) of
    sum_s rho_pi(s) sum_a pi_new(a|s) A_pi(s, a) = L_pi(pi_new) - eta(pi) (eq. 14 with exact
    advantages). One MDP (no batch); truncated where gamma^t < 1e-12. ``control``: the ratio
    dropped (weight 1, BUG). Returns (n_trajectories,)."""
    gamma = float(mdp.gamma)
    horizon = int(np.ceil(np.log(1e-12) / np.log(gamma))) if gamma > 0 else 1
    n_states = mdp.n_states
    s = rng.choice(n_states, size=n_trajectories, p=mdp.mu0)
    total = np.zeros(n_trajectories)
    discount = 1.0
    cum_pi = np.cumsum(pi, axis=-1)
    cum_p = np.cumsum(mdp.P, axis=-1)
    for _ in range(horizon):
        a = (rng.random(n_trajectories)[:, None] > cum_pi[s]).sum(axis=-1)
        a = np.minimum(a, mdp.n_actions - 1)
        weight = np.ones(n_trajectories) if control else pi_new[s, a] / pi[s, a]
        total += discount * weight * adv[s, a]
        s = np.minimum((rng.random(n_trajectories)[:, None] > cum_p[s, a]).sum(axis=-1),
                       n_states - 1)
        discount *= gamma
    return total


@register
class ISEstimatorUnbiased(Claim[EstimatorBudget]):
    id = "theory.is_estimator_unbiased"
    title = "eq. (14): the importance-sampled surrogate from sampled trajectories is unbiased"
    statement = ("Replacing the sum over actions by an importance sampling estimator with "
                 "sampling distribution q = pi_old (single path, section 5.1) and the visitation "
                 "by trajectories estimates L_{pi_old}(pi_new) - eta(pi_old) without bias "
                 "(eq. 13-14); its variance is reported.")
    source = "TRPO section 5, eq. (13)-(14), single path (5.1)"
    kind = Kind.EMPIRICAL
    protocol = ("Per group of theory.performance_difference, the first `n_mdps` MDPs (gamma "
                "0.5 and 0.9 groups only; 0.99 needs ~2,700 steps per trajectory), pi_new a "
                "perturbation of pi_old (sigma log-uniform on [0.01, 1]). `n_trajectories` "
                "trajectories of pi_old per MDP, discount-weighted sum of "
                "[pi_new / pi_old] A_pi_old (exact advantages). Per MDP: z = (mean - exact) / "
                "(sd / sqrt(n)); the share of MDPs whose 95% interval mean +- 1.96 sd / sqrt(n) "
                "holds the exact value (nominal 0.95), over MDPs whose pi_old has temperature "
                ">= 1 (with T = 0.1 the ratios' rare large draws break the normal interval; "
                "that coverage is reported, not judged).")
    negative_control = ("The importance ratio dropped (weight 1: the on-policy average of "
                        "A_pi_old, as when the old log-probabilities are used for both "
                        "numerator and denominator): it estimates L_pi_old(pi_old) - eta = 0, "
                        "not L_pi_old(pi_new) - eta, so the intervals miss the exact value.")
    rule = DecisionRule(
        statistic="share of MDPs whose 95% interval of the estimate holds the exact L - eta",
        comparator=">=", threshold=0.9, alpha=0.05,
        description="SUPPORTED iff the Wilson interval of the coverage lies at or above 0.9 "
                    "(nominal 0.95; a biased estimator's coverage falls towards 0), REFUTED iff "
                    "it lies wholly below.")
    comparison = Comparison(statistic="z = (mean estimate - exact) / standard error, per MDP",
                            better="either", margin=0.5)
    budgets: ClassVar[dict[str, EstimatorBudget | None]] = {
        "quick": EstimatorBudget(n_groups=12, n_mdps=5, n_trajectories=2000),
        "standard": EstimatorBudget(n_groups=36, n_mdps=10, n_trajectories=4000),
        "full": EstimatorBudget(n_groups=72, n_mdps=20, n_trajectories=10000),
    }

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.tier_budget(tier)
        z, exact, variance, labels, temperature = [], [], [], [], []
        k = -1
        groups = 0
        while groups < int(budget.n_groups):
            k += 1
            if GAMMAS[(k // len(SIZES)) % len(GAMMAS)] > 0.95:
                continue
            groups += 1
            mdp, pi, rng = family(seed, k, int(budget.n_mdps))
            new = perturbed(pi, rng, 1e-2, 1.0)
            ev = evaluate(mdp, pi)
            target = (ev.rho * (new * ev.adv).sum(axis=-1)).sum(axis=-1)
            for b in range(pi.shape[0]):
                one = MDP(mdp.P[b], mdp.r[b], float(np.asarray(mdp.gamma).ravel()[0]), mdp.mu0[b])
                x = sample_is_estimates(one, pi[b], new[b], ev.adv[b],
                                        int(budget.n_trajectories), rng, control=control)
                se = x.std(ddof=1) / np.sqrt(x.size)
                z.append(float((x.mean() - target[b]) / se) if se > 0 else 0.0)
                exact.append(float(target[b]))
                variance.append(float(x.var(ddof=1)))
                labels.append(f"group {k} #{b}")
                temperature.append(TEMPERATURES[k % 3])
        z_arr = np.asarray(z)
        peaked = np.asarray(temperature) < MIN_TEMPERATURE
        summary = {"coverage": float(np.mean(np.abs(z_arr[~peaked]) <= 1.96)),
                   "coverage_near_deterministic_q (not judged)": float(
                       np.mean(np.abs(z_arr[peaked]) <= 1.96)) if peaked.any() else None,
                   "mean_z": float(z_arr.mean()), "sd_z": float(z_arr.std(ddof=1)),
                   "median_per_trajectory_variance": float(np.median(variance)),
                   "median_abs_exact": float(np.median(np.abs(exact))), "n_mdps": len(z)}
        return Evidence(self.id, tier, control, {"seed": seed, **budget.to_json()},
                        {"mdp": labels, "z": z, "exact": exact, "variance": variance,
                         "temperature": temperature}, summary)

    def samples(self, evidence: Evidence) -> dict[str, float]:
        d = evidence.data
        return dict(zip(d.get("mdp", []), d.get("z", []), strict=True))

    def decide(self, evidence: Evidence) -> Verdict:
        z = evidence.values("z")
        temperature = np.asarray(evidence.data.get("temperature", [1.0] * z.size), dtype=float)
        z = z[temperature >= MIN_TEMPERATURE]
        if z.size == 0:
            return Verdict.inconclusive("the evidence holds no MDPs, so there is nothing to judge")
        covered = int(np.sum(np.abs(z) <= 1.96))
        ci = stats.wilson_interval(covered, int(z.size), alpha=self.rule.alpha or 0.05)
        s = evidence.summary
        return self.rule.judge(covered / z.size, n=int(z.size), ci=ci,
                               message=f"{covered}/{z.size} intervals hold the exact value; z: "
                                       f"mean {np.mean(z):.3g}, sd {np.std(z, ddof=1):.3g} "
                                       f"(unbiased: ~0 and ~1); median per-trajectory variance "
                                       f"{s.get('median_per_trajectory_variance', 0):.3g}.")
