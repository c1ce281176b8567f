"""The implementation protocol (claims.framework.impl) and the trpo_ref adapter: loading specs with
clear errors, the distributions' KL by hand, one step measured by the suite, a training's
episodes."""

from __future__ import annotations

import math
import sys
import types

import numpy as np
import pytest

from claims.adapters.trpo_ref import TrpoRef
from claims.faults.forks import seeded_bug
from claims.framework.impl import (
    ActionDistributions,
    ImplementationError,
    StepBatch,
    capabilities,
    load_implementation,
)


def random_batch(env_id: str, n: int = 400, seed: int = 0) -> StepBatch:
    rng = np.random.default_rng(seed)
    obs_dim, act = {"Hopper-v5": (11, rng.normal(size=(n, 3))),
                    "CartPole-v1": (4, rng.integers(0, 2, size=n))}[env_id]
    return StepBatch(env_id, rng.normal(size=(n, obs_dim)), act, rng.normal(size=n))


# --- the distributions, by hand --------------------------------------------------------------

def test_gaussian_kl_by_hand():
    p = ActionDistributions(mean=np.array([[0.0, 0.0]]), std=np.array([[1.0, 1.0]]))
    q = ActionDistributions(mean=np.array([[1.0, 0.0]]), std=np.array([[1.0, 2.0]]))
    # dim 1: 1/2 (mean shift 1); dim 2: log 2 + 1/8 - 1/2; summed over dimensions
    assert p.kl_to(q)[0] == pytest.approx(0.5 + math.log(2) + 0.125 - 0.5)
    assert p.kl_to(p)[0] == 0.0


def test_categorical_kl_and_log_prob_by_hand():
    p = ActionDistributions(probs=np.array([[0.5, 0.5]]))
    q = ActionDistributions(probs=np.array([[0.25, 0.75]]))
    assert p.kl_to(q)[0] == pytest.approx(0.5 * math.log(2) + 0.5 * math.log(2 / 3))
    assert q.log_prob(np.array([1]))[0] == pytest.approx(math.log(0.75))


@pytest.mark.parametrize(("dists", "message"), [
    (ActionDistributions(mean=np.zeros((3, 2))), "both mean and std"),
    (ActionDistributions(mean=np.zeros((3, 2)), std=np.zeros((3, 2))), "std must be > 0"),
    (ActionDistributions(probs=np.full((3, 2), 0.4)), "sum to 1"),
    (ActionDistributions(probs=np.full((2, 2), 0.5)), "expected shape"),
    (ActionDistributions(mean=np.full((3, 1), np.nan), std=np.ones((3, 1))), "not finite"),
])
def test_bad_distributions_are_named(dists, message):
    with pytest.raises(ImplementationError, match=message):
        dists.validate(3, "new")


# --- loading ---------------------------------------------------------------------------------

def test_load_the_reference_by_spec():
    impl = load_implementation("claims.adapters.trpo_ref:factory")
    assert capabilities(impl) == {"step", "train", "inspect", "snapshot"}


@pytest.fixture
def fake_module(monkeypatch):
    module = types.ModuleType("fake_impls")
    module.nothing = lambda: object()
    module.boom = lambda: 1 / 0
    module.not_callable = 3
    monkeypatch.setitem(sys.modules, "fake_impls", module)


@pytest.mark.parametrize(("spec", "message"), [
    ("no_colon", "must be 'package.module:factory'"),
    ("no_such_module_xyz:f", "cannot import 'no_such_module_xyz'"),
    ("fake_impls:missing", "has no callable 'missing'"),
    ("fake_impls:not_callable", "has no callable 'not_callable'"),
    ("fake_impls:boom", "the factory raised ZeroDivisionError"),
    ("fake_impls:nothing", "offers no capability"),
])
def test_bad_specs_say_what_is_wrong(fake_module, spec, message):
    with pytest.raises(ImplementationError, match=message):
        load_implementation(spec)


# --- the reference through the protocol ------------------------------------------------------

@pytest.mark.parametrize("env_id", ["Hopper-v5", "CartPole-v1"])
def test_one_reference_step_keeps_the_suite_measured_kl_within_delta(env_id):
    impl = TrpoRef()
    impl.new_policy(env_id, seed=0)
    batch = random_batch(env_id)
    outcome = impl.policy_step(batch, delta=0.01)
    outcome.old.validate(400, "old")
    outcome.new.validate(400, "new")
    kl = outcome.old.kl_to(outcome.new).mean()
    assert 0 < kl <= 0.01


def test_a_seeded_bug_shows_through_the_adapter():
    impl = TrpoRef()
    impl.new_policy("Hopper-v5", seed=0)
    with seeded_bug("kl_mean_over_action_dims"):
        outcome = impl.policy_step(random_batch("Hopper-v5"), delta=0.01)
    assert outcome.old.kl_to(outcome.new).mean() > 0.01


def test_reference_training_returns_every_episode_in_order():
    outcome = TrpoRef(steps_per_iter=1000).train("CartPole-v1", seed=0, total_steps=2000)
    outcome.validate(2000)
    assert sum(outcome.episode_lengths) >= 2000
    assert all(r == n for r, n in zip(outcome.episode_returns, outcome.episode_lengths,
                                      strict=True))  # CartPole: reward 1 per step


# --- check-adapter -----------------------------------------------------------------------------

def test_check_adapter_passes_the_reference_and_names_problems(fake_module, capsys):
    from claims.cli.main import main

    assert main(["check-adapter", "claims.adapters.trpo_ref:factory", "--env", "CartPole-v1"]) == 0
    out = capsys.readouterr().out
    assert "step on CartPole-v1: KL(old || new) =" in out and "usable" in out
    assert "inspect on CartPole-v1" in out and "rerun from a restored state is bit" in out
    assert main(["check-adapter", "fake_impls:boom"]) == 1
    assert "PROBLEM  load: 'fake_impls:boom': the factory raised ZeroDivisionError" in (
        capsys.readouterr().out)


class RaisingStep:
    name = "raises"

    def new_policy(self, env_id, seed):
        pass

    def policy_step(self, batch, delta):
        raise RuntimeError("NaN in the Fisher product")


def test_check_adapter_reports_an_adapter_that_raises(monkeypatch):
    from claims.framework.impl import check_adapter

    module = types.ModuleType("raising_impl")
    module.factory = RaisingStep
    monkeypatch.setitem(sys.modules, "raising_impl", module)
    findings = check_adapter("raising_impl:factory", tasks=("CartPole-v1",))
    assert [f.ok for f in findings] == [True, False]
    assert "RuntimeError: NaN in the Fisher product" in findings[1].detail


class DiscreteOnly(RaisingStep):
    """Declares that it does not handle Box tasks; its step would raise if called."""

    def unsupported(self, env_id):
        return "categorical policies only" if env_id == "Hopper-v5" else None


def test_check_adapter_leaves_out_the_tasks_an_adapter_declares_it_does_not_handle(monkeypatch):
    from claims.framework.impl import check_adapter

    module = types.ModuleType("discrete_only_impl")
    module.factory = DiscreteOnly
    monkeypatch.setitem(sys.modules, "discrete_only_impl", module)
    findings = check_adapter("discrete_only_impl:factory", tasks=("Hopper-v5", "CartPole-v1"))
    assert [(f.ok, f.what) for f in findings] == [
        (True, "load"), (True, "tasks: Hopper-v5"), (False, "step on CartPole-v1")]
    assert "categorical policies only" in findings[1].detail


class LeakySnapshot(RaisingStep):
    """A snapshot that forgets the update's random state: a rerun differs."""

    def __init__(self):
        self.k = 0

    def policy_step(self, batch, delta):
        from claims.framework.impl import StepOutcome

        self.k += 1
        old = ActionDistributions(probs=np.full((len(batch.adv), 2), 0.5))
        p = 0.5 + 0.01 * self.k
        return StepOutcome(old, ActionDistributions(probs=np.tile([p, 1 - p],
                                                                  (len(batch.adv), 1))))

    def get_state(self):
        return None

    def set_state(self, state):
        pass


def test_check_adapter_finds_a_snapshot_that_misses_state(monkeypatch):
    from claims.framework.impl import check_adapter

    module = types.ModuleType("leaky_impl")
    module.factory = LeakySnapshot
    monkeypatch.setitem(sys.modules, "leaky_impl", module)
    findings = check_adapter("leaky_impl:factory", tasks=("CartPole-v1",))
    assert [f.what for f in findings if not f.ok] == ["snapshot on CartPole-v1"]
    assert "the state misses something" in findings[-1].detail


def test_a_fork_registered_under_the_entry_point_group_loads_by_name(monkeypatch):
    from importlib import metadata

    from claims.framework import impl

    registered = [metadata.EntryPoint("my-fork", "claims.adapters.trpo_ref:factory",
                                      impl.ENTRY_POINT_GROUP)]

    def entry_points(group):
        return [ep for ep in registered if ep.group == group]

    monkeypatch.setattr(impl.metadata, "entry_points", entry_points)
    assert impl.registered() == {"my-fork": "claims.adapters.trpo_ref:factory"}
    assert impl.implementation_name(impl.load_implementation("my-fork")) == "trpo_ref"
    with pytest.raises(impl.ImplementationError, match=r"registered name \(my-fork\)"):
        impl.load_implementation("not-registered")
