#!/usr/bin/env bash
# Set up .venv if needed, then rebuild the pipeline from the raw photos: dvc repro [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# shellcheck disable=SC1091
source .venv/bin/activate
exec dvc repro "$@"
