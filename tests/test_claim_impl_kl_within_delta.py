"""impl.kl_within_delta and the implementation under test: the reference passes and its fork
fails; claims that check trpo_ref itself are SKIPPED for other implementations; a bad adapter is
that claim's ERROR while the others still run."""

from __future__ import annotations

import sys
import types

import pytest

from claims.catalogue.implementation.kl_within_delta import KLWithinDelta
from claims.framework.core import Status
from claims.framework.impl import UnderTest, use_implementation
from claims.framework.registry import get
from claims.framework.runner import run_claims

CLAIM = KLWithinDelta()


def test_reference_passes_and_its_kl_averaging_fork_is_refuted():
    real = CLAIM.run("quick")
    assert CLAIM.decide(real).status is Status.SUPPORTED
    assert 0.5 < real.summary["max KL / delta"] <= 1.0
    control = CLAIM.run("quick", control=True)
    assert CLAIM.decide(control).status is Status.REFUTED
    # the fork only differs on the Box task: cart-pole's KL is untouched
    assert control.data["kl_mean"]["CartPole-v1 seed 0"] == pytest.approx(
        real.data["kl_mean"]["CartPole-v1 seed 0"])
    assert CLAIM.samples(control)["Hopper-v5 seed 0"] > 1.5 * CLAIM.samples(real)[
        "Hopper-v5 seed 0"]


class TrainOnly:
    name = "train-only"

    def train(self, env_id, seed, total_steps):
        raise AssertionError("not called here")


class NaNStep:
    name = "nan-step"

    def new_policy(self, env_id, seed):
        pass

    def policy_step(self, batch, delta):
        from claims.framework.impl import ActionDistributions, StepOutcome

        n = len(batch.adv)
        nan = ActionDistributions(mean=[[float("nan")]] * n, std=[[1.0]] * n)
        return StepOutcome(nan, nan)


@pytest.fixture
def adapters(monkeypatch):
    module = types.ModuleType("test_adapters")
    module.train_only, module.nan_step = TrainOnly, NaNStep
    monkeypatch.setitem(sys.modules, "test_adapters", module)


def run_under(spec, tmp_path, ids=("theory.beta_kl", "impl.kl_within_delta")):
    with use_implementation(UnderTest(spec)):
        result = run_claims([get(i) for i in ids], tier="quick", seed=0, out_dir=tmp_path)
    return result.results, {e["id"]: e for e in result.results["claims"]}


def test_other_implementations_skip_reference_only_claims_and_missing_capabilities(
        adapters, tmp_path):
    results, entries = run_under("test_adapters:train_only", tmp_path)
    assert results["implementation"]["capabilities"] == ["train"]
    assert entries["theory.beta_kl"]["verdict"]["status"] == "SKIPPED"
    assert "not the implementation under test" in entries["theory.beta_kl"]["verdict"]["message"]
    verdict = entries["impl.kl_within_delta"]["verdict"]
    assert verdict["status"] == "SKIPPED" and "needs the step capability" in verdict["message"]


def test_an_unloadable_adapter_is_that_claims_error_and_the_rest_still_runs(adapters, tmp_path):
    results, entries = run_under("no_such_package_xyz:factory", tmp_path,
                                 ids=("impl.kl_within_delta", "theory.beta_kl"))
    entry = entries["impl.kl_within_delta"]
    assert entry["verdict"]["status"] == "ERROR"
    assert "cannot import 'no_such_package_xyz'" in entry["verdict"]["message"]
    assert entry["control"]["verdict"]["status"] == "REFUTED"  # the control is the reference's
    assert entries["theory.beta_kl"]["verdict"]["status"] == "SKIPPED"
    assert results["complete"]


def test_an_adapter_returning_nan_gives_cell_findings_not_an_error(adapters, tmp_path):
    results, entries = run_under("test_adapters:nan_step", tmp_path,
                                 ids=("impl.kl_within_delta",))
    entry = entries["impl.kl_within_delta"]
    assert entry["verdict"]["status"] == "INCONCLUSIVE"  # nothing measurable, nothing erred
    assert "4 of 4 cells crashed" in entry["verdict"]["message"]
    assert "old distributions: not finite" in entry["verdict"]["message"]
    crashes = entry["evidence"]["data"]["crashes"]
    assert all(c["update"] == 1 and c["kind"] == "invalid output" for c in crashes.values())
    assert results["complete"]


def test_cli_impl_option_reaches_the_results(adapters, tmp_path, capsys):
    import json

    from claims.cli.main import main

    out = tmp_path / "run"
    argv = ["run", "--claim", "theory.beta_kl", "--impl", "test_adapters:train_only",
            "--out", str(out), "--no-controls"]
    assert main(argv) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["implementation"]["name"] == "train-only"
    assert results["command"][8:10] == ["--impl", "test_adapters:train_only"]
    assert "Implementation under test: train-only" in (out / "report.md").read_text()
