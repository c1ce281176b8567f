"""Verdicts pinned on hand-built evidence: each theory and step claim's decide() on small
evidence whose verdict is known (SUPPORTED, REFUTED, INCONCLUSIVE, and the rule's edges), so a
change to a rule or a statistic breaks a test here. The section-8 claims are pinned on job
records in tests/test_claim_section8_verdicts.py; the impl.* and climb.* claims in their own
files."""

from __future__ import annotations

import numpy as np
import pytest

from claims.framework.core import Evidence, Status
from claims.framework.registry import get

S, R, U = Status.SUPPORTED, Status.REFUTED, Status.INCONCLUSIVE  # U: undecided


def ev(claim_id: str, data: dict, summary: dict | None = None, config: dict | None = None):
    return Evidence(claim_id, "quick", False, config or {}, data, summary or {})


# --- builders: the fewest fields each decide() reads -------------------------------------------

def surrogate_gradient(errors):
    return ev("theory.surrogate_gradient",
              {"grad_rel_error": errors, "value_rel_error": [0.0] * len(errors)},
              {"max_policy_gradient_vs_fd_eta": 0.0})


def gap_order(slopes, lows, highs):
    n = len(slopes)
    return ev("theory.surrogate_gap_order",
              {"slope": slopes, "slope_ci_low": lows, "slope_ci_high": highs,
               "gamma": [0.9] * n, "n_states": [3] * n, "n_actions": [2] * n,
               "small_eps_slope": [2.0] * n, "mdp_seed": [0] * n, "index": list(range(n)),
               "gap": [[1e-4, 1e-6]] * n})  # every column the claim records


def theorem1(min_tv, min_kl, n_pairs, min_pairs=100):
    data = {"family_min_slack_tv": [min_tv], "family_min_slack_kl": [min_kl],
            "family_n_slack_tv": [n_pairs], "family_n_slack_kl": [n_pairs]}
    return ev("theory.theorem1", data, {}, {"min_pairs": min_pairs})


def mean_kl_bound(family, optimizer=()):
    summary = {"n_examples": len(family), "audit_median": 1.0, "audit_p90": 2.0,
               "audit_max": 3.0, "audit_gridworld_max": 2.0, "n_hypothesis_triples": 1,
               "n_optimizer_runs": len(optimizer), "n_optimizer_evaluations": 1,
               "max_ratio": 0.5}
    return ev("theory.mean_kl_bound", {"family_min_slack": family,
                                       "optimizer_runs": [{"min_slack": s} for s in optimizer]},
              summary)


def tr_direction(cosines):
    return ev("theory.tr_direction", {"cosine": cosines},
              {"max_angle_degrees": 1.0, "gridworld_cosine": 1.0, "n_solver_failures": 0,
               "kl_over_delta_range": [1.0, 1.0]})


def beta_kl(ratios_at_smallest_delta):
    deltas = [1e-5, 1e-3]
    ratios = [[r, 1.5] for r in ratios_at_smallest_delta]  # only the smallest delta is judged
    return ev("theory.beta_kl", {"ratio": ratios},
              {"max_abs_error_by_delta": {str(d): 0.0 for d in deltas},
               "median_loglog_slope": 0.5}, {"deltas": deltas})


def penalty_crawls(ratios):
    summary = {"n_mdps": len(ratios), "median_rounds_penalty": 1, "median_rounds_trust_region": 1,
               "gridworld_rounds": {"penalty": 1, "trust_region": 1}, "gridworld_ratio": 1.0,
               "n_censored_penalty": 0, "n_censored_trust_region": 0}
    return ev("theory.penalty_crawls", {"ratio": ratios}, summary,
              {"seed": 0, "max_rounds": 100})


def kl_constraint(ratios, accepted=None):
    accepted = [True] * len(ratios) if accepted is None else accepted
    return ev("step.kl_constraint", {"kl_over_delta": ratios, "accepted": accepted},
              {"per_task": {}, "n_steps": len(ratios), "n_over": 0})


def line_search(correct):
    return ev("step.line_search_restores", {"correct": correct},
              {"failures_by_fault_and_path": {}, "n_not_rejected": 0, "n_not_restored": 0,
               "n_no_reason": 0})


def kl_quadratic(medians):
    per_task = {f"task{i}": {"median_abs_log2": m, "median_ratio": 1.0, "min_ratio": 1.0,
                             "max_ratio": 1.0, "n_over_delta": 0, "n": 10,
                             "median_damping_share": 0.0} for i, m in enumerate(medians)}
    return ev("step.kl_quadratic", {}, {"per_task": per_task})


def fvp_exact(errors):
    return ev("step.fvp_exact", {"cases": [{"fvp_rel_error": errors, "cg_rel_error": [0.0]}]},
              {"n_params": 10, "max_fvp_rel_error": 0.0, "max_cg_rel_error": 0.0,
               "max_cond": 1.0})


def fisher_unbiased(u_rows):
    tasks = [{"env_id": f"task{i}", "u": u, "d": u, "rel_error": 0.0, "ci": [0.0, 0.0],
              "mc_floor": 0.0, "analytic_rel_error": 0.0} for i, u in enumerate(u_rows)]
    return ev("step.fisher_unbiased", {"tasks": tasks})


def fisher_variance(rows):
    tasks = [{"env_id": f"task{i}", "ratio": r, "ci": [lo, hi], "sq_dev_empirical": [0.0] * 5}
             for i, (r, lo, hi) in enumerate(rows)]
    return ev("step.fisher_variance", {"tasks": tasks})


def vine_variance(claim_id, single_scale, vine_scale, reps=40):
    rng = np.random.default_rng(0)
    g = rng.normal(size=(reps, 6))
    h = rng.normal(size=(reps, 6))
    return ev(claim_id, {"g_single": (single_scale * g).tolist(),
                         "g_vine": (vine_scale * h).tolist(), "steps_vine": [1], "steps_single":
                         [1], "rows_vine": [1], "rows_single": [1]}, {}, {"seed": 0})


def cost(ratios, ci):
    summary = {"ratio": float(np.median(ratios)), "ci": ci, "median_gradient_s": 0.001,
               "ratio_fvp_subsample_0.1": 1.0, "ratio_fvp_subsample_1": 3.0,
               "ratio_line_search": 1.0, "median_backtracks": 0}
    return ev("step.appendix_c_cost", {"ratio": ratios}, summary,
              {"fvp_subsample": 0.1, "batch_size": 100,
               "machine": {"cpu_count": 2, "torch_threads": 1}})


CASES = [
    # exact claims: no interval, the rule's edge is inclusive as declared
    ("gradient match", surrogate_gradient([1e-9, 1e-7]), S),
    ("gradient match at the threshold", surrogate_gradient([1e-6]), S),
    ("gradient match just past it", surrogate_gradient([1.01e-6]), R),
    ("gradient match, no MDPs", surrogate_gradient([]), U),
    ("gap slope 2", gap_order([2.0, 2.1], [1.9, 2.0], [2.1, 2.2]), S),
    ("gap slope, interval on the edge", gap_order([1.9], [1.8], [2.0]), S),
    ("gap slope, interval straddles", gap_order([1.9, 2.5], [1.7, 2.4], [2.1, 2.6]), U),
    ("gap slope 1 (first order)", gap_order([1.0, 2.0], [0.9, 1.9], [1.1, 2.1]), R),
    ("gap slope undefined", gap_order([float("nan"), 2.0], [0.0, 1.9], [0.0, 2.1]), R),
    ("theorem 1 holds", theorem1(1e-3, -1e-12, 1000), S),
    ("theorem 1 at the tolerance", theorem1(-1e-10, 0.0, 1000), S),
    ("theorem 1 violated (kl)", theorem1(0.1, -2e-10, 1000), R),
    ("theorem 1, too few pairs", theorem1(0.0, 0.0, 50), U),
    ("theorem 1, no pairs", theorem1(0.0, 0.0, 0), U),
    ("mean KL bound holds", mean_kl_bound([0.1, 0.0], [0.2]), S),
    ("mean KL bound: optimizer counterexample", mean_kl_bound([0.1], [-1e-3]), R),
    ("mean KL bound: family counterexample", mean_kl_bound([-1e-9]), R),
    ("mean KL bound, no triples", mean_kl_bound([]), U),
    ("TR direction cos 0.999", tr_direction([0.999, 1.0]), S),
    ("TR direction cos 0.99 (edge)", tr_direction([0.99]), S),
    ("TR direction cos 0.9", tr_direction([1.0, 0.9]), R),
    ("TR direction, no MDPs", tr_direction([]), U),
    ("beta lands at delta", beta_kl([1.001, 0.999]), S),
    ("beta off by 2 (the lost 2)", beta_kl([0.5]), R),
    ("beta, no MDPs", ev("theory.beta_kl", {"ratio": []}, {}, {"deltas": [1e-5]}), U),
    ("penalty crawls 20x", penalty_crawls([20.0] * 6), S),
    ("penalty 1x", penalty_crawls([1.0, 1.2, 0.8, 1.0]), R),
    ("penalty, interval straddles 10", penalty_crawls([2, 5, 8, 11, 14, 17, 20]), U),
    ("penalty, one MDP", penalty_crawls([20.0]), U),
    # step claims
    ("accepted KL within delta", kl_constraint([0.5, 0.99]), S),
    ("accepted KL at delta (edge)", kl_constraint([1.000000001]), S),
    ("accepted KL over delta", kl_constraint([0.5, 1.01]), R),
    ("a rejected step over delta does not count", kl_constraint([0.5, 3.0], [True, False]), S),
    ("no accepted step", kl_constraint([3.0], [False]), U),
    ("line search always restores", line_search([True] * 8), S),
    ("line search misses one case", line_search([True] * 7 + [False]), R),
    ("line search, no cases", line_search([]), U),
    ("quadratic KL within a factor 2", kl_quadratic([0.3, 0.5]), S),
    ("quadratic KL at the factor 2 (edge)", kl_quadratic([1.0]), S),
    ("quadratic KL off on one task", kl_quadratic([0.3, 1.2]), R),
    ("quadratic KL, no steps", kl_quadratic([]), U),
    ("FVP exact", fvp_exact([1e-12, 1e-9]), S),
    ("FVP off", fvp_exact([1e-12, 1e-3]), R),
    ("FVP, no cases", ev("step.fvp_exact", {"cases": []}), U),
    ("Fisher unbiased: 5% error", fisher_unbiased([[0.0025] * 10, [0.0001] * 10]), S),
    ("Fisher biased: 20% error", fisher_unbiased([[0.04] * 10]), R),
    ("Fisher, interval straddles 10%", fisher_unbiased([[0.0, 0.02] * 10]), U),
    ("Fisher, no tasks", ev("step.fisher_unbiased", {"tasks": []}), U),
    ("analytic Fisher varies less", fisher_variance([(5.0, 4.0, 6.0), (3.0, 2.0, 4.0)]), S),
    ("analytic Fisher varies more", fisher_variance([(0.5, 0.4, 0.6)]), R),
    ("Fisher variance straddles 1", fisher_variance([(1.1, 0.9, 1.3)]), U),
    *[case for cid in ("step.vine_variance", "step.vine_variance_per_q") for case in (
        (f"{cid} less", vine_variance(cid, 3.0, 1.0), S),
        (f"{cid} more", vine_variance(cid, 1.0, 3.0), R),
        (f"{cid} alike", vine_variance(cid, 1.0, 1.0, reps=8), U),
        (f"{cid}, one repetition", vine_variance(cid, 3.0, 1.0, reps=1), U))],
    ("step costs ~1 gradient", cost([1.2, 1.3, 1.4], [1.1, 1.5]), S),
    ("step costs 20 gradients", cost([19.0, 20.0, 21.0], [18.0, 21.0]), R),
    ("step cost straddles 2", cost([1.9, 2.0, 2.1], [1.8, 2.3]), U),
    ("no timings", ev("step.appendix_c_cost", {"ratio": []}), U),
]


@pytest.mark.parametrize(("name", "evidence", "status"), CASES, ids=[c[0] for c in CASES])
def test_decide_on_hand_built_evidence(name, evidence, status):
    verdict = get(evidence.claim_id).decide(evidence)
    assert verdict.status is status, verdict
    if verdict.ci is not None and verdict.value is not None and np.isfinite(verdict.value):
        assert verdict.ci[0] <= verdict.value <= verdict.ci[1], verdict


def test_every_theory_and_step_claim_has_pinned_verdicts():
    from claims.framework.registry import all_claims

    pinned = {case[1].claim_id for case in CASES} | PINNED_ELSEWHERE
    ids = {c.id for c in all_claims() if c.id.startswith(("theory.", "step."))}
    assert ids <= pinned, sorted(ids - pinned)
    for claim_id in ids - PINNED_ELSEWHERE:  # each has a SUPPORTED, a REFUTED, an INCONCLUSIVE
        statuses = {case[2] for case in CASES if case[1].claim_id == claim_id}
        assert statuses >= {S, R, U} or claim_id in EXACT_WITHOUT_STRADDLE, (claim_id, statuses)


# exact claims have no interval to straddle: INCONCLUSIVE only on empty evidence (covered)
EXACT_WITHOUT_STRADDLE: set[str] = set()
PINNED_ELSEWHERE = {"theory.algorithm1_monotonic", "theory.performance_difference",
                    "theory.cpi_mixture_bound", "theory.is_estimator_unbiased",
                    "step.subsampled_direction"}
