#!/usr/bin/env bash
# Sets up .venv (see scripts/setup.sh), then loads every registered entry's pretrained weights,
# runs each on a small input and prints a table; plots go to the folder given (default showcase/).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
export MPLBACKEND=Agg
exec .venv/bin/zoo showcase --out "${1:-showcase}"
