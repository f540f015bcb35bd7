"""Writes ``dlib_reference.json``: dlib's own 128-d descriptors of the synthetic chips (needs dlib).

Run once from the repository root with dlib importable (``pip install dlib-bin``):
``PYTHONPATH=. python tests/data/make_dlib_reference.py``; the test then needs only numpy, Keras and the
``.dat``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import dlib
import numpy as np

from agecheck.model.backbones.dlib_resnet import weights_file
from tests.support.synthetic_chips import RECIPES, synthetic_chip

OUT = Path(__file__).with_name("dlib_reference.json")


def main() -> None:
    path = weights_file()
    model = dlib.face_recognition_model_v1(str(path))
    cases = []
    for recipe in RECIPES:
        chip = np.ascontiguousarray(synthetic_chip(recipe))
        # The overload for an already aligned 150x150 chip: no landmarks, no resampling, num_jitters 0.
        descriptor = np.asarray(model.compute_face_descriptor(chip), dtype=np.float64)
        cases.append(
            {
                "recipe": recipe,
                "image_sha256": hashlib.sha256(chip.tobytes()).hexdigest(),
                "descriptor": [float(v) for v in descriptor],
            }
        )
        print(f"norm {np.linalg.norm(descriptor):.6f}  first {descriptor[:4]}")
    reference = {
        "source": "dlib.face_recognition_model_v1(dat).compute_face_descriptor(chip) of synthetic chips",
        "dlib_version": dlib.__version__,
        "weights_file": path.name,
        "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "cases": cases,
    }
    OUT.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
