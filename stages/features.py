"""Stage features@MEMBER: cut every photo with the member's face geometry, run its frozen lower blocks
once on every split and cache their outputs."""

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
from agecheck.training.members import MemberPaths, member_argument


@exit_on_error
def main(name: str) -> None:
    params = load_params()
    member, paths, feats = params.member(name), MemberPaths(name), params.features
    lower, _ = registry.split_backbone(keras.saving.load_model(paths.backbone), member.cut_block)
    faces = read_faces(Path("data/faces/faces.csv"))
    out = fresh_dir(paths.features)
    for split in SPLITS:
        table = pd.read_csv(f"data/split/{split}.csv", dtype={"file_name": str})
        table.to_csv(out / f"{split}.csv", index=False)
        if lower is None:  # nothing frozen (full fine-tuning): nothing to cache
            continue
        started = time.monotonic()
        images = model_inputs(
            table, Path("data/validated"), faces, params.member_align(name), member.image_size
        )
        np.save(out / f"{split}.npy", extract(lower, images, feats.batch_size, desc=f"{name} {split}"))
        if feats.flip:
            flipped = extract(lower, images, feats.batch_size, flip=True, desc=f"{name} {split} mirrored")
            np.save(out / f"{split}_flip.npy", flipped)
        print(f"features {name} {split}: {len(table)} photos in {time.monotonic() - started:.1f} s")


if __name__ == "__main__":
    main(member_argument(__doc__))
