"""The environment fingerprint stored with every run: what ran, where, and how to run it again."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

DISTRIBUTION = "trpo-claims"
PACKAGES: tuple[str, ...] = ("numpy", "scipy", "torch", "matplotlib", "hypothesis")
NOT_INSTALLED = "not installed"
# threading and BLAS settings change speed and, for some reductions, the last bits of results
ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "OPENBLAS_CORETYPE",
    "PYTHONHASHSEED",
)

# the checkout this package was imported from (an editable install points into the repository)
REPO_ROOT = Path(__file__).resolve().parents[2]


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return NOT_INSTALLED


def cpu_model(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, sep, value = line.partition(":")
            # x86 says "model name"; some ARM kernels say "Model" or "Hardware"
            if sep and key.strip() in ("model name", "Model", "Hardware", "cpu model"):
                if value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int | None:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count()


def _git(args: Sequence[str], cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def git_state(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """``{"commit": sha or None, "dirty": bool or None}``; None where git or a commit is missing.

    Untracked files count as dirty: they can change what runs.
    """
    commit = _git(["rev-parse", "HEAD"], repo)
    status = _git(["status", "--porcelain"], repo) if commit is not None else None
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def fingerprint(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Everything about the environment that could change a result, as a JSON-ready dict.

    ``argv`` is the command line of this process (``sys.argv`` by default); the runner stores the
    canonical command that reproduces the run separately.
    """
    return {
        "timestamp_utc": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "usable_cores": usable_cores(),
        "trpo_claims_version": package_version(DISTRIBUTION),
        "packages": {name: package_version(name) for name in PACKAGES},
        "git": git_state(),
        "env": {name: os.environ[name] for name in ENV_VARS if name in os.environ},
        "argv": list(sys.argv if argv is None else argv),
    }
