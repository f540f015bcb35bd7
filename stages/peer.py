"""Stage peer: a ready-made age model on the validation and test photos, to beat (never the product):
faceres' own age head, untrained by us, at the face crop chosen for it on val."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from agecheck.config import AlignConfig, load_params
from agecheck.errors import exit_on_error
from agecheck.evaluation.metrics import age_metrics
from agecheck.faces.table import model_inputs, read_faces
from agecheck.model.age_model import AgeModel
from agecheck.model.backbones.faceres import INPUT_SIZE, faceres_age_model
from agecheck.outputs import write_json

OUT = Path("metrics/peer.json")
#: The peer's name in the report: HSE's float32 FaceRes with its own IMDB-WIKI age head.
NAME = "faceres-deep's own age head (HSE, trained on IMDB-WIKI; untrained by us)"


@exit_on_error
def main() -> None:
    params = load_params()
    cfg = params.peer
    if not cfg.network:
        write_json(OUT, {})
        print(f"peer: none (peer.network is '') -> {OUT}")
        return
    peer = AgeModel(faceres_age_model("faceres_deep"), {"input_size": INPUT_SIZE})
    align = AlignConfig(face_scale=cfg.face_scale, centre_shift=params.align.centre_shift)
    faces = read_faces(Path("data/faces/faces.csv"))
    results = {"name": NAME, "face_scale": cfg.face_scale}
    for split in ("val", "test"):
        table = pd.read_csv(f"data/split/{split}.csv", dtype={"file_name": str})
        images = model_inputs(table, Path("data/validated"), faces, align, INPUT_SIZE)
        ages = table["age"].to_numpy(np.float64)
        results[split] = age_metrics(ages, peer.predict(images, params.evaluate.batch_size), table["source"])
    write_json(OUT, results)
    print(f"peer: {NAME}: val MAE {results['val']['mae']}, test MAE {results['test']['mae']} -> {OUT}")


if __name__ == "__main__":
    main()
