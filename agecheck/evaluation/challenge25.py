"""Challenge 25 at the till: how often the age estimate lets a minor buy alcohol without an ID
check, and how often it makes adults show ID.

A customer is asked for ID when the estimated age is under ``threshold`` (25). With
``legal_age`` 18:

- *minor pass rate*: the share of customers under 18 estimated at ``threshold`` or older
  (served without an ID check), the number that matters most;
- *adult check rate*: the share of customers 25 or older (``adult_age``) estimated under
  ``threshold`` (ID checks that annoy customers).

``adult_age`` stays at the policy's age when ``threshold`` moves, so the curves over thresholds
show the trade-off between the two.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from agecheck.config import PolicyConfig
from agecheck.evaluation.results import Challenge25, Group, NoSafeThreshold, Rates, SafeThreshold, TeenRate
from agecheck.intervals import wilson_interval

DECIMALS = 4
#: Thresholds of the rate curves (years).
CURVE_THRESHOLDS = np.round(np.arange(18.0, 35.01, 0.5), 1)
#: Step of the search for the threshold that keeps minors out (years).
SEARCH_STEP = 0.1
#: Youngest age of the band that published figures compare against (Yoti: 13-17-year-olds).
TEEN_AGE = 13


@dataclass(frozen=True)
class Rate:
    """``hits`` of ``count`` customers; ``value`` is None when the group is empty."""

    hits: int
    count: int

    @property
    def value(self) -> float | None:
        return None if self.count == 0 else round(self.hits / self.count, DECIMALS)

    @property
    def upper95(self) -> float | None:
        """Upper end of the 95% Wilson interval of the rate (None for an empty group)."""
        if self.count == 0:
            return None
        return round(float(wilson_interval(self.hits, self.count)[1]), DECIMALS)


def _arrays(true: ArrayLike, predicted: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    true_ages = np.asarray(true, dtype=float).reshape(-1)
    predicted_ages = np.asarray(predicted, dtype=float).reshape(-1)
    if len(true_ages) != len(predicted_ages):
        raise ValueError(f"{len(true_ages)} true ages but {len(predicted_ages)} predicted ones")
    return true_ages, predicted_ages


def minor_pass(
    true: ArrayLike, predicted: ArrayLike, threshold: float, legal_age: float, youngest: float = 0
) -> Rate:
    """Customers aged ``youngest`` to under ``legal_age`` estimated at ``threshold`` or older."""
    true_ages, predicted_ages = _arrays(true, predicted)
    minors = (true_ages >= youngest) & (true_ages < legal_age)
    return Rate(int(np.sum(predicted_ages[minors] >= threshold)), int(minors.sum()))


def adult_check(true: ArrayLike, predicted: ArrayLike, threshold: float, adult_age: float) -> Rate:
    """Customers ``adult_age`` or older estimated under ``threshold``."""
    true_ages, predicted_ages = _arrays(true, predicted)
    adults = true_ages >= adult_age
    return Rate(int(np.sum(predicted_ages[adults] < threshold)), int(adults.sum()))


def rates(true: ArrayLike, predicted: ArrayLike, threshold: float, policy: PolicyConfig) -> Rates:
    """Both rates at ``threshold`` with the counts behind them."""
    passed = minor_pass(true, predicted, threshold, policy.legal_age)
    teens = minor_pass(true, predicted, threshold, policy.legal_age, TEEN_AGE)
    checked = adult_check(true, predicted, threshold, policy.adult_age)
    return Rates(
        threshold=round(float(threshold), 2),
        minor_pass_rate=passed.value,
        minor_pass_rate_upper95=passed.upper95,
        minors=passed.count,
        minors_passed=passed.hits,
        teen_pass_rate=teens.value,
        teen_pass_rate_upper95=teens.upper95,
        teens=teens.count,
        teens_passed=teens.hits,
        adult_check_rate=checked.value,
        adults=checked.count,
        adults_checked=checked.hits,
    )


def rate_curve(
    true: ArrayLike, predicted: ArrayLike, policy: PolicyConfig, thresholds: ArrayLike = CURVE_THRESHOLDS
) -> pd.DataFrame:
    """``threshold, minor_pass_rate, adult_check_rate`` for each threshold."""
    rows = []
    for threshold in np.asarray(thresholds, dtype=float):
        passed = minor_pass(true, predicted, threshold, policy.legal_age)
        checked = adult_check(true, predicted, threshold, policy.adult_age)
        rows.append((float(threshold), passed.value, checked.value))
    return pd.DataFrame(rows, columns=["threshold", "minor_pass_rate", "adult_check_rate"])


def safe_threshold(true: ArrayLike, predicted: ArrayLike, policy: PolicyConfig) -> float | None:
    """The lowest threshold (in steps of :data:`SEARCH_STEP` from ``legal_age``) whose minor pass
    rate is at most ``policy.max_minor_pass_rate``; None when there are no minors.

    Lower is better for adults, so this is the threshold that checks the fewest adults.
    """
    true_ages, predicted_ages = _arrays(true, predicted)
    minor_estimates = np.sort(predicted_ages[true_ages < policy.legal_age])
    if len(minor_estimates) == 0:
        return None
    allowed = int(np.floor(policy.max_minor_pass_rate * len(minor_estimates) + 1e-9))
    # at most `allowed` minors may be estimated at or above the threshold
    must_exceed = minor_estimates[len(minor_estimates) - allowed - 1]
    steps = np.floor((must_exceed - policy.legal_age) / SEARCH_STEP + 1e-9) + 1
    return round(max(policy.legal_age, policy.legal_age + steps * SEARCH_STEP), 1)


def challenge25_metrics(
    true: ArrayLike,
    predicted: ArrayLike,
    policy: PolicyConfig,
    calibration: tuple[ArrayLike, ArrayLike] | None = None,
    calibrated_on: str = "val",
) -> Challenge25:
    """The rates at the policy threshold, and at the threshold that keeps the minor pass rate
    within the limit on ``calibration`` (true, predicted) ages — the same photos when None. With
    ``calibration``, also the 13-17-year-olds of both sets together: each has few.
    """
    teens_both = None
    if calibration is None:
        calibration, calibrated_on = (true, predicted), "the same photos"
    else:
        pairs = zip(_arrays(*calibration), _arrays(true, predicted), strict=True)
        teens = minor_pass(*map(np.concatenate, pairs), policy.threshold, policy.legal_age, TEEN_AGE)
        teens_both = TeenRate(rate=teens.value, upper95=teens.upper95, count=teens.count, passed=teens.hits)
    threshold = safe_threshold(*calibration, policy)
    limit = {"calibrated_on": calibrated_on, "max_minor_pass_rate": policy.max_minor_pass_rate}
    safe: SafeThreshold | NoSafeThreshold
    if threshold is None:
        safe = NoSafeThreshold(**limit, threshold=None)
    else:
        safe = SafeThreshold(
            **limit,
            calibration_minor_pass_rate=minor_pass(*calibration, threshold, policy.legal_age).value,
            **rates(true, predicted, threshold, policy).model_dump(),
        )
    return Challenge25(
        legal_age=policy.legal_age,
        **rates(true, predicted, policy.threshold, policy).model_dump(),
        safe_threshold=safe,
        teens_val_test=teens_both,
    )


def group_metrics(predictions: pd.DataFrame, column: str, policy: PolicyConfig) -> dict[str, Group]:
    """Per value of ``column`` (missing values as ``not recorded``): photo count, MAE and both
    rates at the policy threshold with the counts behind them.
    """
    groups = (
        predictions[column].astype("string").fillna("not recorded").str.strip().replace("", "not recorded")
    )
    table: dict[str, Group] = {}
    for name, rows in predictions.groupby(groups, sort=True):
        at_policy = rates(rows["age"], rows["predicted"], policy.threshold, policy)
        table[str(name)] = Group(
            count=len(rows),
            mae=round(float(np.mean(np.abs(rows["predicted"] - rows["age"]))), 3),
            minor_pass_rate=at_policy.minor_pass_rate,
            minors=at_policy.minors,
            adult_check_rate=at_policy.adult_check_rate,
            adults=at_policy.adults,
        )
    return table
