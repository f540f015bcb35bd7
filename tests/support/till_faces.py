"""The customer's face as the till reports it, without a model: for tests and benchmarks that write
estimates logs (:func:`agecheck.till.estimates_log.log_entry` takes faces)."""

from __future__ import annotations

import numpy as np

from agecheck.config import PolicyConfig
from agecheck.faces.box import Box
from agecheck.model.age_model import AgeEstimate
from agecheck.till.pipeline import FaceResult
from agecheck.till.policy import decision, under_age_probabilities


def customer_face(age: float, policy: PolicyConfig, spread: float = 3.0) -> FaceResult:
    """The customer's face estimated at ``age``, with a normal softmax of sd ``spread`` around it."""
    age = float(age)
    years = np.arange(101)
    probs = np.exp(-0.5 * ((years - age) / spread) ** 2)
    probs /= probs.sum()
    estimate = AgeEstimate(age, age - 1.3 * spread, age + 1.3 * spread, spread, "softmax", probs)
    box = Box(200.0, 120.0, 180.0, 200.0, 0.93)
    return FaceResult(box, estimate, decision(age, policy), True, under_age_probabilities(probs, policy)[0])
