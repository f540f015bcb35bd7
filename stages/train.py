"""Stage train: fine-tune the upper blocks and the age head; save the whole model for prediction."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
import tensorflow as tf
from dvclive import Live
from dvclive.keras import DVCLiveCallback

import agecheck.model.backbones.registry as registry
from agecheck.config import Params, load_params
from agecheck.data.age_bands import band_balance_weights
from agecheck.data.images import mirror
from agecheck.errors import exit_on_error
from agecheck.evaluation.challenge25 import TEEN_AGE, minor_pass
from agecheck.evaluation.metrics import age_metrics
from agecheck.faces.table import model_inputs, read_faces
from agecheck.model.age_model import AgeModel
from agecheck.model.batches import Batches
from agecheck.model.training import AgeNet, fit

FEATURES = Path("data/features")
MODEL = Path("models/age_model.keras")


def _inputs(split: str, params: Params, full: bool) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """(x, mirrored x or None, ages) for one split: cached activations, or aligned faces in full mode."""
    table = pd.read_csv(FEATURES / f"{split}.csv", dtype={"file_name": str})
    ages = table["age"].to_numpy(np.float32)
    if full:
        faces = read_faces(Path("data/faces/faces.csv"))
        images = model_inputs(table, Path("data/validated"), faces, params.align, params.model.image_size)
        return images, mirror(images), ages
    flip_path = FEATURES / f"{split}_flip.npy"
    flipped = np.load(flip_path, mmap_mode="r") if flip_path.exists() else None
    return np.load(FEATURES / f"{split}.npy"), flipped, ages


@exit_on_error
def main() -> None:
    params = load_params()
    cfg, size, cut = params.train, params.model.image_size, params.model.cut_block
    full = cfg.mode == "full"
    # full fine-tuning (meant for GPU machines) trains on every visible device
    scope = tf.distribute.MirroredStrategy().scope() if full else contextlib.nullcontext()
    x_train, f_train, y_train = _inputs("train", params, full)
    x_val, f_val, y_val = _inputs("val", params, full)
    started = time.monotonic()
    with scope, Live("metrics/train", dvcyaml=None, save_dvc_exp=False) as live:
        keras.utils.set_random_seed(cfg.seed)  # the head's initial weights too
        backbone = keras.saving.load_model("models/backbone.keras")
        lower, upper = registry.split_backbone(backbone, -1 if full else cut)
        net = AgeNet(lower, upper, cfg)
        weights = band_balance_weights(y_train, cfg.age_balance) if cfg.age_balance else None
        train = Batches(
            x_train, y_train, cfg.batch_size, cfg.seed, f_train if cfg.flip else None, weights=weights
        )
        val = Batches(x_val, y_val, cfg.batch_size, cfg.seed, shuffle=False)
        best = fit(net, train, val, [DVCLiveCallback(live=live)])
        val_pred = net.predict_ages(x_val, f_val if cfg.tta_flip else None, cfg.batch_size)
        live.summary["best_val_mae"] = round(best, 3)
        live.summary["val_mae_tta"] = round(float(np.mean(np.abs(val_pred - y_val))), 3)
        # the pull towards the middle ages and the alcohol rule's band, watched while sweeping
        live.summary["val_mean_error_by_age_band"] = age_metrics(y_val, val_pred)["mean_error_by_age_band"]
        policy = params.policy
        live.summary["val_teen_pass_rate"] = minor_pass(
            y_val, val_pred, policy.threshold, policy.legal_age, TEEN_AGE
        ).value
        live.summary["train_seconds"] = round(time.monotonic() - started, 1)
    info = {
        "backbone": backbone.name,
        "cut_block": cut,
        "head": cfg.head,
        "tta_flip": cfg.tta_flip,
        "val_mae": live.summary["val_mae_tta"],
    }
    AgeModel.save(net.full_model(size), MODEL, size, info)
    print(
        f"train: best val MAE {best:.2f} (with flip averaging {live.summary['val_mae_tta']:.2f}) "
        f"in {live.summary['train_seconds']:.0f} s -> {MODEL}"
    )


if __name__ == "__main__":
    main()
