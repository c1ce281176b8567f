"""JSON for results files: numpy-aware, strict about non-finite floats, written atomically.

JSON has no NaN or infinity, so :func:`to_jsonable` writes non-finite floats as the strings
``"nan"``, ``"inf"`` and ``"-inf"`` (``float()`` reads each of them back; ``Verdict.from_json``
does so for its numbers). numpy scalars become Python numbers, numpy arrays nested lists, tuples
and sets lists, paths strings, and dict keys strings. Any other object is written as ``str(obj)``
rather than losing a whole run's results to one odd value in a config.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from trpo_ref.atomic import write_atomic


def json_float(x: float) -> float | str:
    """A float as JSON allows it: finite floats unchanged, others as "nan", "inf" or "-inf"."""
    if math.isfinite(x):
        return x
    if math.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` recursively into plain JSON types (see the module docstring)."""
    if isinstance(obj, np.generic | np.ndarray):  # first: np.float64 is also a float
        return to_jsonable(obj.tolist())
    if obj is None or isinstance(obj, bool | int | str):
        return obj.value if isinstance(obj, Enum) else obj
    if isinstance(obj, float):
        return json_float(obj)
    if isinstance(obj, Mapping):
        return {str(to_jsonable(k)): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        items = sorted(obj, key=repr) if isinstance(obj, set | frozenset) else obj
        return [to_jsonable(v) for v in items]
    if isinstance(obj, Enum):
        return to_jsonable(obj.value)
    if isinstance(obj, Path):
        return obj.as_posix()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(dataclasses.asdict(obj))
    return str(obj)


def _encode(obj: Any, level: int) -> str:
    """Indented JSON, except that a list of scalars stays on one line (per-example data)."""
    if isinstance(obj, dict) and obj:
        pad, inner = "  " * level, "  " * (level + 1)
        items = (f"{inner}{json.dumps(k)}: {_encode(v, level + 1)}" for k, v in obj.items())
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(obj, list) and any(isinstance(v, dict | list) for v in obj):
        pad, inner = "  " * level, "  " * (level + 1)
        return "[\n" + ",\n".join(inner + _encode(v, level + 1) for v in obj) + f"\n{pad}]"
    return json.dumps(obj, allow_nan=False)


def dumps(obj: Any) -> str:
    """Strict JSON text of ``to_jsonable(obj)``, indented, ending in a newline.

    Lists of numbers are written on one line, so long per-example arrays stay compact.
    """
    return _encode(to_jsonable(obj), 0) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8, ``\\n`` newlines) to ``path`` atomically (:func:`write_atomic`)."""
    data = text.encode("utf-8")
    write_atomic(path, lambda handle: handle.write(data))


def write_json_atomic(path: Path, obj: Any) -> None:
    write_text_atomic(path, dumps(obj))


def read_json(path: Path) -> Any:
    return json.loads(Path(path).read_text(encoding="utf-8"))


class InputError(ValueError):
    """A file the user named cannot be used: missing, not JSON, or not the expected kind. Its
    message is one sentence naming the file; the command line prints it and exits 2."""


class UsageError(Exception):
    """A mistake in the command line; the command line prints it and exits 2. (Here, beside
    :class:`InputError`, so every subcommand module can raise it without importing the CLI.)"""


class MissingInputError(InputError, FileNotFoundError):
    """An :class:`InputError` for a file or directory that is not there (also a
    FileNotFoundError, for callers that catch that)."""


def load_json(path: Path | str, what: str = "a JSON file") -> Any:
    """The parsed JSON of ``path``, or :class:`InputError` naming the file and what is wrong
    with it (missing, a directory, unreadable, empty, not UTF-8, not JSON: with line and
    column). ``what`` says what the file should have been, for the message."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory, not {what}")
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MissingInputError(f"{path}: no such file (expected {what})") from None
    except UnicodeDecodeError:
        raise InputError(f"{path}: not text, so not {what}") from None
    except OSError as error:
        raise InputError(f"{path}: cannot be read ({error.strerror or error})") from None
    if not text.strip():
        raise InputError(f"{path}: is empty, not {what}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}, column "
                         f"{error.colno}); expected {what}") from None
