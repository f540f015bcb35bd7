"""Evaluating predicted ages against labels: the predictions table, the metrics and their files.

Used by both ``stages/evaluate.py`` (test split) and ``agecheck evaluate`` (a photo folder).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from agecheck.config import PolicyConfig
from agecheck.errors import AgecheckError
from agecheck.evaluation.challenge25 import challenge25_metrics, group_metrics, rate_curve
from agecheck.evaluation.metrics import age_metrics
from agecheck.evaluation.plots import write_evaluation_plots
from agecheck.outputs import write_json

#: Label columns that define groups of customers (kept in the predictions when present).
GROUP_COLUMNS = ("gender", "race")
PREDICTION_COLUMNS = ("id", "source", *GROUP_COLUMNS, "age", "predicted", "error")
RATES_CSV = "challenge25_rates.csv"
#: Every metric of an evaluation, beside its predictions and figures.
DETAILS = "details.json"
TEEN_BAND = "13-17"


def prediction_table(table: pd.DataFrame, predicted: np.ndarray) -> pd.DataFrame:
    """One row per photo: ``id, source, gender, race, age, predicted, error`` (predicted - true).

    ``table`` has columns ``id``, ``source``, ``age`` (true age) and optionally the group
    columns; ``predicted`` holds the predicted ages in the same order.
    """
    predicted = np.asarray(predicted, dtype=float).reshape(-1)
    if len(table) == 0:
        raise AgecheckError("no photos to evaluate")
    if len(predicted) != len(table):
        raise ValueError(f"{len(table)} photos but {len(predicted)} predictions")
    ages = table["age"].to_numpy(dtype=int)
    columns = {"id": table["id"].astype(str).to_numpy(), "source": table["source"].astype(str).to_numpy()}
    for name in GROUP_COLUMNS:
        columns[name] = table[name].to_numpy() if name in table else np.full(len(table), None)
    columns.update({"age": ages, "predicted": predicted.round(3), "error": (predicted - ages).round(3)})
    return pd.DataFrame(columns)


def evaluate_predictions(
    table: pd.DataFrame,
    predicted: np.ndarray,
    policy: PolicyConfig,
    calibration: pd.DataFrame | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The predictions table (see :func:`prediction_table`) and the metrics: errors overall, per
    age band and source; Challenge 25 rates (``challenge25``), with the threshold calibrated on
    the ``calibration`` predictions table (the validation split) when given; and MAE and rates
    per gender and race (``by_gender``, ``by_race``) where the labels have them.
    """
    predictions = prediction_table(table, predicted)
    ages, estimates = predictions["age"].to_numpy(dtype=float), predictions["predicted"].to_numpy()
    metrics = age_metrics(ages, estimates, predictions["source"].to_numpy())
    reference = None if calibration is None else (calibration["age"], calibration["predicted"])
    metrics["challenge25"] = challenge25_metrics(ages, estimates, policy, reference)
    for name in GROUP_COLUMNS:
        if predictions[name].notna().any():
            metrics[f"by_{name}"] = group_metrics(predictions, name, policy)
    return predictions, metrics


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The few numbers to read first (``metrics/metrics.json``): MAE overall, per source and for
    13-17-year-olds, and the Challenge 25 rates; :data:`DETAILS` holds the rest."""
    c25 = metrics["challenge25"]
    keys = ("threshold", "minor_pass_rate", "teen_pass_rate", "teen_pass_rate_upper95", "adult_check_rate")
    return {
        "mae": metrics["mae"],
        "count": metrics["count"],
        "mae_by_source": metrics.get("mae_by_source", {}),
        "mae_13_17": metrics["mae_by_age_band"].get(TEEN_BAND),
        "challenge25": {
            **{key: c25[key] for key in keys},
            "safe_threshold": c25["safe_threshold"].get("threshold"),
            **({"teens_val_test": c25["teens_val_test"]} if "teens_val_test" in c25 else {}),
        },
        **({"till": metrics["till"]} if "till" in metrics else {}),
    }


def write_evaluation(
    predictions: pd.DataFrame, metrics: dict[str, Any], out_dir: Path, policy: PolicyConfig
) -> None:
    """Write into ``out_dir`` every metric (:data:`DETAILS`), ``predictions.csv``, the Challenge 25
    rates per threshold (``challenge25_rates.csv``) and the PNG figures."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / DETAILS, metrics)
    predictions.to_csv(out_dir / "predictions.csv", index=False, columns=list(PREDICTION_COLUMNS))
    curve = rate_curve(predictions["age"], predictions["predicted"], policy)
    curve.to_csv(out_dir / RATES_CSV, index=False)
    write_evaluation_plots(predictions, metrics, curve, out_dir)


def summary_line(metrics: dict[str, Any]) -> str:
    """One line: overall MAE and count, then the MAE of each source."""
    line = f"MAE {metrics['mae']:.2f} years on {metrics['count']} photos"
    by_source = metrics.get("mae_by_source", {})
    if by_source:
        line += " (" + ", ".join(f"{name} {mae:.2f}" for name, mae in by_source.items()) + ")"
    return line
