"""Stage train@MEMBER: fine-tune a member's upper blocks and its age head; save the member's whole model
(its crops in, ages out) for the combine stage."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from dvclive import Live

import agecheck.model.backbones.registry as registry
from agecheck.config import Params, load_params
from agecheck.data.age_bands import band_balance_weights
from agecheck.data.images import mirror
from agecheck.errors import exit_on_error
from agecheck.evaluation.metrics import age_metrics
from agecheck.faces.table import model_inputs, read_faces
from agecheck.model.age_model import AgeModel
from agecheck.outputs import fresh_dir
from agecheck.training.batches import Examples
from agecheck.training.checkpoints import EpochCheckpoints, inputs_fingerprint
from agecheck.training.determinism import make_deterministic
from agecheck.training.distribution import read_cluster, training_strategy
from agecheck.training.members import MemberPaths, member_argument
from agecheck.training.trainer import AgeNet, Trainer


def _inputs(
    split: str, params: Params, paths: MemberPaths, full: bool
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(x, mirrored x or None, ages) for one split: cached activations, or aligned faces in full mode."""
    table = pd.read_csv(paths.features / f"{split}.csv", dtype={"file_name": str})
    ages = table["age"].to_numpy(np.float32)
    if full:
        faces = read_faces(Path("data/faces/faces.csv"))
        size = params.member(paths.name).image_size
        images = model_inputs(table, Path("data/validated"), faces, params.member_align(paths.name), size)
        return images, mirror(images), ages
    flip_path = paths.features / f"{split}_flip.npy"
    flipped = np.load(flip_path, mmap_mode="r") if flip_path.exists() else None
    return np.load(paths.features / f"{split}.npy"), flipped, ages


def _fingerprint(params: Params, paths: MemberPaths, trainer: Trainer) -> str:
    """What the checkpoints are valid for: the params, the input files, the code that trains
    (this script and the package) and its libraries, the global batch."""
    code = [Path(__file__), *Path("agecheck").rglob("*.py")]
    files = [paths.backbone, *paths.features.iterdir(), *Path("data/faces").iterdir(), *code]
    settings = {"train": params.member_train(paths.name).model_dump(), "align": params.align.model_dump()}
    settings["member"] = params.member(paths.name).model_dump()
    settings |= {"tensorflow": tf.__version__, "keras": keras.__version__, "run": trainer.digest}
    return inputs_fingerprint(settings, files)


def _log_epoch(live: Live, logs: dict[str, float]) -> None:
    """One epoch in DVCLive's plots, named as DVCLive's Keras callback names them."""
    for name, value in logs.items():
        live.log_metric(name.replace("val_", "eval/") if name.startswith("val_") else f"train/{name}", value)
    live.next_step()


@exit_on_error
def main(name: str) -> None:
    params, paths = load_params(), MemberPaths(name)
    member, cfg = params.member(name), params.member_train(name)
    size, cut = member.image_size, member.cut_block
    full = cfg.mode == "full"
    cluster = read_cluster()
    make_deterministic(cfg.seed, cfg.threads)  # before TensorFlow runs anything
    strategy = training_strategy(cluster, full)  # first: TensorFlow's multi-worker runtime starts here
    x_train, f_train, y_train = _inputs("train", params, paths, full)
    x_val, f_val, y_val = _inputs("val", params, paths, full)
    weights = band_balance_weights(y_train, cfg.age_balance) if cfg.age_balance else None
    started = time.monotonic()
    with strategy.scope():
        backbone = keras.saving.load_model(paths.backbone)
        lower, upper = registry.split_backbone(backbone, -1 if full else cut)
        net = AgeNet(lower, upper, cfg)
    trainer = Trainer(
        net,
        strategy,
        Examples(x_train, y_train, weights, f_train if cfg.flip else None),
        Examples(x_val, y_val),
    )
    checkpoints = EpochCheckpoints(paths.checkpoints, _fingerprint(params, paths, trainer))
    if cluster.workers > 1:
        print(f"train: worker {cluster.rank} of {cluster.workers} ({strategy.num_replicas_in_sync} replicas)")
    with Live(str(paths.live), dvcyaml=None, save_dvc_exp=False) as live:
        best = trainer.fit(checkpoints, lambda epoch, logs: _log_epoch(live, logs))
        val_pred = net.predict_ages(x_val, f_val if cfg.tta_flip else None, cfg.batch_size)
        live.summary["best_val_mae"] = round(best, 3)
        live.summary["val_mae_tta"] = round(float(np.mean(np.abs(val_pred - y_val))), 3)
        # the pull towards the middle ages, watched while sweeping (the alcohol rule's rates: evaluate)
        live.summary["val_mean_error_by_age_band"] = age_metrics(y_val, val_pred)["mean_error_by_age_band"]
        live.summary["workers"] = cluster.workers
    info = {
        "member": name,
        "face_scale": member.face_scale,
        "backbone": backbone.name,
        "cut_block": cut,
        "head": cfg.head,
        "tta_flip": cfg.tta_flip,
        "val_mae": live.summary["val_mae_tta"],
    }
    AgeModel.save(net.full_model(size, f"member_{name}"), paths.model, size, info)
    pooled = fresh_dir(paths.pooled)
    for split, x, flipped in (("train", x_train, f_train), ("val", x_val, f_val)):
        features = net.pooled_features(x, flipped if cfg.tta_flip else None, cfg.batch_size)
        np.save(pooled / f"{split}.npy", features.astype(np.float32))
    checkpoints.clear()
    print(
        f"train {name}: best val MAE {best:.2f} (with flip averaging {live.summary['val_mae_tta']:.2f}) "
        f"in {time.monotonic() - started:.0f} s -> {paths.model}"
    )


if __name__ == "__main__":
    main(member_argument(__doc__))
