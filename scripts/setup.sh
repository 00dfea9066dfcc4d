#!/usr/bin/env bash
# Creates (or reuses) the project's virtual environment at .venv and installs the package into it.
# The install is skipped when pyproject.toml and the constraints have not changed since the last one.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3}"
venv="$root/.venv"
if [ ! -x "$venv/bin/python" ]; then
    echo "zoo setup: creating $venv"
    "$python" -m venv "$venv"
fi

stamp="$venv/.zoo-install-stamp"
want="$(cat pyproject.toml scripts/constraints.txt | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
    exit 0
fi

echo "zoo setup: installing the project into $venv (torch pinned by scripts/constraints.txt)"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -c scripts/constraints.txt torch==2.13.0
"$venv/bin/python" -m pip install --quiet -c scripts/constraints.txt -e ".[test,baselines]"
echo "$want" > "$stamp"
