"""Which face crop suits the faceres network: its frozen features and its own age head on val, per crop.

    python -m benchmarks.faceres_geometry [--scales 0.8,1.0,1.19467,1.4,1.6] [--train 4000]

HSE trained FaceRes on loose crops at 224 px; our alignment cuts a square of ``face_scale`` x FFHQ's
side around the same centre (``align.centre_shift``). For each scale this cuts ``--train`` random
training photos and every validation photo at 224 px from the pipeline's own faces table (stage
faces), runs faceres-deep once, and prints the validation MAE of (a) a ridge regression on its 256-d
``feats`` fitted on those training photos (what our member starts from), and (b) its own age head,
untrained by us (the peer). Needs ``dvc repro faces split`` done. Select on val only; the test split
is never read.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd
from sklearn.linear_model import RidgeCV

from agecheck.config import AlignConfig, load_params
from agecheck.faces.table import model_inputs, read_faces
from agecheck.model.backbones import faceres
from agecheck.model.outputs import AGE

SIZE = faceres.INPUT_SIZE


def features_and_ages(
    model: keras.Model, images: np.ndarray, batch: int = 32
) -> tuple[np.ndarray, np.ndarray]:
    """(256-d feats, the own head's ages) for uint8 crops."""
    feats, ages = [], []
    for start in range(0, len(images), batch):
        out = model.predict_on_batch(images[start : start + batch].astype(np.float32))
        feats.append(np.asarray(out["feats"]))
        ages.append(np.asarray(out[AGE]).reshape(-1))
    return np.concatenate(feats), np.concatenate(ages)


def main() -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=raw)
    parser.add_argument("--scales", default="0.8,1.0,1.19467,1.4,1.6")
    parser.add_argument("--train", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    params = load_params()
    peer = faceres.faceres_age_model("faceres_deep")
    feats = peer.get_layer(faceres.FEATS_NAME).output
    model = keras.Model(peer.input, {"feats": keras.layers.Flatten()(feats), AGE: peer.output[AGE]})
    faces = read_faces(Path("data/faces/faces.csv"))
    train = pd.read_csv("data/split/train.csv", dtype={"file_name": str})
    train = train.sample(n=min(args.train, len(train)), random_state=args.seed)
    val = pd.read_csv("data/split/val.csv", dtype={"file_name": str})
    print("| face_scale | ridge on frozen feats, val MAE | its own age head, val MAE | seconds |")
    print("|---|---|---|---|")
    for scale in (float(s) for s in args.scales.split(",")):
        started = time.monotonic()
        align = AlignConfig(face_scale=scale, centre_shift=params.align.centre_shift)
        x_train, _ = features_and_ages(model, model_inputs(train, Path("data/validated"), faces, align, SIZE))
        x_val, own = features_and_ages(model, model_inputs(val, Path("data/validated"), faces, align, SIZE))
        ridge = RidgeCV(alphas=np.logspace(-2, 3, 11)).fit(x_train, train["age"].to_numpy(float))
        y_val = val["age"].to_numpy(float)
        ridge_mae = np.mean(np.abs(np.clip(ridge.predict(x_val), 0, 100) - y_val))
        own_mae = np.mean(np.abs(own - y_val))
        seconds = time.monotonic() - started
        print(f"| {scale:g} | {ridge_mae:.3f} | {own_mae:.3f} | {seconds:.0f} |", flush=True)


if __name__ == "__main__":
    main()
