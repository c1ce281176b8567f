"""The climb explorer: one self-contained HTML page (``trpo-claims climb --html FILE``).

Every number the page shows is computed here by the Python engine and embedded as JSON in the
page (no JavaScript port of the engine, no network): for each preset, the run at every value of
the knob grid (:data:`KNOB_DELTAS` x :data:`KNOB_ERRORS`), and at the preset's own knobs a run
switched at every round to each other step rule. The page's knobs pick among those runs; a value
off the grid, a negative or non-numeric value, an unknown preset or a switch round past the end
leave the run as it is and show a message. Switching *to* the KL penalty (Algorithm 1, a solver
of ~30 ms a round) is not offered: it is a preset of its own, and the page can switch away from
it at any round.

Per round the page reads: the true return and the surrogate's prediction on the seed's scale
(100 eta / eta*), the step's mean KL (from the logits, finite) against delta, backtracks, the
events, and for every cell the move probabilities (3 decimals) and each move's true advantage
(4 decimals), rounded here (and stored as integers in units of that decimal), so the page
shows the engine's numbers at those precisions.

The template (``assets/climb_explorer.html``) ships with the package (pyproject package-data).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from claims.catalogue.climb.family import (
    EVENT_MIN_POINTS,
    PRESET_MEMBERS,
    SCALE,
    ClimbTrace,
    family_bias,
    trace_climb,
)
from claims.framework.serialize import write_text_atomic
from trpo_ref.tabular.climb import (
    KL_PENALTY,
    NO_TRUST_REGION,
    PRESETS,
    TRUST_REGION,
    UPDATE_RULES,
    RoundContext,
    RuleOutcome,
    settings_for,
)
from trpo_ref.tabular.mdp import ACTION_NAMES, GOAL_STATE, GRID_SIZE, START_STATE, TRAP_STATE

KNOB_DELTAS: tuple[float, ...] = (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)
KNOB_ERRORS: tuple[float, ...] = (0.0, 0.02, 0.05, 0.1, 0.2)
SWITCH_TARGETS: tuple[str, ...] = (TRUST_REGION, NO_TRUST_REGION)
PROB_DECIMALS, ADV_DECIMALS = 3, 4
_PLACEHOLDER = "/*__CLIMB_DATA__*/null"


def _num(x: float) -> float:
    """A float with 15 significant digits (within 1e-12 of the engine's at these sizes; the page
    shows at most 4): shorter JSON than repr."""
    return float(f"{float(x):.15g}")


def replay_until(base: ClimbTrace, switch_at: int) -> dict[str, Any]:
    """Rules that replay ``base``'s logits for rounds 1..switch_at-1 (no solve: the engine then
    evaluates exactly the states ``base`` went through, bit for bit), so a run switched at
    ``switch_at`` costs only its rounds from the switch on."""
    assert base.theta is not None
    rounds = {"k": 0}

    def replay(ctx: RoundContext) -> RuleOutcome:
        rounds["k"] += 1
        k = rounds["k"]
        believed = ctx.ev.adv if base.rule[k - 1] == KL_PENALTY else ctx.adv_hat
        return RuleOutcome(base.theta[k], int(base.n_backtracks[k - 1]),
                           bool(base.accepted[k - 1]), believed)

    return {base.settings.rule: replay}


class _Grids:
    """Distinct per-round grids (probabilities and advantages, rounded), stored once each."""

    def __init__(self) -> None:
        self.table: list[list[int]] = []
        self.index: dict[tuple[int, ...], int] = {}

    def add(self, pi: np.ndarray, adv: np.ndarray) -> int:
        # integers in units of the last shown decimal (compact JSON); the page divides
        row = tuple(int(v) for v in np.concatenate([
            np.round(pi.ravel() * 10**PROB_DECIMALS), np.round(adv.ravel() * 10**ADV_DECIMALS)]))
        if row not in self.index:
            self.index[row] = len(self.table)
            self.table.append(list(row))
        return self.index[row]


def _columns(trace: ClimbTrace, grids: _Grids, first: int) -> dict[str, Any]:
    """Rounds first..N of a trace (first >= 1), and the grids of states first..N."""
    assert trace.pi is not None and trace.adv is not None
    sl = slice(first - 1, None)
    return {
        "percent": [_num(x) for x in trace.percent[first:]],
        "predicted": [_num(x) for x in trace.predicted_percent[sl]],
        "kl": [_num(x) for x in trace.kl[sl]],
        "backtracks": trace.n_backtracks[sl].tolist(),
        "accepted": [bool(a) for a in trace.accepted[sl]],
        "rule": [UPDATE_RULES.index(r) for r in trace.rule[sl]],
        "grid": [grids.add(trace.pi[k], trace.adv[k]) for k in range(first, trace.rounds + 1)],
        "events": [e.to_json() for e in trace.events if e.round >= first],
    }


def _key(slug: str, delta: float, error: float, switch_at: int | None = None,
          switch_to: str | None = None) -> str:
    key = f"{slug}|{delta:g}|{error:g}"
    return key if switch_at is None else f"{key}|{switch_at}|{switch_to}"


def explorer_data(
    *,
    rounds: int | None = None,
    deltas: Sequence[float] = KNOB_DELTAS,
    errors: Sequence[float] = KNOB_ERRORS,
    presets: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Every run the page can show, computed by the engine (see the module docstring).
    ``rounds``, the grids and ``presets`` shrink the page (tests); defaults: the presets' 60."""
    chosen = [p for p in PRESETS if presets is None or p.slug in presets]
    grids = _Grids()
    runs: dict[str, Any] = {}
    preset_info = []
    for p in chosen:
        bias = family_bias(PRESET_MEMBERS[p.slug])
        n = p.rounds if rounds is None else rounds
        knob_deltas = sorted({*deltas, p.delta})
        knob_errors = sorted({*errors, p.estimate_error})
        for delta in knob_deltas:
            for error in knob_errors:
                s = settings_for(p, rounds=n, delta=delta, estimate_error=error)
                t = trace_climb(s, bias=bias, full=True)
                runs[_key(p.slug, delta, error)] = {
                    "start": _num(t.percent[0]), "start_grid": grids.add(t.pi[0], t.adv[0]),
                    **_columns(t, grids, 1)}
        base = trace_climb(settings_for(p, rounds=n), bias=bias, full=True)
        for target in SWITCH_TARGETS:
            if target == p.rule:
                continue
            for k in range(1, n + 1):
                s = replace(settings_for(p, rounds=n), switch_at=k, switch_to=target)
                t = trace_climb(s, bias=bias, rules=replay_until(base, k), full=True)
                runs[_key(p.slug, p.delta, p.estimate_error, k, target)] = {
                    "base": _key(p.slug, p.delta, p.estimate_error), "from": k,
                    **_columns(t, grids, k)}
        preset_info.append({
            "slug": p.slug, "name": p.name, "rule": p.rule, "rounds": n, "delta": p.delta,
            "estimate_error": p.estimate_error, "step_size": p.step_size,
            "behaviour": p.behaviour, "member": PRESET_MEMBERS[p.slug],
            "deltas": knob_deltas, "errors": knob_errors,
            "switch_targets": [r for r in SWITCH_TARGETS if r != p.rule],
        })
    return {
        "presets": preset_info,
        "rules": list(UPDATE_RULES),
        "runs": runs,
        "grids": grids.table,
        "grid": {"size": GRID_SIZE, "start": START_STATE, "goal": GOAL_STATE,
                 "trap": TRAP_STATE, "actions": list(ACTION_NAMES)},
        "scale": SCALE,
        "event_min_points": EVENT_MIN_POINTS,
        "decimals": {"probability": PROB_DECIMALS, "advantage": ADV_DECIMALS},
    }


def render_explorer(data: dict[str, Any], *, start_preset: str | None = None) -> str:
    """The page: the packaged template with ``data`` embedded (``</`` escaped for <script>)."""
    template = resources.files("claims.catalogue.climb").joinpath(
        "assets/climb_explorer.html").read_text(encoding="utf-8")
    payload = dict(data, start_preset=start_preset)
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")
    if _PLACEHOLDER not in template:
        raise RuntimeError("climb_explorer.html lost its data placeholder")
    return template.replace(_PLACEHOLDER, text)


def write_explorer(path: Path | str, *, start_preset: str | None = None,
                   **data_options: Any) -> Path:
    """Compute :func:`explorer_data` and write the page to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, render_explorer(explorer_data(**data_options),
                                            start_preset=start_preset))
    return path
