"""The suite's step protocol for any implementation: real batches, consecutive updates, each one
measured by the suite from the action distributions the implementation returns.

For each (task, seed) the suite takes a real batch (states, actions, standardized GAE advantages
from a short, clean ``trpo_ref`` training: :func:`suite_batch`), the implementation makes a
fresh policy for the task and performs ``updates`` consecutive updates on that batch with KL
bound ``delta``, each starting from where the previous one left the policy. Repeating the
update walks the policy away from the batch's sampling policy, into the region where the
quadratic model of the KL is poor and a line search has to backtrack or give up: that is where
restoring the old parameters and checking the KL matter.

One (task, seed, delta, batch) sequence is a *cell* (:class:`CellSpec`); it runs in a worker
(:mod:`.worker`) and gives a :class:`Cell`: an :class:`UpdateRecord` per update, measured by
the paper's definitions,

- KL(pi_old || pi_new) per state, summed over action dimensions; its mean (eq. 12) and max;
- the surrogate's change L(pi_new) - L(pi_old) = mean_n (r_n - 1) A_n with r_n =
  pi_new(a_n | s_n) / pi_old(a_n | s_n) and the batch's standardized advantages (eq. 14);
- whether the policy is exactly unchanged (a rejected update, bit for bit);
- where the implementation offers the ``snapshot`` capability and the cell asks for it, the
  direction of the step against the implementation's own shorter steps from the same state
  (:func:`direction_chain`, in :func:`fisher_coordinates`),

and, when the implementation fails inside the cell, a :class:`Crash`: which update, what it
raised (or that it hung, died, or returned something malformed) and the state it left, read by
the suite (unchanged, changed, non-finite or unknown). A crash ends its cell, is evidence for
the claims, and never makes a claim ERROR; the other cells still run.

Besides the real batch, two *probe* batches make line searches act at delta = 0.01
(:func:`probe_batch`): the same states and actions with advantages A_n = +/- log pi_0(a_n | s_n)
(standardized), pi_0 the implementation's own fresh policy. ``sharpen`` (+) rewards the actions
the policy already prefers, so the natural step narrows the policy, where KL(old || new) grows
faster than its quadratic model; ``broaden`` (-) widens it, where KL(new || old) does. Whichever
KL an implementation's line search tests, one of the two makes its full step overshoot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from claims.catalogue.implementation import worker
from claims.catalogue.step.batches import task_config, trained_batch
from claims.faults.forks import active_bug, bugs_suspended, seeded_bug
from claims.framework.core import Budget, Claim, Evidence, Kind
from claims.framework.impl import (
    REFERENCE_SPEC,
    ActionDistributions,
    ImplementationError,
    StepBatch,
    StepOutcome,
    UnderTest,
    capabilities,
    under_test,
    unsupported_tasks,
)
from trpo_ref.deep.runtime import torch_threads

BATCHES = ("real", "sharpen", "broaden")
REFERENCE_SHRINK = 100.0  # the direction reference is an update at delta / 100 (steps 10x shorter)
# impl.ls_direction: the sharpest turn allowed along the chain (:func:`direction_chain`)
COS_MIN = 0.9
# the chain: neighbours whose cosine is below COS_SPLIT are split by a rerun between them, at
# most CHAIN_DEPTH times, so the finest links span a factor REFERENCE_SHRINK ** (1 / 2 **
# (CHAIN_DEPTH + 1)) = 10 ** (1 / 8) ~ 1.33 in the step's length; COS_SPLIT above COS_MIN so
# that a smooth curve's links are measured straightened, not just past the rule
COS_SPLIT = 0.99
CHAIN_DEPTH = 3


@dataclass(frozen=True)
class UpdateRecord:
    kl_mean: float  # mean over states of KL(pi_old || pi_new), summed over action dimensions
    kl_max: float  # its largest value over the batch's states
    surrogate_gain: float  # L(pi_new) - L(pi_old) with the batch's standardized advantages
    unchanged: bool  # the new distributions equal the old ones bit for bit
    # cosine, in Fisher coordinates, of the sharpest turn along the chain of the
    # implementation's own reruns from the same state that joins its update at delta /
    # REFERENCE_SHRINK to this step (:func:`direction_chain`; nan: not measured, or a step empty)
    direction_cos: float = math.nan
    # |this step| / (sqrt(REFERENCE_SHRINK) |that step|), in the same coordinates: the fraction
    # of the full step applied, seen from outside (1: the full step; nan: not measured)
    length_ratio: float = math.nan

    @property
    def efficiency(self) -> float:
        """Surrogate gained per unit of trust region, gain / sqrt(2 KL): to first order the
        natural gradient direction maximizes it (section 7), whatever the step's length."""
        if self.unchanged or not self.kl_mean > 0:
            return math.nan
        return self.surrogate_gain / math.sqrt(2.0 * self.kl_mean)


CRASH_KINDS = ("exception", "timeout", "died", "invalid output")
CRASH_STATES = ("unchanged", "changed", "non-finite", "unknown")


@dataclass(frozen=True)
class Crash:
    """How the implementation failed inside a cell (which then ends)."""

    update: int  # 1-based index of the failing update (0: new_policy)
    kind: str  # one of CRASH_KINDS
    error: str  # "Type: message" of what it raised, or what was wrong
    state: str  # one of CRASH_STATES: the policy after the failure against before the update
    kl_after: float = math.nan  # mean KL(before || after) when the state is "changed"

    @property
    def left_policy_broken(self) -> bool:
        """The failed update left the policy changed or non-finite (not restored)."""
        return self.state in ("changed", "non-finite")


@dataclass
class Cell:
    records: list[UpdateRecord] = field(default_factory=list)
    crash: Crash | None = None


@dataclass(frozen=True)
class CellSpec:
    """One sequence of the protocol: task, seed, the suite batch, KL bound, which batch."""

    env_id: str
    steps: int  # env steps of the batch (its warm-up training's batch size)
    seed: int
    warmup: int  # clean trpo_ref iterations before the batch is taken
    updates: int  # consecutive updates
    delta: float
    batch: str = "real"  # one of BATCHES
    reference: bool = False  # measure each step's direction (needs the snapshot capability)

    def key(self, with_delta: bool) -> str:
        probe = "" if self.batch == "real" else f" probe {self.batch}"
        return f"{self.env_id} seed {self.seed}{probe}" + (f" delta {self.delta:g}"
                                                           if with_delta else "")


_BATCHES: dict[tuple[str, int, int, int], StepBatch] = {}
_CELLS: dict[tuple[Any, ...], Cell] = {}
_WARM: set[tuple[int, str]] = set()  # (id of the implementation object, env id) warmed up


def forget_updates() -> None:
    """Drop the memoized cells (the next claim reruns the implementation)."""
    _CELLS.clear()


def suite_batch(env_id: str, steps: int, seed: int, warmup_iters: int) -> StepBatch:
    """The batch of iteration ``warmup_iters`` of a clean trpo_ref training on ``env_id`` (the
    same whichever implementation or seeded bug is under test); memoized."""
    key = (env_id, steps, seed, warmup_iters)
    if key not in _BATCHES:
        with bugs_suspended(), torch_threads(1):
            item = trained_batch(task_config(env_id, steps, seed), warmup_iters)
        b = item.batch
        adv = b.adv.numpy().astype(np.float64)
        _BATCHES[key] = StepBatch(env_id, b.obs.numpy().copy(), b.act.numpy().copy(),
                                  (adv - adv.mean()) / adv.std())
    return _BATCHES[key]


def probe_batch(batch: StepBatch, initial: ActionDistributions, kind: str) -> StepBatch:
    """The probe: ``batch``'s states and actions with advantages +log pi_0(a_n | s_n)
    (``sharpen``) or -log pi_0(a_n | s_n) (``broaden``), standardized; pi_0 = ``initial``."""
    sign = {"sharpen": 1.0, "broaden": -1.0}[kind]
    with np.errstate(all="ignore"):
        adv = sign * initial.log_prob(batch.act)
    if not np.all(np.isfinite(adv)) or not adv.std() > 0:
        raise ImplementationError(f"probe {kind}: the initial policy's log-probabilities are "
                                  "not finite or all equal")
    return StepBatch(batch.env_id, batch.obs, batch.act, (adv - adv.mean()) / adv.std())


def same_distributions(a: ActionDistributions, b: ActionDistributions) -> bool:
    if a.kind != b.kind:
        return False
    if a.kind == "categorical":
        return np.array_equal(a.categorical_log_probs(), b.categorical_log_probs())
    return np.array_equal(a.mean, b.mean) and np.array_equal(a.std, b.std)


def is_finite(d: ActionDistributions) -> bool:
    """Finite distributions: mean and std finite with std > 0, or log-probs without NaN / +inf
    (a log-probability of -inf is a zero probability, which is finite)."""
    with np.errstate(all="ignore"):
        if d.kind == "categorical":
            log_p = d.categorical_log_probs()
            return not (np.any(np.isnan(log_p)) or np.any(log_p == np.inf))
        mean, std = np.asarray(d.mean, float), np.asarray(d.std, float)
        return bool(np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0))


def fisher_coordinates(old: ActionDistributions, new: ActionDistributions) -> np.ndarray:
    """The change old -> new as one vector x whose squared length is, to second order,
    2 N mean KL(old || new): Gaussian (Delta mu / sigma_old, sqrt(2) Delta log sigma) per state
    and dimension; categorical sqrt(p_old) Delta log p per state and action. Steps along one
    parameter direction give parallel x (to first order in the step)."""
    if old.kind == "categorical":
        lp, lq = old.categorical_log_probs(), new.categorical_log_probs()
        with np.errstate(invalid="ignore"):
            x = np.where(lp > -np.inf, np.exp(0.5 * lp) * (lq - lp), 0.0)
        return x.ravel()
    m0, s0 = np.asarray(old.mean, float), np.asarray(old.std, float)
    m1, s1 = np.asarray(new.mean, float), np.asarray(new.std, float)
    return np.concatenate([((m1 - m0) / s0).ravel(), (math.sqrt(2) * np.log(s1 / s0)).ravel()])


def _coordinates(outcome: StepOutcome | None) -> np.ndarray | None:
    """Fisher coordinates of a nonzero, finite step; None for anything else (no direction)."""
    if not isinstance(outcome, StepOutcome):
        return None
    with np.errstate(all="ignore"):
        try:
            x = fisher_coordinates(outcome.old, outcome.new)
        except (ValueError, TypeError, AttributeError):
            return None
        norm = float(np.linalg.norm(x))
    return x if norm > 0 and math.isfinite(norm) else None


def _cosine(x: np.ndarray, y: np.ndarray) -> float:
    if x.shape != y.shape:
        return math.nan
    return float(x @ y) / float(np.linalg.norm(x) * np.linalg.norm(y))


def direction_chain(step: StepOutcome, rerun: Callable[[float], StepOutcome | None],
                    depth: int = CHAIN_DEPTH) -> tuple[float, float]:
    """(cosine of the sharpest turn, length ratio) of ``step`` (an update at delta) against the
    implementation's own reruns from the same state: ``rerun(f)`` is its update at f delta
    (None where it failed).

    App. C's candidates theta_old + b^k beta s lie on one parameter ray; the natural step at
    f delta is sqrt(f) beta s (eq. (12)'s quadratic model scales the step as sqrt(delta)), so
    the reruns trace the same ray. Seen in :func:`fisher_coordinates` that ray is a curve,
    bent by the network and the softmax: its points at lengths 10x apart can differ by 46
    degrees (trpo_ref on CartPole at delta 0.03: cosine 0.69). So the step is not compared with
    the delta / REFERENCE_SHRINK rerun alone: the chain starts with that pair, and a link whose
    cosine is below :data:`COS_SPLIT` is split by the rerun at the geometric mean of its two
    fractions f (half-way in log step length), at most ``depth`` times. On a smooth curve the
    links straighten as they shorten; a line search that turns the step (another direction
    once a candidate fails) puts a jump on the chain that no split removes. A rerun that
    failed or left the policy unchanged has no direction: its link is not split. The length
    ratio is |step| / (sqrt(REFERENCE_SHRINK) |delta / REFERENCE_SHRINK rerun|): the fraction
    of the full step applied, seen from outside. nan, nan where the step or that rerun is
    empty or not finite."""
    x_step = _coordinates(step)
    x_ref = None if x_step is None else _coordinates(rerun(1.0 / REFERENCE_SHRINK))
    if x_step is None or x_ref is None:  # a rejected update is not rerun
        return math.nan, math.nan

    def sharpest(f_lo: float, x_lo: np.ndarray, f_hi: float, x_hi: np.ndarray,
                 left: int) -> float:
        cos = _cosine(x_lo, x_hi)
        if not cos < COS_SPLIT or left == 0:
            return cos
        f_mid = math.sqrt(f_lo * f_hi)
        x_mid = _coordinates(rerun(f_mid))
        if x_mid is None:
            return cos
        return min(sharpest(f_lo, x_lo, f_mid, x_mid, left - 1),
                   sharpest(f_mid, x_mid, f_hi, x_hi, left - 1))

    turn = sharpest(1.0 / REFERENCE_SHRINK, x_ref, 1.0, x_step, depth)
    ratio = float(np.linalg.norm(x_step)) / (math.sqrt(REFERENCE_SHRINK)
                                              * float(np.linalg.norm(x_ref)))
    return turn, ratio


def measure_update(outcome: StepOutcome, batch: StepBatch) -> UpdateRecord:
    """The suite's measurements of one update (validating the distributions first)."""
    if not isinstance(outcome, StepOutcome):
        raise ImplementationError(f"policy_step returned {type(outcome).__name__}, not "
                                  "StepOutcome")
    n = len(batch.adv)
    outcome.old.validate(n, "old distributions")
    outcome.new.validate(n, "new distributions")
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        kl = outcome.old.kl_to(outcome.new)
        ratio = np.exp(outcome.new.log_prob(batch.act) - outcome.old.log_prob(batch.act))
        gain = float(np.mean((ratio - 1.0) * batch.adv))
    return UpdateRecord(float(kl.mean()), float(kl.max()), gain,
                        same_distributions(outcome.old, outcome.new))


def well_formed(outcome: Any, batch: StepBatch) -> bool:
    """The outcome passes :func:`measure_update`'s validation."""
    try:
        measure_update(outcome, batch)
    except ImplementationError:
        return False
    return True


def state_after(before: ActionDistributions | None, after: Any, n: int) -> tuple[str, float]:
    """(state, mean KL(before || after)) of the policy a failed update left (CRASH_STATES)."""
    if not isinstance(after, ActionDistributions):
        return "unknown", math.nan
    try:
        after.validate(n, "the distributions after the failure")
    except ImplementationError:
        return ("non-finite" if not is_finite(after) else "unknown"), math.nan
    if before is None:
        return "unknown", math.nan
    if same_distributions(before, after):
        return "unchanged", 0.0
    with np.errstate(all="ignore"):
        return "changed", float(before.kl_to(after).mean())


# --- one cell: the script the worker runs, and the parent's reading of its messages -----------

def _read_policy(impl: Any, call: Any, batch: StepBatch, delta: float) -> Any:
    """The implementation's current distributions on ``batch``'s states: its
    ``action_distributions`` (the ``inspect`` capability), else the ``old`` of one more update
    (which is then not counted); None if that fails too."""
    try:
        if "inspect" in capabilities(impl):
            return call(impl.action_distributions, batch.obs)
        return call(impl.policy_step, batch, delta).old
    except BaseException as error:
        if isinstance(error, KeyboardInterrupt):
            raise
        return None


def chain_reruns(impl: Any, call: Any, batch: StepBatch, delta: float, snapshot: Any,
                 outcome: Any, limit: float) -> tuple[dict[float, StepOutcome], list[str]]:
    """The reruns :func:`direction_chain` asks for to place ``outcome`` (each update at
    fraction f of ``delta`` from ``snapshot``, keyed by f), and what the failed ones raised.
    The parent recomputes the chain from them."""
    reruns: dict[float, StepOutcome] = {}
    errors: list[str] = []

    def rerun(fraction: float) -> StepOutcome | None:
        call(impl.set_state, snapshot)
        try:
            reruns[fraction] = call(impl.policy_step, batch, delta * fraction)
        except Exception as error:  # the reruns are extra: the cell goes on
            errors.append(worker.describe(error, limit)[1])
        return reruns.get(fraction)

    direction_chain(outcome, rerun)
    return reruns, errors


def cell_script(impl: Any, spec: CellSpec, batch: StepBatch, limit: float) -> worker.Script:
    """What the worker does for ``spec``: a fresh policy, the probe batch if asked for, then
    ``spec.updates`` updates, sending each raw result as soon as it exists."""

    def script(send: Any, call: Any) -> None:
        stage = 0
        try:
            call(impl.new_policy, spec.env_id, spec.seed)
            used = batch
            if "inspect" in capabilities(impl):
                before = call(impl.action_distributions, batch.obs)
            else:  # no inspect: read pi_0 off one update, then start again from a fresh policy
                before = call(impl.policy_step, batch, spec.delta).old if spec.batch != "real" \
                    else None
                if spec.batch != "real":
                    call(impl.new_policy, spec.env_id, spec.seed)
            if spec.batch != "real":
                used = probe_batch(batch, before, spec.batch)
            send(("start", before, used.adv))
            reference = spec.reference and "snapshot" in capabilities(impl)
            for stage in range(1, spec.updates + 1):
                if reference:
                    snapshot = call(impl.get_state)
                outcome = call(impl.policy_step, used, spec.delta)
                reruns: dict[float, StepOutcome] = {}
                rerun_errors: list[str] = []
                if reference:
                    after = call(impl.get_state)
                    reruns, rerun_errors = chain_reruns(impl, call, used, spec.delta, snapshot,
                                                        outcome, limit)
                    call(impl.set_state, after)
                send(("update", stage, outcome, reruns, rerun_errors))
        except BaseException as error:
            if isinstance(error, KeyboardInterrupt):
                raise
            kind, text = worker.describe(error, limit)
            state = _read_policy(impl, call, batch, spec.delta) if stage else None
            send(("crash", stage, kind, text, state))

    return script


def read_cell(messages: list[tuple[Any, ...]], batch: StepBatch) -> Cell:
    """The suite's measurements of a cell from the worker's messages (see :func:`cell_script`);
    a malformed output ends the cell as an ``invalid output`` crash."""
    cell, n = Cell(), len(batch.adv)
    before: ActionDistributions | None = None
    for message in messages:
        tag = message[0]
        if tag == "start":
            before = message[1] if isinstance(message[1], ActionDistributions) else None
            batch = StepBatch(batch.env_id, batch.obs, batch.act, np.asarray(message[2]))
        elif tag == "update":
            _, k, outcome, reruns, _rerun_errors = message
            try:
                record = measure_update(outcome, batch)
            except ImplementationError as error:
                new = getattr(outcome, "new", None)
                state, kl = state_after(before, new, n)
                cell.crash = Crash(k, "invalid output", str(error), state, kl)
                return cell
            if isinstance(reruns, dict) and reruns and not record.unchanged:
                valid = {f: r for f, r in reruns.items() if well_formed(r, batch)}
                cos, ratio = direction_chain(outcome, valid.get)  # a malformed rerun: missing
                record = UpdateRecord(**(asdict(record) | {"direction_cos": cos,
                                                           "length_ratio": ratio}))
            cell.records.append(record)
            before = outcome.new
        elif tag == "crash":
            _, k, kind, text, after = message
            state, kl = state_after(before, after, n) if k else ("unknown", math.nan)
            cell.crash = Crash(k, kind, text, state, kl)
            return cell
        elif tag in ("unsendable", "lost"):
            kind = "invalid output" if tag == "unsendable" else message[1]
            text = message[1] if tag == "unsendable" else message[2]
            cell.crash = Crash(len(cell.records) + 1, kind, text, "unknown")
            return cell
    return cell


def run_cell(impl: Any, spec: CellSpec, batch: StepBatch) -> Cell:
    """Run one cell in a worker (:mod:`.worker`) and measure it."""
    limit = worker.call_timeout_s()
    return read_cell(worker.run_cell(cell_script(impl, spec, batch, limit), limit), batch)


def update_sequence(impl: Any, batch: StepBatch, seed: int, delta: float,
                    updates: int) -> Cell:
    """A fresh policy (``seed``), then ``updates`` consecutive updates on ``batch``."""
    return run_cell(impl, CellSpec(batch.env_id, len(batch.adv), seed, 0, updates, delta),
                    batch)


def warm_up(impl: Any, env_id: str) -> None:
    """Make one policy for ``env_id`` in this (the parent) process, once per implementation
    object, before any cell forks a worker: lazy imports and JIT compilation then happen once
    and every forked worker inherits them (tianshou compiles numba kernels on its first
    ``new_policy``: 7 s in each fresh process, measured, against 0.1 s per update). Failures are
    ignored here: every cell calls ``new_policy`` again in its worker, where a failure is the
    cell's recorded crash. Only ``process`` isolation forks, so only it warms up. (The warm-up
    runs the implementation's constructor in the suite's process under the per-call timer, as
    loading the adapter already does; a hang in native code there would stop the suite.)"""
    if worker.isolation() != "process" or (id(impl), env_id) in _WARM:
        return
    _WARM.add((id(impl), env_id))
    with contextlib.suppress(Exception), bugs_suspended(), torch_threads(1):
        worker.guarded(worker.call_timeout_s())(impl.new_policy, env_id, 0)


def cells(target: UnderTest, plan: list[CellSpec]) -> dict[CellSpec, Cell]:
    """Every cell of ``plan``, memoized per implementation and seeded bug (claims sharing a
    cell share its updates). A spec that cannot be loaded raises ImplementationError (the
    claim's ERROR: nothing of the implementation ran)."""
    impl = target.load()
    out: dict[CellSpec, Cell] = {}
    for spec in plan:
        key = (target.spec, active_bug(), worker.call_timeout_s(), spec)
        if key not in _CELLS:
            batch = suite_batch(spec.env_id, spec.steps, spec.seed, spec.warmup)
            warm_up(impl, spec.env_id)
            _CELLS[key] = run_cell(impl, spec, batch)
        out[spec] = _CELLS[key]
    return out


def plan_cells(budget: StepBudget, seed: int, deltas: tuple[float, ...],
               batch: str = "real", reference: bool = False,
               updates: int | None = None) -> list[CellSpec]:
    """The cells of a claim's ``budget`` at each of ``deltas`` on ``batch``."""
    return [CellSpec(env_id, steps, seed + s, budget.warmup,
                     updates or budget.updates, delta, batch, reference)
            for delta in deltas for env_id, steps in budget.tasks for s in budget.seeds]


RECORD_FIELDS = ("kl_mean", "kl_max", "surrogate_gain", "unchanged", "direction_cos",
                 "length_ratio")


def records_json(runs: dict[str, Cell]) -> dict[str, Any]:
    """Per-cell lists of each measurement, and each cell's crash (or None), for Evidence.data."""
    data: dict[str, Any] = {f: {key: [getattr(r, f) for r in cell.records]
                                for key, cell in runs.items()} for f in RECORD_FIELDS}
    data["crashes"] = {key: None if cell.crash is None else asdict(cell.crash)
                       for key, cell in runs.items()}
    return data


def records_from_json(data: dict[str, Any]) -> dict[str, list[UpdateRecord]]:
    """Per-cell update records (evidence saved before the direction fields read as nan)."""
    out = {}
    for key in data["kl_mean"]:
        n = len(data["kl_mean"][key])
        extra = {f: data.get(f, {}).get(key, [math.nan] * n) for f in RECORD_FIELDS[4:]}
        out[key] = [UpdateRecord(float(data["kl_mean"][key][i]), float(data["kl_max"][key][i]),
                                 float(data["surrogate_gain"][key][i]),
                                 bool(data["unchanged"][key][i]),
                                 *(float(extra[f][i]) for f in RECORD_FIELDS[4:]))
                    for i in range(n)]
    return out


def crashes_from_json(data: dict[str, Any]) -> dict[str, Crash]:
    """The cells that crashed, keyed as in the evidence."""
    return {key: Crash(**(c | {"kl_after": float(c["kl_after"])}))
            for key, c in data.get("crashes", {}).items() if c is not None}


def crash_note(data: dict[str, Any]) -> str:
    """"; N cells crashed (...)" for a verdict's message, or ""."""
    crashes = crashes_from_json(data)
    if not crashes:
        return ""
    first_key, first = next(iter(crashes.items()))
    return (f"; {len(crashes)} of {len(data['kl_mean'])} cells crashed (the updates before "
            f"each crash count), e.g. {first_key} update {first.update}: {first.error} "
            f"(state {first.state})")


def crash_summary(runs: dict[str, Cell]) -> list[str]:
    """One line per crashed cell, for Evidence.summary."""
    return [f"{key}: update {c.update}, {c.kind}: {c.error}; state {c.state}"
            + (f" (KL {c.kl_after:.3g})" if c.state == "changed" else "")
            for key, cell in runs.items() if (c := cell.crash) is not None]


# --- claims judged on the step protocol ------------------------------------------------------

@dataclass(frozen=True)
class StepBudget(Budget):
    """The step protocol's cells: per (task, seed), ``updates`` updates on a warmed-up batch."""

    tasks: tuple[tuple[str, int], ...]  # (env id, env steps of the batch) per task
    seeds: tuple[int, ...]  # seeds (offset by the run's seed)
    warmup: int  # clean trpo_ref training iterations that make the batch
    updates: int  # consecutive updates per cell


STEP_BUDGETS: dict[str, StepBudget | None] = {
    "quick": StepBudget(tasks=[["CartPole-v1", 1000], ["Hopper-v5", 1000]], seeds=[0, 1],
                        warmup=2, updates=20),
    "standard": StepBudget(tasks=[["CartPole-v1", 2000], ["Hopper-v5", 5000],
                                  ["Swimmer-v5", 5000], ["Walker2d-v5", 5000]],
                           seeds=[0, 1, 2], warmup=5, updates=20),
    "full": StepBudget(tasks=[["CartPole-v1", 5000], ["Hopper-v5", 10000],
                              ["Swimmer-v5", 10000], ["Walker2d-v5", 10000]],
                       seeds=[0, 1, 2, 3, 4], warmup=10, updates=20),
}


@dataclass(frozen=True)
class ForkBudget:
    """Caps on a tier's step budgets for a fork check of an external library (issue 13): the
    fewest cells that still exercise every mechanism: the tier's tasks (one per action type at
    the quick tier), its first ``seeds`` seeds, and at most so many updates per cell; every
    delta of the ladder and both probes are kept. Declared before any measurement with it."""

    seeds: int  # how many of the tier's seeds (the first ones)
    updates: int  # at most so many updates per cell at a claim's own deltas
    ladder_updates: int  # at most so many updates per rung of the line-search ladder
    probe_updates: int  # at most so many updates per probe cell


FORK_BUDGET = ForkBudget(seeds=1, updates=10, ladder_updates=5, probe_updates=5)
_CAPS: list[ForkBudget] = []


@contextlib.contextmanager
def capped(caps: ForkBudget) -> Iterator[None]:
    """Inside the body every step claim runs its tier budget reduced by ``caps``
    (:func:`apply_caps`); its evidence's config records the budget it ran."""
    _CAPS.append(caps)
    try:
        yield
    finally:
        _CAPS.pop()


def apply_caps(budget: StepBudget) -> StepBudget:
    """``budget`` with the innermost :func:`capped` caps applied (unchanged outside one)."""
    if not _CAPS:
        return budget
    caps = _CAPS[-1]
    limits = {"updates": caps.updates, "ladder_updates": caps.ladder_updates,
              "probe_updates": caps.probe_updates}
    changes: dict[str, Any] = {name: min(getattr(budget, name), cap)
                               for name, cap in limits.items() if hasattr(budget, name)}
    return dataclasses.replace(budget, seeds=tuple(budget.seeds)[:caps.seeds], **changes)


STEP_PROTOCOL = (
    "For each task and seed: a clean trpo_ref training of `warmup` iterations gives a real batch "
    "(states, actions, standardized GAE advantages); the implementation under test makes a "
    "fresh policy for the task (same seed) and performs `updates` consecutive updates on that "
    "batch with KL bound {delta}, each from where the last left the policy; the suite measures "
    "every update from the returned action distributions: KL(old || new) per state summed over "
    "action dimensions, the surrogate change mean (r - 1) A, and whether the policy is exactly "
    "unchanged. Each (task, seed, delta) cell runs in a worker process with a per-call time "
    "limit; an exception, hang, death or malformed output of the implementation ends its cell "
    "as a recorded crash (update, error, and the state it left), and the other cells run.")


class StepSequenceClaim(Claim[StepBudget]):
    """A claim judged on :func:`cells` at one or more KL bounds; the negative control is
    the reference with the seeded bug :attr:`control_bug` (:mod:`claims.faults.forks`)."""

    kind = Kind.EXACT
    requires: ClassVar[frozenset[str] | None] = frozenset({"step"})
    budgets: ClassVar[dict[str, StepBudget | None]] = STEP_BUDGETS
    deltas: ClassVar[tuple[float, ...]] = (0.01,)
    control_bug: ClassVar[str]

    def plan(self, budget: StepBudget, seed: int) -> list[CellSpec]:
        """The cells this claim judges (default: the real batch at each of :attr:`deltas`)."""
        return plan_cells(budget, seed, self.deltas)

    def run(self, tier: str, *, control: bool = False, seed: int = 0) -> Evidence:
        budget = apply_caps(self.tier_budget(tier))
        target = UnderTest(REFERENCE_SPEC) if control else under_test()
        plan = self.plan(budget, seed)
        with_delta = len({(s.delta, s.batch) for s in plan}) > 1
        left_out = unsupported_tasks(target.load(), [s.env_id for s in plan])
        plan = [s for s in plan if s.env_id not in left_out]
        if not plan:
            raise ImplementationError(f"{target.spec} handles none of the tier's tasks: "
                                      + "; ".join(f"{t}: {w}" for t, w in left_out.items()))
        with seeded_bug(self.control_bug if control else None):
            runs = {spec.key(with_delta): cell for spec, cell in cells(target, plan).items()}
        config = {"impl": target.spec, "deltas": sorted({s.delta for s in plan}),
                  "seed": seed, "call_timeout_s": worker.call_timeout_s(),
                  "isolation": worker.isolation(),
                  "tasks_not_supported": left_out} | budget.to_json()
        if control:
            config["seeded_bug"] = self.control_bug
        evidence = Evidence(self.id, tier, control, config, records_json(runs))
        evidence.summary = self.summarize({k: c.records for k, c in runs.items()}) | {
            "crashed cells": crash_summary(runs)}
        return evidence

    def summarize(self, runs: dict[str, list[UpdateRecord]]) -> dict[str, Any]:
        return {}

    @staticmethod
    def delta_of(key: str, config: dict[str, Any]) -> float:
        return float(key.rsplit(" delta ", 1)[1]) if " delta " in key else config["deltas"][0]
