"""trpo_ref stays readable: no function over 60 lines, and no import cycle between its modules.

Imports count wherever they are written (module level, inside a function, under
``TYPE_CHECKING``): a function-level import that dodges a cycle at import time is still a cycle
in the design, so it counts as an edge."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "trpo_ref"
MAX_LINES = 60
MODULES = sorted(PACKAGE.rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def long_functions(path: Path) -> list[str]:
    """"name (n lines)" of every function or method in ``path`` longer than MAX_LINES, counted
    from its ``def`` (decorators excluded) to its last line, docstring included."""
    return [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_LINES]


def imported_modules(source: str, module: str, package: str, known: set[str]) -> set[str]:
    """The modules of ``known`` that ``source`` (module ``module`` of ``package``) imports
    anywhere in its body (``from pkg import module`` counts as importing that module)."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names}
    return {name for name in found if name in known} - {module}


def import_graph() -> dict[str, set[str]]:
    known = {module_name(path) for path in MODULES}
    graph = {}
    for path in MODULES:
        name = module_name(path)
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        graph[name] = imported_modules(path.read_text(), name, package, known)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_no_function_is_longer_than_60_lines(path):
    assert long_functions(path) == []


def test_trpo_ref_has_no_import_cycle():
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_sees_function_level_and_relative_imports():
    known = {"trpo_ref.x", "trpo_ref.y", "trpo_ref.z"}
    source = "def f():\n    from trpo_ref.x import y\n    from .z import w\n    return y, w\n"
    assert imported_modules(source, "trpo_ref.q", "trpo_ref", known) == {"trpo_ref.x", "trpo_ref.z"}
    assert find_cycle({"p": {"q"}, "q": {"r"}, "r": {"p"}}) == ["p", "q", "r", "p"]
    assert find_cycle({"p": {"q"}, "q": set()}) is None


def test_trpo_ref_does_not_import_claims():
    for path in MODULES:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom | ast.Import):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [
                    alias.name for alias in node.names]
                assert not any(n.split(".")[0] == "claims" for n in names), path


def test_jobs_hash_every_trpo_ref_module_they_load():
    """The job cache key hashes claims.framework.jobs.SOURCE_PACKAGES, not all of trpo_ref: every
    trpo_ref module the job functions and the adapters they train load must lie under it."""
    code = ("import sys, claims.catalogue.training_jobs, claims.catalogue.implementation.learns, "
            "claims.catalogue.implementation.training, claims.adapters.trpo_ref\n"
            "print('\\n'.join(m.__file__ for n, m in sys.modules.items()"
            " if n.split('.')[0] == 'trpo_ref'))")
    root = PACKAGE.parent
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=root, env={"PYTHONPATH": str(root)}).stdout
    from claims.framework.jobs import SOURCE_PACKAGES

    covered = [root / p for p in SOURCE_PACKAGES]
    loaded = [Path(line).resolve() for line in out.split()]
    assert loaded and all(any(f == c or c in f.parents for c in covered) for f in loaded), loaded
