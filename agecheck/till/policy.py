"""The alcohol rule at the till: the Challenge 25 decision, and the model's probabilities behind it.

One place for both, so that ``agecheck predict``, ``agecheck serve``, the estimates log and the
cashier audit read the same numbers. P(age < a) comes from the model's under-age head for the age a
when it has one and ``policy.rule`` is ``heads`` (``model.heads``: calibrated on val), else from its
softmax over whole years (``age_probs``: bin *i* is the age *i*): the mass of the bins under *a*.
The decision is "ask for ID" when the estimated age is under ``policy.threshold`` (rule
``threshold``) or when P(age < threshold) is at least ``policy.heads_cut`` (rule ``heads``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike

from agecheck.config import PolicyConfig

ASK_FOR_ID = "ask_for_id"
NO_ID_NEEDED = "no_id_needed"
#: Decimals of the probabilities the till gives (and of ``age_probs`` in the estimates log): 0.0001
#: is finer than any rate the audit reports, and keeps a log line small.
PROB_DECIMALS = 4


def asks_for_id(age: ArrayLike, p_under_threshold: ArrayLike | None, policy: PolicyConfig) -> np.ndarray:
    """Whether the till asks for ID, per customer, under ``policy`` (:func:`asks_under`)."""
    return asks_under(policy.rule, age, p_under_threshold, policy.threshold, policy.heads_cut)


def asks_under(
    rule: str, age: ArrayLike, p_under_threshold: ArrayLike | None, threshold: float, heads_cut: float
) -> np.ndarray:
    """Whether ``rule`` asks for ID, per customer: the estimated age under ``threshold`` (rule
    ``threshold``), or P(age < threshold) at least ``heads_cut`` (rule ``heads``; where that
    probability is missing, as from a regression model, the threshold decides). The trade-off curves
    call it at every cut, the till at the policy's."""
    ages = np.atleast_1d(np.asarray(age, dtype=np.float64))
    asked = ages < threshold
    if rule == "heads" and p_under_threshold is not None:
        under = np.atleast_1d(np.asarray(p_under_threshold, dtype=np.float64))
        known = np.isfinite(under)
        asked = np.where(known, under >= heads_cut, asked)
    return asked


def decision(age: float, policy: PolicyConfig, under: UnderAge | None = None) -> str:
    """Challenge 25 for one face (:func:`asks_for_id`): ``ask_for_id`` or ``no_id_needed``."""
    asked = asks_for_id(age, None if under is None else under.threshold, policy)[0]
    return ASK_FOR_ID if asked else NO_ID_NEEDED


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


def under_age_probabilities(
    age_probs: np.ndarray, policy: PolicyConfig, heads: Mapping[int, ArrayLike] | None = None
) -> list[UnderAge]:
    """For each softmax row: the probabilities of a minor and of a customer under the threshold;
    with rule ``heads``, from the model's under-age ``heads`` (P(age < a) per row, by age a) for the
    ages they cover."""

    def under(age: float) -> np.ndarray:
        if policy.rule == "heads" and heads and float(age).is_integer() and int(age) in heads:
            return np.clip(np.asarray(heads[int(age)], dtype=np.float64).reshape(-1), 0.0, 1.0)
        return probability_under(age_probs, age)

    legal, threshold = under(policy.legal_age), under(policy.threshold)
    return [UnderAge(float(a), float(b)) for a, b in zip(legal, threshold, strict=True)]
