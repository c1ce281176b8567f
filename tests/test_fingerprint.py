"""The environment fingerprint."""

from __future__ import annotations

import json
import platform
import shutil
import subprocess

import numpy as np
import pytest

from claims.framework.fingerprint import (
    NOT_INSTALLED,
    cpu_model,
    fingerprint,
    git_state,
    package_version,
)


def test_fingerprint_has_the_documented_fields():
    fp = fingerprint(["trpo-claims", "run"])
    assert fp["python"] == platform.python_version()
    assert fp["packages"]["numpy"] == np.__version__
    assert set(fp["packages"]) == {"numpy", "scipy", "torch", "matplotlib", "hypothesis"}
    assert fp["argv"] == ["trpo-claims", "run"]
    assert fp["timestamp_utc"].endswith("Z")
    assert fp["cpu_count"] >= 1 and fp["cpu_model"]
    assert set(fp["git"]) == {"commit", "dirty"}
    json.dumps(fp, allow_nan=False)


def test_missing_package_is_reported_not_raised():
    assert package_version("surely-no-such-package-xyz") == NOT_INSTALLED


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        ("processor\t: 0\nmodel name\t: Example CPU @ 3GHz\nflags\t: fpu\n", "Example CPU @ 3GHz"),
        ("processor\t: 0\nHardware\t: Example SoC\n", "Example SoC"),
    ],
)
def test_cpu_model_reads_cpuinfo(tmp_path, cpuinfo, expected):
    path = tmp_path / "cpuinfo"
    path.write_text(cpuinfo)
    assert cpu_model(path) == expected


def test_cpu_model_falls_back_without_cpuinfo(tmp_path):
    assert cpu_model(tmp_path / "missing") == (
        platform.processor() or platform.machine() or "unknown"
    )


def test_git_state_outside_a_repository(tmp_path):
    assert git_state(tmp_path) == {"commit": None, "dirty": None}


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git executable")
def test_git_state_of_a_fresh_repository(tmp_path):
    def git(*args: str) -> None:
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    git("init", "-q")
    (tmp_path / "f.txt").write_text("one\n")
    git("add", "f.txt")
    git("-c", "user.name=t", "-c", "user.email=t@example.invalid", "commit", "-q", "-m", "one")
    clean = git_state(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "f.txt").write_text("two\n")
    assert git_state(tmp_path) == {"commit": clean["commit"], "dirty": True}
