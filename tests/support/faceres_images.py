"""The four 224x224 test images of the FaceRes reference (no photos): two synthetic faces, a colour
gradient with a checkerboard, and seeded noise.

``python -m tests.support.faceres_images OUT`` writes them as raw uint8 NHWC bytes for
``tests/support/faceres_reference.mjs``; ``faceres_reference.json`` keeps each image's sha256.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from tests.support.synthetic_chips import RECIPES, synthetic_chip

SIZE = 224
NAMES = ("face_light", "face_dark_ripple", "gradient_checker", "noise_seed0")


def _scaled(recipe: dict[str, Any], size: int) -> dict[str, Any]:
    """A 150 px chip recipe redrawn at ``size`` px (positions and axes scaled, colours kept)."""
    k = size / recipe["size"]
    out = dict(recipe, size=size)
    for key in ("face_center", "face_axes", "eye_axes", "mouth_axes"):
        out[key] = [v * k for v in recipe[key]]
    for key in ("eyes_y", "eyes_dx", "mouth_y"):
        out[key] = recipe[key] * k
    amp, freq = recipe["ripple"]
    out["ripple"] = [amp, freq / k]
    return out


def _gradient_checker() -> np.ndarray:
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    img = np.stack([xx * 255 // (SIZE - 1), yy * 255 // (SIZE - 1), (xx + yy) * 255 // (2 * SIZE - 2)], -1)
    checker = ((yy // 28 + xx // 28) % 2 == 0)[..., None]
    return np.where(checker, img, 255 - img).astype(np.uint8)


def reference_images() -> np.ndarray:
    """(4, 224, 224, 3) uint8 RGB, in the order of :data:`NAMES`."""
    faces = [synthetic_chip(_scaled(recipe, SIZE)) for recipe in RECIPES]
    noise = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return np.stack([*faces, _gradient_checker(), noise])


if __name__ == "__main__":
    Path(sys.argv[1]).write_bytes(np.ascontiguousarray(reference_images()).tobytes())
