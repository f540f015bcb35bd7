"""Error measures of predicted ages: overall, per age band and per photo source."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.metrics import mean_absolute_error, median_absolute_error, root_mean_squared_error

from agecheck.data.age_bands import age_band

DECIMALS = 3


def _r(value: float) -> float:
    """A plain float rounded for JSON."""
    return round(float(value), DECIMALS)


def _grouped(errors: np.ndarray, groups: pd.Series) -> tuple[dict[str, float], dict[str, int]]:
    """(mean of ``errors``, count) per group, only for groups that have photos, in the groups' order."""
    by_group = pd.Series(errors).groupby(groups.reset_index(drop=True), observed=True, sort=True)
    maes = {str(name): _r(value) for name, value in by_group.mean().items()}
    counts = {str(name): int(value) for name, value in by_group.size().items()}
    return maes, counts


def age_metrics(true: ArrayLike, predicted: ArrayLike, sources: ArrayLike | None = None) -> dict[str, Any]:
    """MAE, RMSE and median absolute error of ``predicted`` ages, overall, per age band of the
    true age (with the mean signed error there: the pull towards the middle ages) and, when
    ``sources`` is given, per source; JSON-ready, rounded to 3 decimals.
    """
    true_ages = np.asarray(true, dtype=float).reshape(-1)
    predicted_ages = np.asarray(predicted, dtype=float).reshape(-1)
    if len(true_ages) == 0:
        raise ValueError("age_metrics needs at least one photo (got empty arrays)")
    if len(true_ages) != len(predicted_ages):
        raise ValueError(f"{len(true_ages)} true ages but {len(predicted_ages)} predicted ones")
    errors = np.abs(predicted_ages - true_ages)
    bands = age_band(true_ages)
    mae_by_band, count_by_band = _grouped(errors, bands)
    mean_error_by_band, _ = _grouped(predicted_ages - true_ages, bands)
    metrics: dict[str, Any] = {
        "count": len(true_ages),
        "mae": _r(mean_absolute_error(true_ages, predicted_ages)),
        "rmse": _r(root_mean_squared_error(true_ages, predicted_ages)),
        "median_ae": _r(median_absolute_error(true_ages, predicted_ages)),
        "mae_by_age_band": mae_by_band,
        "count_by_age_band": count_by_band,
        "mean_error_by_age_band": mean_error_by_band,  # signed: + = estimated too old
    }
    if sources is not None:
        source_names = pd.Series(np.asarray(sources).reshape(-1).astype(str))
        if len(source_names) != len(true_ages):
            raise ValueError(f"{len(true_ages)} ages but {len(source_names)} sources")
        metrics["mae_by_source"], metrics["count_by_source"] = _grouped(errors, source_names)
    return metrics
