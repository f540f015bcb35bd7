"""The released model: only it can leave through `dvc push`, the remote in the repository holds
exactly the model the committed `dvc.lock` records, and a fresh clone gets it with one `dvc pull`,
no training."""

from __future__ import annotations

import hashlib
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.support import synthetic as syn
from tests.support.repo_copy import ROOT, run

MODEL = "models/age_model.keras"
MEMBERS = "models/members/${key}/age_model.keras"
REMOTE = ROOT / "release" / "dvc-remote"


def _cached_outs() -> dict[str, dict]:
    """Every output of dvc.yaml that DVC caches, with its flags."""
    outs = {}
    for stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].values():
        for out in stage.get("do", stage).get("outs", []):
            path, flags = next(iter(out.items())) if isinstance(out, dict) else (out, {})
            if (flags or {}).get("cache", True):
                outs[path] = flags or {}
    return outs


def _locked_md5s() -> dict[str, str]:
    """The md5 of every pushable model in the committed ``dvc.lock`` (main's: a local retrain not yet
    committed and released does not count): the released one (stage combine) and its members'."""
    committed = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=ROOT, check=True, capture_output=True)
    lock = yaml.safe_load(committed.stdout)["stages"]
    return {
        out["path"]: out["md5"]
        for name, stage in lock.items()
        if name == "combine" or name.startswith("train@")
        for out in stage["outs"]
        if out["path"].endswith(".keras")
    }


def _locked_md5() -> str:
    return _locked_md5s()[MODEL]


def test_nothing_but_the_models_can_be_pushed() -> None:
    outs = _cached_outs()
    assert {"data/raw/${key}.tar", "data/validated", "data/features/${key}", MODEL, MEMBERS} <= set(outs)
    pushable = {path for path, flags in outs.items() if flags.get("push", True)}
    # photos, crops, faces, features, converted backbones: push: false. The members go too, so that an
    # experiment on a fresh clone (dvc pull; dvc exp run -S policy...) finds them and never retrains
    assert pushable == {MODEL, MEMBERS}
    artifact = yaml.safe_load((ROOT / "dvc.yaml").read_text())["artifacts"]["age-model"]
    assert artifact["path"] == MODEL and artifact["type"] == "model"


def test_the_remote_holds_exactly_the_models_of_dvc_lock() -> None:
    config = (ROOT / ".dvc" / "config").read_text()
    assert "remote = release" in config and "url = ../release/dvc-remote" in config
    md5s = _locked_md5s()
    assert MODEL in md5s and len(md5s) >= 2
    stored = sorted(p for p in REMOTE.rglob("*") if p.is_file())
    assert [p.relative_to(REMOTE).as_posix() for p in stored] == sorted(
        f"files/md5/{md5[:2]}/{md5[2:]}" for md5 in md5s.values()
    ), "the released models are not the ones dvc.lock records: run bash scripts/release.sh"
    assert sorted(hashlib.md5(p.read_bytes()).hexdigest() for p in stored) == sorted(md5s.values())
    committed = subprocess.run(["git", "show", "HEAD:dvc.lock"], cwd=ROOT, check=True, capture_output=True)
    evaluate = yaml.safe_load(committed.stdout)["stages"]["evaluate"]["deps"]
    assert next(d["md5"] for d in evaluate if d["path"] == MODEL) == md5s[MODEL]  # the metrics are its
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", *map(str, stored)], cwd=ROOT, capture_output=True
    )
    assert tracked.returncode == 0, "the release is not committed: git add release"


@pytest.mark.e2e  # git clone, dvc pull and agecheck predict as processes
def test_a_fresh_clone_gets_the_model_without_training(tmp_path: Path) -> None:
    clone = tmp_path / "clone"  # a fresh clone: no DVC cache, only .dvc/config
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    assert not (clone / ".dvc" / "cache").exists() and not (clone / MODEL).exists()
    started = time.monotonic()
    run(clone, "dvc", "pull", MODEL)
    assert time.monotonic() - started < 60
    assert hashlib.md5((clone / MODEL).read_bytes()).hexdigest() == _locked_md5()
    frame = tmp_path / "frame.jpg"
    frame.write_bytes(syn.jpeg_bytes(syn.till_frame([(250, 120, 180)])))
    done = run(clone, "agecheck", "predict", str(frame), "--model", MODEL, "--params", "params.yaml")
    row = done.stdout.strip().splitlines()[-1].split(",")
    assert row[0] == str(frame) and row[-1] == "ok" and 0 <= float(row[7]) <= 100
    assert (
        "Data and pipelines are up to date" not in run(clone, "dvc", "status").stdout
    )  # no data: still to build
    pulled = [f for f in (clone / "data").rglob("*") if f.is_file() and f.name != ".gitignore"]
    assert pulled == []  # nothing derived from the photos came with it
