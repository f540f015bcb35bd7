"""The one till pipeline: a photo in, one result per face out (box, age, interval, decision, whether
it is the customer's face, the probabilities of a minor and of a customer under the threshold).

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

from agecheck.config import AlignConfig, DetectConfig, Params, PolicyConfig
from agecheck.faces.alignment import face_input
from agecheck.faces.box import Box
from agecheck.faces.detection import FaceDetector
from agecheck.model.age_model import AgeEstimate, AgeModel
from agecheck.till.customer import customer_face
from agecheck.till.policy import (  # noqa: F401 - ASK_FOR_ID, NO_ID_NEEDED: still importable from here
    ASK_FOR_ID,
    NO_ID_NEEDED,
    PROB_DECIMALS,
    UnderAge,
    decision,
    under_age_probabilities,
)


@dataclass(frozen=True)
class FaceCrops:
    """The faces of one photo: their boxes (``None``: the whole photo) and model inputs."""

    boxes: list[Box | None]
    arrays: np.ndarray  # uint8, len(boxes) x S x S x 3


@dataclass(frozen=True)
class FaceResult:
    """One face: where it is, its estimated age with an interval, the Challenge 25 decision, whether it
    is the customer's, and the alcohol rule's probabilities (None for a model without a softmax)."""

    box: Box | None  # None: the whole photo was taken as the face
    estimate: AgeEstimate
    decision: str
    customer: bool
    under: UnderAge | None

    def record(self) -> dict[str, Any]:
        """The face as rounded JSON-ready fields: the one format of the service's answer, the CLI's
        rows (which flatten ``box``) and the estimates log (which adds ``age_probs``)."""
        e, under = self.estimate, self.under
        return {
            "box": self.box.as_dict() if self.box else None,
            "age": round(e.age, 1),
            "age_low": round(e.low, 1),
            "age_high": round(e.high, 1),
            "age_sd": None if e.sd is None else round(e.sd, 2),
            "interval": e.interval,
            "decision": self.decision,
            "customer": self.customer,
            "p_under_legal": None if under is None else round(under.legal, PROB_DECIMALS),
            "p_under_threshold": None if under is None else round(under.threshold, PROB_DECIMALS),
        }


def customer_index(faces: Sequence[FaceResult]) -> int | None:
    """The customer's face among a photo's results (:func:`customer_face` chose it), None without faces."""
    return next((i for i, face in enumerate(faces) if face.customer), None)


def photo_status(faces: Sequence[FaceResult]) -> str:
    """``ok``, or ``no_face`` for a photo read without a face in it."""
    return "ok" if faces else "no_face"


class Till:
    """Find, align, estimate and decide, with one age model and the ``detect``, ``align`` and ``policy``
    params. Detectors are made per thread (a LiteRT interpreter is not thread-safe).
    """

    def __init__(
        self,
        model: AgeModel,
        detect: DetectConfig,
        align: AlignConfig,
        policy: PolicyConfig,
        coverage: float,
    ) -> None:
        self.model, self.detect, self.align, self.policy = model, detect, align, policy
        self.coverage = coverage
        self._local = threading.local()

    @classmethod
    def from_params(cls, model: AgeModel, params: Params) -> Till:
        """The till as ``params.yaml`` sets it up (interval coverage from ``serve.interval``)."""
        return cls(model, params.detect, params.align, params.policy, params.serve.interval)

    def detector(self) -> FaceDetector:
        """This thread's face detector."""
        detector = getattr(self._local, "detector", None)
        if detector is None:
            detector = self._local.detector = FaceDetector(self.detect)
        return detector

    def crops(self, image: Image.Image, detect: bool = True) -> FaceCrops:
        """The faces of ``image`` (best first), each aligned and cut at the model's input size.

        Without ``detect`` the photo is one face crop (box ``None``): aligned on its best face as in
        training, or its centre square when no face is found.
        """
        size = self.model.input_size
        boxes = self.detector().detect(image)
        if not detect:
            return FaceCrops([None], face_input(image, boxes[0] if boxes else None, self.align, size)[None])
        arrays = np.zeros((len(boxes), size, size, 3), dtype=np.uint8)
        for i, box in enumerate(boxes):
            arrays[i] = face_input(image, box, self.align, size)
        return FaceCrops(list(boxes), arrays)

    def estimate(self, arrays: np.ndarray, batch_size: int = 64) -> list[AgeEstimate]:
        """Age estimates for face crops (any number, in batches)."""
        return self.model.estimate(arrays, self.coverage, batch_size)

    def judge(self, boxes: Sequence[Box | None], estimates: Sequence[AgeEstimate]) -> list[FaceResult]:
        """One result per face of a photo from its box and age estimate; the largest face is the
        customer's (the detector's order is by score, and a sharp face behind can come first)."""
        customer = customer_face(boxes)
        results = []
        for i, (box, e) in enumerate(zip(boxes, estimates, strict=True)):
            under = self.under_age(e)
            results.append(FaceResult(box, e, decision(e.age, self.policy, under), i == customer, under))
        return results

    def under_age(self, estimate: AgeEstimate) -> UnderAge | None:
        """The probabilities of a minor and of a customer under the threshold (the model's softmax,
        or its under-age heads with ``policy.rule: heads``)."""
        if estimate.probs is None:
            return None
        heads = {age: [p] for age, p in estimate.heads.items()}
        return under_age_probabilities(estimate.probs, self.policy, heads)[0]

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
