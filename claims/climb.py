"""The seed explainer's gridworld climb: one claim per preset, and the climb's figure.

The simulation is :mod:`trpo_ref.tabular.climb` (exact, deterministic). Each preset's described
behaviour is a claim with a measured statistic and a rule declared from the description; each
has a negative control: the same preset with one plausible bug (a small broken variant below,
swapped into the simulation through ``run_climb(rules=..., estimate=...)``) that removes the
behaviour, on which the same rule must give REFUTED.

Kind is empirical: the outcome of a simulation rather than a theorem; the simulation is
deterministic, so there is no sampling error and no interval (n = the number of rounds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from claims.core import Claim, DecisionRule, Evidence, Kind, Verdict
from claims.plotting import pyplot
from claims.registry import register
from trpo_ref.tabular import (
    fisher_vector_product,
    natural_gradient,
    softmax,
    surrogate,
)
from trpo_ref.tabular.bounds import max_abs_advantage
from trpo_ref.tabular.climb import (
    ETA_TOL,
    KL_PENALTY,
    NO_TRUST_REGION,
    TRUST_REGION,
    ClimbResult,
    EstimateFn,
    Preset,
    RoundContext,
    Rule,
    RuleOutcome,
    estimated_advantage,
    get_preset,
    kl_penalty_rule,
    run_climb,
    settings_for,
)

SAGE, CLAY, GREY = "#7d9b76", "#c8754a", "#8a8a8a"

BIAS_DESCRIPTION = (
    "A_hat = A + e (b - E_pi b): b = +1 on the worst action under the optimal policy "
    "(argmin Q*) in the 14 non-absorbing cells at least half the longest distance from the "
    "goal, centred under the current policy per state"
)
NORMALIZATION = (
    "% of optimal = 100 (eta - eta_uniform) / (eta* - eta_uniform): 0 = the uniform start, "
    "100 = optimal"
)


# --------------------------------------------------------------------------------------------
# Evidence helpers shared by the claims and the CLI
# --------------------------------------------------------------------------------------------


def climb_data(result: ClimbResult) -> dict[str, Any]:
    """The climb as JSON-ready columns: round 0 (start) separately, rounds 1..N as lists."""
    return {
        "start_eta": result.start_eta,
        "start_percent": result.start_percent,
        **result.columns(),
        "events": [e.to_json() for e in result.events],
    }


def climb_config(result: ClimbResult, *, seed: int, control: str | None) -> dict[str, Any]:
    return {
        "seed": seed,
        "seed_note": "unused: the simulation is deterministic (exact evaluation, no sampling)",
        **result.settings.to_json(),
        "eta_star": result.eta_star,
        "eta_uniform": result.eta_ref,
        "normalization": NORMALIZATION,
        "estimate": BIAS_DESCRIPTION,
        "start_policy": "uniform (logits 0)",
        "mdp": "gridworld() 5x5, gamma 0.95",
        "negative_control": control,
    }


def _percents(data: Mapping[str, Any]) -> np.ndarray:
    """True % of optimal, rounds 0..N."""
    return np.asarray([data["start_percent"], *data["percent"]], dtype=float)


def _etas(data: Mapping[str, Any]) -> np.ndarray:
    """True returns, rounds 0..N."""
    return np.asarray([data["start_eta"], *data["eta"]], dtype=float)


def _no_rounds(data: Mapping[str, Any]) -> bool:
    return len(data.get("eta", [])) == 0


def _inconclusive_no_rounds() -> Verdict:
    return Verdict.inconclusive("the evidence holds no rounds: nothing to judge")


def _run_preset(
    claim_id: str,
    preset: Preset,
    tier: str,
    budget: Mapping[str, Any],
    *,
    control: bool,
    seed: int,
    control_text: str,
    rules: Mapping[str, Rule] | None = None,
    estimate: EstimateFn = estimated_advantage,
) -> tuple[ClimbResult, Evidence]:
    settings = settings_for(preset, rounds=int(budget["rounds"]))
    if control:
        result = run_climb(settings, rules=rules, estimate=estimate)
    else:
        result = run_climb(settings)
    evidence = Evidence(
        claim_id,
        tier,
        control,
        climb_config(result, seed=seed, control=control_text if control else None),
        climb_data(result),
        artifacts={"final_pi": result.final_pi},
    )
    percents = _percents(evidence.data)
    evidence.summary.update(
        {
            "rounds": len(result.records),
            "final_percent": float(percents[-1]),
            "max_percent": float(percents.max()),
            "min_percent_after_start": float(percents[1:].min()),
            "n_overshoot_events": sum(e.kind == "overshoot" for e in result.events),
            "n_rejected": sum(not r.accepted for r in result.records),
            "max_step_kl": float(max(r.kl_mean for r in result.records)),
        }
    )
    return result, evidence


def _budgets(preset: Preset) -> dict[str, dict[str, Any] | None]:
    # Deterministic: more budget buys nothing; every tier runs the preset as defined.
    return {tier: {"rounds": preset.rounds} for tier in ("quick", "standard", "full")}


# --------------------------------------------------------------------------------------------
# Statistics (pure functions of the evidence's data)
# --------------------------------------------------------------------------------------------


def worst_fall_under_promised_gain(data: Mapping[str, Any]) -> tuple[float, int | None, int]:
    """Largest one-round fall of the true % of optimal among rounds whose surrogate predicted a
    gain (predicted eta > eta before the step, beyond ETA_TOL).

    Returns (worst fall in points (negative if every such round rose; nan if there is no such
    round), the round where it happened, number of rounds with a predicted gain).
    """
    etas, pct = _etas(data), _percents(data)
    predicted = np.asarray(data["predicted_eta"], dtype=float)
    promised = predicted > etas[:-1] + ETA_TOL
    if not promised.any():
        return float("nan"), None, 0
    falls = np.where(promised, pct[:-1] - pct[1:], -np.inf)
    k = int(falls.argmax())
    return float(falls[k]), k + 1, int(promised.sum())


def share_improving(data: Mapping[str, Any]) -> tuple[float, int]:
    """Share of rounds whose true return rises by more than ETA_TOL; (share, n_improving)."""
    diffs = np.diff(_etas(data))
    n_up = int((diffs > ETA_TOL).sum())
    return n_up / diffs.size, n_up


def progress_toward_optimal(data: Mapping[str, Any], eta_star: float) -> float:
    """100 (eta_N - eta_0) / (eta* - eta_0): % of the way from the start to optimal."""
    etas = _etas(data)
    return float(100.0 * (etas[-1] - etas[0]) / (eta_star - etas[0]))


WOBBLE_FALL_POINTS = 0.1  # a fall counts toward the wobble beyond this, in points of %


def share_falling(
    data: Mapping[str, Any], min_fall: float = WOBBLE_FALL_POINTS
) -> tuple[float, int]:
    """Share of rounds whose true % of optimal falls by more than ``min_fall`` points."""
    falls = -np.diff(_percents(data))
    n_down = int((falls > min_fall).sum())
    return n_down / falls.size, n_down


# --------------------------------------------------------------------------------------------
# Negative controls: plausible bugs, as small broken variants
# --------------------------------------------------------------------------------------------


def _no_trust_region_bug_normalized_visitation(ctx: RoundContext) -> RuleOutcome:
    """BUG: the natural gradient built from the *normalized* visitation (rho / sum rho) in the
    policy gradient as well as in the Fisher, so the factor sum(rho) = 1 / (1 - gamma) is lost
    and the fixed step is 20 x (= 1 / (1 - gamma)) smaller than intended."""
    direction = natural_gradient(ctx.mdp, ctx.theta, adv=ctx.adv_hat) / ctx.ev.rho.sum()
    return RuleOutcome(ctx.theta + ctx.settings.step_size * direction, 0, True, ctx.adv_hat)


def _trust_region_bug_unit_beta_no_kl_check(ctx: RoundContext) -> RuleOutcome:
    """BUG: beta = sqrt(2 delta / u^T F u) computed for the unit direction u = s / ||s|| but
    applied to the raw direction s (the step is ||s|| times too long), and the line search
    checks only that the estimated surrogate improves: the KL test is dropped."""
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
        gain = float(surrogate(ctx.mdp, ctx.pi, softmax(candidate), ev_old=believed)) - float(
            ctx.ev.eta
        )
        if gain > 0:
            return RuleOutcome(candidate, k, True, ctx.adv_hat)
    return RuleOutcome(ctx.theta, s.max_backtracks, False, ctx.adv_hat)


def _kl_penalty_bug_no_horizon(ctx: RoundContext) -> RuleOutcome:
    """BUG: the penalty C = 4 eps gamma, missing the horizon factor 1 / (1 - gamma)^2."""
    C = 4.0 * float(max_abs_advantage(ctx.ev)) * float(ctx.mdp.gamma)
    return kl_penalty_rule(ctx, C=C)


def _estimate_bug_error_not_wired(
    adv: np.ndarray, pi: np.ndarray, bias: np.ndarray, estimate_error: float
) -> np.ndarray:
    """BUG: the estimate-error knob is read but never added: A_hat = A."""
    return adv


# --------------------------------------------------------------------------------------------
# The figure
# --------------------------------------------------------------------------------------------


def plot_climb(data: Mapping[str, Any], path: Path | str, *, title: str) -> Path:
    """Write the climb's PNG: true % of optimal (solid, sage), the surrogate's prediction for
    each round (dashed, clay-orange), optimal as a dashed grey ceiling at 100%, a dotted line and
    label where the update rule changes, and markers on overshoots.

    ``data`` is :func:`climb_data`'s dict (or an Evidence's data).
    """
    plt = pyplot()

    path = Path(path)
    pct = _percents(data)
    rounds = np.arange(pct.size)
    predicted = np.asarray(data["predicted_percent"], dtype=float)
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    ax.axhline(100.0, color=GREY, ls="--", lw=1.0, label="optimal (100%)")
    ax.plot(rounds, pct, color=SAGE, lw=2.0, marker="o", ms=2.5, label="true return")
    # Keep the view on the climb: predictions far above it are clipped and labelled at the top.
    low = min(0.0, float(pct.min()), float(predicted.min()) if predicted.size else 0.0) - 5.0
    high = max(110.0, float(pct.max()) + 5.0)
    ceiling = min(max(high, float(predicted.max()) + 5.0 if predicted.size else high), 200.0)
    ax.plot(
        rounds[1:],
        np.minimum(predicted, ceiling),
        color=CLAY,
        lw=1.5,
        ls="--",
        label="surrogate's prediction",
    )
    for k in np.flatnonzero(predicted > ceiling):
        ax.annotate(
            f"{predicted[k]:.0f}%",
            (k + 1, ceiling),
            xytext=(2, -9),
            textcoords="offset points",
            fontsize=7,
            color=CLAY,
        )
    over = [e["round"] for e in data.get("events", []) if e["kind"] == "overshoot"]
    if over:
        ax.plot(
            over,
            pct[over],
            ls="none",
            marker="v",
            ms=6,
            color=CLAY,
            mec="black",
            mew=0.5,
            label="overshoot (gain promised, return fell)",
        )
    rules = list(data["rule"])
    for k in range(1, len(rules)):
        if rules[k] != rules[k - 1]:
            x = k + 0.5  # rule changes between round k (index k - 1) and round k + 1
            ax.axvline(x, color="black", ls=":", lw=1.0)
            ax.annotate(
                f"-> {rules[k]}",
                (x, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(3, -12),
                textcoords="offset points",
                fontsize=8,
            )
    ax.set_xlim(0, max(1, pct.size - 1))
    ax.set_ylim(max(low, -200.0), ceiling + 2.0)
    ax.set_xlabel("round")
    ax.set_ylabel("% of optimal (0 = uniform policy)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=4, frameon=False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


class _ClimbClaim(Claim):
    """Shared run/figure code; subclasses set the preset, the control and the rule."""

    preset: ClassVar[Preset]
    slug: ClassVar[str]
    control_rules: ClassVar[Mapping[str, Rule] | None] = None
    control_estimate: ClassVar[EstimateFn] = staticmethod(estimated_advantage)

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = self.budget(tier)
        assert budget is not None
        _, evidence = _run_preset(
            self.id,
            self.preset,
            tier,
            budget,
            control=control,
            seed=seed,
            control_text=self.negative_control,
            rules=self.control_rules,
            estimate=self.control_estimate,
        )
        evidence.summary.update(self._summary(evidence))
        return evidence

    def _summary(self, evidence: Evidence) -> dict[str, Any]:
        return {}

    def figures(self, evidence: Evidence, out_dir: Path) -> list[Path]:
        if _no_rounds(evidence.data):
            return []
        suffix = "_control" if evidence.control else ""
        kind = "negative control" if evidence.control else "preset"
        title = f"Gridworld climb, {kind}: {self.preset.name}"
        return [
            plot_climb(evidence.data, Path(out_dir) / f"climb_{self.slug}{suffix}.png", title=title)
        ]


_SOURCE = "seed explainer: gridworld climb, preset '{}'"


def _protocol(preset: Preset) -> str:
    return (
        f"Run trpo_ref.tabular.climb.run_climb with the preset '{preset.name}' "
        f"(rule {preset.rule}, {preset.rounds} rounds, delta {preset.delta:g}, estimate error "
        f"{preset.estimate_error:g}, fixed step {preset.step_size:g}) on the 5x5 gridworld from "
        "the uniform policy. Each round the policy is solved exactly; the rule steps on the "
        f"estimated advantage ({BIAS_DESCRIPTION}). Recorded per round: the exact return and the "
        "surrogate's prediction (eq. 3 on the advantage the rule used), as % of optimal "
        f"({NORMALIZATION}), the step's exact mean KL and the backtracks. Deterministic."
    )


# --------------------------------------------------------------------------------------------
# The four claims
# --------------------------------------------------------------------------------------------

_OVERSHOOT = get_preset("overshoot")


@register
class ClimbOvershoot(_ClimbClaim):
    preset = _OVERSHOOT
    slug = "overshoot"
    id = "climb.overshoot"
    title = "No trust region: the surrogate promises gains while the true return crashes"
    statement = (
        "Without a trust region (a fixed large natural-gradient step on the estimated "
        "advantage), the surrogate keeps promising gains while the true return lurches and "
        "crashes."
    )
    source = _SOURCE.format(_OVERSHOOT.name)
    kind = Kind.EMPIRICAL
    protocol = _protocol(_OVERSHOOT)
    negative_control = (
        "The natural gradient built from the normalized visitation in the policy gradient as "
        "well as the Fisher, losing the factor sum(rho) = 1 / (1 - gamma): the fixed step is "
        "20x smaller than intended (mixing normalized and unnormalized rho is an easy slip)."
    )
    rule = DecisionRule(
        statistic="worst one-round fall of the true return (points of % of optimal) in a round "
        "whose surrogate predicted a gain",
        comparator=">=",
        threshold=10.0,
        description=(
            "SUPPORTED iff in some round the surrogate predicted a gain and the true return "
            "fell by >= 10 points: a tenth of the whole climb from uniform to optimal lost in "
            "one promised-gain round is a crash, far beyond rounding (1e-12) or a wobble."
        ),
    )
    budgets: ClassVar[dict[str, dict[str, Any] | None]] = _budgets(_OVERSHOOT)
    control_rules: ClassVar[Mapping[str, Rule] | None] = {
        NO_TRUST_REGION: _no_trust_region_bug_normalized_visitation
    }

    def _summary(self, evidence: Evidence) -> dict[str, Any]:
        fall, at, n_promised = worst_fall_under_promised_gain(evidence.data)
        return {
            "worst_fall_points": fall,
            "worst_fall_round": at,
            "n_rounds_predicting_gain": n_promised,
        }

    def decide(self, evidence: Evidence) -> Verdict:
        if _no_rounds(evidence.data):
            return _inconclusive_no_rounds()
        fall, at, n_promised = worst_fall_under_promised_gain(evidence.data)
        s = evidence.summary
        n = len(evidence.data["eta"])
        if at is None:
            message = "the surrogate never predicted a gain, so no promised-gain round fell."
        else:
            message = (
                f"{n_promised}/{n} rounds predicted a gain; worst fall {fall:.1f} points at "
                f"round {at}; {s['n_overshoot_events']} overshoot rounds (gain promised, return "
                f"fell); true return ranged {s['min_percent_after_start']:.1f}%.."
                f"{s['max_percent']:.1f}% after the start, final {s['final_percent']:.1f}%."
            )
        return self.rule.judge(fall, n=n, message=message)


_TRUST_REGION = get_preset("trust-region")


@register
class ClimbTrustRegion(_ClimbClaim):
    preset = _TRUST_REGION
    slug = "trust_region"
    id = "climb.trust_region"
    title = "Trust region (delta 0.02): the true return climbs almost every round"
    statement = (
        "With a trust region of delta = 0.02 the true return climbs almost every round, "
        "toward optimal, with the same misleading advantage estimate that makes the big step "
        "crash."
    )
    source = _SOURCE.format(_TRUST_REGION.name)
    kind = Kind.EMPIRICAL
    protocol = _protocol(_TRUST_REGION)
    negative_control = (
        "beta = sqrt(2 delta / u^T F u) computed for the unit direction u = s / ||s|| but "
        "applied to the raw natural direction s (step ||s|| times too long), and the KL test "
        "dropped from the line search (only the estimated surrogate gain is checked): nothing "
        "keeps the step inside the trust region."
    )
    rule = DecisionRule(
        statistic="share of rounds whose true return rises (by more than 1e-12)",
        comparator=">=",
        threshold=0.9,
        description=(
            "SUPPORTED iff at least 90% of the rounds raise the exact return: 'almost every "
            "round' read as at most one round in ten that does not climb (a rejected step or a "
            "fall both count against it); 1e-12 is above float64 rounding of exact evaluation."
        ),
    )
    budgets: ClassVar[dict[str, dict[str, Any] | None]] = _budgets(_TRUST_REGION)
    control_rules: ClassVar[Mapping[str, Rule] | None] = {
        TRUST_REGION: _trust_region_bug_unit_beta_no_kl_check
    }

    def _summary(self, evidence: Evidence) -> dict[str, Any]:
        share, n_up = share_improving(evidence.data)
        return {
            "share_improving": share,
            "n_improving": n_up,
            "n_falling": int((np.diff(_etas(evidence.data)) < -ETA_TOL).sum()),
            "total_backtracks": int(sum(evidence.data["n_backtracks"])),
        }

    def decide(self, evidence: Evidence) -> Verdict:
        if _no_rounds(evidence.data):
            return _inconclusive_no_rounds()
        share, n_up = share_improving(evidence.data)
        s = evidence.summary
        n = len(evidence.data["eta"])
        message = (
            f"{n_up}/{n} rounds raised the true return ({s['n_falling']} fell, "
            f"{s['n_rejected']} rejected); final {s['final_percent']:.1f}% of optimal "
            f"(best {s['max_percent']:.1f}%); {s['total_backtracks']} backtracks in all; "
            f"largest step KL {s['max_step_kl']:.3g} (delta {evidence.config['delta']:g})."
        )
        return self.rule.judge(share, n=n, message=message)


_CRAWL = get_preset("crawl")


@register
class ClimbCrawl(_ClimbClaim):
    preset = _CRAWL
    slug = "crawl"
    id = "climb.crawl"
    title = "KL penalty with the theory's C: the climb barely moves"
    statement = (
        "With the penalty coefficient the theory recommends (Algorithm 1, C = 4 eps gamma / "
        "(1 - gamma)^2), the steps are so timid that the climb barely moves."
    )
    source = _SOURCE.format(_CRAWL.name)
    kind = Kind.EMPIRICAL
    protocol = _protocol(_CRAWL)
    negative_control = (
        "The penalty coefficient missing its horizon factor, C = 4 eps gamma instead of "
        "4 eps gamma / (1 - gamma)^2 (dropping the 1 / (1 - gamma)^2 that turns per-step into "
        "discounted-sum quantities): 400x bolder steps on the gridworld (gamma 0.95)."
    )
    rule = DecisionRule(
        statistic="progress toward optimal after the preset's rounds (% of the way from the "
        "start to optimal)",
        comparator="<=",
        threshold=10.0,
        description=(
            "SUPPORTED iff after the preset's 60 rounds (the rounds the trust-region preset "
            "gets) the return has covered at most 10% of the way from the start to optimal: "
            "'barely moves' read as an order of magnitude short of the goal."
        ),
    )
    budgets: ClassVar[dict[str, dict[str, Any] | None]] = _budgets(_CRAWL)
    control_rules: ClassVar[Mapping[str, Rule] | None] = {KL_PENALTY: _kl_penalty_bug_no_horizon}

    def _summary(self, evidence: Evidence) -> dict[str, Any]:
        return {
            "progress_percent": progress_toward_optimal(evidence.data, evidence.config["eta_star"]),
            "mean_step_kl": float(np.mean(evidence.data["kl_mean"])),
        }

    def decide(self, evidence: Evidence) -> Verdict:
        if _no_rounds(evidence.data):
            return _inconclusive_no_rounds()
        progress = progress_toward_optimal(evidence.data, evidence.config["eta_star"])
        s = evidence.summary
        n = len(evidence.data["eta"])
        message = (
            f"after {n} rounds the return covered {progress:.2f}% of the way from the start to "
            f"optimal (final {s['final_percent']:.2f}% of optimal); mean step KL "
            f"{s['mean_step_kl']:.3g}, largest {s['max_step_kl']:.3g}."
        )
        return self.rule.judge(progress, n=n, message=message)


_TOO_WIDE = get_preset("too-wide")


@register
class ClimbTooWide(_ClimbClaim):
    preset = _TOO_WIDE
    slug = "too_wide"
    id = "climb.too_wide"
    title = "Trust region too wide (delta 0.5) with estimation error: the true return wobbles"
    statement = (
        "With a loose trust region (delta = 0.5) and estimation error in the advantage, the "
        "true return wobbles and can settle short of optimal."
    )
    source = _SOURCE.format(_TOO_WIDE.name)
    kind = Kind.EMPIRICAL
    protocol = _protocol(_TOO_WIDE) + (
        " Wobble: the share of rounds whose true % of optimal falls by more than "
        f"{WOBBLE_FALL_POINTS:g} point; the shortfall (100 - final %) is reported alongside."
    )
    negative_control = (
        "The estimate-error knob read but never added to the advantage (A_hat = A): the same "
        "loose trust region on exact advantages, which a natural step cannot make fall."
    )
    rule = DecisionRule(
        statistic=f"share of rounds whose true return falls by more than {WOBBLE_FALL_POINTS:g} "
        "point of % of optimal",
        comparator=">=",
        threshold=0.1,
        description=(
            "SUPPORTED iff at least 10% of the rounds lose more than 0.1 point: 'wobbles' "
            "read as the trust region's promise (>= 90% of rounds climb) visibly broken, with "
            "falls well beyond rounding. 'Can settle short' is optional in the description, so "
            "the shortfall is reported, not judged."
        ),
    )
    budgets: ClassVar[dict[str, dict[str, Any] | None]] = _budgets(_TOO_WIDE)
    control_estimate: ClassVar[EstimateFn] = staticmethod(_estimate_bug_error_not_wired)

    def _summary(self, evidence: Evidence) -> dict[str, Any]:
        share, n_down = share_falling(evidence.data)
        pct = _percents(evidence.data)
        falls = -np.diff(pct)
        last = pct[-10:]
        return {
            "share_falling": share,
            "n_falling": n_down,
            "largest_fall_points": float(falls.max()),
            "shortfall_points": float(100.0 - pct[-1]),
            "last10_min_percent": float(last.min()),
            "last10_max_percent": float(last.max()),
        }

    def decide(self, evidence: Evidence) -> Verdict:
        if _no_rounds(evidence.data):
            return _inconclusive_no_rounds()
        share, n_down = share_falling(evidence.data)
        s = evidence.summary
        n = len(evidence.data["eta"])
        message = (
            f"{n_down}/{n} rounds fell by more than {WOBBLE_FALL_POINTS:g} point (largest fall "
            f"{s['largest_fall_points']:.1f}); final {s['final_percent']:.1f}% of optimal "
            f"(shortfall {s['shortfall_points']:.1f} points; last 10 rounds "
            f"{s['last10_min_percent']:.1f}..{s['last10_max_percent']:.1f}%)."
        )
        return self.rule.judge(share, n=n, message=message)
