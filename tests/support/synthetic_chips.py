"""Deterministic synthetic 150x150 'face' chips (gradients and ellipses, no photos) for the dlib check."""

from __future__ import annotations

from typing import Any

import numpy as np

#: The two recipes the reference descriptors in ``dlib_reference.json`` were computed from.
RECIPES: tuple[dict[str, Any], ...] = (
    {
        "size": 150,
        "background_top": [40, 70, 120],
        "background_bottom": [200, 180, 150],
        "face_center": [75, 80],
        "face_axes": [44, 58],
        "face_color": [224, 172, 140],
        "shading": 0.25,
        "eyes_y": 66,
        "eyes_dx": 18,
        "eye_axes": [8, 4],
        "eye_color": [40, 30, 30],
        "mouth_y": 110,
        "mouth_axes": [16, 5],
        "mouth_color": [150, 60, 60],
        "ripple": [0.0, 0.0],
    },
    {
        "size": 150,
        "background_top": [230, 230, 210],
        "background_bottom": [60, 90, 60],
        "face_center": [72, 76],
        "face_axes": [48, 62],
        "face_color": [150, 105, 80],
        "shading": 0.4,
        "eyes_y": 62,
        "eyes_dx": 20,
        "eye_axes": [9, 5],
        "eye_color": [20, 20, 25],
        "mouth_y": 106,
        "mouth_axes": [20, 6],
        "mouth_color": [120, 40, 50],
        "ripple": [12.0, 0.21],
    },
)


def _ellipse(yy: np.ndarray, xx: np.ndarray, cy: float, cx: float, ay: float, ax: float) -> np.ndarray:
    return ((yy - cy) / ay) ** 2 + ((xx - cx) / ax) ** 2


def synthetic_chip(recipe: dict[str, Any]) -> np.ndarray:
    """A uint8 RGB (size, size, 3) image: vertical gradient, shaded face ellipse, two eyes and a mouth."""
    n = int(recipe["size"])
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float64)
    t = (yy / (n - 1))[..., None]
    top, bottom = np.asarray(recipe["background_top"], float), np.asarray(recipe["background_bottom"], float)
    img = (1 - t) * top + t * bottom
    amp, freq = recipe["ripple"]
    img = img + amp * np.sin(freq * (xx + 0.5 * yy))[..., None]
    cy, cx = recipe["face_center"]
    ax, ay = recipe["face_axes"]
    r2 = _ellipse(yy, xx, cy, cx, ay, ax)
    face = np.asarray(recipe["face_color"], float) * (1 - recipe["shading"] * np.clip(r2, 0, 1))[..., None]
    img = np.where((r2 <= 1)[..., None], face, img)
    ex, ey = recipe["eye_axes"]
    for side in (-1, 1):
        eye = _ellipse(yy, xx, recipe["eyes_y"], cx + side * recipe["eyes_dx"], ey, ex) <= 1
        img = np.where(eye[..., None], np.asarray(recipe["eye_color"], float), img)
    mx, my = recipe["mouth_axes"]
    mouth = _ellipse(yy, xx, recipe["mouth_y"], cx, my, mx) <= 1
    img = np.where(mouth[..., None], np.asarray(recipe["mouth_color"], float), img)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)
