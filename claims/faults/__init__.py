"""Every deliberately broken variant the suite uses, declared once: the fault registry.

A fault is a plausible bug that breaks one mechanism; the suite runs it as a claim's negative
control (the check must come out REFUTED on it), as a seeded-bug fork of ``trpo_ref`` (the fork
check), as a broken trainer (the empirical claims' control runs) or as a bad step the update
must reject (``step.line_search_restores``). :data:`FAULTS` holds each one as a :class:`Fault`:
its name, its mechanism in one line, the claims and checks that use it, and how it is applied.

Two ways of applying a fault (:attr:`Fault.kind`):

- ``"update"``: a fault inside ``trpo_ref``'s update. It replaces pieces of
  :class:`trpo_ref.deep.step.UpdateStrategies` (the update's explicit hook points, whose defaults
  are the paper's), for the body of :func:`applied` only, through the context variable trpo_ref
  reads at call time. No module attribute is patched, so the fault reaches every update under
  the body (adapters, the training loop, training jobs in worker processes, which apply it
  themselves) whatever names trpo_ref's modules import, and trpo_ref's source carries no broken
  code: the broken pieces are below.
- ``"argument"``: a broken function that a claim passes in place of the real one when it runs
  its control (tabular and step-claim controls: numpy or torch functions of the claim's own
  experiment). :attr:`Fault.target` names it ("module:function"); it stays next to the
  experiment that takes it as an argument. (An "update" fault's broken piece may be passed the
  same way: the step claims' Fisher controls pass :func:`fvp_old_attached`.)

Adding a fault: see docs/faults.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from trpo_ref.deep import step
from trpo_ref.deep.policies import DiagGaussianMLP, DistParams, Policy
from trpo_ref.deep.step import LineSearchResult, PolicyBatch

MINIBATCHES = 4  # per_minibatch_trust_region: steps per batch
BIG_STEP = 10.0  # unchecked_big_step: the step scale's factor
BETA_INFLATION = 100.0  # inflated_beta_x100: the step scale's factor
UNIT_BOX = 1.0  # empirical_fim_uncentred_clipped: the action bound its clip assumes

Pieces = dict[str, Callable[..., Any]]


@dataclass(frozen=True)
class Fault:
    """One deliberately broken variant."""

    name: str  # unique; the name claims, the fork check and training jobs use
    doc: str  # the mechanism, one line
    used_by: tuple[str, ...]  # claim ids, "fork-check", "training" (empirical claims' controls)
    pieces: Callable[[], Pieces] | None = None  # kind "update": UpdateStrategies fields -> broken
    target: str | None = None  # kind "argument": "module:function" passed in place of the real

    @property
    def kind(self) -> str:
        """"update" (hook points of trpo_ref's update) or "argument" (a function argument)."""
        return "update" if self.pieces is not None else "argument"

    def resolve(self) -> Callable[..., Any]:
        """The broken function of an "argument" fault."""
        if self.target is None:
            raise ValueError(f"fault {self.name!r} is applied to trpo_ref's update, not passed")
        module, _, name = self.target.partition(":")
        return getattr(importlib.import_module(module), name)


# --- line search ---------------------------------------------------------------------------------

def unchecked_line_search(policy: Any, theta_old: torch.Tensor, full_step: torch.Tensor,
                          evaluate: Any, surrogate_old: float, limit: float,
                          *rest: Any) -> LineSearchResult:
    """The line search without its KL test: the bound passed on is infinite."""
    return step.line_search(policy, theta_old, full_step, evaluate, surrogate_old, math.inf,
                            *rest)


def _no_kl_check() -> Pieces:
    return {"line_search": unchecked_line_search}


def _no_improvement_check() -> Pieces:
    def kl_only(policy: Any, theta_old: torch.Tensor, full_step: torch.Tensor, evaluate: Any,
                surrogate_old: float, limit: float, *rest: Any) -> LineSearchResult:
        return step.line_search(policy, theta_old, full_step, evaluate, -math.inf, limit, *rest)

    return {"line_search": kl_only}


def _no_restore_on_failure() -> Pieces:
    def leaky(policy: Any, theta_old: torch.Tensor, full_step: torch.Tensor, evaluate: Any,
              surrogate_old: float, limit: float, backtrack: float = 0.8,
              max_backtracks: int = 10) -> LineSearchResult:
        fraction, constraint_full = 1.0, math.nan
        for k in range(max_backtracks):
            fraction = backtrack**k
            step.set_flat_params(policy, theta_old + fraction * full_step)
            surr, constraint = evaluate()
            if k == 0:
                constraint_full = constraint
            if (math.isfinite(surr) and math.isfinite(constraint) and surr > surrogate_old
                    and constraint <= limit):
                return LineSearchResult(True, k, fraction, surr, constraint, None,
                                        constraint_full)
        # the bug: the last candidate stays in place and its fraction is reported as applied
        return LineSearchResult(False, max_backtracks, fraction, surrogate_old, math.nan,
                                "line search failed", constraint_full)

    return {"line_search": leaky}


def _no_finite_guard() -> Pieces:
    def unguarded(policy: Any, theta_old: torch.Tensor, full_step: torch.Tensor, evaluate: Any,
                  surrogate_old: float, limit: float, backtrack: float = 0.8,
                  max_backtracks: int = 10) -> LineSearchResult:
        constraint_full = math.nan
        for k in range(max_backtracks):
            fraction = backtrack**k
            step.set_flat_params(policy, theta_old + fraction * full_step)
            surr, constraint = evaluate()
            if k == 0:
                constraint_full = constraint
            # the bug: a rejection test that NaN passes, and no finite check
            if not (surr <= surrogate_old or constraint > limit):
                return LineSearchResult(True, k, fraction, surr, constraint, None,
                                        constraint_full)
        step.set_flat_params(policy, theta_old)
        return LineSearchResult(False, max_backtracks, 0.0, surrogate_old, math.nan,
                                "line search failed", constraint_full)

    return {"line_search": unguarded}


def _backtrack_along_gradient() -> Pieces:
    def along_gradient(policy: Any, batch: PolicyBatch, **kwargs: Any) -> step.Metrics:
        g = step.flat_grad(step.surrogate(policy, batch), policy)

        def search(policy: Any, theta_old: torch.Tensor, full_step: torch.Tensor,
                   evaluate: Any, surrogate_old: float, limit: float, backtrack: float = 0.8,
                   max_backtracks: int = 10) -> LineSearchResult:
            first = step.line_search(policy, theta_old, full_step, evaluate, surrogate_old,
                                     limit, backtrack, 1)
            if first.accepted or max_backtracks < 2 or not float(g @ g) > 0:
                return first
            # the bug: the shorter candidates lie along g, with the full step's gain g . step
            gradient_step = g * (float(g @ full_step) / float(g @ g))
            rest = step.line_search(policy, theta_old, backtrack * gradient_step, evaluate,
                                    surrogate_old, limit, backtrack, max_backtracks - 1)
            return dataclasses.replace(rest, backtracks=rest.backtracks + 1,
                                       constraint_full=first.constraint_full)

        with step.use_strategies(line_search=search):
            return step.trust_region_update(policy, batch, **kwargs)

    return {"update": along_gradient}


# --- step size and direction ---------------------------------------------------------------------

def _scaled_beta(factor: float) -> Callable[[float, float], tuple[float, str | None]]:
    def scaled(s_a_s: float, delta: float) -> tuple[float, str | None]:
        beta, reason = step.step_scale(s_a_s, delta)
        return factor * beta, reason

    return scaled


def _beta_without_factor_2() -> Pieces:
    def short(s_a_s: float, delta: float) -> tuple[float, str | None]:
        return step.step_scale(s_a_s, delta / 2)  # sqrt(2 (delta / 2) / sAs) = sqrt(delta / sAs)

    return {"step_scale": short}


def _unchecked_big_step() -> Pieces:
    return {"step_scale": _scaled_beta(BIG_STEP), "line_search": unchecked_line_search}


def _inflated_beta_x100() -> Pieces:
    return {"step_scale": _scaled_beta(BETA_INFLATION)}


def _one_cg_iteration() -> Pieces:
    def once(matrix_vector: Any, b: torch.Tensor, iters: int = 10,
             residual_tol: float = 1e-10) -> tuple[torch.Tensor, float]:
        return step.conjugate_gradient(matrix_vector, b, 1, residual_tol)

    return {"conjugate_gradient": once}


def _reversed_direction() -> Pieces:
    def reversed_cg(*args: Any, **kwargs: Any) -> tuple[torch.Tensor, float]:
        s, residual = step.conjugate_gradient(*args, **kwargs)
        return -s, residual

    return {"conjugate_gradient": reversed_cg}


# --- Fisher-vector products ----------------------------------------------------------------------

def fvp_old_attached(policy: Policy, obs: torch.Tensor, old_params: DistParams, damping: float,
                     index: torch.Tensor | None = None) -> step.VectorProduct:
    """BUG: the Fisher-vector product of KL(pi_theta || pi_theta), pi_old taken from the live
    graph instead of the detached ``old_params`` (ignored). That KL is 0 for every theta, so its
    Hessian vanishes and the product is damping * v."""
    if index is not None:
        obs = obs[index]
    current = policy.dist_params(obs)  # pi_old taken from the live graph, not detached
    grad_kl = step.flat_grad(policy.kl_from(current, policy.dist_params(obs)).mean(),
                             policy, create_graph=True)
    params = list(policy.parameters())

    def product(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(grad_kl @ v, params, retain_graph=True, allow_unused=True)
        flat = [torch.zeros_like(p).reshape(-1) if h is None else h.reshape(-1)
                for h, p in zip(hv, params, strict=True)]
        return torch.cat(flat) + damping * v

    return product


def fvp_negative(policy: Policy, obs: torch.Tensor, old_params: DistParams, damping: float,
                 index: torch.Tensor | None = None) -> step.VectorProduct:
    """FAULT: v -> -v, a negative definite "Fisher": CG gives s = -g and s^T A s < 0."""
    return lambda v: -v


def fvp_zero(policy: Policy, obs: torch.Tensor, old_params: DistParams, damping: float,
             index: torch.Tensor | None = None) -> step.VectorProduct:
    """FAULT: v -> 0, a vanished Fisher without damping: CG divides by p^T A p = 0, s^T A s is
    0 or not finite."""
    return lambda v: torch.zeros_like(v)


# --- KL ------------------------------------------------------------------------------------------

def _kl_mean_over_action_dims() -> Pieces:
    def averaged(policy: Policy, old_params: DistParams, obs: torch.Tensor) -> torch.Tensor:
        kl = step.policy_kl(policy, old_params, obs)
        return kl / old_params[0].shape[-1] if isinstance(policy, DiagGaussianMLP) else kl

    return {"kl": averaged}


def _kl_reversed() -> Pieces:
    def reversed_kl(policy: Policy, old_params: DistParams, obs: torch.Tensor) -> torch.Tensor:
        return policy.kl_from(policy.dist_params(obs), old_params)

    return {"kl": reversed_kl}


# --- advantages, surrogate, update ---------------------------------------------------------------

def _flip_advantages() -> Pieces:
    return {"advantages": torch.neg}


def _nonfinite_surrogate() -> Pieces:
    def surrogate(policy: Policy, batch: PolicyBatch) -> torch.Tensor:
        value = step.surrogate(policy, batch)
        return value if torch.is_grad_enabled() else value * math.nan

    return {"surrogate": surrogate}


def _per_minibatch_trust_region() -> Pieces:
    def per_minibatch(policy: Any, batch: PolicyBatch, **kwargs: Any) -> step.Metrics:
        metrics: step.Metrics = {}
        for rows in torch.arange(len(batch)).chunk(MINIBATCHES):
            sub = PolicyBatch(batch.obs[rows], batch.act[rows], batch.adv[rows],
                              tuple(t[rows] for t in batch.old_params), batch.old_log_prob[rows])
            # the bug: each minibatch's pi_old is the policy *now*, so each step gets a fresh
            # delta and the KL from the batch's pi_old accumulates
            metrics = step.trust_region_update(
                policy, step.make_batch(policy, sub.obs, sub.act, sub.adv), **kwargs)
        return metrics

    return {"update": per_minibatch}


def _max_kl_reads_mean() -> Pieces:
    def mean_for_max(policy: Any, batch: PolicyBatch, **kwargs: Any) -> step.Metrics:
        # the bug: the max-KL rule's flag is dropped on the way to the update, so its step scale
        # and line search bound the mean KL, as plain TRPO does
        if kwargs.get("algo") == "max-kl":
            kwargs = {**kwargs, "algo": "trpo"}
        return step.trust_region_update(policy, batch, **kwargs)

    return {"update": mean_for_max}


# --- the empirical claims' mechanism controls (training faults) ----------------------------------

def _vine_branch_not_restored() -> Pieces:
    def left_where_it_was(restore: Callable[[], None]) -> None:
        # the bug: the saved rollout-set state is never put back, so each branch continues from
        # wherever the previous branch (or, for the batch's first, the trunk) left the simulator
        return None

    return {"branch_start": left_where_it_was}


def empirical_fvp_uncentred_clipped(policy: Policy, obs: torch.Tensor, act: torch.Tensor,
                                    damping: float) -> step.VectorProduct:
    """BUG: the empirical FIM from *uncentred* scores at actions *clipped* to the unit box (what
    a [-1, 1] environment received; Gaussian policies, a categorical one's actions stay) instead
    of the centred scores at the sampled actions: G^T G / N = F_emp + gbar gbar^T at clipped
    actions, which are not draws from pi_old (step.fisher_unbiased's bug, in training)."""
    if isinstance(policy, DiagGaussianMLP):
        act = act.clamp(-UNIT_BOX, UNIT_BOX)
    centred = step.empirical_fisher_vector_product_fn(policy, obs, act, damping)
    mean_score = step.flat_grad(policy.log_prob(obs, act).mean(), policy)

    def product(v: torch.Tensor) -> torch.Tensor:
        return centred(v) + mean_score * (mean_score @ v)

    return product


def _parameter_space_trust_region() -> Pieces:
    def identity(policy: Policy, obs: torch.Tensor, old_params: DistParams, damping: float,
                 index: torch.Tensor | None = None) -> step.VectorProduct:
        return lambda v: v  # the metric of theta's own coordinates: A = I

    # with A = I the direction is g and beta = sqrt(2 delta) / |g|: every step has
    # |d theta| = sqrt(2 delta); the bound is met by construction, so nothing checks the KL
    return {"fisher_product": identity, "line_search": unchecked_line_search}


# --- the registry --------------------------------------------------------------------------------

FORK_CHECK = "fork-check"
TRAINING = "training"  # the empirical claims' control runs (claims.catalogue.training_jobs)

_ALL: tuple[Fault, ...] = (
    # the fork check's nine seeded bugs (claims.faults.forks.BUGS)
    Fault("no_kl_check", "the line search accepts any candidate that improves the surrogate, "
          "whatever its KL (the KL bound is infinite)",
          (FORK_CHECK, "impl.ls_within_delta"), _no_kl_check),
    Fault("beta_without_factor_2", "beta = sqrt(delta / s^T A s) instead of sqrt(2 delta / "
          "s^T A s): every full step is 1/sqrt(2) too short", (FORK_CHECK,),
          _beta_without_factor_2),
    Fault("fvp_old_attached", "the Fisher-vector product differentiates KL(pi_theta || "
          "pi_theta), pi_old not detached: the 'Fisher' is just the damping",
          (FORK_CHECK, "step.fvp_exact", "step.kl_quadratic"),
          lambda: {"fisher_product": fvp_old_attached}),
    Fault("one_cg_iteration", "conjugate gradient stops after one iteration",
          (FORK_CHECK,), _one_cg_iteration),
    Fault("no_restore_on_failure", "a failed line search leaves its last (rejected) candidate "
          "in place and reports its fraction as applied",
          (FORK_CHECK, "impl.rejected_update_restores"), _no_restore_on_failure),
    Fault("kl_mean_over_action_dims", "the Gaussian KL is averaged over action dimensions "
          "instead of summed, in the Fisher and the line search: steps reach act_dim x delta",
          (FORK_CHECK, "impl.kl_within_delta"), _kl_mean_over_action_dims),
    Fault("kl_reversed", "KL(pi_new || pi_old) instead of KL(pi_old || pi_new) everywhere the "
          "update computes it", (FORK_CHECK,), _kl_reversed),
    Fault("flip_advantages", "the advantages' sign is flipped before the update (make_batch), "
          "so every step descends the true surrogate",
          (FORK_CHECK, "impl.surrogate_improves", "impl.learns", TRAINING), _flip_advantages),
    Fault("per_minibatch_trust_region", f"the batch is split into {MINIBATCHES} minibatches, "
          "each given its own trust-region step of size delta: the total KL drifts past delta",
          (FORK_CHECK,), _per_minibatch_trust_region),
    # the line-search claims' controls (claims.faults.forks.LINE_SEARCH_BUGS)
    Fault("max_kl_reads_mean", "the max-KL rule's flag never reaches the update: its step scale "
          "and line search bound the mean KL over states, as plain TRPO does",
          ("empirical.max_kl_slower", TRAINING), _max_kl_reads_mean),
    Fault("npg_sweep_keeps_worst", "the step-size sweep keeps the step with the lowest mean "
          "final return (argmin for argmax)", ("empirical.npg_easy_tasks",),
          target="claims.catalogue.empirical.protocol:_npg_sweep_keeps_worst_bug"),
    Fault("no_improvement_check", "the line search accepts any candidate within the KL bound, "
          "improving or not", ("impl.ls_improves",), _no_improvement_check),
    Fault("backtrack_along_gradient", "after a rejected full step the line search goes on along "
          "the plain gradient (with the full step's first-order gain), not the natural step",
          ("impl.ls_direction",), _backtrack_along_gradient),
    Fault("no_finite_guard", "the acceptance test is a rejection test that a NaN candidate "
          "passes, and the finite check is missing", ("impl.ls_finite",),
          _no_finite_guard),
    # the empirical claims' broken trainer (claims.catalogue.training_jobs.FAULTS, with
    # flip_advantages)
    Fault("unchecked_big_step", f"the step scale is {BIG_STEP:g}x beta and the line search's KL "
          "test is gone: nothing catches the 100x KL", (TRAINING,), _unchecked_big_step),
    Fault("vine_branch_not_restored", "vine branch rollouts never restore the saved rollout-set "
          "state: each continues from where the previous rollout left the simulator",
          ("empirical.vine_solves", TRAINING), _vine_branch_not_restored),
    Fault("empirical_fim_uncentred_clipped", "the empirical FIM of training from uncentred "
          "scores at actions clipped to [-1, 1], not centred scores at the sampled actions",
          (TRAINING,), lambda: {"empirical_fisher_product": empirical_fvp_uncentred_clipped}),
    Fault("parameter_space_trust_region", "the trust region measured in parameter space, "
          "|d theta|^2 / 2 <= delta (Fisher replaced by the identity, no KL test): one delta is "
          "a different policy change on every task", (TRAINING,), _parameter_space_trust_region),
    # bad steps the update must reject (claims.catalogue.step.line_search.FAULTS, "update" path)
    Fault("reversed_direction", "the search direction is -s (conjugate gradient's result "
          "negated)", ("step.line_search_restores",), _reversed_direction),
    Fault("inflated_beta_x100", f"the step scale is {BETA_INFLATION:g}x beta",
          ("step.line_search_restores",), _inflated_beta_x100),
    Fault("nonfinite_surrogate", "the surrogate is right when differentiated and NaN when "
          "evaluated (the line search's candidates)", ("step.line_search_restores",),
          _nonfinite_surrogate),
    Fault("fvp_negative", "the Fisher-vector product is v -> -v (negative definite)",
          ("step.line_search_restores",), lambda: {"fisher_product": fvp_negative}),
    Fault("fvp_zero", "the Fisher-vector product is v -> 0 (vanished, no damping)",
          ("step.line_search_restores",), lambda: {"fisher_product": fvp_zero}),
    # controls passed as arguments: tabular theory claims
    Fault("surrogate_normalized_visitation", "L_pi built from the normalized visitation "
          "(1 - gamma) rho instead of the unnormalized rho",
          ("theory.surrogate_gradient", "theory.surrogate_gap_order"),
          target="claims.catalogue.theory.surrogate:_surrogate_bug_normalized_visitation"),
    Fault("direction_vanilla", "the 'natural' direction is the vanilla gradient",
          ("theory.tr_direction",),
          target="claims.catalogue.theory.natural_gradient:_direction_bug_vanilla"),
    Fault("beta_missing_two", "beta = sqrt(delta / s^T A s) in the tabular natural step",
          ("theory.beta_kl",),
          target="claims.catalogue.theory.natural_gradient:_beta_bug_missing_two"),
    Fault("penalty_no_horizon", "the penalty coefficient 4 eps gamma, without the horizon "
          "factor 1 / (1 - gamma)^2", ("theory.penalty_crawls",),
          target="claims.catalogue.theory.penalty:_penalty_bug_no_horizon"),
    Fault("penalty_coefficient_one_power", "Theorem 1's coefficient C = 4 eps gamma / "
          "(1 - gamma), one power of (1 - gamma) too few", ("theory.theorem1",),
          target="claims.catalogue.theory.theorem1:_penalty_coefficient_bug_one_power"),
    Fault("mean_kl_penalty_one_power", "the mean-KL bound's coefficient C = 4 eps gamma / "
          "(1 - gamma), one power of (1 - gamma) too few", ("theory.mean_kl_bound",),
          target="claims.catalogue.theory.mean_kl:_penalty_bug_one_power"),
    # controls passed as arguments: step claims
    Fault("empirical_fisher_clipped_actions", "the empirical FIM's scores at the clipped "
          "actions the environment received, not the sampled ones", ("step.fisher_unbiased",),
          target="claims.catalogue.step.fisher:_empirical_bug_clipped_actions"),
    Fault("analytic_fisher_sampled_kl", "the 'analytic' Fisher as the Hessian of a sampled KL "
          "estimate at the batch's actions", ("step.fisher_variance",),
          target="claims.catalogue.step.fisher:_analytic_bug_sampled_kl"),
    Fault("vine_independent_noise_no_baseline", "vine branches with fresh noise per branch and "
          "Q itself as the advantage (no common random numbers, no baseline)",
          ("step.vine_variance", "step.vine_variance_per_q"),
          target=("claims.catalogue.step.vine_variance:"
                  "_vine_gradient_bug_independent_noise_no_baseline")),
    Fault("surrogate_only_line_search", "the line search accepts the first candidate that "
          "improves the surrogate and never looks at the KL", ("step.kl_constraint",),
          target="claims.catalogue.step.kl_constraint:_update_bug_surrogate_only_line_search"),
    Fault("subsample_full_batch_normalizer", "the subsample's KL Hessian divided by the full "
          "batch size: A = fraction H + damping I", ("step.subsampled_direction",),
          target="claims.catalogue.step.subsample:_fvp_bug_full_batch_normalizer"),
    Fault("line_search_no_restore", "the line search without its final restore: a failed "
          "search leaves its smallest candidate in place while reporting a rejection",
          ("step.line_search_restores",),
          target="claims.catalogue.step.line_search:_line_search_bug_no_restore"),
    # controls passed as arguments: the climb claims (claims.catalogue.climb.family.VARIANTS)
    Fault("trust-region-without-kl-test", "the climb's trust-region rule without its KL test, "
          "beta sized for the unit direction but applied to the raw natural direction",
          ("climb.overshoot", "climb.trust_region", "climb.switch"),
          target="claims.catalogue.climb.family:trust_region_without_kl_test"),
    Fault("kl-penalty-without-horizon", "the climb's KL-penalty rule without the horizon "
          "factor in its coefficient", ("climb.crawl",),
          target="claims.catalogue.climb.family:kl_penalty_without_horizon"),
    Fault("estimate-error-not-wired", "the climb's estimate-error knob is read but never "
          "added: A_hat = A", ("climb.too_wide",),
          target="claims.catalogue.climb.family:estimate_error_not_wired"),
)
FAULTS: dict[str, Fault] = {f.name: f for f in _ALL}
assert len(FAULTS) == len(_ALL), "fault names must be unique"


def get(name: str) -> Fault:
    """The fault ``name``; ValueError naming the choices if there is none."""
    if name not in FAULTS:
        raise ValueError(f"unknown fault {name!r}; choose one of {', '.join(FAULTS)}")
    return FAULTS[name]


def strategies(name: str | None, base: step.UpdateStrategies = step.PAPER
               ) -> step.UpdateStrategies:
    """``base`` with the pieces of the "update" fault ``name`` replaced (None: ``base``)."""
    if name is None:
        return base
    fault = get(name)
    if fault.pieces is None:
        raise ValueError(f"fault {name!r} is passed as an argument ({fault.target}), "
                         "not applied to trpo_ref's update")
    return dataclasses.replace(base, **fault.pieces())


@contextlib.contextmanager
def applied(name: str | None) -> Iterator[None]:
    """Run the body with the "update" fault ``name`` in trpo_ref's update (None: the paper's
    update as in force around the body). The previous strategies come back on exit."""
    if name is None:
        yield
        return
    with step.use_strategies(strategies(name, step.current_strategies())):
        yield
