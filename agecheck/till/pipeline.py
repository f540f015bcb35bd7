"""The one till pipeline: a photo in, one result per face out (box, age, interval, decision).

``agecheck predict`` and ``agecheck serve`` only read input and format output around it. The
work is split in two so the service can batch faces across requests: :meth:`Till.crops` (find
and cut out the faces, CPU) and :meth:`Till.judge` (ages from the model, Challenge 25 decision);
:meth:`Till.run` does both for a list of photos in one model call.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from agecheck.config import DetectConfig, PolicyConfig
from agecheck.data.images import square_resize
from agecheck.model.age_model import AgeEstimate, AgeModel
from agecheck.till.detection import Box, FaceDetector

ASK_FOR_ID = "ask_for_id"
NO_ID_NEEDED = "no_id_needed"


def decision(age: float, policy: PolicyConfig) -> str:
    """Challenge 25: ``ask_for_id`` when the estimated age is under the threshold, else ``no_id_needed``."""
    return ASK_FOR_ID if age < policy.threshold else NO_ID_NEEDED


def crop_box(box: Box, detect: DetectConfig) -> tuple[int, int, int, int]:
    """The square ``left, top, right, bottom`` around ``box`` (may reach outside the photo).

    Its side is ``margin`` x the box side, its centre the box centre moved by ``shift_x``,
    ``shift_y`` box sides: the framing of a training photo (``benchmarks/face_margin.py``).
    """
    cx, cy = box.centre
    side = box.side
    cx, cy, half = cx + detect.shift_x * side, cy + detect.shift_y * side, detect.margin * side / 2
    left, top = round(cx - half), round(cy - half)
    length = max(1, round(2 * half))
    return left, top, left + length, top + length


def crop_face(image: Image.Image, box: Box, detect: DetectConfig) -> Image.Image:
    """The face in ``box`` cut out like a training photo; parts outside the photo are black."""
    return image.crop(crop_box(box, detect))


@dataclass(frozen=True)
class FaceCrops:
    """The faces of one photo: their boxes (``None``: the whole photo) and model inputs."""

    boxes: list[Box | None]
    arrays: np.ndarray  # uint8, len(boxes) x S x S x 3


@dataclass(frozen=True)
class FaceResult:
    """One face: where it is, its estimated age with an interval, and the Challenge 25 decision."""

    box: Box | None  # None: the whole photo was taken as the face
    estimate: AgeEstimate
    decision: str

    def record(self) -> dict[str, Any]:
        """The face as rounded JSON-ready fields: the one format of the service's answer and the
        CLI's rows (which flatten ``box``)."""
        e = self.estimate
        return {
            "box": self.box.as_dict() if self.box else None,
            "age": round(e.age, 1),
            "age_low": round(e.low, 1),
            "age_high": round(e.high, 1),
            "age_sd": None if e.sd is None else round(e.sd, 2),
            "interval": e.interval,
            "decision": self.decision,
        }


class Till:
    """Find, crop, estimate and decide, with one age model and the ``detect`` and ``policy`` params.

    Detectors are made per thread (a LiteRT interpreter is not thread-safe).
    """

    def __init__(self, model: AgeModel, detect: DetectConfig, policy: PolicyConfig, coverage: float) -> None:
        self.model, self.detect, self.policy, self.coverage = model, detect, policy, coverage
        self._local = threading.local()

    def detector(self) -> FaceDetector:
        """This thread's face detector."""
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = FaceDetector(self.detect)
        return detector

    def crops(self, image: Image.Image, detect: bool = True) -> FaceCrops:
        """The faces of ``image`` (best first) cut out at the model's input size.

        Without ``detect`` the whole photo is one face crop, centre-cropped to a square as in training.
        """
        size = self.model.input_size
        if not detect:
            return FaceCrops([None], square_resize(image, size)[np.newaxis])
        boxes = self.detector().detect(image)
        arrays = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
        for i, box in enumerate(boxes):
            arrays[i] = square_resize(crop_face(image, box, self.detect), size)
        return FaceCrops(list(boxes), arrays)

    def estimate(self, arrays: np.ndarray, batch_size: int = 64) -> list[AgeEstimate]:
        """Age estimates for face crops (any number, in batches)."""
        return self.model.estimate(arrays, self.coverage, batch_size)

    def judge(self, boxes: Sequence[Box | None], estimates: Sequence[AgeEstimate]) -> list[FaceResult]:
        """One result per face from its box and age estimate."""
        return [
            FaceResult(box, e, decision(e.age, self.policy)) for box, e in zip(boxes, estimates, strict=True)
        ]

    def run(
        self, images: Sequence[Image.Image], detect: bool = True, batch_size: int = 64
    ) -> list[list[FaceResult]]:
        """The faces of each photo, with the ages of all of them estimated in one batched model run."""
        crops = [self.crops(image, detect) for image in images]
        arrays = [c.arrays for c in crops if len(c.boxes)]
        estimates = self.estimate(np.concatenate(arrays), batch_size) if arrays else []
        results, start = [], 0
        for c in crops:
            results.append(self.judge(c.boxes, estimates[start : start + len(c.boxes)]))
            start += len(c.boxes)
        return results
