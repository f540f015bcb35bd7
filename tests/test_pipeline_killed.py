"""A power cut in the middle of ``dvc repro``: SIGKILL to the whole process group during ``validate``
and during ``features``, in a copy of the repo with generated photos.

After each kill, ``dvc status`` must report the stage as not done (no half-written output taken for a
finished one); the rerun must finish and give exactly the outputs of an uninterrupted run, and the
photo folders must be unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from tests.support import synthetic as syn
from tests.support.repo_copy import copy_repo, run, set_params
from tests.test_pipeline_full import MEMBER, TINY

#: ``dvc repro`` three times in copied repositories, two of them killed.
pytestmark = pytest.mark.e2e

COUNT = 240
#: Everything the stages up to ``features`` write (``data/``) and their metrics files but the timed
#: ones (``metrics/faces.json`` is compared without its seconds).
OUTPUTS = ("data", "metrics/validation.json", "metrics/validation", "metrics/split")


def _source(folder: Path) -> Path:
    photos = {f"{i:04d}.jpg": syn.jpeg_bytes(syn.face_like(160, 160, seed=i)) for i in range(COUNT)}
    rows = [f"{i:04d}.jpg,{1 + (i * 7) % 90},female" for i in range(COUNT)]
    return syn.write_source(folder, photos, rows)


def checksums(*roots: Path) -> dict[str, str]:
    """SHA-256 of every file under ``roots`` (files or folders), by path."""
    files = [p for root in roots if root.exists() for p in ([root] if root.is_file() else root.rglob("*"))]
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(files) if p.is_file()}


def _entries(gitignore: Path) -> str:
    """The entries of a ``.gitignore`` DVC keeps, sorted: DVC appends an output's entry when its stage
    ends, and ``split`` and ``faces`` (neither needs the other) run in either order."""
    return "\n".join(sorted(gitignore.read_text().splitlines()))


def outputs(repo: Path) -> dict[str, str]:
    sums = checksums(*(repo / name for name in OUTPUTS))
    sums |= {str(path): _entries(Path(path)) for path in sums if Path(path).name == ".gitignore"}
    found = json.loads((repo / "metrics/faces.json").read_text())["faces_found"]
    return {"faces_found": json.dumps(found)} | {
        str(Path(path).relative_to(repo)): digest for path, digest in sums.items()
    }


def _new_repo(root: Path, source: Path) -> Path:
    repo = copy_repo(root)
    set_params(
        repo,
        data={"sources": {"faces": str(source)}},
        validate={"workers": 1, "shard_size": 8, "max_side": 96},
        split={"val_size": 0.2, "test_size": 0.2},
        **TINY,
    )
    return repo


def repro_killed_when(repo: Path, ready: Callable[[], bool], timeout: float = 300) -> None:
    """Start ``dvc repro features``; SIGKILL its whole process group as soon as ``ready()``."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    process = subprocess.Popen(
        ["dvc", "repro", "features"],
        cwd=repo,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: dvc and the stage's python
    )
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if process.poll() is not None:
                pytest.fail(f"dvc repro ended ({process.returncode}) before the moment to kill it came")
            if time.monotonic() > deadline:
                pytest.fail("the moment to kill dvc repro never came")
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def not_done(repo: Path) -> set[str]:
    """Stages up to ``features`` that ``dvc status`` reports as changed (not done)."""
    return {
        line.rstrip(":")
        for line in run(repo, "dvc", "status", "--with-deps", "features").stdout.splitlines()
        if line.endswith(":") and not line.startswith(("\t", " "))
    }


def locked(repo: Path) -> set[str]:
    lock = repo / "dvc.lock"
    return set(yaml.safe_load(lock.read_text())["stages"]) if lock.exists() else set()


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _source(tmp_path_factory.mktemp("photos") / "faces")


def test_killed_during_validate_and_features_then_rerun(tmp_path: Path, source: Path) -> None:
    before = checksums(source)
    reference = _new_repo(tmp_path / "uninterrupted", source)
    run(reference, "dvc", "repro", "features")
    expected = outputs(reference)
    assert any(name.startswith("data/features/") for name in expected)

    repo = _new_repo(tmp_path / "killed", source)
    validated = repo / "data/validated"
    # half-way through validate: some shards written, the photo table not yet
    repro_killed_when(
        repo, lambda: (validated / "photos-00003.tar").exists() and not (validated / "photos.csv").exists()
    )
    assert "validate" not in locked(repo) and "validate" in not_done(repo)

    features = repo / "data/features" / MEMBER
    # half-way through features: the split tables copied, the activations not all written
    repro_killed_when(
        repo, lambda: (features / "train.csv").exists() and not (features / "test_flip.npy").exists()
    )
    assert {"validate", "split", "faces"} <= locked(repo) and f"features@{MEMBER}" not in locked(repo)
    assert not_done(repo) == {f"features@{MEMBER}"}

    run(repo, "dvc", "repro", "features")
    assert not_done(repo) == set()
    assert outputs(repo) == expected
    assert checksums(source) == before, "the photo folder must never change"
