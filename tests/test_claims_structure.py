"""The claims package's structure: typed budgets, stable job keys, no import cycles, layers."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import json
from pathlib import Path

import pytest
from test_structure import find_cycle  # one cycle finder for trpo_ref's and claims/' graphs

from claims.catalogue.empirical import protocol
from claims.framework.core import TIERS, Budget, budget_json
from claims.framework.jobs import job_key, method_of
from claims.framework.registry import all_claims

DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize("tier", ["quick", "standard", "full"])
def test_planned_empirical_job_keys_are_unchanged(tier, monkeypatch):
    """The job cache is keyed on each job's spec: the tier's planned trainings must hash to the
    keys recorded before the configuration strings were typed (tests/data/empirical_job_keys.json,
    recorded at main 8a9455b with the NPG sweep's winner patched to 1/3), or every cached
    training would be trained again. The key's other half, the code version (trpo_ref and the
    job function's module, claims.framework.jobs.job_code_version), is held fixed here."""
    monkeypatch.setattr(protocol, "best_npg_step", lambda tier, env: (3.0**-1, {}))
    recorded = json.loads((DATA / "empirical_job_keys.json").read_text())[tier]
    jobs = [job for stage in protocol.stages(tier) for job in stage()]
    assert sorted(job_key(job, "fixture") for job in jobs) == recorded


# --- budgets are typed ---------------------------------------------------------------------------

@pytest.mark.parametrize("claim", all_claims(), ids=lambda c: c.id)
def test_every_budget_is_a_frozen_dataclass_or_none(claim):
    """A budget is a :class:`claims.framework.core.Budget` (fields declared and documented where the
    claim family is), never a dict of string keys; None means no verdict at that tier."""
    for tier in TIERS:
        budget = claim.budget(tier)
        assert budget is None or isinstance(budget, Budget), (tier, type(budget))
        if budget is not None:
            assert dataclasses.is_dataclass(budget)
            with pytest.raises(dataclasses.FrozenInstanceError):
                budget.__setattr__(dataclasses.fields(budget)[0].name, None)
            assert json.loads(json.dumps(budget.to_json())) == budget.to_json()


def budget_classes() -> list[type[Budget]]:
    """Every Budget subclass a registered claim uses, with its Budget bases."""
    found = {type(b) for c in all_claims() if isinstance(c.budgets, dict)
             for b in c.budgets.values() if isinstance(b, Budget)}
    return sorted({k for cls in found for k in cls.__mro__
                   if isinstance(k, type) and issubclass(k, Budget) and k is not Budget},
                  key=lambda k: k.__qualname__)


@pytest.mark.parametrize("cls", budget_classes(), ids=lambda k: k.__qualname__)
def test_every_budget_field_has_a_one_line_doc(cls):
    lines, _ = inspect.getsourcelines(cls)
    own = set(cls.__annotations__)
    documented = {line.split(":")[0].strip() for line in lines
                  if line.startswith("    ") and not line.startswith("     ") and "  # " in line}
    assert cls.__doc__ and own <= documented, sorted(own - documented)


def test_budget_to_json_lists_fields_in_order_and_leaves_out_unset_optionals():
    @dataclasses.dataclass(frozen=True)
    class Example(Budget):
        sizes: tuple[tuple[int, int], ...]
        n: int
        extra: int | None = None

    budget = Example(sizes=[[2, 2], [5, 3]], n=4)
    assert budget.sizes == ((2, 2), (5, 3))  # lists are frozen into tuples
    assert list(budget.to_json().items()) == [("sizes", [[2, 2], [5, 3]]), ("n", 4)]
    assert Example(sizes=[], n=1, extra=3).to_json() == {"sizes": [], "n": 1, "extra": 3}
    assert budget_json(None) is None and budget_json(budget) == budget.to_json()


# --- no import cycles ----------------------------------------------------------------------------

CLAIMS_DIR = Path(__file__).resolve().parent.parent / "claims"


def _module_name(path: Path) -> str:
    parts = path.relative_to(CLAIMS_DIR.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def claims_import_graph() -> dict[str, set[str]]:
    """Module -> the claims modules it imports, at module level or inside functions alike (a
    function-level import still needs the other module importable first, so it still counts)."""
    modules = {_module_name(p): p for p in CLAIMS_DIR.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                    base = f"{anchor}.{base}" if base else anchor
                targets.add(base)
                targets |= {f"{base}.{alias.name}" for alias in node.names}
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def test_the_cycle_finder_finds_a_cycle_and_only_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_claims_has_no_import_cycle():
    graph = claims_import_graph()
    assert {"claims.framework.runner", "claims.framework.report",
            "claims.catalogue.empirical.protocol"} <= set(graph)
    assert "claims.framework.report" in graph["claims.framework.runner"]  # sees real imports
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph) or [])


# --- the layers ----------------------------------------------------------------------------------

# Each layer of claims/ and the layers it may import (docs/architecture.md). The
# framework knows no claim; the faults know no claim and no framework; the catalogue (the claims)
# builds on both; the audit tools and the adapters sit beside or above it; the command line and
# the pytest plugin on top. (The registry names the catalogue's modules as strings in
# CLAIM_MODULES and imports them on first use: data, not an import edge.)
LAYERS: dict[str, set[str]] = {
    "claims.framework": set(),
    "claims.api": {"claims.framework"},
    "claims.adapters": {"claims.api", "claims.framework"},
    "claims.faults": set(),
    "claims.catalogue": {"claims.framework", "claims.faults"},
    "claims.audit": {"claims.framework", "claims.faults", "claims.catalogue", "claims.api",
                     "claims.adapters"},
    "claims.cli": {"claims.framework", "claims.faults", "claims.catalogue", "claims.audit",
                   "claims.api", "claims.adapters"},
    "claims.pytest_plugin": {"claims.framework", "claims.api"},
    "claims.__main__": {"claims.cli"},
    "claims": set(),  # claims/__init__.py, empty
}


def layer_of(module: str) -> str:
    """The layer (a key of LAYERS) holding ``module``: its longest matching prefix."""
    return max((name for name in LAYERS if module == name or module.startswith(name + ".")),
               key=len)


def test_every_module_is_in_a_layer_and_every_layer_exists():
    graph = claims_import_graph()
    assert {layer_of(m) for m in graph} == set(LAYERS)


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """Every "A imports B" of ``graph`` where B's layer is not one A's layer may import."""
    return sorted(f"{module} imports {target}" for module, targets in graph.items()
                  for target in targets
                  # "claims" itself: the empty root package, which `from claims import x` names
                  if layer_of(target) not in LAYERS[layer_of(module)] | {layer_of(module),
                                                                         "claims"})


def test_each_layer_imports_only_the_layers_below_it():
    """The framework never imports the catalogue, the faults, the audit tools or the command
    line; the catalogue never imports the audit tools, the adapters or the command line."""
    wrong = layer_violations(claims_import_graph())
    assert not wrong, ("imports across claims/' layers the other way (see LAYERS in this file and "
                       "docs/architecture.md): " + "; ".join(wrong))


def test_the_layer_check_sees_a_wrong_import():
    graph = {"claims.framework.runner": {"claims.framework.report", "claims.catalogue.step.fisher"},
             "claims.catalogue.step.fisher": {"claims.framework.core", "claims.faults",
                                              "claims.cli.main", "claims"},
             "claims.cli.main": {"claims.audit.fork_check", "claims.catalogue.climb.claims"}}
    assert layer_violations(graph) == [
        "claims.catalogue.step.fisher imports claims.cli.main",
        "claims.framework.runner imports claims.catalogue.step.fisher"]


# --- the empirical protocol's training configurations -----------------------------------------

@pytest.mark.parametrize("tier", ["quick", "full"])
def test_every_planned_label_parses_back_to_its_method(tier, monkeypatch):
    monkeypatch.setattr(protocol, "best_npg_step", lambda tier, env: (3.0**-1, {}))
    for job in (job for stage in protocol.stages(tier) for job in stage()):
        method = protocol.Method.parse(job.algo)
        assert method.label() == job.algo
        assert (method.trainer(job.task)[0], method.fault) == (job.kwargs["algo"],
                                                               job.kwargs.get("fault"))


@pytest.mark.parametrize(("method", "label"), [
    (protocol.Method("trpo"), "trpo"),
    (protocol.Method("npg", npg_step=1 / 3), "npg@0.333333"),
    (protocol.Method("npg", npg_step=3.0, fault="flip_advantages"), "npg@3+flip_advantages"),
    (protocol.Method("trpo", delta=0.003), "trpo@delta=0.003"),
    (protocol.Method("vine", fault="flip_advantages"), "vine+flip_advantages"),
])
def test_method_labels_by_hand(method, label):
    assert method.label() == label
    assert protocol.Method.parse(label) == method


@pytest.mark.parametrize("label", ["ppo", "npg", "npg@", "trpo+", "vine@delta=0.1",
                                   "npg@0.33333333", "trpo@delta=0.0300"])
def test_labels_the_protocol_never_writes_are_rejected(label):
    with pytest.raises(ValueError):
        protocol.Method.parse(label)


def test_npg_trains_with_the_step_its_label_shows():
    """The cached runs were trained with the label's 6-digit step, not the sweep's float."""
    assert protocol.Method("npg", npg_step=1 / 3).trainer("CartPole-v1") == (
        "npg", {"step_size": 0.333333})


@pytest.mark.parametrize(("label", "method"), [
    ("npg@0.333333", "npg"), ("npg@3+flip_advantages", "npg"), ("trpo", "trpo"),
    ("trpo@delta=0.003", "trpo@delta=0.003"), ("vine+flip_advantages", "vine+flip_advantages"),
])
def test_the_trainings_table_counts_every_npg_step_size_as_one_method(label, method):
    """runner.training_summary groups by jobs.method_of, which reads the protocol's labels
    through Method.parse (registered by the protocol for its job function)."""
    assert method_of(protocol.training("figure4", "CartPole-v1", label, 0, 1000)) == method
