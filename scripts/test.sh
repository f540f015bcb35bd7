#!/usr/bin/env bash
# Set up .venv if needed, then lint and run the test suite: pytest [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
ruff check .
exec python -m pytest "$@"
