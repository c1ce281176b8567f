"""results.json encoding: numpy values, non-finite floats, atomic writes."""

from __future__ import annotations

import json
import math
from enum import StrEnum
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from claims.framework.serialize import (
    InputError,
    dumps,
    json_float,
    load_json,
    to_jsonable,
    write_text_atomic,
)


class Colour(StrEnum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1.5, 1.5),
        (math.nan, "nan"),
        (math.inf, "inf"),
        (-math.inf, "-inf"),
    ],
)
def test_json_float(value, expected):
    assert json_float(value) == expected
    assert float(expected) == value or math.isnan(value)


def test_to_jsonable_converts_numpy_and_containers():
    obj = {
        "scalar": np.float64(0.25),
        "int": np.int32(7),
        "bool": np.bool_(True),
        "array": np.array([[1.0, np.nan], [np.inf, -np.inf]]),
        "tuple": (1, (2, 3)),
        "set": {3, 1, 2},
        "path": Path("a") / "b.png",
        "enum": Colour.RED,
        np.int64(4): "numpy key",
        "odd": object,
    }
    out = to_jsonable(obj)
    assert out["scalar"] == 0.25 and type(out["scalar"]) is float
    assert out["int"] == 7 and type(out["int"]) is int
    assert out["bool"] is True
    assert out["array"] == [[1.0, "nan"], ["inf", "-inf"]]
    assert out["tuple"] == [1, [2, 3]]
    assert out["set"] == [1, 2, 3]
    assert out["path"] == "a/b.png"
    assert out["enum"] == "red"
    assert out["4"] == "numpy key"
    assert out["odd"] == str(object)
    json.dumps(out, allow_nan=False)  # strictly valid JSON


def test_dumps_is_strict_json():
    text = dumps({"x": [np.nan, 1.0]})
    assert "NaN" not in text
    assert json.loads(text) == {"x": ["nan", 1.0]}


def test_write_text_atomic_replaces_and_leaves_no_temporary_files(tmp_path):
    target = tmp_path / "sub" / "results.json"
    write_text_atomic(target, "old\n")
    write_text_atomic(target, "new\n")
    assert target.read_text() == "new\n"
    assert [p.name for p in target.parent.iterdir()] == ["results.json"]


def test_write_text_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    target = tmp_path / "report.md"
    write_text_atomic(target, "old\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("trpo_ref.atomic.os.replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomic(target, "new\n")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["report.md"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4)
    ),
    max_leaves=20,
)


@given(json_values)
def test_dumps_round_trips_any_json_value(value):
    assert json.loads(dumps(value)) == value


@pytest.mark.parametrize(("content", "message"), [
    (None, "no such file (expected a results.json)"),
    ("", "is empty, not a results.json"),
    ("  \n", "is empty, not a results.json"),
    ('{"a": ', "not valid JSON (Expecting value at line 1, column 7); expected a results.json"),
    ("[project]\nname = 1\n", "not valid JSON (Expecting value at line 1, column 2)"),
    (b"\xff\xfe", "not text, so not a results.json"),
])
def test_load_json_names_the_file_and_the_problem(tmp_path, content, message):
    path = tmp_path / "results.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(InputError) as raised:
        load_json(path, "a results.json")
    assert str(raised.value) == f"{path}: {message}" or str(raised.value).startswith(
        f"{path}: {message}")
    assert isinstance(raised.value, ValueError)  # callers catching ValueError still do
    assert isinstance(raised.value, FileNotFoundError) == (content is None)


def test_load_json_on_a_directory(tmp_path):
    with pytest.raises(InputError, match="is a directory, not a JSON file"):
        load_json(tmp_path)


def test_load_json_reads_what_dumps_writes(tmp_path):
    path = tmp_path / "x.json"
    write_text_atomic(path, dumps({"v": math.inf, "a": np.arange(2)}))
    assert load_json(path) == {"v": "inf", "a": [0, 1]}
