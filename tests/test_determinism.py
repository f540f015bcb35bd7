"""Training is repeatable: two runs on the same inputs give the same weights, also when the CPU is
busy with other work (the pipeline's ``dvc.lock`` then holds for a fresh clone's ``dvc repro``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Burns one core until killed: the second run trains on a loaded machine.
BUSY_LOOP = "while True: pass"


def _train(*flags: str) -> str:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.support.train_tiny", *flags],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout.strip().splitlines()[-1]


def test_two_trainings_give_identical_weights_even_on_a_busy_cpu() -> None:
    first = _train()
    hogs = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(os.cpu_count() or 2)]
    try:
        second = _train()
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert first == second, "the same training gave other weights"
