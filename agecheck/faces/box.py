"""A face in a photo: its box and keypoints in pixels, and the overlap of boxes.

Apart from the detector, so that reading the faces table and cutting crops (training, evaluation)
does not depend on the code that finds faces.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: BlazeFace's six keypoints, in its output order (right/left: the person's, so the right eye is on the
#: image's left in an upright, unmirrored photo).
KEYPOINTS = ("right_eye", "left_eye", "nose", "mouth", "right_ear", "left_ear")


@dataclass(frozen=True)
class Box:
    """A detected face in pixel coordinates of the (upright) photo."""

    left: float
    top: float
    width: float
    height: float
    score: float
    #: (x, y) pixels of :data:`KEYPOINTS`, in that order (empty for a box made by hand)
    keypoints: tuple[tuple[float, float], ...] = ()

    @property
    def centre(self) -> tuple[float, float]:
        return self.left + self.width / 2, self.top + self.height / 2

    @property
    def side(self) -> float:
        """The box's size as one number (BlazeFace boxes are close to square)."""
        return float(np.sqrt(self.width * self.height))

    @property
    def corners(self) -> np.ndarray:
        """``x0, y0, x1, y1``."""
        return np.array([self.left, self.top, self.left + self.width, self.top + self.height])

    def iou(self, other: Box) -> float:
        """Intersection over union with ``other``."""
        return float(box_iou(self.corners, other.corners[np.newaxis])[0])

    def as_dict(self) -> dict[str, float]:
        """Rounded ``left, top, width, height, score`` (for JSON and CSV output)."""
        return {
            "left": round(self.left, 1),
            "top": round(self.top, 1),
            "width": round(self.width, 1),
            "height": round(self.height, 1),
            "score": round(self.score, 3),
        }


def box_iou(box: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Intersection over union of one ``x0, y0, x1, y1`` box with each row of ``others``."""
    x0 = np.maximum(box[0], others[:, 0])
    y0 = np.maximum(box[1], others[:, 1])
    x1 = np.minimum(box[2], others[:, 2])
    y1 = np.minimum(box[3], others[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    return inter / np.maximum(area + areas - inter, 1e-9)
