"""The alcohol rule at the till: the Challenge 25 decision, and the model's probabilities behind it.

One place for both, so that ``agecheck predict``, ``agecheck serve``, the estimates log and the
cashier audit read the same numbers. The probabilities come from the model's softmax over whole
years (``age_probs``: bin *i* is the age *i*): P(age < a) is the mass of the bins under *a*. A later
model may replace them by calibrated heads behind :func:`under_age_probabilities`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from agecheck.config import PolicyConfig

ASK_FOR_ID = "ask_for_id"
NO_ID_NEEDED = "no_id_needed"
#: Decimals of the probabilities the till gives (and of ``age_probs`` in the estimates log): 0.0001
#: is finer than any rate the audit reports, and keeps a log line small.
PROB_DECIMALS = 4


def decision(age: float, policy: PolicyConfig) -> str:
    """Challenge 25: ``ask_for_id`` when the estimated age is under the threshold, else ``no_id_needed``."""
    return ASK_FOR_ID if age < policy.threshold else NO_ID_NEEDED


def probability_under(age_probs: np.ndarray, age: float) -> np.ndarray:
    """P(true age < ``age``) for each row of softmaxes over the whole years 0..K (N x (K+1))."""
    probs = np.atleast_2d(np.asarray(age_probs, dtype=np.float64))
    years = np.arange(probs.shape[1])
    return np.clip(probs[:, years < age].sum(axis=1), 0.0, 1.0)


@dataclass(frozen=True)
class UnderAge:
    """P(age < legal age) (a minor) and P(age < policy threshold) (should be asked for ID)."""

    legal: float
    threshold: float


def under_age_probabilities(age_probs: np.ndarray, policy: PolicyConfig) -> list[UnderAge]:
    """For each softmax row: the probabilities of a minor and of a customer under the threshold."""
    legal = probability_under(age_probs, policy.legal_age)
    threshold = probability_under(age_probs, policy.threshold)
    return [UnderAge(float(a), float(b)) for a, b in zip(legal, threshold, strict=True)]
