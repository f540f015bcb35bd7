"""At the till: the faces in a photo, their crops for the age model, and the Challenge-25 decision.

Shared by ``agecheck predict`` and ``agecheck serve``: :func:`face_crops` finds and cuts out the
faces of one photo (or takes the whole photo as one face crop), an
:class:`~agecheck.estimates.AgeEstimator` estimates their ages in batches, and :func:`decision`
applies the Challenge-25 policy (``agecheck.challenge25.Policy``, ``params.yaml`` ``policy:``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from agecheck.challenge25 import Policy
from agecheck.faces import Box, CropSpec, DetectorConfig, FaceDetector, crop_face
from agecheck.preprocess import square_resize

ASK_FOR_ID = "ask_for_id"
NO_ID_NEEDED = "no_id_needed"


def decision(age: float, policy: Policy) -> str:
    """Challenge 25: ``ask_for_id`` when the estimated age is under the threshold, else ``no_id_needed``."""
    return ASK_FOR_ID if age < policy.threshold else NO_ID_NEEDED


def detect_settings(params: dict[str, Any]) -> tuple[DetectorConfig, CropSpec]:
    """The detector and crop settings of ``params.yaml`` (``detect:``; defaults when absent)."""
    block = params.get("detect") or {}
    config = DetectorConfig(
        model=str(block.get("model", DetectorConfig.model)),
        min_score=float(block.get("min_score", DetectorConfig.min_score)),
        nms_iou=float(block.get("nms_iou", DetectorConfig.nms_iou)),
        min_face=int(block.get("min_face", DetectorConfig.min_face)),
        max_faces=int(block.get("max_faces", DetectorConfig.max_faces)),
    )
    crop = CropSpec(
        margin=float(block.get("margin", CropSpec.margin)),
        shift_x=float(block.get("shift_x", CropSpec.shift_x)),
        shift_y=float(block.get("shift_y", CropSpec.shift_y)),
    )
    return config, crop


@dataclass(frozen=True)
class FaceCrops:
    """The faces of one photo: their boxes (``None``: the whole photo) and model inputs."""

    boxes: list[Box | None]
    arrays: np.ndarray  # uint8, len(boxes) x S x S x 3


def face_crops(
    image: Image.Image,
    size: int,
    detector: FaceDetector | None,
    crop: CropSpec = CropSpec(),  # noqa: B008
) -> FaceCrops:
    """Detect and crop the faces of ``image`` (best first) at ``size`` px for the age model.

    Without a ``detector`` the whole photo is taken as one face crop, centre-cropped to a square
    as in training.
    """
    if detector is None:
        return FaceCrops([None], square_resize(image, size)[np.newaxis])
    boxes = detector.detect(image)
    arrays = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
    for i, box in enumerate(boxes):
        arrays[i] = square_resize(crop_face(image, box, crop), size)
    return FaceCrops(list(boxes), arrays)
