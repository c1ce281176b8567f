"""The implementation protocol: what the suite asks of a TRPO implementation to check it.

An *implementation* is any object (an adapter around someone's TRPO) offering one or both
capabilities:

- ``"step"``: ``new_policy(env_id, seed)`` makes a fresh policy for the task's spaces, then
  ``policy_step(batch, delta)`` performs exactly ONE policy update on the suite's
  :class:`StepBatch` with KL bound ``delta`` and returns the action distributions on the batch's
  states before and after (:class:`StepOutcome`). The suite measures KL, surrogate change and
  parameter restoration from those distributions itself, by the paper's definitions, never from
  the implementation's own logs.
- ``"train"``: ``train(env_id, seed, total_steps)`` trains for the budget and returns every
  finished episode's true return and length, in order (:class:`TrainOutcome`).

Two optional capabilities extend ``"step"``:

- ``"inspect"``: ``action_distributions(obs)`` returns the current policy's
  :class:`ActionDistributions` on ``obs`` without changing anything, even when the policy has
  become non-finite (build the distributions without argument validation). The suite reads the
  state a failed update left with it (without it: the ``old`` of one more update).
- ``"snapshot"``: ``get_state()`` returns an opaque copy of everything the next
  ``policy_step`` depends on (parameters, optimizer and random state) and ``set_state(state)``
  puts it back exactly, so the suite can rerun an update from the same state (the direction
  claim, :mod:`claims.catalogue.implementation.line_search`).

An implementation that by design handles only some tasks (skrl's TRPO: Gaussian policies only)
may offer ``unsupported(env_id)``, returning why it cannot handle the task (or None when it
can): the step claims then leave that task's cells out and say so in their evidence, instead of
recording a crash in each (:func:`unsupported_tasks`).

:func:`capabilities` says which an object offers; claims declare what they require, and a claim
whose requirement is unmet is SKIPPED with the reason. :func:`load_implementation` turns a spec
(``"package.module:factory"``, or a name registered in the :data:`ENTRY_POINT_GROUP` entry-point
group) into an implementation, with errors that say what is wrong.
"""

from __future__ import annotations

import contextlib
import importlib
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import numpy as np

ENTRY_POINT_GROUP = "trpo_claims.implementations"
CAPABILITIES: dict[str, tuple[str, ...]] = {
    "step": ("new_policy", "policy_step"),
    "train": ("train",),
    "inspect": ("action_distributions",),
    "snapshot": ("get_state", "set_state"),
}
# optional, used by the step protocol where offered (claims needing them say so)
OPTIONAL_CAPABILITIES = ("inspect", "snapshot")


class ImplementationError(ValueError):
    """An implementation (or its spec) is unusable: the message says what is wrong."""


@dataclass(frozen=True)
class StepBatch:
    """What one update sees. obs: (N, obs_dim) float64; act: (N, act_dim) float64 (Box actions)
    or (N,) int64 (Discrete); adv: (N,) float64, raw (the implementation normalizes them if that
    is what it does in training); env_id names the task whose spaces the policy fits."""

    env_id: str
    obs: np.ndarray
    act: np.ndarray
    adv: np.ndarray


@dataclass(frozen=True)
class ActionDistributions:
    """Action distributions on N states: diagonal Gaussian (``mean``, ``std``: (N, act_dim)) or
    categorical (``log_probs`` or ``probs``: (N, n_actions)). Give ``log_probs`` where you can:
    probabilities underflow to 0 far from the quadratic regime, log-probabilities do not."""

    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    probs: np.ndarray | None = None
    log_probs: np.ndarray | None = None

    @property
    def kind(self) -> str:
        return "categorical" if self.probs is not None or self.log_probs is not None \
            else "gaussian"

    def categorical_log_probs(self) -> np.ndarray:
        """log pi(a | s) for every action; shape (N, n_actions)."""
        if self.log_probs is not None:
            return np.asarray(self.log_probs, dtype=float)
        with np.errstate(divide="ignore"):
            return np.log(np.asarray(self.probs, dtype=float))

    def validate(self, n: int, what: str) -> None:
        """ImplementationError unless these are N finite, proper distributions."""
        if self.kind == "categorical":
            arrays = [self.log_probs if self.log_probs is not None else self.probs]
        else:
            arrays = [self.mean, self.std]
        if any(a is None for a in arrays):
            raise ImplementationError(f"{what}: give log_probs or probs, or both mean and std")
        for a in arrays:
            if np.ndim(a) != 2 or np.shape(a)[0] != n:
                raise ImplementationError(f"{what}: expected shape (N={n}, k), got "
                                          f"{np.shape(a)}")
        if self.kind == "gaussian":
            if not (np.all(np.isfinite(self.mean)) and np.all(np.isfinite(self.std))):
                raise ImplementationError(f"{what}: not finite")
            if not np.all(np.asarray(self.std) > 0):
                raise ImplementationError(f"{what}: std must be > 0")
            return
        log_p = self.categorical_log_probs()
        if np.any(np.isnan(log_p)) or np.any(log_p == np.inf):
            raise ImplementationError(f"{what}: not finite")
        if np.any(log_p > 1e-12) or not np.allclose(np.exp(log_p).sum(-1), 1.0, atol=1e-6):
            raise ImplementationError(f"{what}: probs must be >= 0 and sum to 1")

    def kl_to(self, other: ActionDistributions) -> np.ndarray:
        """KL(self || other) per state, summed over action dimensions (paper's definition);
        shape (N,)."""
        if self.kind != other.kind:
            raise ImplementationError("old and new distributions are of different kinds")
        if self.kind == "categorical":
            lp, lq = self.categorical_log_probs(), other.categorical_log_probs()
            with np.errstate(invalid="ignore"):
                terms = np.where(lp > -np.inf, np.exp(lp) * (lp - lq), 0.0)
            return terms.sum(-1)
        m0, s0 = np.asarray(self.mean, float), np.asarray(self.std, float)
        m1, s1 = np.asarray(other.mean, float), np.asarray(other.std, float)
        return (np.log(s1 / s0) + (s0**2 + (m0 - m1) ** 2) / (2 * s1**2) - 0.5).sum(-1)

    def log_prob(self, act: np.ndarray) -> np.ndarray:
        """log pi(a_n | s_n) per state; act as in :class:`StepBatch`; shape (N,)."""
        if self.kind == "categorical":
            log_p = self.categorical_log_probs()
            return log_p[np.arange(log_p.shape[0]), np.asarray(act, int)]
        m, s = np.asarray(self.mean, float), np.asarray(self.std, float)
        z = (np.asarray(act, float) - m) / s
        return (-0.5 * z**2 - np.log(s) - 0.5 * math.log(2 * math.pi)).sum(-1)


@dataclass(frozen=True)
class StepOutcome:
    old: ActionDistributions  # before the update, on the batch's states
    new: ActionDistributions  # after it (equal to ``old`` if the update was rejected)


@dataclass(frozen=True)
class TrainOutcome:
    episode_returns: Sequence[float]  # every finished episode's true (undiscounted) return
    episode_lengths: Sequence[int]  # and its length in env steps, in order

    def validate(self, total_steps: int) -> None:
        if len(self.episode_returns) != len(self.episode_lengths):
            raise ImplementationError("train: episode_returns and episode_lengths differ in "
                                      "length")
        if not all(math.isfinite(float(r)) for r in self.episode_returns):
            raise ImplementationError("train: an episode return is not finite")
        if any(int(n) < 1 for n in self.episode_lengths):
            raise ImplementationError("train: an episode length is < 1")


def capabilities(impl: Any) -> frozenset[str]:
    """The capabilities ``impl`` offers: those whose methods it has, all callable."""
    return frozenset(name for name, methods in CAPABILITIES.items()
                     if all(callable(getattr(impl, m, None)) for m in methods))


def unsupported_tasks(impl: Any, env_ids: Sequence[str]) -> dict[str, str]:
    """The tasks of ``env_ids`` that ``impl`` says it does not handle by design, with its
    reason (its optional ``unsupported(env_id)``; without it every task is supported)."""
    ask = getattr(impl, "unsupported", None)
    if not callable(ask):
        return {}
    reasons = {env_id: ask(env_id) for env_id in dict.fromkeys(env_ids)}
    return {env_id: str(why) for env_id, why in reasons.items() if why}


def registered() -> dict[str, str]:
    """Implementations registered by installed packages: name -> "module:factory"."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def load_implementation(spec: str) -> Any:
    """The implementation named by ``spec``: "package.module:factory" (factory() is called) or a
    name registered under :data:`ENTRY_POINT_GROUP`. ImplementationError says what went wrong."""
    target = registered().get(spec, spec)
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        known = ", ".join(sorted(registered())) or "none installed"
        raise ImplementationError(f"implementation spec must be 'package.module:factory' or a "
                                  f"registered name ({known}), got {spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # an import can fail in any way; report it, don't crash
        raise ImplementationError(f"{spec!r}: cannot import {module_name!r}: "
                                  f"{type(error).__name__}: {error}") from error
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ImplementationError(f"{spec!r}: {module_name!r} has no callable {attr!r}")
    try:
        impl = factory()
    except Exception as error:
        raise ImplementationError(f"{spec!r}: the factory raised {type(error).__name__}: "
                                  f"{error}") from error
    if not capabilities(impl) - set(OPTIONAL_CAPABILITIES):
        wanted = "; ".join(f"{c}: {', '.join(m)}" for c, m in CAPABILITIES.items())
        raise ImplementationError(f"{spec!r}: the factory returned {type(impl).__name__}, "
                                  f"which offers no capability (methods wanted: {wanted})")
    return impl


def implementation_name(impl: Any) -> str:
    return str(getattr(impl, "name", type(impl).__name__))


# --- validating an adapter -------------------------------------------------------------------

CHECK_TASKS = ("CartPole-v1", "Hopper-v5")  # one Discrete and one Box task


def random_batch(env_id: str, n: int = 256, seed: int = 0) -> StepBatch:
    """A batch with the task's shapes: N(0, 1) observations, actions drawn from the action space,
    N(0, 1) advantages (for validating adapters, not for judging claims)."""
    import gymnasium as gym

    env = gym.make(env_id)
    try:
        env.action_space.seed(seed)
        obs_dim = int(np.prod(env.observation_space.shape))
        act = np.array([env.action_space.sample() for _ in range(n)])
    finally:
        env.close()
    rng = np.random.default_rng(seed)
    act = act.astype(np.int64) if act.ndim == 1 else act.astype(np.float64)
    return StepBatch(env_id, rng.normal(size=(n, obs_dim)), act, rng.normal(size=n))


@dataclass(frozen=True)
class Finding:
    ok: bool
    what: str  # e.g. "step on Hopper-v5"
    detail: str


def check_adapter(spec: str, tasks: Sequence[str] = CHECK_TASKS, delta: float = 0.01,
                  train_steps: int = 2_000) -> list[Finding]:
    """Load ``spec`` and exercise every capability it offers on ``tasks`` (one step on a random
    batch; a short training); a Finding per check, failures saying what is wrong."""
    try:
        impl = load_implementation(spec)
    except ImplementationError as error:
        return [Finding(False, "load", str(error))]
    offered = capabilities(impl)
    findings = [Finding(True, "load", f"{implementation_name(impl)}: capabilities "
                                      f"{', '.join(sorted(offered))}")]
    left_out = unsupported_tasks(impl, tasks)
    for env_id in tasks:
        if env_id in left_out:  # by design: the step claims leave such tasks out too
            findings.append(Finding(True, f"tasks: {env_id}", f"left out, the adapter does not "
                                                              f"handle it: {left_out[env_id]}"))
            continue
        if "step" in offered:
            findings.append(_check_step(impl, env_id, delta))
            findings += [_check_optional(impl, env_id, delta, c)
                         for c in OPTIONAL_CAPABILITIES if c in offered]
        if "train" in offered:
            findings.append(_check_train(impl, env_id, train_steps))
    return findings


def _check_step(impl: Any, env_id: str, delta: float) -> Finding:
    what = f"step on {env_id}"
    try:
        batch = random_batch(env_id)
        impl.new_policy(env_id, 0)
        outcome = impl.policy_step(batch, delta)
        if not isinstance(outcome, StepOutcome):
            raise ImplementationError(f"policy_step returned {type(outcome).__name__}, not "
                                      "StepOutcome")
        outcome.old.validate(len(batch.adv), "old distributions")
        outcome.new.validate(len(batch.adv), "new distributions")
        kl = float(outcome.old.kl_to(outcome.new).mean())
    except Exception as error:
        return Finding(False, what, f"{type(error).__name__}: {error}")
    return Finding(True, what, f"KL(old || new) = {kl:.4g} at delta = {delta} (measured by the "
                               "suite; claims judge it)")


def _same(a: ActionDistributions, b: ActionDistributions) -> bool:
    fields = ("mean", "std", "probs", "log_probs")
    return all((getattr(a, f) is None) == (getattr(b, f) is None) and (
        getattr(a, f) is None or np.array_equal(getattr(a, f), getattr(b, f))) for f in fields)


def _check_optional(impl: Any, env_id: str, delta: float, capability: str) -> Finding:
    """inspect: it reads the policy a step left; snapshot: a step rerun from a restored state
    gives the same distributions, bit for bit (what the direction claim relies on)."""
    what = f"{capability} on {env_id}"
    try:
        batch = random_batch(env_id)
        impl.new_policy(env_id, 0)
        if capability == "inspect":
            outcome = impl.policy_step(batch, delta)
            if not _same(impl.action_distributions(batch.obs), outcome.new):
                raise ImplementationError("action_distributions differs from the last "
                                          "policy_step's new distributions")
            return Finding(True, what, "action_distributions reads the current policy")
        state = impl.get_state()
        first = impl.policy_step(batch, delta)
        impl.set_state(state)
        second = impl.policy_step(batch, delta)
        if not (_same(first.old, second.old) and _same(first.new, second.new)):
            raise ImplementationError("a step rerun after set_state(get_state()) differs: "
                                      "the state misses something the update depends on")
    except Exception as error:
        return Finding(False, what, f"{type(error).__name__}: {error}")
    return Finding(True, what, "a step rerun from a restored state is bit-identical")


def _check_train(impl: Any, env_id: str, total_steps: int) -> Finding:
    what = f"train on {env_id}"
    try:
        outcome = impl.train(env_id, 0, total_steps)
        if not isinstance(outcome, TrainOutcome):
            raise ImplementationError(f"train returned {type(outcome).__name__}, not "
                                      "TrainOutcome")
        outcome.validate(total_steps)
        if not outcome.episode_returns:
            raise ImplementationError(f"train: no finished episode in {total_steps} steps")
    except Exception as error:
        return Finding(False, what, f"{type(error).__name__}: {error}")
    n = len(outcome.episode_returns)
    return Finding(True, what, f"{n} episodes, {sum(outcome.episode_lengths)} steps, mean "
                               f"return {np.mean(outcome.episode_returns):.4g}")


# --- the implementation under test -----------------------------------------------------------

REFERENCE_SPEC = "claims.adapters.trpo_ref:factory"


@dataclass
class UnderTest:
    """The implementation the claims check: its spec, and the loaded object (None until loaded;
    a spec that fails to load keeps its error, which every claim needing it reports)."""

    spec: str = REFERENCE_SPEC
    _impl: Any = None
    _error: ImplementationError | None = None

    @property
    def is_reference(self) -> bool:
        return self.spec == REFERENCE_SPEC

    def load(self) -> Any:
        """The implementation (loaded once); raises the load's ImplementationError."""
        if self._impl is None and self._error is None:
            try:
                self._impl = load_implementation(self.spec)
            except ImplementationError as error:
                self._error = error
        if self._error is not None:  # a fresh exception each time: tracebacks stay short
            raise ImplementationError(str(self._error))
        return self._impl

    def record(self) -> dict[str, Any]:
        """For results.json: spec, name and capabilities (or the load error)."""
        try:
            impl = self.load()
        except ImplementationError as error:
            return {"spec": self.spec, "name": None, "capabilities": [], "error": str(error)}
        return {"spec": self.spec, "name": implementation_name(impl),
                "capabilities": sorted(capabilities(impl)), "error": None}


_UNDER_TEST: list[UnderTest] = [UnderTest()]


@contextlib.contextmanager
def use_implementation(under_test: UnderTest) -> Iterator[UnderTest]:
    """Check ``under_test`` inside the body (the reference again afterwards)."""
    _UNDER_TEST.append(under_test)
    try:
        yield under_test
    finally:
        _UNDER_TEST.pop()


def under_test() -> UnderTest:
    return _UNDER_TEST[-1]


def skip_reason(requires: frozenset[str] | None, target: UnderTest) -> str | None:
    """Why a claim with ``requires`` cannot judge ``target`` (None: it can). ``requires`` None:
    the claim checks trpo_ref's internals or the paper's mathematics, so only the reference."""
    if target.is_reference:
        return None
    if requires is None:
        return ("checks trpo_ref's internals or the paper's mathematics, not the implementation "
                f"under test ({target.spec})")
    try:
        offered = capabilities(target.load())
    except ImplementationError:
        return None  # the claim runs and reports the load error as its ERROR
    missing = sorted(requires - offered)
    if missing:
        return f"needs the {', '.join(missing)} capability, which {target.spec} does not offer"
    return None
