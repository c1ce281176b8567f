"""The gridworld climb seen the way the seed explainer shows it, and its declared families.

Three things live here, all on top of the exact engine :mod:`trpo_ref.tabular.climb` (which is
not modified: every byte of ``trpo_ref`` is part of the job cache's key):

- **The seed's scale.** Returns are shown as ``100 * eta / eta*`` (:func:`seed_percent`):
  0 = a return of 0 (neither goal nor trap), 100 = optimal, no offset. On the gridworld the
  uniform start reads -39.5% (eta = -0.2761 against eta* = gamma^7 = 0.6983), the "round 0 near
  -40%" of the explainer; a policy that walks into the trap at once reads -143%.
- **Traced runs** (:func:`trace_climb`): the engine's run plus what the explorer and the CLI show
  per round: the logits, move probabilities and true advantages of every cell, the step's mean
  KL computed from the logits (finite even where a probability underflows to 0, where the
  probability-based KL is +inf), and the event log with overshoots of at least
  :data:`EVENT_MIN_POINTS` points (smaller "overshoots" printed as +0.0 / -0.0 are not events).
- **Declared families** of bias patterns (:func:`family_bias`): member ``i`` is a standard-normal
  pattern over the live (cell, action) pairs (the 23 non-absorbing cells x 4 moves), drawn from
  ``numpy.random.default_rng([FAMILY_SEED, i])``; tiers use the first ``n`` members, so the
  quick family is a prefix of the standard and full ones. Fixed before any run.

The presets are members of the quick family chosen by a declared rule
(:func:`closest_to_median`), recorded in :data:`PRESET_MEMBERS` and re-derived by a test.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from trpo_ref.tabular import fisher_vector_product, natural_gradient, softmax, surrogate
from trpo_ref.tabular.bounds import max_abs_advantage
from trpo_ref.tabular.climb import (
    DEFAULT_RULES,
    ETA_TOL,
    KL_PENALTY,
    TRUST_REGION,
    ClimbResult,
    ClimbSettings,
    EstimateFn,
    Event,
    Preset,
    RoundContext,
    Rule,
    RuleOutcome,
    estimated_advantage,
    get_preset,
    kl_penalty_rule,
    run_climb,
)
from trpo_ref.tabular.divergence import state_weights
from trpo_ref.tabular.evaluate import evaluate
from trpo_ref.tabular.mdp import MDP, gridworld

# --------------------------------------------------------------------------------------------
# The seed's scale
# --------------------------------------------------------------------------------------------

SCALE = "% of optimal = 100 eta / eta* (eta* the exact optimum, gamma^7 on the gridworld; no " \
    "offset: 0 = a return of 0, the uniform start reads -39.5%)"


def seed_percent(eta: Any, eta_star: float) -> Any:
    """100 eta / eta*: the seed explainer's scale (optimal = 100, uniform start ~ -40)."""
    return 100.0 * np.asarray(eta, dtype=np.float64) / eta_star


# Overshoot events smaller than this (points of the seed's scale, in the promised gain or in the
# fall) are rounding-size wobbles at a fixed point, not events: the log prints one decimal.
EVENT_MIN_POINTS = 0.1


# --------------------------------------------------------------------------------------------
# Families of bias patterns
# --------------------------------------------------------------------------------------------

FAMILY_SEED = 14  # the issue that declared the families
FAMILY_ESTIMATE_ERROR = 0.05  # the presets' shared estimate error (SHARED_ESTIMATE_ERROR)
FAMILY_SIZES: Mapping[str, int] = {"quick": 8, "standard": 32, "full": 128}
FAMILY_DESCRIPTION = (
    "member i: b = standard-normal pattern over the live (cell, action) pairs (23 non-absorbing "
    "cells x 4 moves; 0 in the goal and the trap) from numpy default_rng([14, i]); "
    "A_hat = A + e (b - E_pi b), e = 0.05; the quick family is members 0..7, standard 0..31, "
    "full 0..127"
)


def live_pairs(mdp: MDP) -> np.ndarray:
    """(S, A) bool: the (cell, action) pairs of non-absorbing cells (where a move matters)."""
    S = mdp.n_states
    absorbing = np.all(mdp.P[np.arange(S), :, np.arange(S)] == 1.0, axis=-1)
    return np.broadcast_to(~absorbing[:, None], (S, mdp.n_actions)).copy()


@functools.cache
def family_bias(member: int) -> np.ndarray:
    """Member ``member`` of the family: a standard-normal bias pattern (S, A) on the live pairs
    of the gridworld (read-only array)."""
    if member < 0:
        raise ValueError(f"family members are numbered from 0, got {member}")
    mdp = gridworld()
    rng = np.random.default_rng([FAMILY_SEED, member])
    bias = rng.standard_normal((mdp.n_states, mdp.n_actions)) * live_pairs(mdp)
    bias.setflags(write=False)
    return bias


# --------------------------------------------------------------------------------------------
# Traced runs
# --------------------------------------------------------------------------------------------


def log_softmax(theta: np.ndarray) -> np.ndarray:
    """log softmax over the last axis, from the logits (finite wherever the logits are)."""
    shifted = theta - theta.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def kl_mean_logits(rho_old: np.ndarray, theta_old: np.ndarray, theta_new: np.ndarray) -> float:
    """E_{s ~ rho_old / sum rho_old} KL(pi_old(.|s) || pi_new(.|s)) (eq. 12's constraint)
    computed from the logits: finite where pi_new underflows to 0 (the probability form gives
    +inf there) and equal to it elsewhere."""
    log_p, log_q = log_softmax(theta_old), log_softmax(theta_new)
    p = np.exp(log_p)
    per_state = np.maximum(np.where(p > 0, p * (log_p - log_q), 0.0).sum(axis=-1), 0.0)
    w = state_weights(rho_old)
    return float(np.where(w > 0, w * per_state, 0.0).sum())


@dataclass(frozen=True, eq=False)
class ClimbTrace:
    """A climb as shown: rounds 0..N (0 = the uniform start) on the seed's scale.

    Arrays have a leading round axis; ``pi``/``adv``/``theta`` only when traced in full."""

    settings: ClimbSettings
    eta_star: float
    eta: np.ndarray  # (N+1,) true return
    percent: np.ndarray  # (N+1,) 100 eta / eta*
    predicted_eta: np.ndarray  # (N,) the surrogate's prediction for round k's new policy
    predicted_percent: np.ndarray  # (N,)
    kl: np.ndarray  # (N,) step mean KL from the logits (finite)
    rule: tuple[str, ...]  # (N,) rule in force per round
    n_backtracks: np.ndarray  # (N,)
    accepted: np.ndarray  # (N,) bool
    events: tuple[Event, ...]
    theta: np.ndarray | None = None  # (N+1, S, A) logits
    pi: np.ndarray | None = None  # (N+1, S, A) move probabilities
    adv: np.ndarray | None = None  # (N+1, S, A) true advantages of that round's policy

    @property
    def rounds(self) -> int:
        return int(self.predicted_eta.size)

    def delta_at(self, k: int) -> float | None:
        """The trust-region size of round k (1-based), None for rules without one."""
        return self.settings.delta if self.rule[k - 1] == TRUST_REGION else None


def _recording(rule: Rule, log: list[tuple[np.ndarray, np.ndarray, np.ndarray]]) -> Rule:
    def wrapped(ctx: RoundContext) -> RuleOutcome:
        out = rule(ctx)
        log.append((ctx.theta, ctx.ev.rho, ctx.ev.adv))
        log.append((out.theta, ctx.ev.rho, ctx.ev.adv))
        return out

    return wrapped


def trace_climb(
    settings: ClimbSettings,
    *,
    bias: np.ndarray,
    rules: Mapping[str, Rule] | None = None,
    estimate: EstimateFn = estimated_advantage,
    full: bool = False,
) -> ClimbTrace:
    """Run the engine (:func:`run_climb`) and read every round as the seed shows it.

    ``rules`` / ``estimate`` inject broken variants, as in :func:`run_climb`. ``full`` keeps the
    per-round logits, move probabilities and true advantages (the explorer's grid)."""
    mdp = gridworld()
    log: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    table = {**DEFAULT_RULES, **(rules or {})}
    recorded = {name: _recording(rule, log) for name, rule in table.items()}
    result = run_climb(settings, mdp=mdp, bias=bias, rules=recorded, estimate=estimate)
    before, after = log[0::2], log[1::2]
    kl = np.array([kl_mean_logits(b[1], b[0], a[0]) for b, a in zip(before, after, strict=True)])
    return _trace_from(result, mdp, before, after, kl, full)


def _trace_from(result: ClimbResult, mdp: MDP, before, after, kl, full: bool) -> ClimbTrace:
    eta_star = result.eta_star
    eta = result.etas()
    predicted = np.array([r.predicted_eta for r in result.records])
    theta = pi = adv = None
    if full:
        theta = np.stack([before[0][0], *[a[0] for a in after]])
        pi = softmax(theta)
        final_adv = evaluate(mdp, pi[-1]).adv
        adv = np.stack([*[b[2] for b in before], final_adv])
    return ClimbTrace(
        settings=result.settings,
        eta_star=eta_star,
        eta=eta,
        percent=seed_percent(eta, eta_star),
        predicted_eta=predicted,
        predicted_percent=seed_percent(predicted, eta_star),
        kl=kl,
        rule=tuple(r.rule for r in result.records),
        n_backtracks=np.array([r.n_backtracks for r in result.records]),
        accepted=np.array([r.accepted for r in result.records]),
        events=tuple(climb_events(result, eta_star)),
        theta=theta,
        pi=pi,
        adv=adv,
    )


def climb_events(result: ClimbResult, eta_star: float) -> list[Event]:
    """The engine's events, with overshoots re-read on the seed's scale and kept only when the
    promised gain and the fall are both at least :data:`EVENT_MIN_POINTS` points."""
    out: list[Event] = []
    etas = result.etas()
    for e in result.events:
        if e.kind != "overshoot":
            out.append(e)
    for k, rec in enumerate(result.records, start=1):
        old, new = seed_percent(etas[k - 1], eta_star), seed_percent(rec.eta, eta_star)
        promised = seed_percent(rec.predicted_eta, eta_star) - old
        fall = old - new
        if promised >= EVENT_MIN_POINTS and fall >= EVENT_MIN_POINTS:
            out.append(Event(k, "overshoot", f"surrogate predicted {promised:+.1f} points, true "
                             f"return moved {-fall:+.1f} points ({old:.1f}% -> {new:.1f}%)"))
    order = {kind: i for i, kind in enumerate(("switch", "overshoot", "backtrack", "rejected",
                                               "kl-over-delta"))}
    return sorted(out, key=lambda e: (e.round, order.get(e.kind, 99)))


# --------------------------------------------------------------------------------------------
# Member statistics (pure functions of one trace's seed-scale columns)
# --------------------------------------------------------------------------------------------

CRASH_POINTS = 10.0  # a one-round fall of >= 10 points (a tenth of the way to optimal) is a crash
FIXED_POINT_BAND = 0.5  # points: a run is at its fixed point once it stays this close to its end
FALL_POINTS = 1.0  # a fall of >= 1 point is a visible fall at the figure's scale
NEAR_TOP_PERCENT = 90.0  # "near the top": at least 90% of optimal on the seed's scale


def worst_fall_under_gain(eta: np.ndarray, predicted_eta: np.ndarray, eta_star: float) -> float:
    """Largest one-round fall (points) among rounds whose surrogate predicted a gain (predicted
    eta > eta before the step by more than ETA_TOL); 0 when none of them fell."""
    pct = seed_percent(eta, eta_star)
    promised = np.asarray(predicted_eta) > eta[:-1] + ETA_TOL
    falls = np.where(promised, pct[:-1] - pct[1:], 0.0)
    return float(max(0.0, falls.max(initial=0.0)))


def worst_fall(percent: np.ndarray, *, from_round: int = 1) -> float:
    """Largest one-round fall (points) in rounds ``from_round``..N; 0 when none fell."""
    falls = percent[from_round - 1:-1] - percent[from_round:]
    return float(max(0.0, falls.max(initial=0.0)))


def rounds_to_fixed_point(percent: np.ndarray, band: float = FIXED_POINT_BAND) -> int:
    """The first round K from which the true return stays within ``band`` points of its final
    value (K = N if only the last round is there)."""
    outside = np.flatnonzero(np.abs(percent - percent[-1]) > band)
    return int(outside.max() + 1) if outside.size else 0


def share_rising_before(eta: np.ndarray, k: int) -> float:
    """Share of rounds 1..k whose true return rose by more than ETA_TOL (1.0 when k = 0)."""
    if k == 0:
        return 1.0
    return float((np.diff(eta[: k + 1]) > ETA_TOL).mean())


def progress(eta: np.ndarray, eta_star: float) -> float:
    """100 (eta_N - eta_0) / (eta* - eta_0): % of the way from the start to optimal."""
    return float(100.0 * (eta[-1] - eta[0]) / (eta_star - eta[0]))


def closest_to_median(values: Sequence[float]) -> int:
    """The presets' rule: the member whose value is closest to the family's median (ties to the
    lowest member index)."""
    x = np.asarray(values, dtype=float)
    return int(np.argmin(np.abs(x - np.median(x))))


# --------------------------------------------------------------------------------------------
# Negative controls: plausible bugs, as broken variants of the engine's rules
# --------------------------------------------------------------------------------------------


def trust_region_without_kl_test(ctx: RoundContext) -> RuleOutcome:
    """BUG: the KL test removed from the line search (only the estimated surrogate gain is
    checked), and beta = sqrt(2 delta / u^T F u) computed for the unit direction u = s / ||s||
    but applied to the raw natural direction s, so the full step is ||s|| times too long and
    nothing brings it back inside the trust region."""
    s = ctx.settings
    direction = natural_gradient(ctx.mdp, ctx.theta, adv=ctx.adv_hat)
    norm = float(np.linalg.norm(direction))
    if not norm > 0:
        return RuleOutcome(ctx.theta, 0, False, ctx.adv_hat)
    unit = direction / norm
    uFu = float((unit * fisher_vector_product(ctx.mdp, ctx.theta, unit)).sum())
    if not (math.isfinite(uFu) and uFu > 0):
        return RuleOutcome(ctx.theta, 0, False, ctx.adv_hat)
    beta = math.sqrt(2.0 * s.delta / uFu)
    believed = replace(ctx.ev, adv=ctx.adv_hat)
    for k in range(s.max_backtracks + 1):
        candidate = ctx.theta + beta * s.backtrack**k * direction
        gain = float(surrogate(ctx.mdp, ctx.pi, softmax(candidate), ev_old=believed))
        if gain - float(ctx.ev.eta) > 0:
            return RuleOutcome(candidate, k, True, ctx.adv_hat)
    return RuleOutcome(ctx.theta, s.max_backtracks, False, ctx.adv_hat)


def kl_penalty_without_horizon(ctx: RoundContext) -> RuleOutcome:
    """BUG: the penalty C = 4 eps gamma, missing the horizon factor 1 / (1 - gamma)^2."""
    C = 4.0 * float(max_abs_advantage(ctx.ev)) * float(ctx.mdp.gamma)
    return kl_penalty_rule(ctx, C=C)


def estimate_error_not_wired(
    adv: np.ndarray, pi: np.ndarray, bias: np.ndarray, estimate_error: float
) -> np.ndarray:
    """BUG: the estimate-error knob is read but never added: A_hat = A."""
    return adv


# The variants a family run can use, by name (names keep the run cache's keys hashable).
VARIANTS: Mapping[str, tuple[Mapping[str, Rule], EstimateFn]] = {
    "": ({}, estimated_advantage),
    "trust-region-without-kl-test": ({TRUST_REGION: trust_region_without_kl_test},
                                     estimated_advantage),
    "kl-penalty-without-horizon": ({KL_PENALTY: kl_penalty_without_horizon}, estimated_advantage),
    "estimate-error-not-wired": ({}, estimate_error_not_wired),
}


# Variants whose advantage estimate ignores the bias pattern (every member runs the same climb).
_IGNORE_BIAS = frozenset({"estimate-error-not-wired"})


def member_trace(settings: ClimbSettings, member: int, variant: str = "") -> ClimbTrace:
    """The climb of family member ``member`` under ``settings`` (per-round columns only),
    cached per process so claims sharing a run (the trust region at delta 0.02) run it once.
    Where the estimate cannot depend on the pattern (estimate error 0: A_hat = A + 0 exactly,
    or a variant that drops the estimate) member 0's run stands for every member."""
    if settings.estimate_error == 0.0 or variant in _IGNORE_BIAS:
        member = 0
    return _member_trace(settings, member, variant)


@functools.lru_cache(maxsize=4096)
def _member_trace(settings: ClimbSettings, member: int, variant: str) -> ClimbTrace:
    rules, estimate = VARIANTS[variant]
    return trace_climb(settings, bias=family_bias(member), rules=rules, estimate=estimate)


# --------------------------------------------------------------------------------------------
# Presets as members of the families
# --------------------------------------------------------------------------------------------

# The member of the quick family each preset shows, picked by closest_to_median on the statistic
# of the preset's claim (claims.catalogue.climb.claims: PRESET_STATISTICS);
# tests/test_climb_family.py re-derives them. The crawl ignores the estimate (e = 0), so its pattern
# matters only after a switch.
PRESET_MEMBERS: Mapping[str, int] = {
    "overshoot": 2,
    "trust-region": 3,
    "crawl": 5,
    "too-wide": 4,
}


def preset_bias(preset: Preset | str) -> np.ndarray:
    """The bias pattern a preset runs with: its member of the quick family."""
    p = get_preset(preset) if isinstance(preset, str) else preset
    return family_bias(PRESET_MEMBERS[p.slug])
