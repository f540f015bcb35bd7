"""``dvc repro split`` for real, in a copy of the repo, on generated photo folders."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests.support import synthetic as syn
from tests.support.repo_copy import copy_repo, run, set_params

#: ``dvc repro`` for real in a copied repository.
pytestmark = pytest.mark.e2e


def _clean_source(folder: Path, count: int, seed: int) -> Path:
    photos = {f"{i:04d}.jpg": syn.jpeg_bytes(syn.face_like(48, 48, seed=seed + i)) for i in range(count)}
    rows = [f"{i:04d}.jpg,{1 + (i * 7) % 90},{'male' if i % 2 else 'female'}" for i in range(count)]
    return syn.write_source(folder, photos, rows)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pipeline")
    photos, rows = syn.messy_photos()
    messy = syn.write_source(root / "messy", photos, rows)
    clean = _clean_source(root / "clean", 60, seed=100)
    repo = copy_repo(root / "repo")
    set_params(
        repo,
        data={"sources": {"messy": str(messy), "clean": str(clean)}},
        validate={"workers": 2, "min_side": 32},
        split={"val_size": 0.2, "test_size": 0.2},
    )
    run(repo, "dvc", "repro", "split")
    return repo


def test_metrics_account_for_everything(repo: Path) -> None:
    metrics = json.loads((repo / "metrics/validation.json").read_text())
    assert metrics["per_source"]["clean"]["photos"] == {
        "total": 60,
        "usable": 60,
        "rejected": 0,
        "rejected_by_reason": {},
    }
    messy = metrics["per_source"]["messy"]
    assert messy["photos"]["total"] == 21 and messy["label_rows"]["total"] == 29
    for counts in (messy["photos"], messy["label_rows"], metrics["total"]["photos"]):
        assert counts["usable"] + counts["rejected"] == counts["total"]
    assert metrics["usable"] == 70
    rejected = pd.read_csv(repo / "metrics/validation/rejected.csv")
    assert len(rejected) == messy["photos"]["rejected"] + messy["label_rows"]["rejected"]


def test_split_tables_partition_the_usable_photos(repo: Path) -> None:
    usable = pd.read_csv(repo / "data/validated/photos.csv")
    parts = {n: pd.read_csv(repo / f"data/split/{n}.csv") for n in ("train", "val", "test")}
    ids = [i for part in parts.values() for i in part["id"]]
    assert sorted(ids) == sorted(usable["id"])
    assert all(len(p) > 0 for p in parts.values())
    shares = pd.read_csv(repo / "metrics/split/age_distribution.csv")
    assert shares[["train", "val", "test"]].sum().round().tolist() == [100, 100, 100]


def test_rerun_is_deterministic_and_status_notices_changes(repo: Path) -> None:
    before = (repo / "data/split/test.csv").read_text()
    assert "changed" not in run(repo, "dvc", "status", "--with-deps", "split").stdout
    run(repo, "dvc", "repro", "split", "--force", "--single-item")
    assert (repo / "data/split/test.csv").read_text() == before
    source = Path(yaml.safe_load((repo / "params.yaml").read_text())["data"]["sources"]["clean"])
    (source / "final_files" / "0000.jpg").write_bytes(syn.jpeg_bytes(syn.face_like(48, 48, seed=999)))
    status = run(repo, "dvc", "status", "--with-deps", "split").stdout
    assert "ingest@clean" in status and "modified" in status


def test_wrong_layout_stops_with_one_line(tmp_path: Path) -> None:
    repo = copy_repo(tmp_path / "repo")
    (tmp_path / "bad" / "final_files").mkdir(parents=True)
    set_params(repo, data={"sources": {"bad": str(tmp_path / "bad")}})
    done = run(repo, "dvc", "repro", "split", check=False)
    assert done.returncode != 0
    assert "has no labels.csv" in done.stderr + done.stdout
    assert "Traceback" not in done.stderr + done.stdout
