"""Source-level mutants of code this project did not write (issue 13, item 5).

A :class:`Mutant` is a list of exact-text :class:`Edit` s to functions of an *installed* library,
named by where they are looked up at run time (``"package.module:Class.method"`` or
``"package.module:function"``). :func:`applied` builds each mutated function from the installed
source (``inspect.getsource``), parses and compiles it against the original's globals (with a
``__class__`` cell, so zero-argument ``super()`` still works), swaps it in for the body of the
``with`` block and restores the original afterwards. No third-party source is stored in this
repository: a catalogue holds only the few characters each edit replaces.

An edit whose text is not found in the installed version (the library changed) makes the mutant
*not applicable*: :class:`NotApplicable` says which edit and why, and the fork check reports it
in the table, never skipping it silently.

Each mutant declares a ``kind``:

- ``"bug"``: a plausible slip that changes what the update does; the suite should catch it;
- ``"equivalent"``: an edit that looks like a bug but provably leaves the outcome unchanged in
  the setting the suite measures (``why`` gives the proof); not counted as missed;
- ``"probe"``: a behaviour-preserving edit (a rename, two independent statements reordered, a
  no-op); a false-alarm probe: the suite must *not* flag it.

Catalogues live beside this module, one per adapter (:data:`CATALOGUES`).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import inspect
import textwrap
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

KINDS = ("bug", "equivalent", "probe")

# adapter module -> the module whose MUTANTS catalogue mutates the library it wraps
CATALOGUES = {
    "claims.adapters.sb3_contrib": "claims.audit.mutants.sb3_contrib",
    # its actor_only adapter
    "claims.audit.mutants.sb3_contrib": "claims.audit.mutants.sb3_contrib",
    "claims.adapters.tianshou": "claims.audit.mutants.tianshou",
    "claims.adapters.skrl": "claims.audit.mutants.skrl",
}


_INHERITED = object()  # the attribute came from a base class: delete ours to restore it


class NotApplicable(LookupError):
    """A mutant cannot be built from the installed library: the message says which edit."""


@dataclass(frozen=True)
class Edit:
    """Replace exact text in one function's source, as it stands in the library's file."""

    target: str  # "package.module:Qualified.name", where the function is looked up at run time
    old: str  # the exact text to replace
    new: str  # its replacement
    count: int | None = 1  # occurrences of ``old`` the installed source must have; None: >= 1
    occurrence: int | None = None  # replace only this one (1-based); None: every occurrence


@dataclass(frozen=True)
class Mutant:
    """A named mutation of an installed library's update."""

    name: str  # short identifier, unique in its catalogue
    bug_class: str  # the kind of slip, in words
    edits: tuple[Edit, ...]  # applied together
    kind: str = "bug"  # one of KINDS
    why: str = ""  # for "equivalent" and "probe": why the outcome cannot change

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"mutant {self.name}: kind must be one of {KINDS}, got {self.kind}")
        if self.kind != "bug" and not self.why:
            raise ValueError(f"mutant {self.name}: an {self.kind} mutant must say why")


def resolve(target: str) -> tuple[Any, str, Any]:
    """(owner, attribute name, current value) for ``"module:Qualified.name"``."""
    module_name, sep, qualname = target.partition(":")
    if not sep or not qualname:
        raise NotApplicable(f"target {target!r} is not 'package.module:Qualified.name'")
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError as error:
        raise NotApplicable(f"{target}: cannot import {module_name}: {error}") from error
    *path, attr = qualname.split(".")
    for part in path:
        owner = getattr(owner, part, None)
        if owner is None:
            raise NotApplicable(f"{target}: {module_name} has no {part!r}")
    value = inspect.getattr_static(owner, attr, None)
    if value is None:
        raise NotApplicable(f"{target}: not found in the installed version")
    return owner, attr, value


def patched_source(source: str, edits: Sequence[Edit]) -> str:
    """``source`` with every edit applied in order; NotApplicable when an edit's text is not
    there as often as it declares."""
    for edit in edits:
        found = source.count(edit.old)
        expected_ok = found >= 1 if edit.count is None else found == edit.count
        if not expected_ok:
            want = "at least once" if edit.count is None else f"{edit.count} time(s)"
            raise NotApplicable(f"{edit.target}: patch site {edit.old!r} found {found} time(s) "
                                f"in the installed source, expected {want}")
        if edit.occurrence is None:
            source = source.replace(edit.old, edit.new)
            continue
        if not 1 <= edit.occurrence <= found:
            raise NotApplicable(f"{edit.target}: occurrence {edit.occurrence} of {edit.old!r} "
                                f"asked, {found} found")
        head, *parts = source.split(edit.old)
        source = head + "".join((edit.new if i + 1 == edit.occurrence else edit.old) + part
                                for i, part in enumerate(parts))
    return source


def compile_function(source: str, original: Callable[..., Any], owner: Any,
                     filename: str) -> types.FunctionType:
    """Compile a (mutated) ``def`` against ``original``'s globals, with ``owner`` as the
    ``__class__`` cell (zero-argument ``super()``) when it is a class, and ``original``'s
    defaults and metadata."""
    tree = ast.parse(source)
    if len(tree.body) != 1 or not isinstance(tree.body[0], ast.FunctionDef | ast.AsyncFunctionDef):
        raise NotApplicable(f"{filename}: the source is not a single function definition")
    definition = tree.body[0]
    if definition.decorator_list:  # a decorator would run twice; none of our targets has one
        raise NotApplicable(f"{filename}: decorated functions are not supported")
    # def __mutant_factory(__class__): <def>; return <name>  (gives the __class__ cell)
    factory = ast.FunctionDef(
        name="__mutant_factory",
        args=ast.arguments(posonlyargs=[], args=[ast.arg("__class__")], kwonlyargs=[],
                           kw_defaults=[], defaults=[]),
        body=[definition, ast.Return(ast.Name(definition.name, ast.Load()))],
        decorator_list=[], returns=None)
    if "type_params" in ast.FunctionDef._fields:  # Python >= 3.12
        factory.type_params = []
    module = ast.fix_missing_locations(ast.Module([factory], type_ignores=[]))
    namespace: dict[str, Any] = {}
    exec(compile(module, filename, "exec"), original.__globals__, namespace)
    function = namespace["__mutant_factory"](owner if isinstance(owner, type) else None)
    function.__defaults__ = original.__defaults__
    function.__kwdefaults__ = original.__kwdefaults__
    function.__qualname__ = original.__qualname__
    function.__module__ = original.__module__
    return function


def build(mutant: Mutant) -> dict[tuple[Any, str], Any]:
    """{(owner, attribute): mutated function} for every function the mutant edits;
    NotApplicable if any edit cannot be made on the installed library."""
    by_target: dict[str, list[Edit]] = {}
    for edit in mutant.edits:
        by_target.setdefault(edit.target, []).append(edit)
    built: dict[tuple[Any, str], Any] = {}
    for target, edits in by_target.items():
        owner, attr, value = resolve(target)
        if isinstance(value, staticmethod | classmethod):
            raise NotApplicable(f"{target}: static and class methods are not supported")
        if not isinstance(value, types.FunctionType):
            raise NotApplicable(f"{target}: not a Python function ({type(value).__name__})")
        try:
            source = inspect.getsource(value)
        except (OSError, TypeError) as error:
            raise NotApplicable(f"{target}: no source: {error}") from error
        # edits match the source as it stands in the library's file (its indentation too)
        mutated = textwrap.dedent(patched_source(source, edits))
        built[(owner, attr)] = compile_function(mutated, value, owner,
                                                f"<mutant {mutant.name}: {target}>")
    return built


@contextlib.contextmanager
def applied(mutant: Mutant | None) -> Iterator[None]:
    """The body runs with ``mutant`` swapped in (None: the library as installed); everything
    is restored afterwards, whatever happens in the body."""
    if mutant is None:
        yield
        return
    replacements = build(mutant)  # raises NotApplicable before anything is touched
    saved = {(owner, attr): vars(owner).get(attr, _INHERITED) for owner, attr in replacements}
    try:
        for (owner, attr), function in replacements.items():
            setattr(owner, attr, function)
        yield
    finally:
        for (owner, attr), original in saved.items():
            if original is _INHERITED:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)


def catalogue_for(spec: str) -> list[Mutant]:
    """The mutant catalogue of the adapter named by ``spec`` ("package.module:factory" or a
    registered name); LookupError when there is none."""
    from claims.framework.impl import registered

    module_name = registered().get(spec, spec).partition(":")[0]
    if module_name not in CATALOGUES:
        known = ", ".join(sorted(CATALOGUES))
        raise LookupError(f"no mutant catalogue for {spec!r} (catalogues exist for the adapters "
                          f"{known})")
    return list(importlib.import_module(CATALOGUES[module_name]).MUTANTS)
