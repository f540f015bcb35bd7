"""The one face geometry: every photo the model sees, in training and at the till, is cut here.

A found face is rotated so its eyes are level, scaled to a fixed size and cut to a square around a
fixed point (FFHQ's alignment recipe, from BlazeFace's eye and mouth keypoints); where the square runs
past the photo's edge it is filled with one grey. A photo without a found face falls back to its centre
square, as the datasets frame their photos.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from agecheck.config import AlignConfig
from agecheck.data.images import square_resize
from agecheck.faces.box import Box

#: Fill for the parts of a crop outside the photo: mid grey, close to what the backbones subtract.
PAD_COLOUR = (124, 117, 104)
#: FFHQ's face size: the larger of 2 x the eye distance and 1.8 x the eye-to-mouth distance; FFHQ
#: cuts a square of twice that side (hair and neck included).
EYE_FACTOR, MOUTH_FACTOR = 2.0, 1.8


def face_square(keypoints: tuple[tuple[float, float], ...], align: AlignConfig) -> np.ndarray:
    """Corners (top-left, top-right, bottom-left) of the aligned square in photo pixels, 3 x 2.

    The square's x axis runs from the image-left eye to the image-right eye, corrected by the
    eye-to-mouth direction (so a tilted or half-turned head still comes out upright).
    """
    right_eye, left_eye, _, mouth = (np.asarray(p, dtype=np.float64) for p in keypoints[:4])
    eyes = (right_eye + left_eye) / 2
    eye_to_eye, eye_to_mouth = left_eye - right_eye, mouth - eyes
    axis = eye_to_eye + np.array([eye_to_mouth[1], -eye_to_mouth[0]])
    axis /= max(float(np.hypot(*axis)), 1e-6)
    size = max(EYE_FACTOR * np.hypot(*eye_to_eye), MOUTH_FACTOR * np.hypot(*eye_to_mouth), 1.0)
    half_x = axis * size * align.face_scale  # FFHQ's square (face_scale 1) has side 2 x size
    half_y = np.array([-half_x[1], half_x[0]])  # x axis turned 90 degrees clockwise: image down
    centre = eyes + align.centre_shift * eye_to_mouth
    return np.stack([centre - half_x - half_y, centre + half_x - half_y, centre - half_x + half_y])


def align_face(
    image: Image.Image, keypoints: tuple[tuple[float, float], ...], align: AlignConfig, size: int
) -> np.ndarray:
    """The face cut out as a ``size`` x ``size`` uint8 RGB array (see :func:`face_square`)."""
    image = image.convert("RGB")
    corners = face_square(keypoints, align)
    side = float(np.hypot(*(corners[1] - corners[0])))
    factor = int(side // (2 * size))  # shrink big faces first: the affine resampling does not antialias
    if factor >= 2:
        image = image.reduce(factor)
        corners = corners / factor
    origin, right, down = corners[0], (corners[1] - corners[0]) / size, (corners[2] - corners[0]) / size
    # PIL maps each output pixel (u, v) to the input pixel (a u + b v + c, d u + e v + f)
    coefficients = (right[0], down[0], origin[0], right[1], down[1], origin[1])
    square = image.transform(
        (size, size), Image.Transform.AFFINE, coefficients, Image.Resampling.BILINEAR, fillcolor=PAD_COLOUR
    )
    return np.asarray(square, dtype=np.uint8)


def face_input(image: Image.Image, box: Box | None, align: AlignConfig, size: int) -> np.ndarray:
    """What the model sees of a face: aligned when ``box`` has keypoints, else the centre square."""
    if box is None or len(box.keypoints) < 4:
        return square_resize(image, size)
    return align_face(image, box.keypoints, align, size)
