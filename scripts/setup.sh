#!/usr/bin/env bash
# Create (or reuse) .venv and install trpo-claims into it with its test extras.
#
# torch is installed first, pinned to 2.13.0: pip then takes the CPU wheel (a bare `torch`
# requirement would pull a multi-GB CUDA build). Running this again is quick: a step whose
# result is already in place is skipped. Set PYTHON to choose the interpreter (>= 3.11), and
# TORCH_INDEX_URL to fetch the CPU wheel from an index of your choice. Set TRPO_CLAIMS_BROWSER=1
# to also install Debian's chromium and chromium-driver (the climb explorer's browser test) when
# /usr/bin/chromium is absent and this runs as root (CI does; elsewhere the test is skipped with
# the reason).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-python3}"
VENV=.venv
py="$VENV/bin/python"

if [ ! -x "$py" ]; then
    echo "setup: creating $VENV with $PYTHON"
    "$PYTHON" -m venv "$VENV"
    "$py" -m pip install --quiet --upgrade pip
fi
if ! "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "setup: $VENV has Python $("$py" -c 'import platform; print(platform.python_version())')," \
        "but trpo-claims needs >= 3.11; remove $VENV and set PYTHON to a newer interpreter" >&2
    exit 1
fi

if "$py" -c 'import torch; assert torch.__version__.startswith("2.13.0")' 2>/dev/null; then
    echo "setup: torch 2.13.0 already installed"
else
    echo "setup: installing torch==2.13.0 (CPU build)"
    "$py" -m pip install --quiet ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"} torch==2.13.0
fi

# Reinstall the project only when pyproject.toml changed or the editable install does not point
# at this checkout (e.g. the folder was copied).
stamp="$VENV/.trpo-claims-pyproject.sha256"
want="$(sha256sum pyproject.toml | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -x "$VENV/bin/trpo-claims" ] \
    && "$py" -c 'import os, claims, pytest, hypothesis
assert os.path.samefile(os.path.dirname(claims.__file__), "claims")' 2>/dev/null; then
    echo "setup: trpo-claims already installed"
else
    echo "setup: installing trpo-claims (editable) with test extras"
    "$py" -m pip install --quiet -e '.[test]'
    echo "$want" >"$stamp"
fi
if [ "${TRPO_CLAIMS_BROWSER:-0}" = "1" ]; then
    if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
        echo "setup: chromium and chromedriver already installed"
    elif [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "setup: installing chromium and chromium-driver (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq && apt-get install -y -qq chromium chromium-driver
    else
        echo "setup: TRPO_CLAIMS_BROWSER=1 but /usr/bin/chromium is absent and this is not root" \
            "with apt-get: the browser tests will be skipped" >&2
    fi
fi
echo "setup: done; run .venv/bin/trpo-claims --help"
