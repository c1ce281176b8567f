"""One policy update from a batch: TRPO's step (section 6, App. C) and its baselines, one code path.

The practical problem (eq. 12-14) is

    maximize_theta  L(theta) = mean_n [pi_theta(a_n|s_n) / pi_old(a_n|s_n) * A_n]
    subject to      mean_n KL(pi_old(.|s_n) || pi_theta(.|s_n)) <= delta,

solved as in App. C: g = grad L at theta_old; A = Hessian of the mean KL (the Fisher matrix),
applied by double backprop (:func:`fisher_vector_product_fn`) with ``damping * I`` added; s ~=
A^{-1} g by :func:`conjugate_gradient` from x0 = 0; beta = sqrt(2 delta / s^T A s) puts the
quadratic model of the KL at delta (:func:`step_scale`); then :func:`line_search` backtracks
until L improves and the KL, recomputed on the full batch, is <= delta.

:func:`update` runs one of these rules, chosen by ``algo`` (:data:`ALGOS`):

- ``trpo``: the above (mean-KL constraint, line search).
- ``npg``: natural gradient with a fixed step size, theta += step_size * s; no line search, no
  KL check (the paper's natural-gradient baseline, whose step size it swept).
- ``max-kl``: the constraint is max_n KL instead of the mean (the paper's cart-pole variant).
  The search direction is the same s; beta uses the largest per-state quadratic model,
  max_n s^T A_n s + damping |s|^2; the line search checks the max KL on the full batch.
- ``empirical-fim``: as ``trpo`` with A = the covariance of the per-sample score gradients
  grad log pi(a_n|s_n) (the "empirical FIM" of section 8) instead of the KL Hessian.
- ``pg``: vanilla gradient ascent theta += step_size * g; no KL check.

Every rule refuses to leave non-finite parameters: a step that is not finite is rejected and
the exact old parameters stay in place (they are restored bit for bit from a saved copy).

Memory (issue 16): a batch above the policy's chunk bound (the Atari CNN: more than 8,192 rows,
:func:`trpo_ref.deep.policies.row_chunks`) runs every pass in chunks: the surrogate's gradient
summed over chunks, the Fisher products recomputed per chunk of the subsample
(:func:`chunked_fisher_product_fn`), the KL and surrogate checks chunk by chunk, so the update's
memory stops growing with the batch; at or below the bound every pass is one pass, as always.
The empirical-FIM products are not chunked.

The update is made of pieces (:class:`UpdateStrategies`: the advantages' transform, surrogate,
KL, Fisher-vector product, conjugate gradient, step scale, line search, the update itself, the
empirical-FIM product; and one piece of vine sampling, how a branch gets its start state),
read at call time from one context variable; trpo_ref only ever runs the paper's
(:data:`PAPER`). They are the hook points where the suite's negative controls swap in a broken
piece (:func:`use_strategies`, :mod:`claims.faults`) without patching any module.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from trpo_ref.deep.policies import (
    DiagGaussianMLP,
    DistParams,
    Policy,
    evaluate_in_chunks,
    row_chunks,
    split_rows,
)

ALGOS = ("trpo", "npg", "max-kl", "empirical-fim", "pg")
LINE_SEARCH_ALGOS = ("trpo", "max-kl", "empirical-fim")  # the rules with a KL bound

VectorProduct = Callable[[torch.Tensor], torch.Tensor]


# --- flat parameter vectors ----------------------------------------------------------------------

def get_flat_params(module: nn.Module) -> torch.Tensor:
    """All parameters of ``module`` concatenated into a new 1-D tensor (a copy, not a view)."""
    return torch.cat([p.detach().reshape(-1) for p in module.parameters()]).clone()


def set_flat_params(module: nn.Module, flat: torch.Tensor) -> None:
    """Copy ``flat`` (as from :func:`get_flat_params`) into the parameters, exactly."""
    n_total = sum(p.numel() for p in module.parameters())
    if flat.shape != (n_total,):
        raise ValueError(f"flat parameter vector has shape {tuple(flat.shape)}, need ({n_total},)")
    offset = 0
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(flat[offset : offset + p.numel()].view_as(p))
            offset += p.numel()


def flat_grad(
    output: torch.Tensor,
    module: nn.Module,
    create_graph: bool = False,
    retain_graph: bool | None = None,
) -> torch.Tensor:
    """d output / d theta as one flat vector, in the order of ``module.parameters()``.

    ``retain_graph`` defaults to ``create_graph`` (as in torch.autograd.grad)."""
    grads = torch.autograd.grad(
        output, list(module.parameters()), create_graph=create_graph, retain_graph=retain_graph
    )
    return torch.cat([g.reshape(-1) for g in grads])


def functional_dist_params(policy: Policy, flat: torch.Tensor, obs: torch.Tensor) -> DistParams:
    """pi_theta's distribution parameters with theta = ``flat``: differentiable in ``flat``.

    For explicit Hessians (tests) and forward-mode products (max-KL, empirical FIM).
    """
    named, offset = {}, 0
    for name, p in policy.named_parameters():
        named[name] = flat[offset : offset + p.numel()].view_as(p)
        offset += p.numel()
    return torch.func.functional_call(policy, named, (obs,))


# --- the batch and the surrogate -----------------------------------------------------------------

@dataclass(frozen=True)
class PolicyBatch:
    """What one update sees. obs (N, obs_dim); act (N, act_dim) or (N,); adv (N,);
    old_params: pi_old's distribution parameters, detached; old_log_prob (N,), detached."""

    obs: torch.Tensor
    act: torch.Tensor
    adv: torch.Tensor
    old_params: DistParams
    old_log_prob: torch.Tensor

    def __len__(self) -> int:
        return self.obs.shape[0]

    def rows(self, rows: slice) -> PolicyBatch:
        """The batch's rows ``rows`` (views), for the chunked passes of a large batch."""
        return PolicyBatch(self.obs[rows], self.act[rows], self.adv[rows],
                           tuple(t[rows] for t in self.old_params), self.old_log_prob[rows])


def make_batch(
    policy: Policy, obs: torch.Tensor, act: torch.Tensor, adv: torch.Tensor
) -> PolicyBatch:
    """Freeze pi_old = the current policy on ``obs`` (no graph kept); the advantages pass
    through :attr:`UpdateStrategies.advantages` (the paper: as given). A batch above the
    policy's chunk bound (:func:`trpo_ref.deep.policies.row_chunks`) is evaluated in chunks."""
    with torch.no_grad():
        old_params = tuple(t.detach().clone()
                           for t in evaluate_in_chunks(policy, policy.dist_params, obs))
        old_log_prob = policy.log_prob_from(old_params, act)
    return PolicyBatch(obs, act, current_strategies().advantages(adv), old_params, old_log_prob)


def surrogate_from(log_prob: torch.Tensor, batch: PolicyBatch) -> torch.Tensor:
    """L(theta) = mean_n exp(log pi_theta(a_n|s_n) - log pi_old(a_n|s_n)) A_n from the batch's
    log-probabilities under pi_theta, ``log_prob`` (N,): eq. (14) with q = pi_old."""
    return (torch.exp(log_prob - batch.old_log_prob) * batch.adv).mean()


def surrogate(policy: Policy, batch: PolicyBatch) -> torch.Tensor:
    """L(theta) = mean_n exp(log pi_theta(a_n|s_n) - log pi_old(a_n|s_n)) A_n.

    Eq. (14) with the sampling distribution q = pi_old (single path)."""
    return surrogate_from(policy.log_prob(batch.obs, batch.act), batch)


def surrogate_rounding(batch: PolicyBatch) -> float:
    """The rounding floor of L on ``batch``: ceil(log2 N) * eps * mean_n |A_n|, the error bound
    of a pairwise-summed mean of N terms of that size (Higham, *Accuracy and Stability of
    Numerical Algorithms*, 2nd ed., sec. 4.2) in the advantages' dtype. A candidate whose L
    beats L(old) by no more has shown no improvement: where every ratio underflows, L(new) = 0
    and L(old) = mean A, which standardized advantages make zero up to rounding, so a strict
    L(new) > L(old) accepts a collapsed policy by a rounding error (Swimmer, delta 1e8:
    docs/audit.md)."""
    n = batch.adv.numel()
    eps = torch.finfo(batch.adv.dtype).eps
    return math.ceil(math.log2(max(n, 2))) * eps * float(batch.adv.abs().mean())


def batch_surrogate(policy: Policy, batch: PolicyBatch) -> torch.Tensor:
    """L(theta) on the whole batch by :attr:`UpdateStrategies.surrogate`: one call, or above the
    policy's chunk bound sum_c (n_c / N) L_c over chunks (a mean of chunk means). Use under
    torch.no_grad (for the gradient: :func:`surrogate_and_gradient`)."""
    ops, chunks = current_strategies(), row_chunks(policy, len(batch))
    if chunks is None:
        return ops.surrogate(policy, batch)
    n = len(batch)
    return sum(ops.surrogate(policy, batch.rows(rows)) * ((rows.stop - rows.start) / n)
               for rows in chunks)


def surrogate_and_gradient(policy: Policy, batch: PolicyBatch) -> tuple[float, torch.Tensor]:
    """(L(theta), grad L) at the current parameters, as :func:`batch_surrogate` sums them; above
    the chunk bound each chunk's graph is built, differentiated and freed before the next."""
    ops, chunks = current_strategies(), row_chunks(policy, len(batch))
    if chunks is None:
        value = ops.surrogate(policy, batch)
        grad = flat_grad(value, policy)
        return float(value.detach()), grad
    n, total, grad = len(batch), 0, None
    for rows in chunks:  # the sum in batch_surrogate's order, so L(theta_old) matches it exactly
        part = ops.surrogate(policy, batch.rows(rows)) * ((rows.stop - rows.start) / n)
        part_grad = flat_grad(part, policy)
        grad = part_grad if grad is None else grad + part_grad
        total = total + part.detach()
    return float(total), grad


def policy_kl(policy: Policy, old_params: DistParams, obs: torch.Tensor) -> torch.Tensor:
    """KL(pi_old(.|s_n) || pi_theta(.|s_n)) for every state of ``obs`` (the KL of eq. (12),
    summed over action dimensions); shape (N,)."""
    return policy.kl(old_params, obs)


def kl_per_state(policy: Policy, batch: PolicyBatch) -> torch.Tensor:
    """KL(pi_old(.|s_n) || pi_theta(.|s_n)) for every state of the batch, by
    :attr:`UpdateStrategies.kl` (the paper: :func:`policy_kl`); shape (N,). Above the policy's
    chunk bound, computed chunk by chunk (use under torch.no_grad)."""
    kl = current_strategies().kl
    chunks = row_chunks(policy, len(batch))
    if chunks is None:
        return kl(policy, batch.old_params, batch.obs)
    return torch.cat([kl(policy, part.old_params, part.obs)
                      for part in map(batch.rows, chunks)])


# --- Fisher-vector products and conjugate gradient -----------------------------------------------

def fisher_vector_product_fn(
    policy: Policy,
    obs: torch.Tensor,
    old_params: DistParams,
    damping: float,
    index: torch.Tensor | None = None,
) -> VectorProduct:
    """v -> (H + damping I) v, H = Hessian in theta of mean_n KL(pi_old || pi_theta) on ``obs``.

    App. C: the Fisher matrix is the analytic Hessian of the mean KL, applied by double backprop
    without forming it. pi_old enters as detached ``old_params``; the gradient of the mean KL is
    built once with its graph, and each product is one backward pass through it. ``index``
    restricts the mean to those rows (App. C's subsample: only the Fisher products use it).
    The KL is :attr:`UpdateStrategies.kl` (the paper: :func:`policy_kl`).
    """
    if index is not None:
        obs, old_params = obs[index], tuple(t[index] for t in old_params)
    kl = current_strategies().kl(policy, old_params, obs)
    grad_kl = flat_grad(kl.mean(), policy, create_graph=True)
    params = list(policy.parameters())

    def product(v: torch.Tensor) -> torch.Tensor:
        hv = torch.autograd.grad(grad_kl @ v, params, retain_graph=True)
        return torch.cat([h.reshape(-1) for h in hv]) + damping * v

    return product


def chunked_fisher_product_fn(
    policy: Policy,
    obs: torch.Tensor,
    old_params: DistParams,
    damping: float,
    index: torch.Tensor,
    chunk_rows: int,
) -> VectorProduct:
    """The product of :attr:`UpdateStrategies.fisher_product` on the rows ``index``, for a set
    of rows too large for one graph: v -> sum_c (n_c / n) A_c v over chunks of at most
    ``chunk_rows`` rows (A_c: the chunk's mean-KL Hessian plus damping I, so the sum is the
    mean's). Each product rebuilds each chunk's graph and frees it (recomputation instead of
    holding every chunk's activations): memory of one chunk, time of about two passes more per
    product."""
    fisher_product = current_strategies().fisher_product
    obs, old_params = obs[index], tuple(t[index] for t in old_params)
    n = obs.shape[0]
    chunks = split_rows(n, chunk_rows)

    def product(v: torch.Tensor) -> torch.Tensor:
        total = torch.zeros_like(v)
        for rows in chunks:
            a_v = fisher_product(policy, obs[rows], tuple(t[rows] for t in old_params), damping)
            total += ((rows.stop - rows.start) / n) * a_v(v)
        return total

    return product


def fisher_vector_product(
    policy: Policy,
    obs: torch.Tensor,
    old_params: DistParams,
    v: torch.Tensor,
    damping: float,
    index: torch.Tensor | None = None,
) -> torch.Tensor:
    """One product (H + damping I) v; see :func:`fisher_vector_product_fn`."""
    return fisher_vector_product_fn(policy, obs, old_params, damping, index)(v)


def empirical_fisher_vector_product_fn(
    policy: Policy, obs: torch.Tensor, act: torch.Tensor, damping: float
) -> VectorProduct:
    """v -> (F_emp + damping I) v, F_emp = covariance over n of the scores grad log pi(a_n|s_n).

    With G the (N, P) matrix of scores and C the centring matrix, F_emp = G^T C G / N, applied as
    a forward-mode product G v, centred, then a backward-mode product G^T (.) / N. Centring
    makes its expectation (1 - 1/N) F rather than F (the scores' mean is 0 in expectation but
    not in a sample); at the batch sizes used the bias is negligible.
    """
    theta = get_flat_params(policy)

    def log_probs(flat: torch.Tensor) -> torch.Tensor:
        return policy.log_prob_from(functional_dist_params(policy, flat, obs), act)

    _, pullback = torch.func.vjp(log_probs, theta)
    n = obs.shape[0]

    def product(v: torch.Tensor) -> torch.Tensor:
        _, gv = torch.func.jvp(log_probs, (theta,), (v,))
        (gtv,) = pullback((gv - gv.mean()) / n)
        return gtv + damping * v

    return product


def conjugate_gradient(
    matrix_vector: VectorProduct, b: torch.Tensor, iters: int = 10, residual_tol: float = 1e-10
) -> tuple[torch.Tensor, float]:
    """Approximately solve A x = b by ``iters`` CG iterations from x0 = 0 (App. C: 10).

    Stops early once |r|^2 < residual_tol. Returns (x, |b - A x|), the residual as tracked by
    the CG recursion. No guard for A that is not positive definite: the step guard
    (:func:`step_scale`) rejects the result through s^T A s.
    """
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r @ r
    for _ in range(iters):
        if rr < residual_tol:
            break
        ap = matrix_vector(p)
        alpha = rr / (p @ ap)
        x += alpha * p
        r -= alpha * ap
        rr_new = r @ r
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x, float(torch.sqrt(rr))


def step_scale(s_a_s: float, delta: float) -> tuple[float, str | None]:
    """beta = sqrt(2 delta / s^T A s): the step beta s has quadratic-model KL 1/2 beta^2 s^T A s
    = delta (section 6 / App. C). Returns (beta, None), or (nan, reason) when s^T A s is not
    finite or not > 0 (the step must then be rejected)."""
    if not math.isfinite(s_a_s):
        return math.nan, f"s^T A s is not finite ({s_a_s})"
    if s_a_s <= 0:
        return math.nan, f"s^T A s <= 0 ({s_a_s})"
    beta = math.sqrt(2 * delta / s_a_s)
    if not math.isfinite(beta):
        return math.nan, f"beta is not finite (s^T A s = {s_a_s})"
    return beta, None


def per_state_quadratic(policy: Policy, obs: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """s^T H_n s for every state n, H_n the Hessian of KL(pi_old(.|s_n) || pi_theta(.|s_n)) at
    theta = theta_old: (J_n s)^T M_n (J_n s), J_n s by a forward-mode product; shape (N,)."""
    theta = get_flat_params(policy)
    params, tangent = torch.func.jvp(
        lambda flat: functional_dist_params(policy, flat, obs), (theta,), (direction,)
    )
    return policy.fisher_quadratic(params, tangent)


# --- line search ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class LineSearchResult:
    """accepted; backtracks (shrinks before acceptance, ``max_backtracks`` on failure); fraction
    of the full step applied (0 on failure); surrogate and constraint value at the applied
    parameters (the old surrogate and nan on failure); reason when rejected; the constraint at
    the full step (the first candidate), which the quadratic model put at ``limit``."""

    accepted: bool
    backtracks: int
    fraction: float
    surrogate: float
    constraint: float
    reason: str | None
    constraint_full: float = math.nan


def line_search(
    policy: nn.Module,
    theta_old: torch.Tensor,
    full_step: torch.Tensor,
    evaluate: Callable[[], tuple[float, float]],
    surrogate_old: float,
    limit: float,
    backtrack: float = 0.8,
    max_backtracks: int = 10,
) -> LineSearchResult:
    """Exponential backtracking: try theta_old + backtrack^k * full_step, k = 0, 1, ...

    ``evaluate()`` returns (surrogate, constraint) at the policy's current parameters, the
    constraint being the KL on the full batch. A candidate is accepted only if both are finite,
    the surrogate exceeds ``surrogate_old`` and the constraint is <= ``limit``. The update
    passes L(old) plus :func:`surrogate_rounding` as ``surrogate_old``, so that a change
    within rounding does not count as an improvement. If no
    candidate passes, ``theta_old`` (which must not alias the parameters) is copied back, so
    the parameters are restored bit for bit.
    """
    why, constraint_full = "no candidate tried", math.nan
    for k in range(max_backtracks):
        fraction = backtrack**k
        set_flat_params(policy, theta_old + fraction * full_step)
        surr, constraint = evaluate()
        if k == 0:
            constraint_full = constraint
        if not (math.isfinite(surr) and math.isfinite(constraint)):
            why = f"non-finite surrogate or KL ({surr}, {constraint})"
        elif surr <= surrogate_old:
            why = "surrogate did not improve"
        elif constraint > limit:
            why = f"KL {constraint:.3g} > {limit:.3g}"
        else:
            return LineSearchResult(True, k, fraction, surr, constraint, None, constraint_full)
    set_flat_params(policy, theta_old)
    reason = f"line search failed after {max_backtracks} tries; last: {why}"
    return LineSearchResult(False, max_backtracks, 0.0, surrogate_old, math.nan, reason,
                            constraint_full)


# --- the update ----------------------------------------------------------------------------------

def subsample_index(n: int, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    """Sorted random subset of range(n) with ceil(fraction * n) elements (App. C: 10%)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fvp_subsample must be in (0, 1], got {fraction}")
    if fraction == 1:
        return torch.arange(n)
    k = max(1, math.ceil(fraction * n))
    return torch.randperm(n, generator=generator)[:k].sort().values


Metrics = dict[str, float | int | bool | str | None]


def update(
    policy: Policy,
    batch: PolicyBatch,
    *,
    algo: str = "trpo",
    delta: float = 0.01,
    damping: float = 0.1,
    cg_iters: int = 10,
    backtrack: float = 0.8,
    max_backtracks: int = 10,
    fvp_subsample: float = 1.0,
    step_size: float = 0.1,
    generator: torch.Generator | None = None,
) -> Metrics:
    """One update of ``policy`` on ``batch`` by rule ``algo`` (see the module docstring).

    ``delta``: KL bound (trpo, max-kl, empirical-fim). ``step_size``: fixed step (npg, pg).
    ``fvp_subsample``: fraction of the batch's states the Fisher products use (the gradient,
    surrogate and KL checks always use the full batch); 1.0 here, the paper's 0.1 in
    :class:`trpo_ref.deep.trpo.TRPOConfig`. Returns metrics, keys ``train/...``; the
    KL and surrogate metrics are measured at the parameters actually left in place.
    Runs :attr:`UpdateStrategies.update` (the paper: :func:`trust_region_update`).
    """
    return current_strategies().update(
        policy, batch, algo=algo, delta=delta, damping=damping, cg_iters=cg_iters,
        backtrack=backtrack, max_backtracks=max_backtracks, fvp_subsample=fvp_subsample,
        step_size=step_size, generator=generator,
    )


def trust_region_update(
    policy: Policy,
    batch: PolicyBatch,
    *,
    algo: str = "trpo",
    delta: float = 0.01,
    damping: float = 0.1,
    cg_iters: int = 10,
    backtrack: float = 0.8,
    max_backtracks: int = 10,
    fvp_subsample: float = 1.0,
    step_size: float = 0.1,
    generator: torch.Generator | None = None,
) -> Metrics:
    """The update of :func:`update` (same arguments), section 6 / App. C: g = grad L (eq. (14)),
    the rule's full step, the line search or the plain step, then the outcome's metrics."""
    if algo not in ALGOS:
        raise ValueError(f"unknown algo {algo!r}; choose one of {ALGOS}")
    theta_old = get_flat_params(policy)
    surrogate_old, g = surrogate_and_gradient(policy, batch)
    metrics = _initial_metrics(g, damping)
    full_step, reason = None, "gradient is not finite"
    if torch.isfinite(g).all():
        full_step, reason = _full_step(policy, batch, g, metrics, algo=algo, delta=delta,
                                       damping=damping, cg_iters=cg_iters,
                                       fvp_subsample=fvp_subsample, step_size=step_size,
                                       generator=generator)
    if full_step is not None and not torch.isfinite(full_step).all():
        reason, full_step = "step is not finite", None
    fraction = 0.0
    if full_step is not None:
        metrics["train/surrogate_predicted_full"] = float(g @ full_step)
        fraction, reason = _take_step(policy, batch, theta_old, full_step, surrogate_old,
                                      metrics, algo=algo, delta=delta, backtrack=backtrack,
                                      max_backtracks=max_backtracks)
    if fraction == 0.0:
        set_flat_params(policy, theta_old)  # already in place unless a branch above moved it
    metrics.update(_outcome_metrics(policy, batch, g, theta_old, surrogate_old, reason,
                                    fraction))
    return metrics


def _initial_metrics(g: torch.Tensor, damping: float) -> Metrics:
    """The metrics every rule reports, before the step is known (nan / 0: not computed)."""
    return {
        "train/grad_norm": float(g.norm()),
        "train/damping": damping,
        "train/beta": math.nan,
        "train/sAs": math.nan,
        "train/sAs_max": math.nan,
        "train/cg_residual": math.nan,
        "train/backtracks": 0,
        "train/fvp_states": 0,
        "train/surrogate_predicted_full": math.nan,
        "train/kl_full_step": math.nan,
    }


def _full_step(
    policy: Policy, batch: PolicyBatch, g: torch.Tensor, metrics: Metrics, *, algo: str,
    delta: float, damping: float, cg_iters: int, fvp_subsample: float, step_size: float,
    generator: torch.Generator | None,
) -> tuple[torch.Tensor | None, str | None]:
    """(full step, None), or (None, reason) when the step scale rejects it: step_size g (pg),
    step_size s (npg) or beta s (the KL-bounded rules), s ~= A^{-1} g."""
    if algo == "pg":
        return step_size * g, None
    s, s_a_s = _natural_direction(policy, batch, g, metrics, algo=algo, damping=damping,
                                  cg_iters=cg_iters, fvp_subsample=fvp_subsample,
                                  generator=generator)
    if algo == "npg":
        return step_size * s, None
    if algo == "max-kl":
        s_a_s = _max_kl_quadratic(policy, batch, s, damping)
        metrics["train/sAs_max"] = s_a_s
    beta, reason = current_strategies().step_scale(s_a_s, delta)
    metrics["train/beta"] = beta
    return (beta * s if reason is None else None), reason


def _natural_direction(
    policy: Policy, batch: PolicyBatch, g: torch.Tensor, metrics: Metrics, *, algo: str,
    damping: float, cg_iters: int, fvp_subsample: float, generator: torch.Generator | None,
) -> tuple[torch.Tensor, float]:
    """(s, s^T A s): s ~= A^{-1} g by CG (App. C), A the Fisher matrix (the empirical FIM for
    ``empirical-fim``) on a ``fvp_subsample`` fraction of the states, plus damping I."""
    ops = current_strategies()
    index = subsample_index(len(batch), fvp_subsample, generator)
    metrics["train/fvp_states"] = int(index.numel())
    if algo == "empirical-fim":
        a_v = ops.empirical_fisher_product(policy, batch.obs[index], batch.act[index], damping)
    elif row_chunks(policy, len(batch)) is not None and index.numel() > policy.chunk_rows:
        a_v = chunked_fisher_product_fn(policy, batch.obs, batch.old_params, damping, index,
                                        policy.chunk_rows)
    else:
        a_v = ops.fisher_product(policy, batch.obs, batch.old_params, damping, index)
    s, residual = ops.conjugate_gradient(a_v, g, cg_iters)
    s_a_s = float(s @ a_v(s))
    metrics["train/cg_residual"] = residual
    metrics["train/sAs"] = s_a_s
    return s, s_a_s


def _max_kl_quadratic(policy: Policy, batch: PolicyBatch, s: torch.Tensor,
                      damping: float) -> float:
    """max_n s^T A_n s + damping |s|^2: the largest per-state quadratic KL model (max-kl)."""
    quad = evaluate_in_chunks(policy, lambda obs: per_state_quadratic(policy, obs, s).detach(),
                              batch.obs)
    return float(quad.max()) + damping * float(s @ s)


def _take_step(
    policy: Policy, batch: PolicyBatch, theta_old: torch.Tensor, full_step: torch.Tensor,
    surrogate_old: float, metrics: Metrics, *, algo: str, delta: float, backtrack: float,
    max_backtracks: int,
) -> tuple[float, str | None]:
    """Apply ``full_step``: by the line search for the KL-bounded rules, whole for npg / pg.
    Returns (fraction applied, reason rejected or None)."""
    if algo not in LINE_SEARCH_ALGOS:
        set_flat_params(policy, theta_old + full_step)
        with torch.no_grad():
            metrics["train/kl_full_step"] = float(kl_per_state(policy, batch).mean())
        return 1.0, None
    # the bar is L(old) plus its rounding floor: a "gain" below the floor is no evidence
    result = current_strategies().line_search(
        policy, theta_old, full_step, _evaluator(policy, batch, algo),
        surrogate_old + surrogate_rounding(batch), delta, backtrack, max_backtracks,
    )
    metrics["train/backtracks"] = result.backtracks
    metrics["train/kl_full_step"] = result.constraint_full
    return result.fraction, result.reason


def kl_surrogate_params(policy: Policy, batch: PolicyBatch
                        ) -> tuple[torch.Tensor, torch.Tensor, DistParams | None]:
    """(per-state KL, surrogate, distribution parameters or None) at the current parameters,
    as :func:`kl_per_state` and :func:`batch_surrogate` compute them (use under no_grad).

    With the paper's KL and surrogate on a batch in one pass, all three come from one forward
    pass: the same operations on the same numbers as the two calls, which each run their own
    forward pass (a third of an Atari line-search candidate's cost); otherwise (a swapped piece,
    a chunked batch) the two calls, and None for the parameters."""
    ops = current_strategies()
    one_pass = row_chunks(policy, len(batch)) is None
    if ops.kl is policy_kl and ops.surrogate is surrogate and one_pass:
        params = policy.dist_params(batch.obs)
        kl = policy.kl_from(batch.old_params, params)
        return kl, surrogate_from(policy.log_prob_from(params, batch.act), batch), params
    return kl_per_state(policy, batch), batch_surrogate(policy, batch), None


def _evaluator(policy: Policy, batch: PolicyBatch, algo: str) -> Callable[[], tuple[float, float]]:
    """The line search's ``evaluate``: (surrogate, constraint) on the full batch at the
    current parameters, the constraint being the mean KL (max KL for max-kl). A candidate whose
    action distributions are not representable (a std overflowed to inf or underflowed to 0;
    ``policy.representable()``, read from the parameters without a forward pass) evaluates to
    NaN, so the line search rejects it as non-finite: its KL, computed from log-std, can be
    finite and its surrogate can "improve" by a rounding error."""

    def evaluate() -> tuple[float, float]:
        with torch.no_grad():
            if not policy.representable():
                return math.nan, math.nan
            kl, surr, _ = kl_surrogate_params(policy, batch)
            constraint = kl.max() if algo == "max-kl" else kl.mean()
            return float(surr), float(constraint)

    return evaluate


def _outcome_metrics(
    policy: Policy, batch: PolicyBatch, g: torch.Tensor, theta_old: torch.Tensor,
    surrogate_old: float, reason: str | None, fraction: float,
) -> Metrics:
    """What the update did, measured at the parameters left in place."""
    with torch.no_grad():
        applied = get_flat_params(policy) - theta_old
        kl, surr, params = kl_surrogate_params(policy, batch)
        if params is None:
            params = evaluate_in_chunks(policy, policy.dist_params, batch.obs)
        metrics: Metrics = {
            "train/accepted": reason is None,
            "train/reject_reason": reason,
            "train/step_fraction": fraction,
            "train/step_norm": float(applied.norm()),
            "train/kl_mean": float(kl.mean()),
            "train/kl_max": float(kl.max()),
            "train/surrogate_predicted": float(g @ applied),
            "train/surrogate_actual": float(surr) - surrogate_old,
            "train/entropy": float(policy.entropy_from(params).mean()),
        }
        if isinstance(policy, DiagGaussianMLP):
            metrics["train/std_mean"] = float(torch.exp(policy.log_std).mean())
    return metrics


# --- strategies: the update's hook points --------------------------------------------------------

def _as_given(adv: torch.Tensor) -> torch.Tensor:
    return adv


@dataclass(frozen=True)
class UpdateStrategies:
    """The pieces one update is made of (and vine sampling's branch start), each a function with
    the signature of the paper's version named after ``:``. trpo_ref only ever runs
    :data:`PAPER`; a claim swaps one piece (its negative control, :mod:`claims.faults`) with
    :func:`use_strategies`, and the swap reaches every call below it, the training loop's
    included, without patching any module."""

    advantages: Callable[[torch.Tensor], torch.Tensor]  # make_batch's advantages: as given
    surrogate: Callable[[Policy, PolicyBatch], torch.Tensor]  # L(theta): surrogate
    kl: Callable[[Policy, DistParams, torch.Tensor], torch.Tensor]  # per-state KL: policy_kl
    fisher_product: Callable[..., VectorProduct]  # v -> A v builder: fisher_vector_product_fn
    conjugate_gradient: Callable[..., tuple[torch.Tensor, float]]  # conjugate_gradient
    step_scale: Callable[[float, float], tuple[float, str | None]]  # beta: step_scale
    line_search: Callable[..., LineSearchResult]  # backtracking: line_search
    update: Callable[..., Metrics]  # one whole update: trust_region_update
    # v -> F_emp v builder (algo "empirical-fim"): empirical_fisher_vector_product_fn
    empirical_fisher_product: Callable[..., VectorProduct]
    # vine sampling (trpo_ref.deep.vine), not the update: how a branch rollout gets its start
    # state, given the call that restores the saved rollout-set state: restore_branch_state
    branch_start: Callable[[Callable[[], None]], None]


def restore_branch_state(restore: Callable[[], None]) -> None:
    """A vine branch starts from its rollout-set state (section 5.2): call ``restore``, which
    puts the simulator back into the state saved on the trunk."""
    restore()


PAPER = UpdateStrategies(
    advantages=_as_given, surrogate=surrogate, kl=policy_kl,
    fisher_product=fisher_vector_product_fn, conjugate_gradient=conjugate_gradient,
    step_scale=step_scale, line_search=line_search, update=trust_region_update,
    empirical_fisher_product=empirical_fisher_vector_product_fn,
    branch_start=restore_branch_state,
)
_STRATEGIES: ContextVar[UpdateStrategies] = ContextVar("trpo_ref_update_strategies",
                                                       default=PAPER)


def current_strategies() -> UpdateStrategies:
    """The strategies in force now (:data:`PAPER` unless a :func:`use_strategies` body runs)."""
    return _STRATEGIES.get()


@contextlib.contextmanager
def use_strategies(strategies: UpdateStrategies | None = None, **pieces: Any
                   ) -> Iterator[UpdateStrategies]:
    """Run the body with ``strategies`` (default: those in force now) with ``pieces`` replaced,
    e.g. ``use_strategies(PAPER)`` for the paper's update whatever is in force around it."""
    chosen = current_strategies() if strategies is None else strategies
    token = _STRATEGIES.set(dataclasses.replace(chosen, **pieces) if pieces else chosen)
    try:
        yield _STRATEGIES.get()
    finally:
        _STRATEGIES.reset(token)
