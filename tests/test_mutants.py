"""The mutant engine (claims/audit/mutants): builds a mutant from the installed source at run time,
swaps it in for the body of ``applied`` and restores the original after, even on an exception;
an edit whose text is missing makes the mutant not applicable, never a silent no-op. Exercised
on a small module written here (no external library), then on sb3-contrib's catalogue when the
library is installed."""

from __future__ import annotations

import importlib
import sys
import textwrap

import pytest

from claims.audit import fork_check
from claims.audit.mutants import (
    Edit,
    Mutant,
    NotApplicable,
    applied,
    build,
    catalogue_for,
    patched_source,
)

TOY = '''
def scale(x, factor=2):
    return factor * x


class Base:
    def step(self, x):
        return x + 1


class Solver(Base):
    def step(self, x):
        # a line search's acceptance test
        if x < 10:
            return super().step(x)
        return 0
'''


@pytest.fixture
def toy(tmp_path, monkeypatch):
    """A small library, installed on sys.path as the module ``toy_library``."""
    (tmp_path / "toy_library.py").write_text(textwrap.dedent(TOY))
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("toy_library", None)
    yield importlib.import_module("toy_library")
    sys.modules.pop("toy_library", None)


def test_a_mutant_is_swapped_in_and_restored(toy):
    loosened = Mutant("loosened", "acceptance test loosened",
                      (Edit("toy_library:Solver.step", "if x < 10:", "if x < 100:"),))
    original = toy.Solver.step
    assert toy.Solver().step(50) == 0
    with applied(loosened):
        assert toy.Solver().step(50) == 51  # zero-argument super() still works
        assert toy.Solver().step(5) == 6
    assert toy.Solver.step is original and toy.Solver().step(50) == 0


def test_a_module_function_keeps_its_defaults_and_is_restored_after_an_exception(toy):
    halved = Mutant("halved", "factor halved",
                    (Edit("toy_library:scale", "return factor * x", "return factor * x / 2"),))
    with pytest.raises(RuntimeError), applied(halved):
        assert toy.scale(3) == 3.0  # the default factor=2 carried over
        raise RuntimeError("the run crashed")
    assert toy.scale(3) == 6


def test_a_missing_patch_site_is_not_applicable_and_touches_nothing(toy):
    stale = Mutant("stale", "written for another version", (
        Edit("toy_library:scale", "return factor * x", "return x"),
        Edit("toy_library:Solver.step", "if x <= 10:", "if True:")))
    with pytest.raises(NotApplicable, match="'if x <= 10:' found 0 time"), applied(stale):
        pass
    assert toy.scale(3) == 6
    with pytest.raises(NotApplicable, match="not found in the installed version"):
        build(Mutant("gone", "no such method", (Edit("toy_library:Solver.solve", "a", "b"),)))


def test_an_inherited_method_is_deleted_again_on_restore(toy):
    class Child(toy.Solver):
        pass

    toy.Child = Child
    with applied(Mutant("m", "m", (Edit("toy_library:Child.step", "x < 10", "x < 0"),))):
        assert "step" in vars(Child) and Child().step(1) == 0
    assert "step" not in vars(Child) and Child().step(1) == 2


@pytest.mark.parametrize(("edit", "expected"), [
    (Edit("t:f", "a", "X", count=3), "X+X+X"),
    (Edit("t:f", "a", "X", count=3, occurrence=2), "a+X+a"),
    (Edit("t:f", "a", "X", count=None), "X+X+X"),
    (Edit("t:f", "a+a", "b", count=1), "b+a"),
])
def test_patched_source_replaces_what_the_edit_says(edit, expected):
    assert patched_source("a+a+a", [edit]) == expected


@pytest.mark.parametrize("edit", [Edit("t:f", "a", "X", count=2), Edit("t:f", "z", "X", None),
                                  Edit("t:f", "a", "X", count=3, occurrence=4)])
def test_patched_source_refuses_a_site_that_does_not_match(edit):
    with pytest.raises(NotApplicable):
        patched_source("a+a+a", [edit])


def test_an_equivalent_mutant_or_probe_must_say_why():
    with pytest.raises(ValueError, match="must say why"):
        Mutant("p", "rename", (), kind="probe")
    with pytest.raises(ValueError, match="kind must be one of"):
        Mutant("p", "rename", (), kind="harmless")


def test_the_check_reports_a_not_applicable_mutant_in_its_table(toy, tmp_path, monkeypatch):
    baseline = {"claims": {}, "fingerprint": {}}

    def fake_run(name, claims, tier, seed, out, bug, spec="", patch=None):
        with patch() if patch is not None else applied(None):
            return baseline

    monkeypatch.setattr(fork_check, "_run", fake_run)
    stale = Mutant("stale", "gone in this version", (Edit("toy_library:scale", "nope", "x"),))
    probe = Mutant("probe_rename", "rename", (Edit("toy_library:scale", "factor", "k", None),),
                   kind="probe", why="a consistent rename")
    report = fork_check.mutant_check("toy_library:factory", claims=[], mutants=[stale, probe],
                                     out=tmp_path / "m")
    rows = {r["bug"]: r for r in report["rows"]}
    assert not rows["stale"]["applicable"] and "found 0 time" in rows["stale"]["not_applicable"]
    assert rows["probe_rename"]["applicable"] and not rows["probe_rename"]["caught"]
    assert report["not_applicable"] == ["stale"] and report["bugs_applicable"] == 0
    assert report["detection_rate"] is None and not report["all_bugs_caught"]
    table = (tmp_path / "m" / "detection.md").read_text()
    assert "| stale | bug | gone in this version | not applicable |" in table
    assert "| probe_rename | probe | rename | no (as it should) |" in table


def test_detection_counts_separate_bugs_from_false_alarms():
    rows = [{"bug": "clean_rerun", "kind": "clean", "applicable": True, "caught": False},
            {"bug": "a", "kind": "bug", "applicable": True, "caught": True},
            {"bug": "b", "kind": "bug", "applicable": True, "caught": False},
            {"bug": "c", "kind": "bug", "applicable": False, "caught": False},
            {"bug": "e", "kind": "equivalent", "applicable": True, "caught": False},
            {"bug": "p", "kind": "probe", "applicable": True, "caught": True}]
    counts = fork_check.detection_counts(rows)
    assert (counts["bugs_caught"], counts["bugs_applicable"]) == (1, 2)
    assert counts["detection_rate"] == 0.5 and counts["missed"] == ["b"]
    assert counts["false_alarms"] == ["p"] and counts["not_applicable"] == ["c"]
    assert counts["clean_reference_passes"] and not counts["all_bugs_caught"]


def test_an_adapter_without_a_catalogue_says_which_have_one():
    with pytest.raises(LookupError, match=r"claims\.adapters\.sb3_contrib"):
        catalogue_for("claims.adapters.trpo_ref:factory")


def test_every_sb3_contrib_mutant_builds_on_the_installed_version():
    pytest.importorskip("sb3_contrib", reason="sb3-contrib not installed (extra 'external')")
    catalogue = catalogue_for("claims.adapters.sb3_contrib:factory")
    assert sum(m.kind == "bug" for m in catalogue) >= 8
    assert sum(m.kind == "probe" for m in catalogue) >= 2
    for mutant in catalogue:
        assert build(mutant), mutant.name


@pytest.mark.parametrize(("library", "spec"), [
    ("sb3_contrib", "claims.audit.mutants.sb3_contrib:actor_only"),
    ("tianshou", "claims.adapters.tianshou:factory"),
])
def test_probes_and_equivalent_mutants_leave_every_step_bit_identical(library, spec):
    """What the catalogue calls behaviour-preserving is: three consecutive updates (delta 0.01,
    1, 100: the line search accepting, backtracking, failing) give bit-identical policies."""
    pytest.importorskip(library, reason=f"{library} not installed")
    import numpy as np

    from claims.framework.impl import load_implementation, random_batch
    from trpo_ref.deep.runtime import torch_threads

    batch = random_batch("Hopper-v5", n=64)

    def steps():
        impl = load_implementation(spec)
        impl.new_policy("Hopper-v5", 0)
        out = [impl.policy_step(batch, delta).new for delta in (0.01, 1.0, 100.0)]
        return np.concatenate([np.concatenate([d.mean, d.std]) for d in out])

    with torch_threads(1):
        clean = steps()
        for mutant in catalogue_for(spec):
            if mutant.kind != "bug":  # probes and equivalent mutants
                with applied(mutant):
                    np.testing.assert_array_equal(steps(), clean, err_msg=mutant.name)


def test_sb3_actor_only_adapter_takes_the_default_adapters_steps_bit_for_bit():
    pytest.importorskip("sb3_contrib", reason="sb3-contrib not installed (extra 'external')")
    import numpy as np

    from claims.adapters.sb3_contrib import SB3ContribTRPO
    from claims.audit.mutants.sb3_contrib import actor_only
    from claims.framework.impl import random_batch
    from trpo_ref.deep.runtime import torch_threads

    batch = random_batch("Hopper-v5", n=64)
    news = []
    with torch_threads(1):
        for impl in (SB3ContribTRPO(), actor_only()):
            impl.new_policy("Hopper-v5", 0)
            news.append([impl.policy_step(batch, delta).new for delta in (0.01, 1.0, 100.0)])
    for default, fast in zip(*news, strict=True):
        np.testing.assert_array_equal(default.mean, fast.mean)
        np.testing.assert_array_equal(default.std, fast.std)


@pytest.mark.parametrize("argv", [
    ["fork-check", "--mutants"],  # trpo_ref has seeded bugs, not a mutant catalogue
    ["fork-check", "--impl", "claims.adapters.sb3_contrib:factory"],  # bugs patch trpo_ref only
])
def test_fork_check_refuses_a_mutant_check_it_cannot_run(argv, capsys):
    from claims.cli.main import main

    assert main(argv) == 2
    assert "error:" in capsys.readouterr().err
