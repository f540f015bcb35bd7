#!/usr/bin/env bash
# Set up .venv if needed (and the offline page template, chromium and its driver for the page tests),
# then lint and run the test suite: pytest [ARGS...]. The quick loop: bash scripts/test.sh -m "not e2e"
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/setup_web.sh
# shellcheck disable=SC1091
source .venv/bin/activate
ruff check .
exec python -m pytest "$@"
