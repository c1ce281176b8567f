"""The crash-tolerant step protocol (claims.catalogue.implementation.sequence + .worker): an
implementation that raises, hangs, dies, or returns malformed or non-finite distributions gives
a cell-level finding, the run finishes, and every update measured before is kept."""

from __future__ import annotations

import math
import os
import signal
import time

import numpy as np
import pytest

from claims.catalogue.implementation import worker
from claims.catalogue.implementation.sequence import (
    Cell,
    CellSpec,
    Crash,
    cells,
    crashes_from_json,
    forget_updates,
    records_from_json,
    records_json,
    run_cell,
    state_after,
)
from claims.framework.core import Status
from claims.framework.impl import ActionDistributions, StepBatch, StepOutcome, UnderTest
from claims.framework.registry import get

N = 6
BATCH = StepBatch("CartPole-v1", np.zeros((N, 4)), np.array([0, 1, 0, 1, 0, 1]),
                  np.array([1.0, -1.0, 1.0, -1.0, 1.0, -1.0]))


class Fake:
    """A two-action categorical policy with one parameter: logit(action 0) - logit(action 1).
    Each update adds 0.01; ``fail`` decides what goes wrong at update ``at``."""

    name = "fake"

    def __init__(self, fail: str = "", at: int = 3, inspect: bool = True,
                 theta0: float = 0.0) -> None:
        self.fail, self.at, self.theta, self.calls, self.theta0 = fail, at, 0.0, 0, theta0
        if not inspect:
            self.action_distributions = None  # type: ignore[assignment] - no inspect

    def new_policy(self, env_id: str, seed: int) -> None:
        if self.fail == "new_policy":
            raise RuntimeError("cannot build the policy")
        self.theta, self.calls = self.theta0, 0

    def action_distributions(self, obs: np.ndarray) -> ActionDistributions:
        return self._dists(obs)

    def _dists(self, obs: np.ndarray) -> ActionDistributions:
        logits = np.array([self.theta, 0.0])
        log_p = logits - np.logaddexp(*logits)
        return ActionDistributions(log_probs=np.tile(log_p, (len(obs), 1)))

    def policy_step(self, batch: StepBatch, delta: float) -> StepOutcome:
        self.calls += 1
        old = self._dists(batch.obs)
        if self.calls == self.at:
            self._fail()
        self.theta += 0.01
        new = self._dists(batch.obs)
        if self.calls == self.at and self.fail == "wrong_shape":
            new = ActionDistributions(log_probs=new.log_probs[:2])
        if self.calls == self.at and self.fail == "nan_output":
            new = ActionDistributions(log_probs=np.full_like(new.log_probs, np.nan))
        if self.calls == self.at and self.fail == "unpicklable":
            return StepOutcome(old, lambda: new)  # type: ignore[arg-type]
        return StepOutcome(old, new)

    def _fail(self) -> None:
        if self.fail == "raise":
            raise ValueError("parameters are NaN")
        if self.fail == "raise_after_move":
            self.theta += 0.5
            raise FloatingPointError("half-applied step")
        if self.fail == "raise_nan":
            self.theta = math.nan
            raise ValueError("candidate is NaN")
        if self.fail == "hang":
            time.sleep(60)
        if self.fail == "hang_native":  # the alarm cannot reach it: as if stuck in C code
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
            time.sleep(60)
        if self.fail == "segfault":
            os.kill(os.getpid(), signal.SIGSEGV)
        if self.fail == "exit":
            os._exit(3)


def run(fake: Fake, updates: int = 5, mode: str = "process", batch: str = "real") -> Cell:
    spec = CellSpec("CartPole-v1", N, 0, 0, updates, 0.01, batch)
    limit = worker.call_timeout_s()
    from claims.catalogue.implementation.sequence import cell_script, read_cell

    return read_cell(worker.run_cell(cell_script(fake, spec, BATCH, limit), limit, mode), BATCH)


@pytest.fixture
def short_limits(monkeypatch):
    monkeypatch.setattr(worker, "GRACE_S", 1.0)
    with worker.call_timeout(0.5):
        yield


@pytest.mark.parametrize("mode", ["process", "inline"])
def test_a_clean_implementation_runs_every_update(mode):
    cell = run(Fake(), mode=mode)
    assert cell.crash is None and len(cell.records) == 5
    assert all(r.surrogate_gain > 0 and not r.unchanged for r in cell.records)


@pytest.mark.parametrize(("fail", "kind", "error", "state"), [
    ("raise", "exception", "ValueError: parameters are NaN", "unchanged"),
    ("raise_after_move", "exception", "FloatingPointError: half-applied step", "changed"),
    ("raise_nan", "exception", "ValueError: candidate is NaN", "non-finite"),
    ("wrong_shape", "invalid output", "expected shape", "unknown"),
    ("nan_output", "invalid output", "not finite", "non-finite"),
    ("unpicklable", "invalid output", "", "unknown"),
])
def test_a_failing_update_is_a_cell_finding(fail, kind, error, state):
    cell = run(Fake(fail, at=3))
    assert len(cell.records) == 2  # the two updates before the failure are kept
    assert cell.crash is not None
    assert (cell.crash.update, cell.crash.kind, cell.crash.state) == (3, kind, state)
    assert error in cell.crash.error
    assert cell.crash.left_policy_broken is (state in ("changed", "non-finite"))
    if state == "changed":
        assert cell.crash.kl_after > 0


def test_without_inspect_the_state_is_read_from_one_more_update():
    cell = run(Fake("raise_after_move", inspect=False))
    assert cell.crash.state == "changed" and len(cell.records) == 2


@pytest.mark.parametrize("kind", ["sharpen", "broaden"])
def test_probes_are_built_from_pi_0_with_or_without_inspect(kind):
    with_inspect = run(Fake(theta0=0.5), batch=kind)
    without = run(Fake(theta0=0.5, inspect=False), batch=kind)
    assert with_inspect.crash is None and without.crash is None
    assert with_inspect.records == without.records  # the same probe, the same updates
    # sharpen rewards action 0 (the likelier one, theta > 0): the update raising its logit
    # improves L; broaden punishes it, so the same update lowers L
    gain = with_inspect.records[0].surrogate_gain
    assert gain > 0 if kind == "sharpen" else gain < 0


def test_a_failing_new_policy_is_update_zero():
    cell = run(Fake("new_policy"))
    assert cell.records == [] and cell.crash.update == 0 and cell.crash.state == "unknown"
    assert "RuntimeError: cannot build the policy" in cell.crash.error


@pytest.mark.usefixtures("short_limits")
@pytest.mark.parametrize("mode", ["process", "inline"])
def test_a_hang_in_python_is_interrupted_and_the_state_read(mode):
    started = time.perf_counter()
    cell = run(Fake("hang"), mode=mode)
    assert time.perf_counter() - started < 10
    assert (cell.crash.kind, cell.crash.update, cell.crash.state) == ("timeout", 3, "unchanged")
    assert "per-call limit of 0.5 s" in cell.crash.error and len(cell.records) == 2


@pytest.mark.usefixtures("short_limits")
def test_a_hang_out_of_the_interpreters_reach_kills_the_worker():
    started = time.perf_counter()
    cell = run(Fake("hang_native"))
    assert time.perf_counter() - started < 10
    assert (cell.crash.kind, cell.crash.update, cell.crash.state) == ("timeout", 3, "unknown")
    assert "the worker was killed" in cell.crash.error and len(cell.records) == 2


@pytest.mark.parametrize(("fail", "text"), [("segfault", "killed by SIGSEGV"),
                                             ("exit", "exited with code 3")])
def test_a_dying_implementation_is_a_cell_finding(fail, text):
    cell = run(Fake(fail))
    assert cell.crash.kind == "died" and text in cell.crash.error and len(cell.records) == 2


def test_the_call_timeout_is_declared_and_configurable(monkeypatch):
    assert worker.call_timeout_s() == worker.DEFAULT_CALL_TIMEOUT_S
    monkeypatch.setenv("TRPO_CLAIMS_CALL_TIMEOUT_S", "7")
    assert worker.call_timeout_s() == 7.0
    with worker.call_timeout(2.5):
        assert worker.call_timeout_s() == 2.5
    monkeypatch.setenv("TRPO_CLAIMS_CALL_TIMEOUT_S", "0")
    with pytest.raises(ValueError, match="must be > 0"):
        worker.call_timeout_s()


def test_state_after_by_hand():
    p = ActionDistributions(log_probs=np.log(np.full((2, 2), 0.5)))
    q = ActionDistributions(log_probs=np.log(np.array([[0.75, 0.25]] * 2)))
    nan = ActionDistributions(log_probs=np.full((2, 2), np.nan))
    assert state_after(p, p, 2) == ("unchanged", 0.0)
    state, kl = state_after(p, q, 2)
    assert state == "changed" and kl == pytest.approx(0.5 * math.log(0.5 / 0.75)
                                                      + 0.5 * math.log(0.5 / 0.25))
    assert state_after(p, nan, 2)[0] == "non-finite"
    assert state_after(None, q, 2)[0] == "unknown" and state_after(p, None, 2)[0] == "unknown"


def test_crashes_round_trip_through_json():
    runs = {"a": Cell([], Crash(2, "timeout", "slow", "unknown")), "b": Cell()}
    data = records_json(runs)
    assert crashes_from_json(data) == {"a": runs["a"].crash}
    assert records_from_json(data) == {"a": [], "b": []}


class Registered:
    """Fakes loadable by spec: CartPole seed 0 raises NaN-leaving at update 2; the rest run."""

    name = "fake"

    def __init__(self):
        self.fake = Fake()
        self.seed = 0

    def new_policy(self, env_id, seed):
        self.fake = Fake("raise_nan", at=2) if seed == 0 else Fake()
        self.fake.new_policy(env_id, seed)

    def policy_step(self, batch, delta):
        return self.fake.policy_step(batch, delta)

    def action_distributions(self, obs):
        return self.fake.action_distributions(obs)


def test_one_crashing_cell_does_not_stop_the_others_nor_error_the_claims(monkeypatch):
    import sys
    import types

    module = types.ModuleType("crashing_impls")
    module.factory = Registered
    monkeypatch.setitem(sys.modules, "crashing_impls", module)
    import claims.catalogue.implementation.sequence as sequence

    monkeypatch.setattr(sequence, "suite_batch", lambda *args: BATCH)  # no training needed
    forget_updates()
    target = UnderTest("crashing_impls:factory")
    plan = [CellSpec("CartPole-v1", N, s, 0, 4, 100.0) for s in (0, 1)]
    out = cells(target, plan)
    crashed, clean = out[plan[0]], out[plan[1]]
    assert crashed.crash.state == "non-finite" and len(crashed.records) == 1
    assert clean.crash is None and len(clean.records) == 4
    # the restore claim counts the crash that left a NaN policy against restore
    claim = get("impl.rejected_update_restores")
    from claims.framework.core import Evidence

    runs = {spec.key(True): cell for spec, cell in out.items()}
    evidence = Evidence(claim.id, "quick", False, {"deltas": [100.0]}, records_json(runs))
    verdict = claim.decide(evidence)
    assert verdict.status is Status.REFUTED and "crash" in verdict.message
    forget_updates()


def test_run_cell_uses_the_worker(monkeypatch):
    calls = []
    monkeypatch.setattr(worker, "run_cell", lambda script, limit, mode=None:
                        calls.append(limit) or [])
    assert run_cell(Fake(), CellSpec("CartPole-v1", N, 0, 0, 1, 0.01), BATCH) == Cell()
    assert calls == [worker.DEFAULT_CALL_TIMEOUT_S]


class Counting(Fake):
    """A Fake that counts its ``new_policy`` calls in this process (a forked worker's calls
    do not come back) and fails there when ``fail == "new_policy"``."""

    made = 0

    def new_policy(self, env_id, seed):
        type(self).made += 1
        super().new_policy(env_id, seed)


@pytest.mark.parametrize("fail", ["", "new_policy"])
def test_the_warm_up_runs_once_per_task_in_the_parent_and_its_failure_is_the_cells(
        monkeypatch, fail):
    import sys
    import types

    import claims.catalogue.implementation.sequence as sequence

    module = types.ModuleType("warming_impls")
    module.factory = lambda: Counting(fail)
    monkeypatch.setitem(sys.modules, "warming_impls", module)
    monkeypatch.setattr(sequence, "suite_batch", lambda *args: BATCH)
    Counting.made = 0
    forget_updates()
    plan = [CellSpec("CartPole-v1", N, s, 0, 2, 0.01) for s in (0, 1)]
    out = cells(UnderTest("warming_impls:factory"), plan)
    assert Counting.made == 1  # one warm-up here; each cell's own new_policy ran in its worker
    for cell in out.values():
        if fail:  # the warm-up's failure was ignored; the cell met it again and recorded it
            assert cell.records == [] and cell.crash.update == 0
        else:
            assert cell.crash is None and len(cell.records) == 2
    forget_updates()


class BoxOnly(Registered):
    """Handles no Discrete task by design (as skrl's TRPO), and says so."""

    def unsupported(self, env_id):
        return "Gaussian policies only" if env_id == "CartPole-v1" else None


def test_tasks_an_implementation_does_not_handle_are_left_out_not_crashed(monkeypatch):
    import sys
    import types

    import claims.catalogue.implementation.sequence as sequence
    from claims.framework.impl import unsupported_tasks, use_implementation

    module = types.ModuleType("box_only_impls")
    module.factory = BoxOnly
    monkeypatch.setitem(sys.modules, "box_only_impls", module)
    assert unsupported_tasks(BoxOnly(), ["CartPole-v1", "Hopper-v5", "CartPole-v1"]) == {
        "CartPole-v1": "Gaussian policies only"}
    assert unsupported_tasks(Fake(), ["CartPole-v1"]) == {}  # no method: every task handled
    planned = []
    monkeypatch.setattr(sequence, "cells", lambda target, plan: planned.extend(plan) or {})
    claim = get("impl.kl_within_delta")
    with use_implementation(UnderTest("box_only_impls:factory")):
        evidence = claim.run("quick")
        assert planned and {spec.env_id for spec in planned} == {"Hopper-v5"}
        assert evidence.config["tasks_not_supported"] == {"CartPole-v1": "Gaussian policies only"}
        monkeypatch.setattr(BoxOnly, "unsupported", lambda self, env_id: "no tasks at all")
        with pytest.raises(Exception, match="handles none of the tier's tasks"):
            claim.run("quick")
