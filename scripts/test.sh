#!/usr/bin/env bash
# Sets up .venv (see scripts/setup.sh) and runs the linter and the test suite, offline.
# Extra arguments go to pytest: `bash scripts/test.sh -m "not slow"`, `bash scripts/test.sh -k hub`.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 MPLBACKEND=Agg
.venv/bin/ruff check zoo tests scripts benchmarks
exec .venv/bin/python -m pytest "$@"
