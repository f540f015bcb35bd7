"""Stage features: cut every photo with the one face geometry, run the frozen lower blocks once on every
split and cache their outputs."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

import agecheck.model.backbones.registry as registry
from agecheck.config import load_params
from agecheck.data.split import SPLITS
from agecheck.errors import exit_on_error
from agecheck.faces.table import model_inputs, read_faces
from agecheck.outputs import fresh_dir
from agecheck.training.features import extract

OUT = Path("data/features")


@exit_on_error
def main() -> None:
    params = load_params()
    size, feats = params.model.image_size, params.features
    lower, _ = registry.split_backbone(
        keras.saving.load_model("models/backbone.keras"), params.model.cut_block
    )
    faces = read_faces(Path("data/faces/faces.csv"))
    fresh_dir(OUT)
    for split in SPLITS:
        table = pd.read_csv(f"data/split/{split}.csv", dtype={"file_name": str})
        table.to_csv(OUT / f"{split}.csv", index=False)
        if lower is None:  # nothing frozen (full fine-tuning): nothing to cache
            continue
        started = time.monotonic()
        images = model_inputs(table, Path("data/validated"), faces, params.align, size)
        np.save(OUT / f"{split}.npy", extract(lower, images, feats.batch_size, desc=split))
        if feats.flip:
            flipped = extract(lower, images, feats.batch_size, flip=True, desc=f"{split} mirrored")
            np.save(OUT / f"{split}_flip.npy", flipped)
        print(f"features {split}: {len(table)} photos in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main()
