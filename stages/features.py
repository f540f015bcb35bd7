"""Stage features: run the frozen lower blocks once on every split and cache their outputs."""

from __future__ import annotations

import time
from pathlib import Path

import keras
import numpy as np
import pandas as pd

import agecheck.backbones.registry as registry
from agecheck.errors import exit_on_error
from agecheck.features import extract
from agecheck.io import fresh_dir, write_json
from agecheck.params import load_params, section
from agecheck.preprocess import load_split_images
from agecheck.splitting import SPLITS

OUT = Path("data/features")


@exit_on_error
def main() -> None:
    params = load_params()
    model, feats = section(params, "model"), section(params, "features")
    size, cut = int(model["image_size"]), int(model["cut_block"])
    lower, _ = registry.split_backbone(keras.saving.load_model("models/backbone.keras"), cut)
    fresh_dir(OUT)
    timings = {}
    for split in SPLITS:
        table = pd.read_csv(f"data/split/{split}.csv", dtype={"file_name": str})
        table.to_csv(OUT / f"{split}.csv", index=False)
        if lower is None:  # nothing frozen (full fine-tuning): nothing to cache
            continue
        started = time.monotonic()
        images = load_split_images(table, Path("data/validated"), size)
        np.save(OUT / f"{split}.npy", extract(lower, images, int(feats["batch_size"]), desc=split))
        if feats.get("flip", True):
            flipped = extract(lower, images, int(feats["batch_size"]), flip=True, desc=f"{split} mirrored")
            np.save(OUT / f"{split}_flip.npy", flipped)
        timings[split] = round(time.monotonic() - started, 1)
        print(f"features {split}: {len(table)} photos in {timings[split]} s")
    write_json(Path("metrics/features.json"), {"seconds": timings})


if __name__ == "__main__":
    main()
