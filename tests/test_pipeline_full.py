"""The whole ``dvc repro`` (validate -> ... -> evaluate) and an experiment, on generated photos."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from tests.support import synthetic as syn
from tests.support.local_server import free_ports
from tests.support.repo_copy import ROOT, copy_repo, run, set_params

#: ``dvc repro`` of the whole pipeline, ``dvc exp``, and training worker processes: minutes.
pytestmark = pytest.mark.e2e

#: One member, as ``model.members`` names it (its files: models/members/lite, data/features/lite...).
MEMBER = "lite"
TINY = {
    "model": {
        "image_size": 32,
        "members": {
            MEMBER: {
                "backbone": "efficientnet_lite0",
                "pretrained": True,
                "weights_path": "",
                "image_size": 32,
                "cut_block": 13,
                "face_scale": 0.8,
                "train": {},
            }
        },
    },
    "features": {"batch_size": 32, "flip": True},
    "train": {"head_epochs": 1, "epochs": 1, "batch_size": 16, "patience": 1},
}
_PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
#: The audit and the shopping profiles on a test split of 16 photos: one age band, few sales.
TINY_SIMULATIONS = {
    "audit": {
        **_PARAMS["audit"],
        "min_sales": 5,
        "simulation": {
            **_PARAMS["audit"]["simulation"],
            **{"stores": 2, "cashiers": 4, "dishonest": 1, "sales": 60, "months": 2},
            **{"mix_ages": [13], "mix_shares": [1.0], "skip_curve": [0.5, 1.0], "sales_curve": [30, 60]},
        },
    },
    "segments": {
        **_PARAMS["segments"],
        **{"groups": [18, 50], "min_age": 2, "min_sales": 10, "bootstrap": 20},
        "simulation": {
            **_PARAMS["segments"]["simulation"],
            **{"sales": 400, "log_sales": 100},
            "categories": {"bread": [0.3, 0.3, 0.3], "medicine": [0.05, 0.1, 0.3]},
            "scenarios": {
                "age_dependent": {"mix": [0.2, 0.4, 0.4], "depends_on_age": True},
                "null_effect": {"mix": [0.2, 0.4, 0.4], "depends_on_age": False},
            },
        },
    },
}


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("full")
    rows = [f"{i:03d}.jpg,{2 + (i * 11) % 80},female" for i in range(40)]
    # one: blobs no detector finds (the centre-square fallback); two: cartoon faces BlazeFace finds,
    # cut from whole photos that the evaluate stage runs through the till
    one = {f"{i:03d}.jpg": syn.jpeg_bytes(syn.face_like(48, 48, seed=i)) for i in range(40)}
    wholes = {f"{i:03d}.jpg": syn.till_frame([(150 + 3 * i, 100, 160)], seed=i) for i in range(40)}
    two = {
        name: syn.jpeg_bytes(frame.crop((110 + 3 * i, 70, 350 + 3 * i, 310)))
        for i, (name, frame) in enumerate(wholes.items())
    }
    sources = {
        "one": str(syn.write_source(root / "one", one, rows)),
        "two": str(syn.write_source(root / "two", two, rows)),
    }
    whole = syn.write_source(root / "two_whole", {n: syn.jpeg_bytes(f) for n, f in wholes.items()}, rows)
    repo = copy_repo(root / "repo")
    set_params(
        repo,
        data={"sources": sources},
        validate={"workers": 1},
        split={"val_size": 0.2, "test_size": 0.2},
        evaluate={"whole_photos": str(whole), "whole_source": "two"},
        **TINY,
        **TINY_SIMULATIONS,
    )
    run(repo, "dvc", "repro")
    return repo


def test_metrics_file_has_the_required_keys(repo: Path) -> None:
    metrics = json.loads((repo / "metrics/metrics.json").read_text())
    details = json.loads((repo / "metrics/evaluate/details.json").read_text())
    assert set(details["mae_by_source"]) <= {"one", "two"}
    assert set(metrics) == {"mae", "mae_13_17", "val_mae", "teens_served", "adults_asked"} | {
        f"mae_{source}" for source in details["mae_by_source"]
    }  # the headline: flat, for dvc metrics show
    assert 0 <= metrics["mae"] < 100
    for key in ("mae", "rmse", "median_ae", "mae_by_age_band", "mean_error_by_age_band", "mae_by_source"):
        assert key in details
    for png in (
        "predicted_vs_true.png",
        "mae_by_age_band.png",
        "error_distribution.png",
        "challenge25_rates.png",
    ):
        assert (repo / "metrics/evaluate" / png).stat().st_size > 1000
    c25 = details["challenge25"]
    assert c25["teens_val_test"]["count"] >= c25["teens"]  # val and test together
    assert (
        c25["threshold"] == 25 and c25["legal_age"] == 18 and c25["safe_threshold"]["calibrated_on"] == "val"
    )
    assert {"minor_pass_rate", "teen_pass_rate", "adult_check_rate"} <= set(c25) and "by_gender" in details
    faces = json.loads((repo / "metrics/faces.json").read_text())["faces_found"]
    assert faces["two"]["found"] == 40 and faces["one"]["found"] < 40
    not_found = (repo / "metrics/faces/not_found.csv").read_text()
    assert "no_face" in not_found and "two/" not in not_found
    whole, frames = details["till"]["whole_photos"], details["till"]["frames"]
    assert whole["faces_found"] == 1.0 and 0 < whole["photos"] < 40  # the test split's photos of "two"
    assert frames["photos"] == details["count"] and frames["by_source"]["two"]["faces_found"] == 1.0
    saved = json.loads((repo / "models/age_model.json").read_text())
    assert saved["outputs"] == ["age", "age_probs", "p_under_18", "p_under_25"] and saved["input_size"] == 32
    assert set(saved["heads"]) == {"18", "25"}  # the under-age heads, chosen and calibrated on val
    tradeoff = json.loads((repo / "metrics/evaluate/tradeoff.json").read_text())
    assert set(tradeoff["rules"]) == {"threshold", "heads"}
    report = (repo / "metrics/report.md").read_text()
    assert "Minors served without ID" in report and "(evaluate/challenge25_rates.png)" in report
    assert (repo / "metrics/report.html").stat().st_size > 1000
    assert (repo / f"metrics/train/{MEMBER}/metrics.json").exists()
    assert "step" in (repo / f"metrics/train/{MEMBER}/plots/metrics/eval/mae.tsv").read_text()
    assert saved["members"][MEMBER]["weight"] == 1.0
    calibration = json.loads((repo / "models/age_model.calibration.json").read_text())
    assert {"adult_asked_rate", "minor_served_rate", "probabilities", "confusion"} <= set(calibration)
    audit = json.loads((repo / "metrics/audit.json").read_text())
    assert set(audit) == {"months", "dishonest_flagged", "honest_flagged", "too_few"} and audit["months"] == 2
    segments = json.loads((repo / "metrics/segments.json").read_text())
    assert set(segments) == {"age_dependent", "null_effect"}


def test_dvc_reports_metrics_and_plots(repo: Path) -> None:
    shown = run(repo, "dvc", "metrics", "show", "--json").stdout
    assert "teens_served" in shown and "dishonest_flagged" not in shown  # the headline only: 120 columns
    chain = run(
        repo, "dvc", "metrics", "show", "--json", "metrics/audit.json", "metrics/segments.json"
    ).stdout
    assert "dishonest_flagged" in chain and "rate_corrected" in chain
    plots = run(repo, "dvc", "plots", "show", "--json").stdout
    assert "Predicted vs true age" in plots and "age_bands.png" not in plots
    run(repo, "dvc", "plots", "show", "-o", "plots_html")
    assert (repo / "plots_html" / "index.html").exists()


def test_predict_cli_uses_the_trained_model(repo: Path) -> None:
    photo = repo.parent / "one" / "final_files" / "000.jpg"
    done = run(repo, "agecheck", "predict", str(photo), "--model", "models/age_model.keras")
    assert "000.jpg" in done.stdout


def _start_workers(copies: list[Path]) -> list[subprocess.Popen[str]]:
    """``python stages/train.py`` in each copy, as the workers of one TF_CONFIG cluster on 127.0.0.1."""
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(len(copies))]}
    return [
        subprocess.Popen(
            [sys.executable, "stages/train.py", MEMBER],
            cwd=copy,
            env={
                **os.environ,
                "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}),
            },
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i, copy in enumerate(copies)
    ]


def _finish(workers: list[subprocess.Popen[str]]) -> list[str]:
    try:
        return [worker.communicate(timeout=600)[0] for worker in workers]
    finally:
        for worker in workers:
            worker.kill()


def test_two_workers_train_one_model_and_resume_after_a_kill(repo: Path, tmp_path: Path) -> None:
    """The train stage as two TensorFlow workers on 127.0.0.1, each with its own copy of the project
    and its data (as two machines would have). Worker 1 is killed during training: worker 0 stops
    with one line; started again, both resume from their checkpoints and end with the same model."""
    from agecheck.model.age_model import AgeModel

    copies = [shutil.copytree(repo, tmp_path / f"worker{i}", symlinks=True) for i in range(2)]
    for copy in copies:
        (copy / f"models/members/{MEMBER}/age_model.keras").unlink()
        set_params(copy, train={"epochs": 40, "patience": 40})
    workers = _start_workers(copies)
    assert workers[0].stdout is not None
    for line in workers[0].stdout:  # the first epochs done: kill worker 1 in the middle of training
        if line.startswith("epoch 3/"):
            workers[1].kill()
            break
    first = _finish(workers)
    assert workers[0].returncode == 2, first[0]
    assert first[0].strip().splitlines()[-1].startswith("error: another worker stopped (")
    assert (copies[0] / f"models/members/{MEMBER}/train_checkpoint").is_dir()

    workers = _start_workers(copies)
    outputs = _finish(workers)
    for i, (worker, output) in enumerate(zip(workers, outputs, strict=True)):
        assert worker.returncode == 0, output
        assert f"train: worker {i} of 2 (2 replicas)" in output and "train: resuming after epoch" in output
        assert "epoch 1/41 " not in output  # the epochs before the kill were not run again
    member = f"models/members/{MEMBER}/age_model.keras"
    weights = [AgeModel.load(copy / member).model.get_weights() for copy in copies]
    assert all(np.array_equal(a, b) for a, b in zip(*weights, strict=True))
    # the resumed pair ends where a pair that was never interrupted ends
    fresh = [
        shutil.copytree(copy, tmp_path / f"uninterrupted{i}", symlinks=True) for i, copy in enumerate(copies)
    ]
    for copy in fresh:
        shutil.rmtree(copy / f"models/members/{MEMBER}/train_checkpoint", ignore_errors=True)
    workers = _start_workers(fresh)
    assert all("resuming" not in output for output in _finish(workers))
    uninterrupted = AgeModel.load(fresh[0] / member).model.get_weights()
    assert all(np.allclose(a, b, atol=1e-5) for a, b in zip(weights[0], uninterrupted, strict=True))
    assert json.loads((copies[0] / f"metrics/train/{MEMBER}/metrics.json").read_text())["workers"] == 2
    assert "step" in (copies[0] / f"metrics/train/{MEMBER}/plots/metrics/eval/mae.tsv").read_text()
    assert not (
        copies[0] / f"models/members/{MEMBER}/train_checkpoint"
    ).exists()  # removed once the model is saved
    photo = repo.parent / "one" / "final_files" / "000.jpg"
    done = run(copies[0], "agecheck", "predict", str(photo), "--model", member)
    assert "000.jpg" in done.stdout


def test_workers_with_other_params_stop_at_once(repo: Path, tmp_path: Path) -> None:
    copies = [shutil.copytree(repo, tmp_path / f"worker{i}", symlinks=True) for i in range(2)]
    set_params(copies[1], train={"lr": 0.01})  # worker 1 would apply the shared gradients its own way
    workers = _start_workers(copies)
    outputs = _finish(workers)
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 2, output
        assert output.strip().splitlines()[-1] == (
            "error: the workers do not train the same thing (params, training rows or batch differ): "
            "run every worker on the same commit, params.yaml and data"
        )


def test_bad_tf_config_is_one_line(repo: Path) -> None:
    env = {**os.environ, "TF_CONFIG": '{"cluster": {"worker": ["127.0.0.1:1"]}, "task": {"index": 0}}'}
    done = subprocess.run(
        [sys.executable, "stages/train.py", MEMBER],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith('error: TF_CONFIG (see docs/scaling.md) has no "task"')
    )


def test_experiment_changes_only_training(repo: Path) -> None:
    run(repo, "git", "add", "-A")
    run(repo, "git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "baseline", check=False)
    done = run(repo, "dvc", "exp", "run", "-S", "train.lr=0.001", "-n", "faster")
    assert f"Running stage 'train@{MEMBER}'" in done.stdout
    assert "Running stage 'features@" not in done.stdout
    assert "faster" in run(repo, "dvc", "exp", "show", "--csv").stdout
    assert "mae" in run(repo, "dvc", "metrics", "diff", "HEAD", "faster").stdout
