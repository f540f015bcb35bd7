"""A stopped ``dvc exp run`` never leaves the workspace without its model: the two DVC-native ways the
README documents, tried on a small pipeline of the same shape (a slow cached ``train`` output, then an
``evaluate`` writing git-tracked metrics), with Ctrl-C sent as a terminal sends it (SIGINT to the whole
process group) while ``train`` runs."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.repo_copy import ROOT

pytestmark = pytest.mark.e2e

#: The README's recovery after Ctrl-C in the workspace: the committed params, lock, metrics and the model's
#: git-tracked files (as ``models/age_model.calibration.json``), then the outputs dvc.lock records, from
#: the cache.
RECOVER = (
    "rm -f params.yaml dvc.lock && git checkout HEAD -- params.yaml dvc.lock metrics models && dvc checkout"
)

TRAIN = """import os, sys, time, yaml
if "TRAIN_STARTED" in os.environ:  # where the test waits for it
    open(os.environ["TRAIN_STARTED"], "w").write(str(os.getpid()))
lr = yaml.safe_load(open("params.yaml"))["train"]["lr"]
if lr != 1:
    time.sleep(120)
open("models/model.bin", "w").write(f"model lr={lr}\\n")
open("models/model.json", "w").write(f'{{"lr": {lr}}}\\n')  # git-tracked beside it, as the sidecars
"""
EVALUATE = """import json, yaml
t = yaml.safe_load(open("params.yaml"))["policy"]["threshold"]
json.dump({"threshold": t, "model": open("models/model.bin").read()}, open("metrics/metrics.json", "w"))
"""
DVC_YAML = """stages:
  train:
    cmd: python train.py
    deps: [train.py]
    params: [train]
    outs: [models/model.bin, {models/model.json: {cache: false}}]
  evaluate:
    cmd: python evaluate.py
    deps: [evaluate.py, models/model.bin]
    params: [policy]
    metrics:
      - metrics/metrics.json:
          cache: false
"""


def _sh(repo: Path, command: str, **kwargs) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    return subprocess.run(command, shell=True, cwd=repo, env=env, text=True, capture_output=True, **kwargs)


def _repo(path: Path) -> Path:
    path.mkdir()
    (path / "models").mkdir()
    (path / "metrics").mkdir()
    (path / "params.yaml").write_text("train:\n  lr: 1\npolicy:\n  threshold: 25\n")
    (path / "train.py").write_text(TRAIN)
    (path / "evaluate.py").write_text(EVALUATE)
    (path / "dvc.yaml").write_text(DVC_YAML)
    git = "git -c user.name=t -c user.email=t@example.com"
    done = _sh(path, f"git init -q && dvc init -q && dvc repro -q && git add -A && {git} commit -qm model")
    assert done.returncode == 0, done.stderr
    return path


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def _working_in(repo: Path) -> bool:
    """Whether a process still works in ``repo`` (DVC can leave one outside the process group)."""
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and Path(os.readlink(proc / "cwd")).is_relative_to(repo):
                return True
    return False


def _ctrl_c_heard() -> None:
    """In the experiment's processes, Ctrl-C as a terminal delivers it: a run started in the background
    (a CI job, ``cmd &``) inherits SIGINT ignored, and DVC would never hear it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _ctrl_c_while_training(repo: Path, command: str) -> None:
    started = repo.parent / "train_started"
    started.unlink(missing_ok=True)
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        TRAIN_STARTED=str(started),
    )
    time.sleep(1.1)  # params.yaml changes a clock tick after git's index saw it, as at a keyboard
    process = subprocess.Popen(
        command, shell=True, cwd=repo, env=env, start_new_session=True,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_ctrl_c_heard,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (started.is_file() and started.read_text()):
        assert time.monotonic() < deadline and process.poll() is None, "train never started"
        time.sleep(0.2)
    try:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(timeout=60)
        while time.monotonic() < deadline + 60:  # DVC's own processes finish their clean-up first
            if not _group_alive(process.pid) and not _working_in(repo):
                return
            time.sleep(0.2)
        os.killpg(process.pid, signal.SIGKILL)
        raise AssertionError("the experiment's processes did not stop after Ctrl-C")
    finally:  # a --temp run's stage runs in a session of its own: it goes on after Ctrl-C
        with contextlib.suppress(ProcessLookupError):
            os.kill(int(started.read_text()), signal.SIGKILL)


def test_ctrl_c_in_the_workspace_then_the_documented_recovery(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    model = (repo / "models/model.bin").read_text()
    _ctrl_c_while_training(repo, "dvc exp run -S train.lr=2")
    assert not (repo / "models/model.bin").exists()  # what users met: DVC removes a stage's outs first
    done = _sh(repo, RECOVER)
    assert done.returncode == 0, done.stderr
    assert (repo / "models/model.bin").read_text() == model
    assert _sh(repo, "git status --porcelain").stdout == ""
    assert _sh(repo, "dvc status -q").returncode == 0


def test_ctrl_c_of_a_temp_experiment_leaves_the_workspace_alone(tmp_path: Path) -> None:
    repo = _repo(tmp_path / "repo")
    model = (repo / "models/model.bin").read_text()
    _ctrl_c_while_training(repo, "dvc exp run --temp -S train.lr=2")
    assert (repo / "models/model.bin").read_text() == model
    assert _sh(repo, "git status --porcelain").stdout == ""


def test_the_readme_gives_the_recovery_and_the_temp_run() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert RECOVER in readme and "dvc exp run --temp" in readme
